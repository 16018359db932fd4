// Background writes in the simulator (WAL of no session that moves the replicas and the lag
// tracker's grid but that no read is judged against; counted apart, conserved, deterministic)
// and the lag prober's timing: its latency, per-node offsets, its history over a promotion.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "replikit/errors.hpp"
#include "replikit/sim/simulator.hpp"

#include "testing.hpp"

namespace {

using namespace replikit;
using namespace replikit::sim;
using replikit::testing::expect_invalid;

constexpr std::size_t kEventual = static_cast<std::size_t>(Consistency::Eventual);

// Session writes at 50/s, background writes, eventual and read-your-writes reads, a crash.
SimConfig with_background(double background_per_s) {
  SimConfig c;
  c.duration_ms = 3000;
  c.write_rate_per_s = 50;
  c.background_write_rate_per_s = background_per_s;
  c.read_rate_per_s = 1000;
  c.sessions = 8;
  c.consistency_mix = {1, 1, 0, 0, 0, 1};
  c.replica_latency = LatencyDistribution::exponential(2.0);  // mean 0.5 ms
  c.client_latency = LatencyDistribution::constant(0.1);
  c.crash_primary_at_ms = 1500;
  c.promote_ms = 137;
  c.window_edges_ms = {0, 1500};
  return c;
}

double max_of(const std::vector<std::vector<double>>& series) {
  double m = 0;
  for (const auto& s : series) {
    for (double v : s) {
      if (!std::isnan(v)) m = std::max(m, v);
    }
  }
  return m;
}

TEST(SimBackground, SameSeedSameResult) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimBackground.SameSeed", 13);
  const SimConfig c = with_background(400);
  const SimResult a = simulate(c, seed), b = simulate(c, seed);
  EXPECT_EQ(a.events, b.events);
  EXPECT_EQ(a.background_writes_acknowledged, b.background_writes_acknowledged);
  EXPECT_EQ(a.writes_acknowledged, b.writes_acknowledged);
  EXPECT_EQ(a.levels[kEventual].stale, b.levels[kEventual].stale);
  ASSERT_EQ(a.tracked_lag_ms.size(), b.tracked_lag_ms.size());
  for (std::size_t i = 0; i < a.tracked_lag_ms.size(); ++i) {
    ASSERT_EQ(a.tracked_lag_ms[i].size(), b.tracked_lag_ms[i].size());
    for (std::size_t k = 0; k < a.tracked_lag_ms[i].size(); ++k) {
      const double x = a.tracked_lag_ms[i][k], y = b.tracked_lag_ms[i][k];
      EXPECT_TRUE(x == y || (std::isnan(x) && std::isnan(y))) << i << " " << k;
    }
  }
  EXPECT_NE(simulate(c, seed + 1).events, a.events);
}

TEST(SimBackground, ConservedAndCountedApartUnderEveryMode) {
  const ReplicationMode modes[] = {ReplicationMode::Async, ReplicationMode::SemiSync, ReplicationMode::Sync,
                                   ReplicationMode::RemoteApply};
  replikit::testing::for_each_seed(17, 8, "SimBackground.Conserved*", [&](int k, std::uint64_t seed) {
    SimConfig c = with_background(2000);
    c.mode = modes[k % 4];
    c.max_queue_length = k % 2 == 0 ? 3 : 10000;  // small queues: background writes fail too
    c.drain_ms = k % 3 == 0 ? 0.5 : 10000;        // a short drain leaves some pending
    const SimResult r = simulate(c, seed);
    EXPECT_TRUE(r.conserved());
    EXPECT_EQ(r.background_writes_submitted,
              r.background_writes_acknowledged + r.background_writes_failed + r.background_writes_pending);
    EXPECT_EQ(r.writes_submitted, r.writes_acknowledged + r.writes_failed + r.writes_pending);
    EXPECT_LE(r.failover.background_writes_lost_acknowledged, r.background_writes_acknowledged);
    // Poisson at 2000/s for 3 s, about 6000: far from the session writer's 150.
    EXPECT_GT(r.background_writes_submitted, 5000u);
    EXPECT_LT(r.writes_submitted, 400u);
    EXPECT_GT(r.background_writes_acknowledged, 0u);
    if (c.drain_ms >= 10000) {
      EXPECT_EQ(r.background_writes_pending + r.writes_pending, 0u);
    }
    // The primary served both kinds.
    std::uint64_t served = 0;
    for (const auto& n : r.nodes) served += n.writes_served;
    EXPECT_GE(served, r.writes_acknowledged + r.background_writes_acknowledged);
  });
}

TEST(SimBackground, AdvanceTheReplicasButNeverMakeAnEventualReadStale) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimBackground.NeverStale", 5);
  SimConfig c;
  c.duration_ms = 2000;
  c.write_rate_per_s = 0;
  c.background_write_rate_per_s = 3000;
  c.read_rate_per_s = 3000;
  c.consistency_mix = {1, 0, 0, 0, 1, 1};  // eventual, bounded staleness, strong
  c.max_staleness_ms = 0.2;
  c.replica_latency = LatencyDistribution::exponential(0.5);  // mean 2 ms: replicas behind often
  const SimResult r = simulate(c, seed);
  for (const auto& l : r.levels) EXPECT_EQ(l.stale, 0u);
  EXPECT_GT(r.levels[kEventual].answered, 1000u);
  // The replicas replayed them: their WAL moved, the true and the tracked lag with it.
  ASSERT_EQ(r.replicas.size(), 2u);
  for (const auto& rep : r.replicas) EXPECT_GT(rep.writes_applied, r.background_writes_acknowledged * 9 / 10);
  EXPECT_GT(max_of(r.lag_ms), 0.0);
  EXPECT_GT(max_of(r.lag_bytes), 0.0);
  EXPECT_GT(max_of(r.tracked_lag_ms), 0.0);
  EXPECT_EQ(r.writes_submitted, 0u);
  // The control: the same WAL as session writes makes eventual reads stale.
  c.write_rate_per_s = 3000;
  c.background_write_rate_per_s = 0;
  const SimResult judged = simulate(c, seed);
  EXPECT_GT(judged.levels[kEventual].stale, 100u);
}

TEST(SimBackground, EventualReadsAreJudgedOnTheSessionWritesOnly) {
  // With session writes too, a read stale for lack of a session write stays stale; one that
  // lacks only background writes does not: fewer stale than with all writes judged.
  replikit::testing::for_each_seed(3, 4, "SimBackground.EventualReadsAreJudged*", [&](int, std::uint64_t seed) {
    SimConfig c = with_background(0);
    c.crash_primary_at_ms = -1;
    c.write_rate_per_s = 250;
    const SimResult all = simulate(c, seed);
    c.write_rate_per_s = 50;
    c.background_write_rate_per_s = 200;
    const SimResult some = simulate(c, seed);
    const double all_rate = all.levels[kEventual].stale_rate(), some_rate = some.levels[kEventual].stale_rate();
    EXPECT_GT(some_rate, 0.0);
    EXPECT_LT(some_rate, all_rate * 0.5);  // about a fifth of the writes are judged
    EXPECT_EQ(some.levels[static_cast<std::size_t>(Consistency::ReadYourWrites)].stale, 0u);
    EXPECT_EQ(some.levels[static_cast<std::size_t>(Consistency::Strong)].stale, 0u);
  });
}

TEST(SimBackground, AFinerWalGridShrinksTheTrackedLagLikeTheRealTracker) {
  // The tracker places the instant the primary passed a replica's replay LSN by interpolating
  // between its samples of the primary (every probe_interval_ms): with 50 writes/s and 100 ms
  // probes a replica one write behind reads tens of ms behind; with 200 background writes/s on
  // top the grid is five times finer and the same lag reads a few ms.
  replikit::testing::for_each_seed(11, 3, "SimBackground.AFinerWalGrid*", [&](int, std::uint64_t seed) {
    SimConfig c = with_background(0);
    c.crash_primary_at_ms = -1;
    c.duration_ms = 20000;
    c.window_edges_ms = {0, 20000};
    c.replica_latency = LatencyDistribution::constant(0.5);
    const SimResult coarse = simulate(c, seed);
    c.background_write_rate_per_s = 200;
    const SimResult fine = simulate(c, seed);
    const WindowStats &wc = coarse.windows.at(0), &wf = fine.windows.at(0);
    EXPECT_GT(wc.max_tracked_lag_ms, 15.0);
    EXPECT_LT(wf.max_tracked_lag_ms, wc.max_tracked_lag_ms * 0.5);
    // The real tracker's pattern: small lags, more often.
    const auto nonzero = [](const SimResult& r) {
      std::uint64_t n = 0, all = 0;
      for (const auto& s : r.tracked_lag_ms) {
        for (double v : s) {
          if (std::isnan(v)) continue;
          ++all;
          n += v > 0;
        }
      }
      return static_cast<double>(n) / static_cast<double>(std::max<std::uint64_t>(1, all));
    };
    EXPECT_GT(nonzero(fine), nonzero(coarse) * 2);
  });
}

TEST(SimBackground, TheRateChangesAtTheCrash) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimBackground.RateChanges", 21);
  SimConfig c = with_background(1000);
  c.background_write_rate_after_crash_per_s = 0;  // the writers stop with the primary
  const SimResult stop = simulate(c, seed);
  EXPECT_GT(stop.background_writes_submitted, 1300u);  // ~1500 before the crash at 1.5 s
  EXPECT_LT(stop.background_writes_submitted, 1700u);
  c.background_write_rate_per_s = 0;
  c.background_write_rate_after_crash_per_s = 1000;  // only on the new primary
  const SimResult start = simulate(c, seed);
  EXPECT_GT(start.background_writes_submitted, 1300u);
  EXPECT_LT(start.background_writes_submitted, 1700u);
  EXPECT_TRUE(start.conserved());
  // Before the crash, none: the first primary served only the session's writes.
  EXPECT_LE(start.nodes.at(0).writes_served, start.writes_submitted);
}

// Tracked lag per replica over a run without faults (known samples only).
std::vector<double> mean_tracked(const SimResult& r) {
  std::vector<double> out;
  for (const auto& s : r.tracked_lag_ms) {
    double sum = 0;
    int n = 0;
    for (double v : s) {
      if (std::isnan(v)) continue;
      sum += v;
      ++n;
    }
    out.push_back(n ? sum / n : 0.0);
  }
  return out;
}

SimConfig steady_probes() {
  SimConfig c = with_background(200);
  c.crash_primary_at_ms = -1;
  c.duration_ms = 10000;
  c.replica_latency = LatencyDistribution::constant(0.5);
  c.probe_latency = LatencyDistribution::constant(0.1);
  return c;
}

TEST(SimProbes, AReplicaProbedAfterThePrimaryHasReplayedWhatThePrimaryShowed) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimProbes.Offsets", 8);
  SimConfig c = steady_probes();
  const SimResult at_tick = simulate(c, seed);
  c.probe_offsets_ms = {0, 0, 0};
  const SimResult zeros = simulate(c, seed);
  EXPECT_EQ(at_tick.events, zeros.events);
  EXPECT_EQ(mean_tracked(at_tick), mean_tracked(zeros));
  c.probe_offsets_ms = {0, 0, 5};  // replica2 read 5 ms after the primary: 10x its replication delay
  const SimResult later = simulate(c, seed);
  const auto m = mean_tracked(later);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_GT(m[0], 0.05);
  EXPECT_LT(m[1], m[0] * 0.2);
}

TEST(SimProbes, ProbeLatencyDefaultsToTheClientLatencyAndItsSpreadOverstatesTheLag) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimProbes.Latency", 9);
  SimConfig c = steady_probes();
  c.probe_latency.reset();
  const SimResult unset = simulate(c, seed);
  c.probe_latency = c.client_latency;
  const SimResult same = simulate(c, seed);
  EXPECT_EQ(unset.events, same.events);
  EXPECT_EQ(mean_tracked(unset), mean_tracked(same));
  // Independent draws of a spread of a few ms read a replica before the primary half the time.
  c.probe_latency = LatencyDistribution::exponential(0.5);  // mean 2 ms
  const SimResult spread = simulate(c, seed);
  EXPECT_GT(mean_tracked(spread)[0], mean_tracked(same)[0] * 2);
}

TEST(SimProbes, TheTrackerKeepsTheOldPrimarysHistoryWhenAsked) {
  // A surviving standby that streams from the new primary only 300 ms after the promotion: with
  // the history kept it reads as far behind as the old primary's last sample (known, large);
  // started afresh, it is older than the whole history (unknown) until it catches up.
  const std::uint64_t seed = replikit::testing::printed_seed("SimProbes.KeepHistory", 10);
  SimConfig c = with_background(200);
  c.repoint_ms = 300;
  c.replica_latency = LatencyDistribution::constant(0.2);
  const SimResult fresh = simulate(c, seed);
  c.reset_tracker_on_promotion = false;
  const SimResult kept = simulate(c, seed);
  ASSERT_EQ(kept.failover_windows.size(), 3u);
  const WindowStats &f = fresh.failover_windows[2], &k = kept.failover_windows[2];
  EXPECT_EQ(f.name, "after_recovery");
  EXPECT_GT(k.max_tracked_lag_ms, 200.0);
  EXPECT_LT(f.max_tracked_lag_ms, 100.0);
  EXPECT_GT(k.tracked_lag_samples, f.tracked_lag_samples);
  EXPECT_TRUE(kept.conserved());
}

TEST(SimProbes, ASurvivorCatchingUpSlowlyReadsBehindMeanwhile) {
  // Streaming again 250 ms after the promotion, its backlog spread over 200 ms: the tracker
  // reads it far behind while it catches up; with the backlog at once it never does.
  const std::uint64_t seed = replikit::testing::printed_seed("SimProbes.CatchUp", 12);
  SimConfig c = with_background(200);
  c.replica_latency = LatencyDistribution::constant(0.2);
  c.repoint_ms = 250;  // the tracker has sampled the new primary meanwhile
  const SimResult at_once = simulate(c, seed);
  c.repoint_catch_up_ms = 200;
  const SimResult spread = simulate(c, seed);
  ASSERT_EQ(spread.failover_windows.size(), 3u);
  EXPECT_TRUE(spread.conserved());
  EXPECT_GT(spread.failover_windows[2].max_tracked_lag_ms, 50.0);
  EXPECT_GT(spread.failover_windows[2].max_tracked_lag_ms, at_once.failover_windows[2].max_tracked_lag_ms * 2);
  EXPECT_GT(spread.failover_windows[2].mean_lag_ms, at_once.failover_windows[2].mean_lag_ms);
  c.repoint_catch_up_ms = -1;
  expect_invalid("repoint_catch_up_ms", [&] { simulate(c, 1); });
}

TEST(SimProbes, BadProbeSettingsNameTheField) {
  SimConfig c;
  c.probe_offsets_ms = {0, 1};  // 3 nodes
  expect_invalid("probe_offsets_ms", [&] { simulate(c, 1); });
  c.probe_offsets_ms = {0, -1, 2};
  expect_invalid("probe_offsets_ms", [&] { simulate(c, 1); });
  c.probe_offsets_ms = {0, 1, c.probe_interval_ms};
  expect_invalid("probe_offsets_ms", [&] { simulate(c, 1); });
  c.probe_offsets_ms.clear();
  c.probe_latency = LatencyDistribution::pareto(1.0, 0.5);  // infinite mean
  expect_invalid("probe_latency", [&] { simulate(c, 1); });
}

TEST(SimBackground, BadRatesNameTheField) {
  SimConfig c;
  c.background_write_rate_per_s = -1;
  expect_invalid("background_write_rate_per_s", [&] { simulate(c, 1); });
  c.background_write_rate_per_s = std::nan("");
  expect_invalid("background_write_rate_per_s", [&] { simulate(c, 1); });
  c.background_write_rate_per_s = 0;
  c.background_write_rate_after_crash_per_s = std::nan("");
  expect_invalid("background_write_rate_after_crash_per_s", [&] { simulate(c, 1); });
  c.background_write_rate_after_crash_per_s = 1e9;
  expect_invalid("background_write_rate_after_crash_per_s", [&] { simulate(c, 1); });
}

}  // namespace
