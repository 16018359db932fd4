#pragma once
// Turns what the prober and the query paths see into events, once per transition: a node's
// down/up and role-mismatch states are kept here (one atomic flag per node, so a prober
// failure and a query thread's lost connection racing to mark the same node down publish one
// NodeDown), and the lag tracker's transitions are published with the node's name as the
// tracker records them, before routing sees them (LagTracker::set_transition_listener): a
// reader that sees a replica's lag state change in the Topology finds its event in the log.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "replikit/lag.hpp"
#include "replikit/pg/events.hpp"
#include "replikit/topology.hpp"

namespace replikit::pg::detail {

class NodeEvents {
 public:
  /// Publishes `tracker`'s transitions from now on, until destroyed.
  NodeEvents(std::shared_ptr<EventLog> log, std::shared_ptr<Topology> topology, std::shared_ptr<LagTracker> tracker);
  ~NodeEvents();
  NodeEvents(const NodeEvents&) = delete;
  NodeEvents& operator=(const NodeEvents&) = delete;

  /// `node` became unreachable: NodeDown unless it already was. Called before routing drops the
  /// node; returns only once the NodeDown is in the log, also to a caller that lost the race to
  /// publish it, so a reader that sees the node out of routing finds the event.
  void down(int node, const std::string& error);
  /// A good probe of `node`: NodeUp when it was down (before routing takes the node back).
  void up(int node);
  /// The last good probe found `node`'s role (mis)matching: RoleMismatch / RoleRestored on a change.
  void role(int node, bool mismatch, const std::string& message);
  /// A read that lost its connection to `node` runs attempt `attempt` on `next`.
  void read_retry(int node, int next, int attempt, const std::string& error);
  /// `node` became the primary (a failover, a switchover, or a promotion the prober adopted).
  void failover(int node, const std::string& message);

  const std::shared_ptr<EventLog>& log() const noexcept { return log_; }

 private:
  void publish(EventKind kind, int node, std::string message);
  /// One lag transition (the tracker's listener: under its lock).
  void lag_transition(const LagEvent& l);

  std::shared_ptr<EventLog> log_;
  std::shared_ptr<Topology> topology_;
  std::shared_ptr<LagTracker> tracker_;
  std::mutex updown_mutex_;  // a down()/up() returns after the event it or a racing caller publishes
  std::array<std::atomic<bool>, kMaxNodes> down_{};
  std::array<std::atomic<bool>, kMaxNodes> mismatch_{};
};

}  // namespace replikit::pg::detail
