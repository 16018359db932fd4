#pragma once
/// \file failover_manager.hpp
/// FailoverManager: watches a ReplicatedDatabase's primary from a background thread and, when
/// it fails, fences it, promotes the best replica, bumps the topology epoch, creates slots and
/// repoints the other replicas; also a planned switchover with zero loss.
///
/// Detection: each probe of the primary by the database's prober (probe_interval_ms,
/// probe_timeout_ms) is fed to a FailureDetector (replikit/detector.hpp): a good probe is Ok,
/// a connect the server refused as full (53300) is Overloaded (alive), a refused connection is
/// Refused, anything else a Timeout. The manager's own stall (its process stopped or not
/// scheduled for longer than the detection window) is not taken for silence of the primary:
/// after it, the primary is suspected only once probes sent since the stall went unanswered.
///
/// The failover, in order (each action idempotent, replikit/pg/failover.hpp):
/// 1. fresh state of every replica (LSNs, timeline), then plan_failover (replikit/failover.hpp)
///    with what was read from the primary while it was up (synchronous_standby_names and
///    pg_stat_replication's sync_state); no candidate: no promotion, the report says why;
/// 2. fence the old primary when it answers (a crashed one does not: nothing to fence);
/// 3. carry the synchronous setting over (keep_synchronous): the candidate, still a standby,
///    gets the old primary's synchronous_standby_names with the same method and count over the
///    survivors (fewer survivors than the count: all of them; none: asynchronous, said in the
///    report). Set before the promotion, it holds from the first write the new primary takes,
///    and a manager that stops after it finds it in place: no commit is acknowledged there
///    without a standby, at the cost of commits waiting until a survivor streams from it (step 5);
///    read the candidate's next-xid bound (loss accounting), promote it;
/// 4. record the promotion (replikit_failover_history), bump the topology epoch: writes go to
///    the new primary from here on;
/// 5. slots on the new primary for the other replicas, repoint them.
/// Writes resume after step 4; steps 5 run after (in a synchronous mode commits wait for them).
/// Once the deposed primary streams from the new one again (rewound and rejoined) under its name
/// as application_name (as PostgreSQL counts a synchronous standby), a reconciliation round lists
/// it last in the carried setting, the old count restored as far as the names allow (unless the
/// setting was changed since the carry).
///
/// Under a lease (require_permit, the coordinated mode): every action above (fence, promote,
/// record, epoch bump, slots, repoint, and reconciliation's) first checks the permit and runs
/// with its timeout clipped to the permit's remaining time; with no valid permit the procedure
/// stops there and the thread only observes.
///
/// Convergence: the thread also reconciles on every round. A node out of recovery that is not
/// the topology's primary is fenced (a returning old primary); a reachable replica that does
/// not stream on the primary's timeline is repointed (with its slot); a primary without a
/// failover record for its timeline gets one. So a manager that died between promote and
/// repoint and starts again (the prober adopts the promoted node: it is out of recovery on a
/// newer timeline) finishes the job instead of promoting a second node. The synchronous
/// setting (step 3) is on the node before its promotion, so such a manager finds it in place and
/// reconciliation never touches it; a manager that never saw the old primary up (started after
/// its failure) does not know its setting and carries none over. With no survivor left the new
/// primary is asynchronous (as Patroni's synchronous_mode without _strict), said in the report.
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "replikit/detector.hpp"
#include "replikit/failover.hpp"
#include "replikit/lease.hpp"
#include "replikit/pg/database.hpp"
#include "replikit/pg/failover.hpp"

namespace replikit::pg {

/// Settings of a FailoverManager (each validated; InvalidArgument names the field).
struct FailoverManagerOptions {
  DetectorConfig detector;           ///< the failure detector of the primary
  FailoverConfig failover;           ///< candidate selection (max_lag_bytes, preferred_region)
  double action_timeout_ms = 2000;   ///< deadline of each action's connect and statements, in [1, 600000]
  double check_interval_ms = 5;      ///< how often the thread looks at the probes, in [1, 10000]
  double state_interval_ms = 500;    ///< how often it reads the primary's synchronous settings, in [10, 600000]
  double retry_interval_ms = 1000;   ///< wait before planning again after a plan that promoted no one, in [10, 600000]
  double max_switchover_ms = 10000;  ///< bound of a switchover's wait for the candidate to catch up, in [1, 600000]
  /// Bound of a switchover's drain: how long calls in flight on the old primary may run on before
  /// the fence ends them, in [0, 600000] (0: no drain). A drain also takes at most half the
  /// database's acquire_timeout_ms: the calls held meanwhile wait at most that long, and the
  /// fence, the catch-up and the promotion come after the drain.
  double max_drain_ms = 2000;
  /// Act only under a valid LeasePermit (grant_permit), checked before every action; without
  /// one the manager only observes. false: the single-process manager, acting on its own.
  bool require_permit = false;
  /// Carry the old primary's synchronous_standby_names over to the new primary (same method
  /// and count, the list without the old primary and the promoted node), set on the candidate
  /// just before its promotion, and list the old primary there again once it streams from the new
  /// one. false: the new primary keeps its own setting (as a standby, empty).
  bool keep_synchronous = true;
};

/// What one failover or switchover did, with its times.
struct FailoverReport {
  std::string kind;                   ///< "failover" or "switchover"
  std::string old_primary;
  std::optional<std::string> promoted;  ///< none: no promotion (see reason)
  std::string reason;                 ///< why this node, or why none
  FailoverPlan plan;                  ///< the plan (candidates and exclusions)
  std::vector<ActionResult> actions;  ///< every action, in order
  std::vector<std::string> repointed; ///< replicas now streaming from the new primary
  std::uint64_t next_xid = 0;         ///< the promoted node's next xid at promotion (0: unknown)
  std::uint32_t timeline = 0;         ///< the new primary's timeline
  std::uint64_t epoch = 0;            ///< the topology epoch after the switch
  std::int64_t last_alive_ns = 0;     ///< steady clock: the old primary's last good probe
  std::int64_t detected_ns = 0;       ///< steady clock: the failure suspected (switchover: started)
  std::int64_t promoted_ns = 0;       ///< steady clock: the promotion returned
  std::int64_t writable_ns = 0;       ///< steady clock: the epoch bumped (writes go to the new primary)
  std::int64_t finished_ns = 0;       ///< steady clock: every action done
  double write_pause_ms = 0;          ///< switchover: writes held for this long
  std::int32_t drained_in_flight = 0;  ///< switchover: calls in flight on the old primary that finished before the fence
  std::int32_t cut_in_flight = 0;      ///< switchover: calls still in flight there at max_drain_ms, ended by the fence
                                       ///< (a call sent there and in flight at the hold is one of the two)
  double drain_ms = 0;                 ///< switchover: how long the drain lasted
  std::int64_t permit_revision = 0;   ///< the lease permit's revision it acted under (0: none required)
  /// The synchronous_standby_names carried over to the new primary (keep_synchronous; empty: none,
  /// the new primary is asynchronous). A count cut to the standbys left is said in `reason`.
  std::string synchronous_standby_names;
  /// The writes this database acknowledged that the new primary lacks (ReplicatedDatabase::lost_writes()).
  LossReport lost_writes;
};

/// Watches the primary of `database` and fails over when it fails. Thread-safe.
class FailoverManager {
 public:
  /// `database` must outlive the manager. Nothing starts until start().
  FailoverManager(ReplicatedDatabase& database, FailoverManagerOptions options = {});
  /// stop().
  ~FailoverManager();
  FailoverManager(const FailoverManager&) = delete;
  FailoverManager& operator=(const FailoverManager&) = delete;

  /// Starts the background thread (idempotent).
  void start();
  /// Stops it and waits for it (a failover in progress finishes first). Idempotent.
  void stop();
  /// True between start() and stop().
  bool running() const noexcept;

  /// Fails over now, as if the primary had failed (the thread's own procedure).
  FailoverReport failover_now();
  /// Planned switchover to `candidate` (empty: the plan's choice): holds new writes and new
  /// primary reads (they go to the new primary once it is writable), lets the calls in flight on
  /// the old primary finish (max_drain_ms), fences it, waits until the candidate replayed
  /// everything it wrote, promotes it; zero loss.
  FailoverReport switchover(const std::string& candidate = "");
  /// Every report so far, oldest first (at most the last 64).
  std::vector<FailoverReport> reports() const;
  /// Waits until at least `count` reports exist or `timeout_ms` passed; true when they do.
  bool wait_reports(std::size_t count, double timeout_ms) const;
  /// Grants the lease permit (the coordinator, after each confirmed renewal; valid_until_ns on
  /// the steady clock, time.monotonic_ns()). A permit with an older revision than the one held
  /// is ignored.
  void grant_permit(const LeasePermit& permit);
  /// Withdraws the permit: no action starts from now on.
  void revoke_permit();
  /// The permit held (none: not granted or revoked).
  std::optional<LeasePermit> permit() const;
  /// The settings in force.
  const FailoverManagerOptions& options() const noexcept;

  /// The state behind the manager (internal).
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

/// Throws InvalidArgument naming the first field of `options` out of its range.
void check_options(const FailoverManagerOptions& options);

}  // namespace replikit::pg
