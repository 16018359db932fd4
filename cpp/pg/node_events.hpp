#pragma once
// Turns what the prober and the query paths see into events, once per transition: a node's
// down/up and role-mismatch states are kept here (one atomic flag per node, so a prober
// failure and a query thread's lost connection racing to mark the same node down publish one
// NodeDown), and the lag tracker's transitions are copied over with the node's name.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "replikit/lag.hpp"
#include "replikit/pg/events.hpp"
#include "replikit/topology.hpp"

namespace replikit::pg::detail {

class NodeEvents {
 public:
  NodeEvents(std::shared_ptr<EventLog> log, std::shared_ptr<Topology> topology, std::shared_ptr<LagTracker> tracker);

  /// `node` became unreachable: NodeDown unless it already was.
  void down(int node, const std::string& error);
  /// A good probe of `node`: NodeUp when it was down.
  void up(int node);
  /// The last good probe found `node`'s role (mis)matching: RoleMismatch / RoleRestored on a change.
  void role(int node, bool mismatch, const std::string& message);
  /// A read that lost its connection to `node` runs attempt `attempt` on `next`.
  void read_retry(int node, int next, int attempt, const std::string& error);
  /// `node` became the primary (a failover, a switchover, or a promotion the prober adopted).
  void failover(int node, const std::string& message);
  /// Copies the lag tracker's transitions since the last call (prober thread only).
  void lag_transitions();

  const std::shared_ptr<EventLog>& log() const noexcept { return log_; }

 private:
  void publish(EventKind kind, int node, std::string message);

  std::shared_ptr<EventLog> log_;
  std::shared_ptr<Topology> topology_;
  std::shared_ptr<LagTracker> tracker_;
  std::array<std::atomic<bool>, kMaxNodes> down_{};
  std::array<std::atomic<bool>, kMaxNodes> mismatch_{};
  std::uint64_t lag_sequence_ = 0;  // the last lag tracker event copied (prober thread only)
};

}  // namespace replikit::pg::detail
