// FailureDetector and the watcher's own stall: a gap in its rounds is not silence of the node.
#include <gtest/gtest.h>

#include <cstdint>

#include "replikit/detector.hpp"
#include "testing.hpp"

using namespace replikit;
using replikit::testing::expect_invalid;

namespace {

constexpr std::int64_t kMs = 1000000;

// The etcd failover test's setting: 50 ms x 3, a 150 ms window (silence limit 200 ms).
DetectorConfig fifty_by_three() {
  DetectorConfig c;
  c.interval_ms = 50.0;
  c.missed_threshold = 3;
  return c;
}

// A watcher running rounds every 10 ms from `from` to `to` (both included), answered or not.
void rounds(FailureDetector& d, std::int64_t from, std::int64_t to) {
  for (std::int64_t t = from; t <= to; t += 10 * kMs) {
    d.watch(t);
    d.sleep_until(t + 10 * kMs);
  }
}

TEST(DetectorStall, AGapWithNoProbesIsNotSilenceThenAFreshUnansweredProbeIs) {
  for (const DetectorConfig& config : {fifty_by_three(), DetectorConfig::phi_accrual(50.0)}) {
    SCOPED_TRACE(to_string(config.kind));
    FailureDetector d(config);
    for (std::int64_t t = 0; t <= 1000 * kMs; t += 50 * kMs) d.record(t, ProbeOutcome::Ok);
    rounds(d, 0, 1000 * kMs);
    // The watcher stalls 1685 ms (the stall seen in the etcd test); nothing recorded meanwhile.
    const std::int64_t resumed = 1010 * kMs + 1685 * kMs;
    d.watch(resumed);
    EXPECT_EQ(d.gap_end_ns(), resumed);
    EXPECT_FALSE(d.suspected(resumed));
    // The probe in flight across the stall times out on resume: not a miss.
    d.record(resumed + kMs, ProbeOutcome::Timeout, 990 * kMs);
    EXPECT_EQ(d.missed(), 0);
    EXPECT_FALSE(d.suspected(resumed + kMs));
    // The node really died: probes sent after the stall go unanswered. Suspected within the
    // silence limit after the stall's end (bounded), and not before the window.
    d.sleep_until(resumed + 10 * kMs);
    std::int64_t suspected_at = -1;
    for (std::int64_t t = resumed + 10 * kMs; t <= resumed + 2000 * kMs && suspected_at < 0; t += 10 * kMs) {
      d.watch(t);
      if ((t - resumed) % (50 * kMs) == 0) d.record(t, ProbeOutcome::Timeout, t - 50 * kMs);
      if (d.suspected(t)) suspected_at = t;
      d.sleep_until(t + 10 * kMs);
    }
    ASSERT_GE(suspected_at, 0);
    EXPECT_GE(suspected_at - resumed, 150 * kMs);
    EXPECT_LE(suspected_at - resumed, 600 * kMs);
  }
}

TEST(DetectorStall, ProbesAnsweredAfterTheStallClearItAndIntervalsSkipIt) {
  FailureDetector d(DetectorConfig::phi_accrual(50.0));
  for (std::int64_t t = 0; t <= 1000 * kMs; t += 50 * kMs) d.record(t, ProbeOutcome::Ok);
  const int samples = d.samples();
  d.watch(1000 * kMs);
  d.watch(3000 * kMs);  // a 2 s stall
  d.record(3001 * kMs, ProbeOutcome::Ok);
  EXPECT_EQ(d.samples(), samples);  // the 2 s interval measured the stall, not the node
  EXPECT_NEAR(d.mean_interval_ms(), 50.0, 1e-9);
  EXPECT_FALSE(d.suspected(3100 * kMs));
}

TEST(DetectorStall, WorkAndPlannedWaitsAreNotAStallAndRefusalsStillCount) {
  FailureDetector d(fifty_by_three());
  d.record(0, ProbeOutcome::Ok);
  d.watch(0);
  d.sleep_until(1000 * kMs);  // a planned long wait (a slow round's tick)
  d.watch(1100 * kMs);        // woke 100 ms late: within the window
  EXPECT_EQ(d.gap_end_ns(), -1);
  EXPECT_TRUE(d.suspected(1100 * kMs));  // plain silence since 0: suspected, as before
  FailureDetector r(fifty_by_three());
  r.record(0, ProbeOutcome::Ok);
  r.watch(0);
  r.watch(500 * kMs);  // a stall
  // Refusals are answers: they count even for probes sent before the stall ended.
  for (int i = 1; i <= 3; ++i) r.record((500 + i) * kMs, ProbeOutcome::Refused, 100 * kMs);
  EXPECT_TRUE(r.suspected(503 * kMs));
  r.reset();
  EXPECT_EQ(r.gap_end_ns(), -1);
}

TEST(DetectorStall, WithoutWatchesNothingChanges) {
  FailureDetector d(fifty_by_three());
  d.record(0, ProbeOutcome::Ok);
  d.record(300 * kMs, ProbeOutcome::Timeout, 100 * kMs);
  EXPECT_EQ(d.missed(), 1);
  EXPECT_TRUE(d.suspected(200 * kMs));
}

// A watcher late by more than the window every round (CPU-throttled), one probe a round,
// each probe's outcome recorded the next round. Returns the round suspected at, or -1.
int late_every_round(FailureDetector& d, ProbeOutcome outcome, int max_rounds) {
  const std::int64_t round = 10 * kMs, late = 200 * kMs;  // late > the 150 ms window
  std::int64_t t = 0;
  d.record(0, ProbeOutcome::Ok);
  for (int r = 0; r < max_rounds; ++r) {
    d.watch(t);
    if (r > 0) d.record(t, outcome, t - round - late);
    if (d.suspected(t)) return r;
    d.sleep_until(t + round);
    t += round + late;
  }
  return -1;
}

TEST(DetectorStall, AWatcherLateEveryRoundIsSlowNotStalled) {
  for (const DetectorConfig& config : {fifty_by_three(), DetectorConfig::phi_accrual(50.0)}) {
    SCOPED_TRACE(to_string(config.kind));
    // A partitioned primary that only times out: suspected within a bounded number of rounds.
    FailureDetector dead(config);
    const int at = late_every_round(dead, ProbeOutcome::Timeout, 50);
    EXPECT_GE(at, 1);
    EXPECT_LE(at, 2 * config.missed_threshold + 2);
    EXPECT_GE(dead.gap_end_ns(), 0);
    // A node answering every round is never suspected by the same late watcher.
    FailureDetector alive(config);
    EXPECT_EQ(late_every_round(alive, ProbeOutcome::Ok, 50), -1);
  }
}

TEST(DetectorStall, BadInstants) {
  FailureDetector d(fifty_by_three());
  expect_invalid("now_ns", [&] { d.watch(-1); });
  expect_invalid("wake_ns", [&] { d.sleep_until(-1); });
  expect_invalid("sent_ns", [&] { d.record(10, ProbeOutcome::Ok, 11); });
  expect_invalid("sent_ns", [&] { d.record(10, ProbeOutcome::Ok, -2); });
}

}  // namespace
