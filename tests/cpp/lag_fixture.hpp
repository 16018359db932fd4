// The LagTracker suites' shared fixture (test_lag.cpp, test_lag_transitions.cpp,
// test_lag_property.cpp): a primary p writing 1000 bytes per ms and replicas a and b, the
// tracker under test over them, and a router for the tests that route. Header-only.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "replikit/lag.hpp"
#include "replikit/router.hpp"
#include "replikit/topology.hpp"

#include "testing.hpp"

namespace replikit::testing {

inline constexpr std::int64_t kMs = 1000000;
inline constexpr std::int64_t kNotYet = std::numeric_limits<std::int64_t>::min();

inline std::shared_ptr<Topology> three_nodes() {
  return std::make_shared<Topology>(node("p"), std::vector<NodeSpec>{node("a"), node("b")});
}
inline constexpr int kA = 1, kB = 2;

// A primary that writes 1000 bytes per ms, starting at LSN 1000 at t = 0.
inline Lsn lsn_at_ms(std::int64_t ms) { return Lsn(static_cast<std::uint64_t>(1000 + ms * 1000)); }

inline ReadOptions max_staleness(double ms) {
  ReadOptions options;
  options.max_staleness_ms = ms;
  return options;
}

// Primary p and replicas a and b (`t`), the LagTracker under test over them (made by track()),
// and for the tests that route, a router over the same topology (made by route_to_a_only()).
class Lag : public ::testing::Test {
 protected:
  // Makes the tracker under test, with the default LagConfig changed by `edit`.
  template <typename Edit>
  LagTracker& track(Edit edit) {
    LagConfig config;
    edit(config);
    tracker_ = std::make_unique<LagTracker>(t, config);
    return *tracker_;
  }
  LagTracker& track() {
    return track([](LagConfig&) {});
  }
  // The same with the time lag thresholds `max_lag_ms` and `recover_lag_ms` set first.
  template <typename Edit>
  LagTracker& track(double max_lag_ms, double recover_lag_ms, Edit edit) {
    return track([&](LagConfig& c) {
      c.max_lag_ms = max_lag_ms;
      c.recover_lag_ms = recover_lag_ms;
      edit(c);
    });
  }
  LagTracker& track(double max_lag_ms, double recover_lag_ms) {
    return track(max_lag_ms, recover_lag_ms, [](LagConfig&) {});
  }

  // The tracker track() made last.
  LagTracker& tracker() { return *tracker_; }

  // Samples the primary writing as lsn_at_ms does, every `step_ms` from 0 to `until_ms`.
  void primary_every(std::int64_t step_ms, std::int64_t until_ms) {
    for (std::int64_t ms = 0; ms <= until_ms; ms += step_ms) tracker_->primary_sample(ms * kMs, lsn_at_ms(ms));
  }

  // Samples replica `node` at `now_ns` as having received and replayed `lsn`; its lag then.
  ReplicaLag sampled(int node, std::int64_t now_ns, Lsn lsn) {
    tracker_->replica_sample(node, now_ns, lsn, lsn);
    return tracker_->replica(node);
  }

  // Takes replica b down, so that replica a is the only replica that can serve, and makes the router.
  void route_to_a_only() {
    t->set_up("b", false);
    router_ = std::make_unique<Router>(t);
  }

  // Where a read at `level` goes at `now_ns`.
  Decision read(Consistency level, std::int64_t now_ns, const ReadOptions& options = {}) {
    return router_->route_read(session_, level, now_ns, options);
  }

  // Where a bounded-staleness read allowing `max_staleness_ms` goes at `now_ns`.
  Decision bounded_read(std::int64_t now_ns, double max_staleness_ms) {
    return read(Consistency::BoundedStaleness, now_ns, max_staleness(max_staleness_ms));
  }

  std::shared_ptr<Topology> t = three_nodes();

 private:
  std::unique_ptr<LagTracker> tracker_;
  std::unique_ptr<Router> router_;
  Session session_;
};

}  // namespace replikit::testing
