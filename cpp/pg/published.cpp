// ReplicatedDatabase::apply_topology: a router follows the topology its coordinator's leader
// published, and ignores older records (the revision is the fencing token).
#include "database_impl.hpp"
#include "replikit/errors.hpp"
#include "replikit/pg/failover.hpp"

namespace replikit::pg {

namespace {

// Bound of the history read after a newer timeline is applied (the router's own thread waits).
constexpr double kHistoryReadTimeoutMs = 1000;

}  // namespace

TopologyVerdict ReplicatedDatabase::apply_topology(const PublishedTopology& published) {
  auto& topo = *impl_->topology;
  published.validate();
  topo.index_of(published.primary, "topology");
  {
    std::lock_guard<std::mutex> lock(impl_->published_mutex);
    const TopologyVerdict verdict = impl_->published.offer(published);
    if (verdict != TopologyVerdict::Applied) return verdict;
    // The prober may have adopted the promoted node already (out of recovery, newer timeline).
    make_primary(published.primary, "published by the coordinator's leader (revision " +
                                        std::to_string(published.revision) + ")");
  }
  if (published.timeline > impl_->history_current.load(std::memory_order_acquire)) {
    // Sessions reconcile against it: writes above the switch point were lost with the old timeline.
    ActionOptions bounded;
    bounded.timeout_ms = kHistoryReadTimeoutMs;
    const std::string dsn = this->dsn(published.primary);
    const std::optional<std::string> text = read_timeline_history(published.primary, dsn, published.timeline, bounded);
    try {
      if (text) set_timeline_history(TimelineHistory::parse(*text, published.timeline));
    } catch (const InvalidArgument&) {
      // Not a history we can read: sessions keep their tokens' LSNs (over-asking, sound).
    }
  }
  return TopologyVerdict::Applied;
}

std::optional<PublishedTopology> ReplicatedDatabase::published_topology() const {
  std::lock_guard<std::mutex> lock(impl_->published_mutex);
  return impl_->published.current();
}

}  // namespace replikit::pg
