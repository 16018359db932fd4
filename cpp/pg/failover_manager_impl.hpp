#pragma once
// The state behind FailoverManager, shared by failover_manager.cpp (the thread: detection and
// reconciliation) and failover_run.cpp (the failover and switchover procedures).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <mutex>
#include <string>
#include <thread>

#include "clock.hpp"
#include "replikit/lease.hpp"
#include "replikit/pg/failover_manager.hpp"

namespace replikit::pg {

/// Reconciliation rounds a replica must be seen off the primary's timeline before a repoint.
inline constexpr int kAstrayRounds = 3;
/// Reports kept (the oldest are dropped).
inline constexpr std::size_t kMaxReports = 64;

/// Thrown inside a procedure when the lease permit does not cover the next action (the
/// procedure stops there; caught by fail_over, switch_over and reconcile).
struct NoPermit {
  std::string step;
};

struct FailoverManager::Impl {
  Impl(ReplicatedDatabase& database, FailoverManagerOptions o);

  ReplicatedDatabase& db;
  FailoverManagerOptions options;
  ActionOptions actions;  // options.action_timeout_ms

  // The thread.
  std::thread thread;
  std::mutex thread_mutex;  // serialises start()/stop()
  std::atomic<bool> stop_flag{false};
  std::atomic<bool> running{false};
  std::mutex wake_mutex;
  std::condition_variable wake;

  // Serialises failovers, switchovers and reconciliation (one change of the cluster at a time).
  std::mutex act_mutex;

  // Detection of the primary (thread only, or under act_mutex).
  FailureDetector detector;
  int watched = -1;                 // topology index the detector watches
  std::uint64_t seen_probes = 0;    // its probes counted so far
  std::uint64_t seen_ok = 0;        // ... of which good
  std::int64_t last_record_ns = 0;
  std::int64_t retry_after_ns = 0;  // after a plan that promoted no one
  std::int64_t next_state_ns = 0;
  std::int64_t next_reconcile_ns = 0;

  // What the primary said while it was up (under state_mutex).
  mutable std::mutex state_mutex;
  PrimaryState primary_state;
  std::string primary_synchronous;  // its synchronous_standby_names (never the fence's marker)
  std::map<std::string, std::uint32_t> timelines;  // last known timeline of each node
  std::map<std::string, std::uint64_t> fenced;     // node -> probes_failed when fenced last
  std::map<std::string, int> astray;               // replica -> rounds seen off the primary's timeline
  std::uint32_t recorded_timeline = 0;             // the last primary timeline recorded or seen recorded

  // The synchronous setting carried over at the last promotion, kept (under act_mutex) until the
  // primary it deposed streams from the promoted node again and is listed there.
  struct Carried {
    std::string from;      // the old primary's synchronous_standby_names
    std::string to;        // what the promoted node got
    std::string deposed;   // the old primary
    std::string promoted;  // the new one
  };
  std::optional<Carried> carried;

  // The lease permit (require_permit): checked before every action.
  mutable std::mutex permit_mutex;
  std::optional<LeasePermit> permit;
  std::int64_t newest_permit_revision = 0;

  // Reports.
  mutable std::mutex reports_mutex;
  mutable std::condition_variable reports_cv;
  std::deque<FailoverReport> reports;

  void run();
  /// True when an action may start now (always without require_permit).
  bool may_act() const;
  /// The action options for `step`, the timeout clipped to the permit's remaining time (so no
  /// action outlives the permit on the client side); throws NoPermit when none covers it.
  ActionOptions permitted(const char* step) const;
  /// The permit's revision (0: none, or not required).
  std::int64_t permit_revision() const;
  /// Feeds the primary's new probe results to the detector.
  void observe(std::int64_t now_ns);
  /// Reads the primary's synchronous settings while it is up.
  void refresh_primary_state();
  /// Fences returning old primaries, repoints replicas that do not follow the primary.
  void reconcile();
  void reconcile_steps();
  /// The failover procedure (act_mutex held); stops at the first action no permit covers.
  FailoverReport fail_over(const char* kind);
  void fail_over_steps(FailoverReport& report);
  /// The planned switchover (act_mutex held); stops likewise.
  FailoverReport switch_over(const std::string& candidate);
  void switch_over_steps(FailoverReport& report, const std::string& candidate);
  /// Waits (max_drain_ms) for the calls in flight on node `old` at the hold (`at_hold`) to finish;
  /// counts in `report` those that ended (drained) and those left (cut).
  void drain(FailoverReport& report, int old, const PrimaryCalls& at_hold);
  /// Fills `report` for a procedure that found no permit at `step`.
  void stopped_without_permit(FailoverReport& report, const std::string& step);
  void publish(const FailoverReport& report);
  /// The plan from fresh reads of every replica.
  FailoverPlan plan(FailoverReport& report);
  /// Reads the promoted node's timeline history into the database (sessions reconcile with it).
  void adopt_history(const std::string& node, const std::string& dsn, std::uint32_t timeline);
  /// The primary's synchronous_standby_names as last read (under state_mutex).
  std::string synchronous_setting() const;
  /// Before the promotion: gives `candidate` the old primary's synchronous `setting` rewritten
  /// for the survivors (keep_synchronous), noted in `report`; returns what the reason must say
  /// ("; " and the note: fewer survivors than the count, or the action failed), else empty.
  std::string carry_synchronous(FailoverReport& report, const std::string& candidate, const std::string& setting);
  /// A reconciliation step: `node`, a replica following the primary, is the primary the last
  /// carry deposed: list it in the primary's synchronous_standby_names (restore_synchronous),
  /// unless that setting was changed since the carry (then it is left alone).
  void relist_deposed(const std::string& node, const std::string& primary, const std::string& pdsn);
  /// Steps 4-5: record, epoch, slots, repoint (the promotion done).
  void finish_switch(FailoverReport& report, const std::string& promoted);
};

}  // namespace replikit::pg
