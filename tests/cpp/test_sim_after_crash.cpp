// The replication latency from the primary's crash on (SimConfig::replica_latency_after_crash):
// unset, the run is the one it was; set, only what is sent after the crash draws from it. And
// the promoted primary's acknowledgement rule (SimConfig::mode_after_promotion), and the lag
// prober's cadence restarting at the promotion (SimConfig::probe_at_promotion), and the outage
// window ending after the promotion (SimConfig::outage_after_promotion_ms).
#include <gtest/gtest.h>

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
constexpr std::size_t kReadYourWrites = static_cast<std::size_t>(Consistency::ReadYourWrites);

// Session writes at 200/s, eventual and read-your-writes reads, a crash at 1.5 s.
SimConfig crashing() {
  SimConfig c;
  c.duration_ms = 4000;
  c.write_rate_per_s = 200;
  c.read_rate_per_s = 2000;
  c.sessions = 8;
  c.consistency_mix = {1, 1, 0, 0, 0, 0};
  c.replica_latency = LatencyDistribution::exponential(1.0);  // mean 1 ms
  c.client_latency = LatencyDistribution::constant(0.1);
  c.crash_primary_at_ms = 1500;
  c.promote_ms = 100;
  return c;
}

double stale_share(const WindowStats& w) {
  const LevelStats& e = w.levels[kEventual];
  return e.answered ? static_cast<double>(e.stale) / static_cast<double>(e.answered) : 0.0;
}

TEST(SimAfterCrash, UnsetOrEqualToReplicaLatencyIsTheSameRun) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimAfterCrash.Same", 21);
  SimConfig c = crashing();
  const SimResult unset = simulate(c, seed);
  c.replica_latency_after_crash = c.replica_latency;
  const SimResult same = simulate(c, seed);
  EXPECT_EQ(unset.events, same.events);
  EXPECT_EQ(unset.writes_acknowledged, same.writes_acknowledged);
  EXPECT_EQ(unset.levels[kEventual].stale, same.levels[kEventual].stale);
  ASSERT_EQ(same.failover_windows.size(), 3u);
  EXPECT_EQ(unset.failover_windows[2].levels[kEventual].stale, same.failover_windows[2].levels[kEventual].stale);
}

TEST(SimAfterCrash, OnlyWhatIsSentAfterTheCrashDrawsFromIt) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimAfterCrash.After", 22);
  SimConfig c = crashing();
  c.replica_latency_after_crash = LatencyDistribution::constant(0.01);
  const SimResult fast = simulate(c, seed);
  c.replica_latency_after_crash = LatencyDistribution::constant(5.0);  // 1 write in 5 ms: stale often
  const SimResult slow = simulate(c, seed);
  ASSERT_EQ(fast.failover_windows.size(), 3u);
  ASSERT_EQ(slow.failover_windows.size(), 3u);
  EXPECT_TRUE(fast.conserved());
  EXPECT_TRUE(slow.conserved());
  // Before the crash the two runs are one run.
  const WindowStats &fb = fast.failover_windows[0], &sb = slow.failover_windows[0];
  EXPECT_EQ(fb.levels[kEventual].answered, sb.levels[kEventual].answered);
  EXPECT_EQ(fb.levels[kEventual].stale, sb.levels[kEventual].stale);
  EXPECT_GT(fb.levels[kEventual].stale, 0u);
  // After the recovery the survivor is stale as its new delays say.
  const WindowStats &fa = fast.failover_windows[2], &sa = slow.failover_windows[2];
  EXPECT_GT(fa.levels[kEventual].answered, 500u);
  EXPECT_LT(stale_share(fa), 0.02);
  EXPECT_GT(stale_share(sa), 0.3);
  EXPECT_GT(stale_share(sa), stale_share(fb) * 2);
}

TEST(SimAfterCrash, AnInfiniteMeanNamesTheField) {
  SimConfig c = crashing();
  c.replica_latency_after_crash = LatencyDistribution::pareto(1.0, 0.5);
  expect_invalid("replica_latency_after_crash", [&] { simulate(c, 1); });
}

// A synchronous cluster whose surviving standby streams again only 150 ms after the promotion.
SimConfig sync_with_slow_repoint() {
  SimConfig c = crashing();
  c.mode = ReplicationMode::Sync;
  c.repoint_ms = 150;
  c.window_edges_ms = {0, 1500};
  return c;
}

double primary_share(const LevelStats& l) {
  return l.answered ? static_cast<double>(l.served_by_primary) / static_cast<double>(l.answered) : 0.0;
}

TEST(SimModeAfterPromotion, UnsetOrEqualToModeIsTheSameRun) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimModeAfterPromotion.Same", 23);
  SimConfig c = sync_with_slow_repoint();
  const SimResult unset = simulate(c, seed);
  c.mode_after_promotion = ReplicationMode::Sync;
  const SimResult same = simulate(c, seed);
  EXPECT_EQ(unset.events, same.events);
  EXPECT_EQ(unset.writes_acknowledged, same.writes_acknowledged);
  EXPECT_EQ(unset.failover_windows[2].levels[kReadYourWrites].served_by_primary,
            same.failover_windows[2].levels[kReadYourWrites].served_by_primary);
}

TEST(SimModeAfterPromotion, AnAsyncNewPrimaryAcknowledgesWithoutItsStandby) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimModeAfterPromotion.Async", 24);
  SimConfig c = sync_with_slow_repoint();
  const SimResult sync = simulate(c, seed);
  c.mode_after_promotion = ReplicationMode::Async;
  const SimResult async = simulate(c, seed);
  ASSERT_EQ(sync.failover_windows.size(), 3u);
  ASSERT_EQ(async.failover_windows.size(), 3u);
  EXPECT_TRUE(sync.conserved());
  EXPECT_TRUE(async.conserved());
  // Up to the promotion the two runs are one run.
  EXPECT_EQ(sync.failover_windows[0].reads_answered, async.failover_windows[0].reads_answered);
  EXPECT_EQ(sync.failover_windows[0].levels[kReadYourWrites].served_by_primary,
            async.failover_windows[0].levels[kReadYourWrites].served_by_primary);
  EXPECT_EQ(sync.failover.recovery_ms, async.failover.recovery_ms);
  // The synchronous new primary holds every write until its standby streams (150 ms of 2.4 s
  // at 200/s: ~30 writes waiting ~75 ms); the asynchronous one acknowledges at once.
  EXPECT_GT(sync.mean_write_latency_ms, async.mean_write_latency_ms + 0.5);
  // Its sessions' tokens then move on at once, past the detached survivor: their read-your-writes
  // reads go to the primary, where a held write's session still read its older token on the survivor.
  const LevelStats &s = sync.failover_windows[2].levels[kReadYourWrites],
                   &a = async.failover_windows[2].levels[kReadYourWrites];
  EXPECT_GT(a.answered, 1000u);
  EXPECT_GT(primary_share(a), primary_share(s) + 0.01);
  EXPECT_EQ(a.stale, 0u);
  EXPECT_EQ(s.stale, 0u);
}

TEST(SimModeAfterPromotion, AnUnknownModeNamesTheField) {
  SimConfig c = crashing();
  c.mode_after_promotion = static_cast<ReplicationMode>(7);
  expect_invalid("mode_after_promotion", [&] { simulate(c, 1); });
  c.replicas = 0;
  c.crash_primary_at_ms = -1;
  c.mode_after_promotion = ReplicationMode::Sync;
  expect_invalid("mode_after_promotion", [&] { simulate(c, 1); });
}

// The lag prober's samples of `node` (primary or replica ones) stamped at or after `from_ms`.
std::vector<double> stamps(const SimResult& r, int node, bool primary, double from_ms) {
  std::vector<double> out;
  for (const ProbeSample& p : r.probe_samples) {
    if (p.node == node && p.primary == primary && p.stamp_ms >= from_ms) out.push_back(p.stamp_ms);
  }
  return out;
}

TEST(SimProbeAtPromotion, TheProbersCadenceRestartsAtThePromotion) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimProbeAtPromotion.Cadence", 25);
  SimConfig c = crashing();
  c.promote_ms = 137;  // the promotion falls between two of the prober's 100 ms ticks
  c.max_probe_samples = 1000;
  const SimResult ticks = simulate(c, seed);
  c.probe_at_promotion = true;
  const SimResult restarted = simulate(c, seed);
  ASSERT_GT(restarted.failover.recovery_ms, 0);
  EXPECT_EQ(ticks.failover.recovery_ms, restarted.failover.recovery_ms);
  const double promoted_at = c.crash_primary_at_ms + restarted.failover.recovery_ms;
  const int promoted = restarted.failover.promoted == "replica1" ? 1 : 2;
  const int survivor = 3 - promoted;
  // Its first sample of the new primary is sent at the promotion, the survivor's next samples an
  // interval apart from there; with the run's ticks, at the next multiple of 100 ms.
  const std::vector<double> p = stamps(restarted, promoted, true, promoted_at);
  const std::vector<double> s = stamps(restarted, survivor, false, promoted_at);
  ASSERT_GE(p.size(), 3u);
  ASSERT_GE(s.size(), 3u);
  EXPECT_NEAR(p[0], promoted_at, 1e-6);
  EXPECT_NEAR(p[1] - p[0], c.probe_interval_ms, 1e-6);
  EXPECT_NEAR(s[0] - promoted_at, 0.0, 2.0);  // a replica is stamped at its answer: a round trip
  EXPECT_NEAR(s[1] - s[0], c.probe_interval_ms, 2.0);
  const std::vector<double> old = stamps(ticks, promoted, true, promoted_at);
  ASSERT_FALSE(old.empty());
  EXPECT_NEAR(std::fmod(old[0], c.probe_interval_ms), 0.0, 1e-6);
  EXPECT_GT(old[0] - promoted_at, 1.0);
  // Before the promotion the two runs are one run.
  EXPECT_EQ(ticks.failover_windows[0].reads_answered, restarted.failover_windows[0].reads_answered);
  EXPECT_EQ(stamps(ticks, 0, true, 0).size(), stamps(restarted, 0, true, 0).size());
}

// The eventual reads of failover windows [from, to) summed: (answered, stale).
std::pair<std::uint64_t, std::uint64_t> eventual(const SimResult& r, std::size_t from, std::size_t to) {
  std::uint64_t answered = 0, stale = 0;
  for (std::size_t i = from; i < to; ++i) {
    answered += r.failover_windows[i].levels[kEventual].answered;
    stale += r.failover_windows[i].levels[kEventual].stale;
  }
  return {answered, stale};
}

TEST(SimOutageAfterPromotion, OnlyTheWindowsMove) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimOutageAfterPromotion.Windows", 26);
  SimConfig c = sync_with_slow_repoint();
  const SimResult unset = simulate(c, seed);
  c.outage_after_promotion_ms = 0;
  const SimResult zero = simulate(c, seed);
  EXPECT_EQ(unset.events, zero.events);
  EXPECT_EQ(eventual(unset, 1, 2), eventual(zero, 1, 2));
  EXPECT_EQ(unset.failover_windows[2].tracked_lag_samples, zero.failover_windows[2].tracked_lag_samples);
  // The new primary commits the writes sent to it at once but acknowledges them only once its
  // standby streams (150 ms): the survivor's eventual reads meanwhile miss them. With the outage
  // ending there, those reads count in it.
  c.outage_after_promotion_ms = 150;
  const SimResult later = simulate(c, seed);
  EXPECT_EQ(unset.events, later.events);
  EXPECT_EQ(unset.writes_acknowledged, later.writes_acknowledged);
  EXPECT_EQ(unset.failover.recovery_ms, later.failover.recovery_ms);
  EXPECT_EQ(eventual(unset, 0, 3), eventual(later, 0, 3));
  EXPECT_EQ(eventual(unset, 0, 1), eventual(later, 0, 1));
  const double promoted_at = c.crash_primary_at_ms + later.failover.recovery_ms;
  EXPECT_NEAR(later.failover_windows[1].to_ms, promoted_at + 150, 1e-6);
  EXPECT_NEAR(later.failover_windows[2].from_ms, promoted_at + 150, 1e-6);
  EXPECT_NEAR(unset.failover_windows[2].from_ms, promoted_at, 1e-6);
  const auto [before_answered, before_stale] = eventual(unset, 1, 2);
  const auto [after_answered, after_stale] = eventual(later, 1, 2);
  EXPECT_GT(after_answered, before_answered + 100);  // 150 ms of ~1000 eventual reads a second
  EXPECT_GT(after_stale, before_stale + 50);
  EXPECT_TRUE(later.conserved());
}

TEST(SimOutageAfterPromotion, ANegativeSpanNamesTheField) {
  SimConfig c = crashing();
  c.outage_after_promotion_ms = -1;
  expect_invalid("outage_after_promotion_ms", [&] { simulate(c, 1); });
}

}  // namespace
