// The simulator's detector timing as a real failover manager sees it: heartbeats that come late
// by the prober's wake-up lateness (the detector keeps its interval), and a suspicion acted upon
// at the manager's next look at its detector. Both 0 by default: today's timing, bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

#include "replikit/errors.hpp"
#include "replikit/sim/simulator.hpp"

#include "testing.hpp"

namespace {

using namespace replikit;
using namespace replikit::sim;
using replikit::testing::expect_invalid;

// Writes only, a crash between the 10th and 11th heartbeats (100 ms apart).
SimConfig crash_at(double crash_ms) {
  SimConfig c;
  c.duration_ms = crash_ms + 2000;
  c.write_rate_per_s = 200;
  c.read_rate_per_s = 0;
  c.replicas = 2;
  c.mode = ReplicationMode::SemiSync;
  c.crash_primary_at_ms = crash_ms;
  c.heartbeat_interval_ms = 100;
  c.missed_heartbeats = 3;
  c.promote_ms = 50;
  c.failover_model = FailoverModelKind::Core;
  return c;
}

TEST(SimDetector, DefaultsKeepTheHeartbeatsOnTheIntervalAndDetectAtTheHeartbeat) {
  SimConfig c = crash_at(1030);
  EXPECT_EQ(c.heartbeat_late_ms, 0);
  EXPECT_EQ(c.check_interval_ms, 0);
  const SimResult r = simulate(c, 3);
  EXPECT_NEAR(r.failover.detection_ms, 270, 1e-6);  // misses at 1100, 1200, 1300
  EXPECT_NEAR(r.failover.recovery_ms, 320, 1.0);
}

TEST(SimDetector, LateHeartbeatsDelayEachMissByTheLateness) {
  SimConfig c = crash_at(10 * 102.0 + 30);  // 30 ms after the 10th heartbeat, 102 ms apart
  c.heartbeat_late_ms = 2;
  const SimResult r = simulate(c, 3);
  EXPECT_NEAR(r.failover.detection_ms, 3 * 102.0 - 30, 1e-6);
  // A probe due at the crash instant finds the node down: two periods to go.
  c.crash_primary_at_ms = 10 * 102.0;
  EXPECT_NEAR(simulate(c, 3).failover.detection_ms, 2 * 102.0, 1e-6);
}

TEST(SimDetector, TheManagersCheckDelaysDetectionByLessThanItsInterval) {
  SimConfig c = crash_at(1030);
  c.check_interval_ms = 5;
  const auto seeds = replikit::testing::run_seeds(40, 7);
  double lo = 1e9, hi = -1e9, sum = 0;
  for (int k = 0; k < seeds.runs; ++k) {
    const std::uint64_t seed = seeds.seed(k);
    SCOPED_TRACE(replikit::testing::replay_hint(seed, "SimDetector.TheManagersCheck*"));
    const SimResult r = simulate(c, seed);
    ASSERT_TRUE(r.failover.promoted.has_value());
    EXPECT_GE(r.failover.detection_ms, 270 - 1e-6);
    EXPECT_LT(r.failover.detection_ms, 275);
    EXPECT_NEAR(r.failover.recovery_ms - r.failover.detection_ms, 50, 1.0);
    EXPECT_TRUE(r.conserved());
    lo = std::min(lo, r.failover.detection_ms);
    hi = std::max(hi, r.failover.detection_ms);
    sum += r.failover.detection_ms;
  }
  if (seeds.runs > 1) {
    EXPECT_GT(hi - lo, 2.5);  // spread over the check interval, not one fixed delay
    EXPECT_NEAR(sum / seeds.runs, 272.5, 1.0);
  }
}

TEST(SimDetector, SameSeedSameResultAndTheCheckDrawsNothingElse) {
  SimConfig with = crash_at(1030);
  with.check_interval_ms = 5;
  with.heartbeat_late_ms = 0.5;
  const SimResult a = simulate(with, 11), b = simulate(with, 11);
  EXPECT_EQ(a.failover.detection_ms, b.failover.detection_ms);
  EXPECT_EQ(a.failover.recovery_ms, b.failover.recovery_ms);
  EXPECT_EQ(a.writes_acknowledged, b.writes_acknowledged);
  EXPECT_EQ(a.events, b.events);
  // The check's phase comes from a stream of its own: the workload's draws are those of the
  // run without it, so everything before the detection is the same.
  SimConfig without = with;
  without.check_interval_ms = 0;
  without.duration_ms = with.crash_primary_at_ms;  // up to the crash only
  with.duration_ms = with.crash_primary_at_ms;
  const SimResult x = simulate(with, 11), y = simulate(without, 11);
  EXPECT_EQ(x.writes_acknowledged, y.writes_acknowledged);
  EXPECT_EQ(x.mean_write_latency_ms, y.mean_write_latency_ms);
}

TEST(SimDetector, BadTimingIsRefusedNamingTheField) {
  for (double bad : {-1.0, 2e9}) {
    SimConfig c = crash_at(1030);
    c.heartbeat_late_ms = bad;
    expect_invalid<InvalidArgument>([&] { simulate(c, 1); }, "heartbeat_late_ms");
    c = crash_at(1030);
    c.check_interval_ms = bad;
    expect_invalid<InvalidArgument>([&] { simulate(c, 1); }, "check_interval_ms");
  }
  SimConfig c = crash_at(1030);
  c.check_interval_ms = std::numeric_limits<double>::quiet_NaN();
  expect_invalid<InvalidArgument>([&] { simulate(c, 1); }, "check_interval_ms");
}

}  // namespace
