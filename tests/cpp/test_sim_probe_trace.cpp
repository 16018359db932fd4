// What the simulator's lag tracker is fed: the bounded trace of its prober's samples
// (SimConfig::max_probe_samples) and the primary read as of its commits' flush
// (SimConfig::probe_commit_lag_ms), which changes only what the tracker sees; when each probe's
// query reads its node (run lags, read gaps coupled with the replication in flight).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "replikit/errors.hpp"
#include "replikit/sim/simulator.hpp"

#include "testing.hpp"

namespace {

using namespace replikit;
using namespace replikit::sim;
using replikit::testing::expect_invalid;

constexpr std::size_t kEventual = static_cast<std::size_t>(Consistency::Eventual);

// Steady writes, eventual reads, every node probed at the tick with a constant latency.
SimConfig steady() {
  SimConfig c;
  c.duration_ms = 4000;
  c.write_rate_per_s = 50;
  c.background_write_rate_per_s = 200;
  c.read_rate_per_s = 500;
  c.sessions = 8;
  c.consistency_mix = {1, 1, 0, 0, 0, 0};
  c.replica_latency = LatencyDistribution::constant(0.4);
  c.client_latency = LatencyDistribution::constant(0.1);
  c.probe_latency = LatencyDistribution::constant(0.1);
  c.apply_rate_per_s = 1e6;
  c.sample_interval_ms = 5;
  return c;
}

double mean_tracked(const SimResult& r) {
  double sum = 0;
  int n = 0;
  for (const auto& s : r.tracked_lag_ms) {
    for (double v : s) {
      if (!std::isnan(v)) {
        sum += v;
        ++n;
      }
    }
  }
  return n ? sum / n : 0.0;
}

// Replica samples below the primary's last sample stamped before them (probesamples.behind_counts).
int behind(const SimResult& r) {
  std::vector<std::pair<double, std::uint64_t>> primary;
  for (const ProbeSample& s : r.probe_samples) {
    if (s.primary) primary.emplace_back(s.stamp_ms, s.lsn);
  }
  std::sort(primary.begin(), primary.end());
  int n = 0;
  for (const ProbeSample& s : r.probe_samples) {
    if (s.primary) continue;
    auto it = std::upper_bound(primary.begin(), primary.end(), std::make_pair(s.stamp_ms, ~std::uint64_t{0}));
    if (it != primary.begin() && s.lsn < std::prev(it)->second) ++n;
  }
  return n;
}

// Every replica sample of `r` lies at `before` ms into its 100 ms probe tick before the crash at
// 2000 ms and at `after` from it on, with more than `min_before` / `min_after` samples of each.
void expect_replica_phases(const SimResult& r, double before, double after, int min_before, int min_after) {
  int n_before = 0, n_after = 0;
  for (const ProbeSample& s : r.probe_samples) {
    if (s.primary) continue;
    const double phase = std::fmod(s.stamp_ms, 100.0);
    const bool early = s.stamp_ms < 2000;
    EXPECT_NEAR(phase, early ? before : after, 1e-6) << s.stamp_ms;
    ++(early ? n_before : n_after);
  }
  EXPECT_GT(n_before, min_before);
  EXPECT_GT(n_after, min_after);
}

TEST(SimProbeTrace, OffByDefaultBoundedAndWithoutEffectOnTheRun) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimProbeTrace.Bounded", 21);
  SimConfig c = steady();
  EXPECT_EQ(SimConfig().max_probe_samples, 0);
  const SimResult plain = simulate(c, seed);
  EXPECT_TRUE(plain.probe_samples.empty());
  c.max_probe_samples = 50;
  const SimResult traced = simulate(c, seed);
  ASSERT_EQ(traced.probe_samples.size(), 50u);
  EXPECT_EQ(traced.events, plain.events);
  EXPECT_EQ(traced.levels[kEventual].stale, plain.levels[kEventual].stale);
  EXPECT_EQ(mean_tracked(traced), mean_tracked(plain));
  c.max_probe_samples = 1'000'000;  // more than a run feeds: every sample, 3 per probe round
  const SimResult all = simulate(c, seed);
  EXPECT_GT(all.probe_samples.size(), 100u);
  EXPECT_LE(all.probe_samples.size(), 3u * 41u);
  double last_stamp = -1;
  std::uint64_t last_lsn = 0;
  int known = 0, unknown = 0;
  for (const ProbeSample& s : all.probe_samples) {
    EXPECT_GE(s.stamp_ms, 0.0);
    if (!s.primary) {
      // NaN while the tracker does not know the replica's lag yet (as SimResult.tracked_lag_ms).
      if (std::isnan(s.tracked_lag_ms)) {
        ++unknown;
      } else {
        EXPECT_GE(s.tracked_lag_ms, 0.0);
        ++known;
      }
      EXPECT_NE(s.node, 0);
      continue;
    }
    EXPECT_EQ(s.node, 0);
    EXPECT_GE(s.stamp_ms, last_stamp);  // stamped at the send: in order
    EXPECT_GE(s.lsn, last_lsn);         // the primary's position never goes back
    last_stamp = s.stamp_ms;
    last_lsn = s.lsn;
  }
  EXPECT_GT(known, unknown);  // unknown only before the tracker's first samples
}

TEST(SimProbeTrace, ThePrimaryReadAsOfItsCommitsChangesOnlyTheTrackedLag) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimProbeTrace.CommitLag", 22);
  SimConfig c = steady();
  const SimResult at_once = simulate(c, seed);
  c.probe_commit_lag_ms = 0.2;  // half the replication delay
  const SimResult half = simulate(c, seed);
  c.probe_commit_lag_ms = 1.0;  // more than the replication delay and the replay
  const SimResult past = simulate(c, seed);
  // Reads, writes and the true lag are the same run; what the tracker saw is not.
  for (const SimResult* r : {&half, &past}) {
    EXPECT_EQ(r->events, at_once.events);
    EXPECT_EQ(r->levels[kEventual].stale, at_once.levels[kEventual].stale);
    EXPECT_EQ(r->lag_ms, at_once.lag_ms);
  }
  EXPECT_GT(mean_tracked(at_once), 0.05);
  EXPECT_LT(mean_tracked(half), mean_tracked(at_once) * 0.8);
  EXPECT_GT(mean_tracked(half), 0.0);
  // A primary read as of 1 ms ago: every replica has replayed it already.
  EXPECT_EQ(mean_tracked(past), 0.0);
}

TEST(SimProbeTrace, MeasuredRunLagsMoveOnlyWhenEachNodeIsRead) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimProbeTrace.RunLags", 23);
  SimConfig c = steady();
  c.duration_ms = 40'000;  // ~800 replica samples: the comparisons hold for any seed
  EXPECT_TRUE(SimConfig().probe_run_lags_ms.empty());
  // Every node read 0.1 ms after the send, at the same moment.
  c.probe_run_lags_ms = {{0.1}, {0.1}, {0.1}};
  const SimResult together = simulate(c, seed);
  // The replicas read 1 ms after the primary (more than the 0.4 ms delay): never behind what the
  // primary showed. Read 0.3 ms before it: behind more often than together.
  c.probe_run_lags_ms = {{0.1}, {1.1}, {1.1}};
  const SimResult after = simulate(c, seed);
  c.probe_run_lags_ms = {{0.4}, {0.1}, {0.1}};
  const SimResult before = simulate(c, seed);
  // Drawn per probe from the node's list: a mix lands in between.
  c.probe_run_lags_ms = {{0.1}, {0.1, 1.1}, {0.1, 1.1}};
  const SimResult mixed = simulate(c, seed);
  // The lags come from a stream of their own, but the router reads the tracker: where a read
  // goes, and so the rest of the run, may differ (it did for 6 of 40 seeds), hence no equality.
  EXPECT_GT(mean_tracked(together), 0.05);
  EXPECT_EQ(mean_tracked(after), 0.0);
  EXPECT_GT(mean_tracked(before), mean_tracked(together) * 1.2);
  EXPECT_GT(mean_tracked(mixed), 0.0);
  EXPECT_LE(mean_tracked(mixed), mean_tracked(together));
  EXPECT_EQ(simulate(c, seed).events, mixed.events);  // same seed, same run
  // Lags for the probes sent from the crash on; before it, probe_run_lags_ms.
  c.duration_ms = 4000;
  c.crash_primary_at_ms = 2000;
  c.max_probe_samples = 1'000'000;
  c.probe_run_lags_ms = {{0.1}, {0.1}, {0.1}};
  c.probe_run_lags_after_crash_ms = {{0.1}, {5.0}, {5.0}};
  const SimResult split = simulate(c, seed);
  // A replica's sample is stamped at its answer: the tick (every 100 ms) + run lag + 0.1 ms back.
  expect_replica_phases(split, 0.2, 5.1, 30, 20);
}

TEST(SimProbeTrace, TheNewPrimarysFullPageImagesMoveOnlyPositions) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimProbeTrace.PromotionWal", 24);
  SimConfig c = steady();
  c.crash_primary_at_ms = 2000;
  c.max_probe_samples = 1'000'000;
  EXPECT_EQ(SimConfig().promotion_wal_bytes, 0);
  const SimResult plain = simulate(c, seed);
  c.promotion_wal_bytes = 180'000;
  const SimResult burst = simulate(c, seed);
  ASSERT_GE(burst.failover.recovery_ms, 0.0);
  // The same run: reads, writes, tokens and the true time lag; only the WAL positions moved.
  EXPECT_EQ(burst.events, plain.events);
  EXPECT_EQ(burst.writes_acknowledged, plain.writes_acknowledged);
  EXPECT_EQ(burst.lag_ms, plain.lag_ms);
  for (std::size_t level = 0; level < burst.levels.size(); ++level) {
    EXPECT_EQ(burst.levels[level].stale, plain.levels[level].stale) << "level " << level;
  }
  // The new primary's first two samples lie the burst apart (plus a few writes); none before.
  const auto new_primary = [](const SimResult& r) {
    std::vector<std::uint64_t> out;
    for (const ProbeSample& s : r.probe_samples) {
      if (s.primary && s.node != 0) out.push_back(s.lsn);
    }
    return out;
  };
  const std::vector<std::uint64_t> plain_new = new_primary(plain), burst_new = new_primary(burst);
  ASSERT_GE(burst_new.size(), 3u);
  ASSERT_EQ(burst_new.size(), plain_new.size());
  EXPECT_EQ(burst_new[0], plain_new[0]);
  EXPECT_EQ(burst_new[1] - plain_new[1], 180'000u);
  EXPECT_EQ(burst_new.back() - plain_new.back(), 180'000u);
}

TEST(SimProbeTrace, OffsetsFromTheCrashOnReplaceTheOnesBefore) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimProbeTrace.OffsetsAfterCrash", 25);
  SimConfig c = steady();
  c.crash_primary_at_ms = 2000;
  c.max_probe_samples = 1'000'000;
  c.probe_offsets_ms = {0.0, 0.0, 0.0};
  EXPECT_TRUE(SimConfig().probe_offsets_after_crash_ms.empty());
  const SimResult plain = simulate(c, seed);
  // Empty: probe_offsets_ms throughout, the same run.
  c.probe_offsets_after_crash_ms.clear();
  EXPECT_EQ(simulate(c, seed).events, plain.events);
  c.probe_offsets_after_crash_ms = {0.0, 3.0, 3.0};
  const SimResult split = simulate(c, seed);
  ASSERT_GE(split.failover.recovery_ms, 0.0);
  // A replica's sample is stamped at its answer: the tick (every 100 ms) + offset + 0.1 ms each way.
  expect_replica_phases(split, 0.2, 3.2, 30, 10);
  EXPECT_EQ(simulate(c, seed).events, split.events);  // same seed, same run
}

TEST(SimProbeTrace, MeasuredRoundsReadTogetherAndApartWhileReplicationIsInFlight) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimProbeTrace.Rounds", 26);
  SimConfig c = steady();
  c.duration_ms = 40'000;  // ~800 replica samples: the comparisons hold for any seed
  c.max_probe_samples = 1'000'000;
  c.probe_run_lags_ms = {{0.1}, {0.1}, {0.1}};
  EXPECT_TRUE(SimConfig().probe_round_lags_ms.empty());
  EXPECT_TRUE(SimConfig().probe_round_lags_after_crash_ms.empty());
  EXPECT_DOUBLE_EQ(SimConfig().probe_parallel_gap_ms, 0.01);
  const SimResult plain = simulate(c, seed);
  c.probe_parallel_gap_ms = 0.5;  // without rounds: no effect, the same run bit for bit
  const SimResult same = simulate(c, seed);
  EXPECT_EQ(same.events, plain.events);
  EXPECT_EQ(mean_tracked(same), mean_tracked(plain));
  c.probe_parallel_gap_ms = 0.01;
  // The replicas read 1 ms after the primary (past the 0.4 ms delay): never behind it.
  c.probe_round_lags_ms = {{0.1, 1.1, 1.1}};
  EXPECT_EQ(mean_tracked(simulate(c, seed)), 0.0);
  // A node not in the round (< 0) takes its own lag: r2 read with the primary, r1 after.
  c.probe_round_lags_ms = {{0.1, 1.1, -1.0}};
  const SimResult own = simulate(c, seed);
  const auto peak = [&own](std::size_t replica) {
    double m = 0;
    for (double v : own.tracked_lag_ms[replica]) m = std::isnan(v) ? m : std::max(m, v);
    return m;
  };
  EXPECT_EQ(peak(0), 0.0);
  EXPECT_GT(peak(1), 0.0);
  // Half the rounds at once (all three reads together), half 1 ms and more apart. Drawn independently of
  // the writes (every round counts as apart), a round meets a write in flight at either; coupled,
  // a round whose first read comes while one is in flight reads apart, past it.
  c.probe_round_lags_ms = {{0.5, 0.5, 0.5}, {0.5, 1.5, 1.6}};
  c.probe_parallel_gap_ms = 0.0;
  const SimResult independent = simulate(c, seed);
  c.probe_parallel_gap_ms = 0.01;
  const SimResult coupled = simulate(c, seed);
  EXPECT_GT(behind(independent), 10);
  EXPECT_LT(behind(coupled), behind(independent) / 2);
  EXPECT_EQ(simulate(c, seed).events, coupled.events);  // same seed, same run
  // Rounds from the crash on: the new primary's lag first; the survivor reads 1 ms after it.
  c.duration_ms = 4000;
  c.crash_primary_at_ms = 2000;
  c.probe_round_lags_ms = {{0.1, 1.1, 1.1}};
  c.probe_round_lags_after_crash_ms = {{0.1, -1.0, 1.1}};  // the new primary's, the dead one's, the survivor's
  const SimResult crashed = simulate(c, seed);
  ASSERT_GE(crashed.failover.recovery_ms, 0.0);
  EXPECT_EQ(mean_tracked(crashed), 0.0);
}

TEST(SimProbeTrace, BadSettingsNameTheField) {
  SimConfig c;
  c.max_probe_samples = -1;
  expect_invalid("max_probe_samples", [&] { simulate(c, 1); });
  c.max_probe_samples = 0;
  c.probe_commit_lag_ms = -0.5;
  expect_invalid("probe_commit_lag_ms", [&] { simulate(c, 1); });
  c.probe_commit_lag_ms = 0;
  c.probe_run_lags_ms = {{0.1}, {0.1}};  // one list short
  expect_invalid("probe_run_lags_ms", [&] { simulate(c, 1); });
  c.probe_run_lags_ms = {{0.1}, {}, {0.1}};
  expect_invalid("probe_run_lags_ms", [&] { simulate(c, 1); });
  c.probe_run_lags_ms = {{0.1}, {-0.1}, {0.1}};
  expect_invalid("probe_run_lags_ms", [&] { simulate(c, 1); });
  c.probe_run_lags_ms.clear();
  c.probe_run_lags_after_crash_ms = {{0.1}, {0.1}};
  expect_invalid("probe_run_lags_after_crash_ms", [&] { simulate(c, 1); });
  c.probe_run_lags_after_crash_ms.clear();
  c.probe_offsets_after_crash_ms = {0.0, 1.0};  // one offset short
  expect_invalid("probe_offsets_after_crash_ms", [&] { simulate(c, 1); });
  c.probe_offsets_after_crash_ms = {0.0, 1.0, c.probe_interval_ms};
  expect_invalid("probe_offsets_after_crash_ms", [&] { simulate(c, 1); });
  c.probe_offsets_after_crash_ms.clear();
  c.promotion_wal_bytes = -1;
  expect_invalid("promotion_wal_bytes", [&] { simulate(c, 1); });
  c.promotion_wal_bytes = 0;
  c.probe_commit_lag_ms = std::nan("");
  expect_invalid("probe_commit_lag_ms", [&] { simulate(c, 1); });
  c.probe_commit_lag_ms = 0;
  c.probe_round_lags_ms = {{0.1, 0.1, 0.1}};  // without the nodes' own run lags
  expect_invalid("probe_round_lags_ms", [&] { simulate(c, 1); });
  c.probe_run_lags_ms = {{0.1}, {0.1}, {0.1}};
  c.probe_round_lags_ms = {{0.1, 0.1}};  // one lag short
  expect_invalid("probe_round_lags_ms", [&] { simulate(c, 1); });
  c.probe_round_lags_ms = {{0.1, std::nan(""), 0.1}};
  expect_invalid("probe_round_lags_ms", [&] { simulate(c, 1); });
  c.probe_round_lags_ms = {{0.1, -1.0, 0.1}};
  c.probe_round_lags_after_crash_ms = {{0.1}};
  expect_invalid("probe_round_lags_after_crash_ms", [&] { simulate(c, 1); });
  c.probe_round_lags_after_crash_ms.clear();
  c.probe_parallel_gap_ms = -0.01;
  expect_invalid("probe_parallel_gap_ms", [&] { simulate(c, 1); });
}

}  // namespace
