// FailureDetector: missed heartbeats, phi accrual, probe outcomes, jitter, bounds, bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "replikit/detector.hpp"
#include "testing.hpp"

using namespace replikit;
using replikit::testing::expect_invalid;

namespace {

constexpr std::int64_t kMs = 1000000;

DetectorConfig heartbeat(double interval_ms, int threshold) {
  DetectorConfig c;
  c.interval_ms = interval_ms;
  c.missed_threshold = threshold;
  return c;
}

TEST(Detector, PresetsAreTheFastAndTheBriefs) {
  const DetectorConfig fast = DetectorConfig::fast();
  EXPECT_EQ(fast.kind, DetectorKind::Heartbeat);
  EXPECT_EQ(fast.interval_ms, 100.0);
  EXPECT_EQ(fast.missed_threshold, 3);
  const DetectorConfig brief = DetectorConfig::brief();
  EXPECT_EQ(brief.interval_ms, 5000.0);
  EXPECT_EQ(brief.missed_threshold, 3);
  EXPECT_EQ(brief.window_ms(), 15000.0);
  EXPECT_EQ(DetectorConfig::phi_accrual().kind, DetectorKind::PhiAccrual);
  EXPECT_EQ(DetectorConfig{}.phi_threshold, 8.0);  // Cassandra's and Akka's default
}

TEST(Detector, ThreeMissesSuspectTwoDoNot) {
  FailureDetector d(DetectorConfig::fast());
  d.record(0, ProbeOutcome::Ok);
  d.record(100 * kMs, ProbeOutcome::Timeout);
  d.record(200 * kMs, ProbeOutcome::Timeout);
  EXPECT_EQ(d.missed(), 2);
  EXPECT_FALSE(d.suspected(200 * kMs));
  d.record(300 * kMs, ProbeOutcome::Timeout);
  EXPECT_TRUE(d.suspected(300 * kMs));
  d.record(301 * kMs, ProbeOutcome::Ok);
  EXPECT_EQ(d.missed(), 0);
  EXPECT_FALSE(d.suspected(301 * kMs));
}

TEST(Detector, RefusalsAreMissesAsTheyCome) {
  FailureDetector d(DetectorConfig::fast());
  d.record(0, ProbeOutcome::Ok);
  for (int i = 1; i <= 3; ++i) d.record(i * 10 * kMs, ProbeOutcome::Refused);
  EXPECT_EQ(d.refused(), 3);
  EXPECT_TRUE(d.suspected(30 * kMs));
}

TEST(Detector, OverloadedIsAliveNotAMiss) {
  for (DetectorConfig c : {DetectorConfig::fast(), DetectorConfig::phi_accrual()}) {
    FailureDetector d(c);
    for (int i = 0; i < 100; ++i) {
      d.record(i * 100 * kMs, i % 2 == 0 ? ProbeOutcome::Overloaded : ProbeOutcome::Timeout);
      EXPECT_FALSE(d.suspected(i * 100 * kMs)) << "probe " << i;
    }
    d.record(100 * 100 * kMs, ProbeOutcome::Overloaded);
    EXPECT_EQ(d.missed(), 0);
    EXPECT_EQ(d.last_alive_ns(), 100 * 100 * kMs);
  }
}

// A hung node the prober reports nothing about: the silence alone suspects it, once the probe
// due at last + threshold * interval is overdue as well.
TEST(Detector, HeartbeatSilenceLimit) {
  FailureDetector d(DetectorConfig::fast());
  EXPECT_FALSE(d.suspected(1000 * kMs));  // nothing recorded yet
  d.record(0, ProbeOutcome::Ok);
  EXPECT_FALSE(d.suspected(399 * kMs));
  EXPECT_TRUE(d.suspected(400 * kMs));
  EXPECT_DOUBLE_EQ(d.phi(250 * kMs), 1.0);
}

TEST(Detector, PhiGrowsWithSilenceAndSuspectsAHang) {
  FailureDetector d(DetectorConfig::phi_accrual(100.0));
  for (int i = 0; i <= 50; ++i) d.record(i * 100 * kMs, ProbeOutcome::Ok);
  const std::int64_t last = 5000 * kMs;
  EXPECT_NEAR(d.mean_interval_ms(), 100.0, 1e-9);
  EXPECT_EQ(d.std_interval_ms(), d.config().min_std_ms);
  EXPECT_LT(d.phi(last + 100 * kMs), 1.0);
  EXPECT_FALSE(d.suspected(last + 250 * kMs));  // mean + acceptable pause: no suspicion
  EXPECT_TRUE(d.suspected(last + 500 * kMs));
  double previous = 0;
  for (std::int64_t t = last; t < last + 2000 * kMs; t += kMs) {
    const double phi = d.phi(t);
    ASSERT_GE(phi, previous) << "at " << t;
    previous = phi;
  }
  EXPECT_GT(previous, 100.0);  // no overflow to NaN or inf far out
}

TEST(Detector, PhiRefusalsSuspectWithoutWaiting) {
  FailureDetector d(DetectorConfig::phi_accrual(100.0));
  for (int i = 0; i <= 10; ++i) d.record(i * 100 * kMs, ProbeOutcome::Ok);
  d.record(1001 * kMs, ProbeOutcome::Refused);
  d.record(1002 * kMs, ProbeOutcome::Refused);
  EXPECT_FALSE(d.suspected(1002 * kMs));
  d.record(1003 * kMs, ProbeOutcome::Refused);
  EXPECT_TRUE(d.suspected(1003 * kMs));
  EXPECT_LT(d.phi(1003 * kMs), 1.0);  // phi alone would not have said so yet
}

TEST(Detector, PhiTimeoutsOnlyFeedTheSilence) {
  FailureDetector d(DetectorConfig::phi_accrual(100.0));
  for (int i = 0; i <= 10; ++i) d.record(i * 100 * kMs, ProbeOutcome::Ok);
  for (int i = 1; i <= 5; ++i) d.record((1000 + i * 10) * kMs, ProbeOutcome::Timeout);
  EXPECT_EQ(d.missed(), 5);
  EXPECT_FALSE(d.suspected(1050 * kMs));
}

// Heartbeat delays of up to half the detection window never raise a suspicion (seeded).
TEST(Detector, NoFalseSuspicionWithJitterUpToHalfTheWindow) {
  const auto seeds = replikit::testing::run_seeds(20261129, 200);
  for (int run = 0; run < seeds.runs; ++run) {
    const std::uint64_t seed = seeds.seed(run);
    SCOPED_TRACE(replikit::testing::replay_hint(seed, "Detector.NoFalseSuspicion*"));
    Xoshiro256 rng(seed);
    DetectorConfig c = run % 2 == 0 ? heartbeat(10.0 + rng.below(500), 1 + static_cast<int>(rng.below(6)))
                                    : DetectorConfig::phi_accrual(100.0);
    const double jitter_ms = c.window_ms() / 2;
    std::vector<std::int64_t> beats;
    for (int k = 0; k < 300; ++k) {
      const double at_ms = k * c.interval_ms + rng.uniform() * jitter_ms;
      beats.push_back(static_cast<std::int64_t>(at_ms * kMs));
    }
    std::sort(beats.begin(), beats.end());
    FailureDetector d(c);
    for (std::size_t k = 0; k + 1 < beats.size(); ++k) {
      d.record(beats[k], ProbeOutcome::Ok);
      // Just before the next heartbeat is the worst moment.
      for (std::int64_t t : {beats[k], (beats[k] + beats[k + 1]) / 2, beats[k + 1] - 1}) {
        ASSERT_FALSE(d.suspected(t)) << "beat " << k << " at " << t << " phi " << d.phi(t);
      }
    }
  }
}

TEST(Detector, WindowIsBounded) {
  DetectorConfig c = DetectorConfig::phi_accrual(10.0);
  c.phi_window = 16;
  FailureDetector d(c);
  for (int i = 0; i < 10000; ++i) d.record(i * 10 * kMs + (i % 3) * kMs, ProbeOutcome::Ok);
  EXPECT_EQ(d.samples(), 16);
  EXPECT_NEAR(d.mean_interval_ms(), 10.0, 0.2);
  for (int i = 0; i < 100000; ++i) d.record((100000 + i) * 10 * kMs, ProbeOutcome::Refused);
  EXPECT_LE(d.missed(), 1000);  // saturates
  d.reset();
  EXPECT_EQ(d.samples(), 0);
  EXPECT_EQ(d.last_alive_ns(), -1);
  d.record(0, ProbeOutcome::Ok);  // time may restart after a reset
}

TEST(Detector, BadInputNamesTheArgument) {
  auto with = [](auto set) {
    DetectorConfig c;
    set(c);
    return [c] { FailureDetector d(c); };
  };
  expect_invalid("interval_ms", with([](DetectorConfig& c) { c.interval_ms = 0; }));
  expect_invalid("interval_ms", with([](DetectorConfig& c) { c.interval_ms = std::numeric_limits<double>::quiet_NaN(); }));
  expect_invalid("interval_ms", with([](DetectorConfig& c) { c.interval_ms = 1e300; }));
  expect_invalid("missed_threshold", with([](DetectorConfig& c) { c.missed_threshold = 0; }));
  expect_invalid("phi_threshold", with([](DetectorConfig& c) { c.phi_threshold = -1; }));
  expect_invalid("phi_window", with([](DetectorConfig& c) { c.phi_window = 1; }));
  expect_invalid("min_std_ms", with([](DetectorConfig& c) { c.min_std_ms = 0; }));
  expect_invalid("acceptable_pause_ms", with([](DetectorConfig& c) { c.acceptable_pause_ms = -1; }));
  expect_invalid("kind", with([](DetectorConfig& c) { c.kind = static_cast<DetectorKind>(9); }));
  FailureDetector d;
  d.record(100, ProbeOutcome::Ok);
  expect_invalid("now_ns", [&] { d.record(99, ProbeOutcome::Ok); });
  expect_invalid("now_ns", [&] { d.record(-1, ProbeOutcome::Ok); });
  expect_invalid("outcome", [&] { d.record(200, static_cast<ProbeOutcome>(42)); });
  EXPECT_STREQ(to_string(ProbeOutcome::Overloaded), "overloaded");
  EXPECT_STREQ(to_string(DetectorKind::PhiAccrual), "phi_accrual");
}

}  // namespace
