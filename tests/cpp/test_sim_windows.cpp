// The simulator's outputs per time window: fixed windows and the windows around a failover
// partition the run's reads (by submission) and lag samples, deterministically, and show where
// in time the stale reads of a failover fall.
#include <gtest/gtest.h>

#include <cmath>

#include "replikit/errors.hpp"
#include "replikit/sim/simulator.hpp"

#include "testing.hpp"

namespace {

using namespace replikit;
using namespace replikit::sim;
using replikit::testing::expect_invalid;

constexpr std::size_t kEventual = static_cast<std::size_t>(Consistency::Eventual);

// A crash with reads of two levels and a surviving standby that reconnects slowly.
SimConfig crash_with_reads() {
  SimConfig c;
  c.duration_ms = 3000;
  c.write_rate_per_s = 200;
  c.read_rate_per_s = 2000;
  c.replicas = 2;
  c.sessions = 50;
  c.consistency_mix = {1, 1, 0, 0, 0, 0};
  c.replica_latency = LatencyDistribution::exponential(2.0);  // mean 0.5 ms
  c.crash_primary_at_ms = 1000;
  c.promote_ms = 137;  // the promotion off the 100 ms probes' beat, as a real one falls
  c.repoint_ms = 300;
  c.window_edges_ms = {0, 500, 1000, 1500, 2000, 3000};
  return c;
}

struct Totals {
  std::uint64_t submitted = 0, answered = 0, failed = 0, stale = 0, lag_samples = 0;
};

Totals sum(const std::vector<WindowStats>& windows) {
  Totals t;
  for (const auto& w : windows) {
    t.submitted += w.reads_submitted;
    t.answered += w.reads_answered;
    t.failed += w.reads_failed;
    t.lag_samples += w.lag_samples;
    for (const auto& l : w.levels) t.stale += l.stale;
    std::uint64_t by_level = 0;
    for (const auto& l : w.levels) by_level += l.submitted;
    EXPECT_EQ(by_level, w.reads_submitted) << w.name;
    EXPECT_LE(w.reads_answered + w.reads_failed, w.reads_submitted) << w.name;
  }
  return t;
}

TEST(SimWindows, WindowsPartitionTheRunsReadsAndLagSamples) {
  const auto seeds = replikit::testing::run_seeds(21, 3);
  for (std::uint64_t seed = seeds.base; seed < seeds.base + static_cast<std::uint64_t>(seeds.runs); ++seed) {
    SCOPED_TRACE(replikit::testing::replay_hint(seed, "SimWindows.*"));
    const SimResult r = simulate(crash_with_reads(), seed);
    ASSERT_TRUE(r.conserved());
    ASSERT_EQ(r.reads_pending, 0u);
    ASSERT_EQ(r.windows.size(), 5u);
    ASSERT_EQ(r.failover_windows.size(), 3u);
    std::uint64_t stale = 0, samples = 0;
    for (const auto& l : r.levels) stale += l.stale;
    for (std::size_t i = 0; i < r.lag_ms.size(); ++i) {
      for (double lag : r.lag_ms[i]) samples += !std::isnan(lag);
    }
    for (const auto* windows : {&r.windows, &r.failover_windows}) {
      const Totals t = sum(*windows);
      EXPECT_EQ(t.submitted, r.reads_submitted);
      EXPECT_EQ(t.answered, r.reads_answered);
      EXPECT_EQ(t.failed, r.reads_failed);
      EXPECT_EQ(t.stale, stale);
      // The samples of nodes that were replicas (not the promoted one's after the promotion).
      EXPECT_LE(t.lag_samples, samples);
      EXPECT_GT(t.lag_samples, samples / 2);
    }
    EXPECT_EQ(sum(r.windows).lag_samples, sum(r.failover_windows).lag_samples);
    // The failover windows end where the next begins, at the crash and the recovery.
    const auto& f = r.failover_windows;
    EXPECT_EQ(f[0].name, "before_crash");
    EXPECT_EQ(f[1].name, "outage");
    EXPECT_EQ(f[2].name, "after_recovery");
    EXPECT_EQ(f[0].from_ms, 0);
    EXPECT_NEAR(f[1].from_ms, 1000, 1e-6);
    EXPECT_NEAR(f[2].from_ms, 1000 + r.failover.recovery_ms, 1e-6);
    EXPECT_EQ(f[0].to_ms, f[1].from_ms);
    EXPECT_EQ(f[1].to_ms, f[2].from_ms);
    EXPECT_EQ(f[2].to_ms, 3000);
    EXPECT_EQ(r.windows[2].name, "window 2");
    EXPECT_EQ(r.windows[2].from_ms, 1000);
  }
}

TEST(SimWindows, StaleReadsAndLagFallWhereTheFailoverPutsThem) {
  // Reads fail only around the crash: those the primary held when it crashed (sent before it)
  // and those sent to it before the detection; none after the recovery. Few reads go to the
  // primary (read-your-writes ones with a write not yet seen on a replica), so a run fails one
  // now and then: counted over seeds.
  std::uint64_t failed_around = 0;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const SimResult s = simulate(crash_with_reads(), seed);
    failed_around += s.failover_windows[0].reads_failed + s.failover_windows[1].reads_failed;
    EXPECT_EQ(s.failover_windows[2].reads_failed, 0u) << seed;
    EXPECT_EQ(s.windows[0].reads_failed + s.windows[4].reads_failed, 0u) << seed;
  }
  EXPECT_GT(failed_around, 0u);
  const SimResult r = simulate(crash_with_reads(), 5);
  const auto& f = r.failover_windows;
  // The survivor receives nothing for repoint_ms after the recovery: stale eventual reads and
  // lag of hundreds of ms after it, against a fraction of a ms before the crash.
  const double before = f[0].levels[kEventual].stale_rate(), after = f[2].levels[kEventual].stale_rate();
  EXPECT_LT(before, 0.2);
  EXPECT_GT(after, before + 0.05);
  EXPECT_LT(f[0].mean_lag_ms, 2.0);
  EXPECT_GT(f[2].max_lag_ms, 250.0);
  EXPECT_GE(f[2].max_tracked_lag_ms, f[2].mean_tracked_lag_ms);
  // The promotion's end-of-recovery record puts every position of the new timeline past the
  // detached survivor's: its tracked lag is unknown until it streams again (as PostgreSQL's
  // replay LSN reads to the client), not the time since the new primary's first probe.
  EXPECT_LT(f[2].max_tracked_lag_ms, 50.0);
  EXPECT_GT(f[0].tracked_lag_samples, 0u);
  // Read-your-writes reads are never stale in any window.
  for (const auto& w : f) EXPECT_EQ(w.levels[static_cast<std::size_t>(Consistency::ReadYourWrites)].stale, 0u) << w.name;
  // Without a crash: no failover windows; the fixed windows are the same up to the crash.
  SimConfig calm = crash_with_reads();
  calm.crash_primary_at_ms = -1;
  const SimResult c = simulate(calm, 5);
  EXPECT_TRUE(c.failover_windows.empty());
  EXPECT_EQ(c.windows[0].reads_submitted, r.windows[0].reads_submitted);
  EXPECT_EQ(c.windows[0].levels[kEventual].stale, r.windows[0].levels[kEventual].stale);
}

TEST(SimWindows, SameSeedSameWindows) {
  const SimResult a = simulate(crash_with_reads(), 9), b = simulate(crash_with_reads(), 9);
  ASSERT_EQ(a.windows.size(), b.windows.size());
  for (const auto* pair : {&a.windows, &a.failover_windows}) {
    const auto& other = pair == &a.windows ? b.windows : b.failover_windows;
    for (std::size_t i = 0; i < pair->size(); ++i) {
      const WindowStats &x = (*pair)[i], &y = other[i];
      EXPECT_EQ(x.reads_answered, y.reads_answered);
      EXPECT_EQ(x.levels[kEventual].stale, y.levels[kEventual].stale);
      EXPECT_EQ(x.mean_tracked_lag_ms, y.mean_tracked_lag_ms);
      EXPECT_EQ(x.max_lag_ms, y.max_lag_ms);
      EXPECT_EQ(x.from_ms, y.from_ms);
    }
  }
  // No edges: no fixed windows.
  SimConfig c = crash_with_reads();
  c.window_edges_ms.clear();
  EXPECT_TRUE(simulate(c, 9).windows.empty());
}

TEST(SimWindows, BadEdgesNameTheField) {
  const auto bad = [](std::vector<double> edges) {
    SimConfig c;
    c.window_edges_ms = std::move(edges);
    return [c] { simulate(c, 1); };
  };
  expect_invalid("window_edges_ms", bad({100}));
  expect_invalid("window_edges_ms", bad({0, 100, 100}));
  expect_invalid("window_edges_ms", bad({0, 200, 100}));
  expect_invalid("window_edges_ms", bad({-1, 100}));
  expect_invalid("window_edges_ms", bad({0, std::nan("")}));
  expect_invalid("window_edges_ms", bad(std::vector<double>(kMaxWindowEdges + 1, 0.0)));
}

}  // namespace
