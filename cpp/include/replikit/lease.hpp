#pragma once
/// \file lease.hpp
/// Leadership through a coordination service's lease (etcd's election recipe), as a
/// deterministic state machine: the adapter (the etcd client) feeds it events with the times
/// they refer to; it never reads a clock.
///
/// States: Campaigning (trying to take the leader key, or waiting for it to be free), Leading
/// (holds the key under a live lease), Lost (the lease is gone or may be gone), SteppingDown
/// (resigning: no more actions, the key is being released).
///
/// Safety rests on one rule: the holder may act only before its local deadline, which is
/// `sent + min(ttl, granted) - margin`, where `sent` is when the request that last confirmed the
/// lease (grant or keepalive) was SENT. The service starts the TTL no earlier than it received
/// that request, so the service's expiry is never before `sent + ttl`: the holder stops at
/// least `margin` before anyone else can take the key. The margin covers clock-rate drift
/// between hosts and the client-side bound of an action started just before the deadline
/// (actions are bounded by the permit's remaining time). A process paused past its deadline
/// (a long GC, SIGSTOP) finds on resuming that the deadline has passed: it may not act, even
/// before the service has expired the lease, and even if a late keepalive answer arrives.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "replikit/lsn.hpp"

namespace replikit {

/// Where a LeaderLease is.
enum class LeaseState : std::uint8_t { Campaigning = 0, Leading = 1, Lost = 2, SteppingDown = 3 };

/// Lower-case name of a lease state, e.g. "stepping_down".
const char* to_string(LeaseState state) noexcept;

/// Settings of a LeaderLease; every default is defined here.
struct LeaseConfig {
  double ttl_ms = 2000.0;            ///< the lease's TTL at the service, in [10, 3600000]
  double margin_ms = 600.0;          ///< the local deadline is this much before the TTL, in (0, ttl_ms)
  double renew_interval_ms = 300.0;  ///< keepalive this often while leading, in (0, ttl_ms - margin_ms)

  /// The local validity of one confirmation: ttl_ms - margin_ms.
  double hold_ms() const noexcept { return ttl_ms - margin_ms; }
  /// Throws InvalidArgument naming the first field out of range.
  void validate() const;
};

/// The right to act, with the fencing token every action carries.
struct LeasePermit {
  std::int64_t revision = 0;        ///< the leader key's creation revision (the fencing token)
  std::int64_t valid_until_ns = 0;  ///< the local deadline (same clock as the events' now_ns)

  /// True when an action may start at `now_ns`.
  bool valid(std::int64_t now_ns) const noexcept { return revision > 0 && now_ns < valid_until_ns; }
};

/// One transition, for status and tests.
struct LeaseTransition {
  std::int64_t at_ns = 0;
  LeaseState from = LeaseState::Campaigning;
  LeaseState to = LeaseState::Campaigning;
  std::string reason;
};

/// The election and lease state machine of one candidate. Deterministic; not synchronised.
class LeaderLease {
 public:
  /// Transitions kept for inspection (the oldest are dropped).
  static constexpr std::size_t kMaxTransitions = 64;

  /// A candidate in Campaigning with `config` (validated).
  explicit LeaderLease(LeaseConfig config = {});

  /// Starts (or restarts) campaigning; from Lost, or a no-op when already campaigning.
  void campaign(std::int64_t now_ns);
  /// The leader key was created under our lease at `revision`; `lease_sent_ns` is when the
  /// request that last confirmed the lease (its grant or a keepalive) was sent.
  void acquired(std::int64_t lease_sent_ns, std::int64_t now_ns, std::int64_t revision);
  /// A keepalive sent at `sent_ns` was answered with `granted_ttl_ms` remaining (0: expired).
  void renewed(std::int64_t sent_ns, std::int64_t now_ns, double granted_ttl_ms);
  /// A keepalive got no answer (the service unreachable): still leading until the deadline.
  void renew_failed(std::int64_t now_ns, const std::string& reason);
  /// The service says the lease or the key is gone (or another holds the key).
  void lost(std::int64_t now_ns, const std::string& reason);
  /// Begins resigning: no action is permitted from now on.
  void step_down(std::int64_t now_ns);
  /// The resignation is done (the key released, or the lease left to expire): Lost.
  void stepped_down(std::int64_t now_ns);

  /// The state at `now_ns` (Leading turns Lost once the deadline passes).
  LeaseState state(std::int64_t now_ns) const noexcept;
  /// The permit at `now_ns`; none unless leading before the deadline.
  std::optional<LeasePermit> permit(std::int64_t now_ns) const noexcept;
  /// True when an action may start at `now_ns`.
  bool may_act(std::int64_t now_ns) const noexcept { return permit(now_ns).has_value(); }
  /// True when a keepalive should be sent at `now_ns` (leading, the renew interval passed).
  bool renew_due(std::int64_t now_ns) const noexcept;
  /// The local deadline of the current lease (0 when none).
  std::int64_t deadline_ns() const noexcept { return deadline_ns_; }
  /// The fencing token of the current (or last) leadership; 0 before any.
  std::int64_t revision() const noexcept { return revision_; }
  /// Why the lease is where it is (the last transition's reason, or the last failed renewal's).
  const std::string& reason() const noexcept { return reason_; }
  /// Keepalives that got no answer since the last one that did.
  int failed_renewals() const noexcept { return failed_renewals_; }
  /// The last transitions, oldest first.
  const std::vector<LeaseTransition>& transitions() const noexcept { return transitions_; }
  /// The settings.
  const LeaseConfig& config() const noexcept { return config_; }

 private:
  void check_time(std::int64_t now_ns);
  void settle(std::int64_t now_ns);  // Leading past its deadline becomes Lost
  void move(std::int64_t now_ns, LeaseState to, std::string reason);

  LeaseConfig config_;
  LeaseState state_ = LeaseState::Campaigning;
  std::int64_t last_now_ns_ = 0;
  std::int64_t deadline_ns_ = 0;
  std::int64_t last_sent_ns_ = 0;  // the newest confirmed request's send time
  std::int64_t last_renew_ns_ = 0;
  std::int64_t revision_ = 0;
  int failed_renewals_ = 0;
  std::string reason_ = "campaigning";
  std::vector<LeaseTransition> transitions_;
};

/// What a replica is, as the leader publishes it.
struct PublishedReplica {
  std::string name;
  std::string state;  ///< e.g. "streaming", "down", "repointed"
};

/// The cluster's topology as the leader publishes it (one key in the coordination service).
struct PublishedTopology {
  std::string primary;                    ///< the primary's name
  std::uint32_t timeline = 0;             ///< the primary's timeline (0: unknown)
  std::uint64_t epoch = 0;                ///< the topology epoch (changes with the primary)
  Lsn switch_lsn;                         ///< where the primary's timeline began (0/0: none)
  std::vector<PublishedReplica> replicas; ///< the others
  std::int64_t leader_revision = 0;       ///< the permit's revision of the leader that wrote it
  std::int64_t revision = 0;              ///< the record's revision at the service (its mod revision)

  /// Throws InvalidArgument naming the first bad field (empty or repeated names, revisions < 1).
  void validate() const;
};

/// What TopologyView::offer did with a record.
enum class TopologyVerdict : std::uint8_t {
  Applied = 0,     ///< newer: it is the current topology now
  Duplicate = 1,   ///< the same revision as the current one
  Stale = 2,       ///< an older revision (or an older leader's): ignored
};

/// Lower-case name of a verdict, e.g. "stale".
const char* to_string(TopologyVerdict verdict) noexcept;

/// The newest published topology a process has seen; older records are ignored.
class TopologyView {
 public:
  /// Offers a record (validated); applied only when its revision is newer than the current one
  /// and its leader is not older than the current one's.
  TopologyVerdict offer(const PublishedTopology& topology);
  /// The current record; none before the first.
  const std::optional<PublishedTopology>& current() const noexcept { return current_; }
  /// The current record's revision (0 before the first).
  std::int64_t revision() const noexcept { return current_ ? current_->revision : 0; }
  /// Records ignored as stale so far.
  std::uint64_t stale() const noexcept { return stale_; }

 private:
  std::optional<PublishedTopology> current_;
  std::uint64_t stale_ = 0;
};

}  // namespace replikit
