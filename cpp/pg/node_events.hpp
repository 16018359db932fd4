#pragma once
// Turns what the prober, the query paths and the failover manager see into events, once per
// transition, and makes the routing change each event announces: a node's down/up and
// role-mismatch states are kept here, and every event and the routing change it announces are
// made under one lock, the event first. So a reader that reads routing and then the events
// never sees a routing state whose event it has not got, and two threads racing over one node
// (a prober's good probe and a query thread's lost connection) cannot leave routing and the
// last event disagreeing. The lag tracker's transitions are published with the node's name as
// the tracker records them, before routing sees them (LagTracker::set_transition_listener).
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "replikit/lag.hpp"
#include "replikit/pg/events.hpp"
#include "replikit/topology.hpp"

namespace replikit::pg::detail {

/// What a good probe of a node means (Prober::judge).
struct ProbeVerdict {
  bool mismatch = false;       // the server's role differs from the topology's
  std::string message;         // the role event's, when `mismatch` changed
  std::optional<bool> routed;  // the routing wanted; nullopt: leave it as it is
  std::string error;           // the probe's error ("" when none)
};

class NodeEvents {
 public:
  /// Publishes `tracker`'s transitions from now on, until destroyed.
  NodeEvents(std::shared_ptr<EventLog> log, std::shared_ptr<Topology> topology, std::shared_ptr<LagTracker> tracker);
  ~NodeEvents();
  NodeEvents(const NodeEvents&) = delete;
  NodeEvents& operator=(const NodeEvents&) = delete;

  /// `node` became unreachable: NodeDown unless it already was, then routing drops the node.
  /// True when this call took the node out of routing.
  bool down(int node, const std::string& error);
  /// A good probe of `node`, in one step (no promotion or marking down in between): NodeUp when
  /// it was down, then `judge()` (it samples the lag tracker and may call promotion()), then
  /// RoleMismatch / RoleRestored when the verdict's `mismatch` changed, then its routing.
  /// Returns the verdict.
  ProbeVerdict good_probe(int node, const std::function<ProbeVerdict()>& judge);
  /// Makes `next` the primary: its lag is forgotten (Recovered first when LAGGING), then, under
  /// the topology's lock (Topology::make_primary's announce), Failover for it, RoleMismatch for
  /// the primary it deposes (out of routing until it rejoins as a replica) and RoleRestored for
  /// `next` when it was flagged, then the topology's change, then the lag tracker starts afresh
  /// (LagTracker::reset: whoever promotes, the manager or the prober adopting a node promoted
  /// elsewhere, a survivor is never read against the old primary's history), then routing takes
  /// `next` in unless it is down (its next good probe does). When
  /// `next` is the primary already (also when made so meanwhile by a direct Topology call), only
  /// the last step. False, with no event published, when `next` is not a replica (removed).
  bool promotion(int next, const std::string& why);
  /// True while `node`'s last role event is RoleMismatch.
  bool mismatched(int node);
  /// A read that lost its connection to `node` runs attempt `attempt` on `next`.
  void read_retry(int node, int next, int attempt, const std::string& error);
  /// Testing: `hook` runs on the publishing thread just before each event goes into the log.
  void set_hook(std::function<void(const Event&)> hook);

  const std::shared_ptr<EventLog>& log() const noexcept { return log_; }

 private:
  void publish(EventKind kind, int node, std::string message);
  /// The events of `next` deposing `old` (promotion(), under the topology's lock).
  void announce_promotion(int old, int next, const std::string& why);
  void append(Event e);
  /// Sets `node`'s routing flag (a removed node: nothing to route).
  bool route(int node, bool up);
  /// One lag transition (the tracker's listener: under its lock).
  void lag_transition(const LagEvent& l);

  std::shared_ptr<EventLog> log_;
  std::shared_ptr<Topology> topology_;
  std::shared_ptr<LagTracker> tracker_;
  // Held across each transition's event and its routing change (recursive: a good probe's judge
  // may promote). Lock order: this, then the prober's and the tracker's, then the topology's
  // and the log's.
  std::recursive_mutex mutex_;
  std::array<bool, kMaxNodes> down_{};      // guarded by mutex_
  std::array<bool, kMaxNodes> mismatch_{};  // guarded by mutex_
  std::mutex hook_mutex_;
  std::function<void(const Event&)> hook_;  // guarded by hook_mutex_
};

}  // namespace replikit::pg::detail
