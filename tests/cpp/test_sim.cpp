// The discrete-event simulator: determinism, conservation, an analytic M/M/1 case, staleness
// of each consistency level, loss on a primary crash per replication mode, and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <iterator>
#include <set>
#include <utility>
#include <thread>

#include "replikit/errors.hpp"
#include "replikit/sim/simulator.hpp"

#include "testing.hpp"

namespace {

using namespace replikit;
using namespace replikit::sim;
using replikit::testing::expect_invalid;
using replikit::testing::for_each_seed;

std::size_t level(Consistency c) { return static_cast<std::size_t>(c); }

// A run of `duration_ms` with writes and reads arriving at these rates, on `replicas` replicas,
// every other setting at its default: what every test here starts from.
SimConfig workload(double duration_ms, double write_rate_per_s, double read_rate_per_s, int replicas) {
  SimConfig c;
  c.duration_ms = duration_ms;
  c.write_rate_per_s = write_rate_per_s;
  c.read_rate_per_s = read_rate_per_s;
  c.replicas = replicas;
  return c;
}

// A busy cluster with every fault: a crash, a pause, a slow replica, mixed levels, read-backs.
SimConfig eventful() {
  SimConfig c = workload(/*duration_ms=*/3000, /*write_rate_per_s=*/2000, /*read_rate_per_s=*/8000, /*replicas=*/3);
  c.sessions = 200;
  c.consistency_mix = {1, 2, 1, 1, 1, 1};
  c.max_staleness_ms = 50;
  c.read_back_share = 0.5;
  c.read_back_delay_ms = 1;
  c.replica_latency = LatencyDistribution::exponential(2.0);
  c.crash_primary_at_ms = 1500;
  c.pauses = {ReplicaPause{2, 200, 900}};
  c.slow_replicas = {SlowReplica{3, 4.0}};
  c.apply_delays = {ApplyDelay{1, 30}};
  c.apply_rate_per_s = 5000;
  return c;
}

void expect_same(const SimResult& a, const SimResult& b) {
  EXPECT_EQ(a.events, b.events);
  EXPECT_EQ(a.writes_acknowledged, b.writes_acknowledged);
  EXPECT_EQ(a.reads_answered, b.reads_answered);
  EXPECT_EQ(a.read_reasons, b.read_reasons);
  EXPECT_EQ(a.failover.writes_lost_acknowledged, b.failover.writes_lost_acknowledged);
  EXPECT_EQ(a.failover.promoted, b.failover.promoted);
  EXPECT_EQ(a.sample_times_ms, b.sample_times_ms);
  ASSERT_EQ(a.lag_ms.size(), b.lag_ms.size());
  for (std::size_t i = 0; i < a.lag_ms.size(); ++i) {
    for (std::size_t k = 0; k < a.lag_ms[i].size(); ++k) {
      const double x = a.lag_ms[i][k], y = b.lag_ms[i][k];
      EXPECT_TRUE(x == y || (std::isnan(x) && std::isnan(y))) << i << " " << k;
    }
  }
  for (std::size_t l = 0; l < a.levels.size(); ++l) {
    EXPECT_EQ(a.levels[l].stale, b.levels[l].stale);
    EXPECT_EQ(a.levels[l].served_by_primary, b.levels[l].served_by_primary);
  }
  EXPECT_EQ(a.mean_read_latency_ms, b.mean_read_latency_ms);
}

TEST(Sim, SameSeedSameResultOnAnyThread) {
  const std::uint64_t seed = replikit::testing::printed_seed("Sim.SameSeed", 42);
  const SimConfig c = eventful();
  const SimResult a = simulate(c, seed);
  const SimResult b = simulate(c, seed);
  expect_same(a, b);
  SimResult on_thread;
  std::thread t([&] { on_thread = simulate(c, seed); });
  t.join();
  expect_same(a, on_thread);
  const SimResult other = simulate(c, seed + 1);
  EXPECT_NE(a.events, other.events);
}

TEST(Sim, ConservationUnderEveryModeAndFault) {
  const ReplicationMode modes[] = {ReplicationMode::Async, ReplicationMode::SemiSync, ReplicationMode::Sync,
                                   ReplicationMode::RemoteApply};
  for_each_seed(7, 8, "Sim.Conservation*", [&](int k, std::uint64_t seed) {
    SimConfig c = eventful();
    c.mode = modes[k % 4];
    c.duration_ms = 1500;
    c.crash_primary_at_ms = 700;
    c.max_queue_length = k % 2 == 0 ? 5 : 10000;  // small queues: requests fail too
    c.drain_ms = k % 3 == 0 ? 1 : 10000;          // a short drain leaves requests pending
    const SimResult r = simulate(c, seed);
    EXPECT_TRUE(r.conserved());
    EXPECT_EQ(r.writes_submitted, r.writes_acknowledged + r.writes_failed + r.writes_pending);
    EXPECT_EQ(r.reads_submitted, r.reads_answered + r.reads_failed + r.reads_pending);
    std::uint64_t by_level = 0, answered = 0;
    for (const auto& l : r.levels) {
      by_level += l.submitted;
      answered += l.answered;
      EXPECT_LE(l.answered + l.failed, l.submitted);
    }
    EXPECT_EQ(by_level, r.reads_submitted);
    std::uint64_t to_primary = 0;
    for (auto n : r.primary_read_reasons) to_primary += n;
    EXPECT_EQ(to_primary, r.reads_routed_to_primary);
    EXPECT_EQ(answered, r.reads_answered);
    EXPECT_GT(r.writes_acknowledged, 0u);
    if (c.drain_ms >= 10000) {
      EXPECT_EQ(r.writes_pending + r.reads_pending, 0u);
    }
  });
}

// Apply delay (commit on the primary -> replay on the replica) of an M/M/1 apply queue: Poisson
// commits (Poisson arrivals, no primary service time) reach the replica after a constant
// 0.5 ms and are replayed in exponential time, so the mean delay is 0.5 + 1 / (mu - lambda) ms.
// With lambda = 5000/s and mu = 10000/s (rho = 0.5) the sojourn is 0.2 ms. Tolerance 3 %: 100 s
// of simulated time gives 500K writes; the sojourn times are correlated (relaxation time about
// 1 / (mu (1 - sqrt(rho))^2) = 1.2 ms, so about 85K independent stretches), which puts the
// standard error of the mean sojourn below 1 % (measured over 20 seeds: 0.33 % standard
// deviation). 3 % is about nine measured standard deviations: a failure means a modelling
// error (a bias), never bad luck; a bias of a few percent (e.g. off-by-one service) fails it.
TEST(Sim, MM1ApplyQueueMeanDelayMatchesTheory) {
  const std::uint64_t seed = replikit::testing::printed_seed("Sim.MM1", 2024);
  SimConfig c = workload(/*duration_ms=*/100'000, /*write_rate_per_s=*/5000, /*read_rate_per_s=*/0, /*replicas=*/1);
  c.write_service = LatencyDistribution::constant(0);
  c.replica_latency = LatencyDistribution::constant(0.5);
  c.apply_rate_per_s = 10000;
  c.sample_interval_ms = 100;
  const SimResult r = simulate(c, seed);
  ASSERT_EQ(r.replicas.size(), 1u);
  const double sojourn = r.replicas[0].mean_apply_delay_ms - 0.5;
  const double theory = 1000.0 / (10000 - 5000);
  std::printf("[Sim.MM1] mean sojourn %.5f ms, theory %.5f ms, %llu writes\n", sojourn, theory,
              static_cast<unsigned long long>(r.replicas[0].writes_applied));
  EXPECT_NEAR(sojourn, theory, 0.03 * theory);
  EXPECT_GT(r.replicas[0].writes_applied, 450'000u);
  // The apply server is busy rho of the time.
  EXPECT_NEAR(r.nodes[1].apply_utilisation, 0.5, 0.01);
}

TEST(Sim, ReadYourWritesStrongMonotonicCausalAreNeverStale) {
  for_each_seed(99, 4, "Sim.ReadYourWrites*", [](int k, std::uint64_t seed) {
    SimConfig c = eventful();
    c.crash_primary_at_ms = k % 2 == 0 ? -1 : 1500;
    c.read_back_delay_ms = 0;
    c.probe_interval_ms = 5;  // probes often enough that replicas serve session reads
    const SimResult r = simulate(c, seed);
    for (Consistency l : {Consistency::ReadYourWrites, Consistency::Strong, Consistency::Monotonic,
                          Consistency::Causal}) {
      EXPECT_EQ(r.levels[level(l)].stale, 0u) << to_string(l);
      EXPECT_GT(r.levels[level(l)].answered, 1000u) << to_string(l);
    }
    // Not vacuous: replicas serve session reads, and they do lag (eventual reads are stale).
    const auto& ryw = r.levels[level(Consistency::ReadYourWrites)];
    EXPECT_LT(ryw.served_by_primary, ryw.answered);
    EXPECT_GT(r.levels[level(Consistency::Eventual)].stale, 0u);
  });
}

SimConfig crash_under_load(ReplicationMode mode) {
  SimConfig c = workload(/*duration_ms=*/2000, /*write_rate_per_s=*/5000, /*read_rate_per_s=*/1000, /*replicas=*/2);
  c.mode = mode;
  c.sync_count = 1;
  c.replica_latency = LatencyDistribution::constant(1.0);
  c.crash_primary_at_ms = 1000;
  return c;
}

TEST(Sim, CrashLosesAcknowledgedWritesOnlyWithoutSynchronousStandbys) {
  for_each_seed(5, 4, "Sim.CrashLoses*", [](int, std::uint64_t seed) {
    const SimResult async = simulate(crash_under_load(ReplicationMode::Async), seed);
    EXPECT_GT(async.failover.writes_lost_acknowledged, 0u);
    EXPECT_TRUE(async.failover.promoted.has_value());
    for (ReplicationMode m : {ReplicationMode::Sync, ReplicationMode::SemiSync, ReplicationMode::RemoteApply}) {
      const SimResult r = simulate(crash_under_load(m), seed);
      EXPECT_EQ(r.failover.writes_lost_acknowledged, 0u) << to_string(m);
      EXPECT_GT(r.writes_failed_by[static_cast<std::size_t>(FailReason::PrimaryCrash)], 0u) << to_string(m);
      EXPECT_TRUE(r.conserved());
    }
  });
}

TEST(Sim, ApplyDelayHoldsReplayUntilCommitPlusDelay) {
  const std::uint64_t seed = replikit::testing::printed_seed("Sim.ApplyDelay", 77);
  SimConfig c = workload(/*duration_ms=*/60'000, /*write_rate_per_s=*/10, /*read_rate_per_s=*/200, /*replicas=*/1);
  c.consistency_mix = {1, 0, 0, 0, 0, 0};
  c.replica_latency = LatencyDistribution::constant(0.5);
  c.apply_delays = {ApplyDelay{1, 100}};
  c.lag.max_lag_ms = 1000;  // the delayed replica keeps serving
  const SimResult r = simulate(c, seed);
  ASSERT_EQ(r.replicas.size(), 1u);
  // Commit -> replayed: the delay plus one replay (mean 0.05 ms); never earlier.
  EXPECT_GE(r.replicas[0].mean_apply_delay_ms, 100.0);
  EXPECT_LT(r.replicas[0].mean_apply_delay_ms, 100.2);
  // The wait is not replay work.
  EXPECT_LT(r.nodes[1].apply_utilisation, 0.01);
  // An eventual read on the replica misses the newest commit when one came in the last
  // 100 ms: with Poisson writes at 10/s, with probability 1 - exp(-10 x 0.1).
  const LevelStats& ev = r.levels[level(Consistency::Eventual)];
  const double on_replica = static_cast<double>(ev.answered - ev.served_by_primary);
  ASSERT_GT(on_replica, 5000);
  const double rate = static_cast<double>(ev.stale) / on_replica;
  const double theory = 1 - std::exp(-10 * 0.1005);
  std::printf("[Sim.ApplyDelay] stale share on the replica %.4f, theory %.4f\n", rate, theory);
  EXPECT_NEAR(rate, theory, 0.03);
  // Without the delay the same run has almost no stale reads.
  c.apply_delays.clear();
  const SimResult prompt = simulate(c, seed);
  EXPECT_LT(prompt.levels[level(Consistency::Eventual)].stale, ev.stale / 50);
}

// Sparse writes (1/s) held 300 ms each on replica 1, probed every 100 ms, sampled every 10 ms.
SimConfig sparse_delayed_writes() {
  SimConfig c = workload(/*duration_ms=*/60'000, /*write_rate_per_s=*/1, /*read_rate_per_s=*/0, /*replicas=*/1);
  c.replica_latency = LatencyDistribution::constant(0.5);
  c.apply_delays = {ApplyDelay{1, 300}};
  c.probe_interval_ms = 100;
  c.sample_interval_ms = 10;
  return c;
}

// The tracked lag of one replica under sparse delayed writes, checked sample by sample against
// the probes as the real prober stamps them (client latency d each way, probes every 100 ms):
// the primary's LSN as of send + d stamped at the send, the replica's positions as of send + d
// stamped at the answer's arrival (send + 2d). Returns (samples checked, their mean).
std::pair<int, double> check_tracked_lag(std::uint64_t seed, std::int64_t commit_bytes, double d_ms) {
  SimConfig c = sparse_delayed_writes();
  c.write_size_bytes = 176;
  c.commit_record_bytes = commit_bytes;  // 176: the whole write held, nothing replayed early
  c.client_latency = LatencyDistribution::constant(d_ms);
  const SimResult r = simulate(c, seed);
  const std::int64_t p_ns = 100'000'000, row = 176 - commit_bytes;
  const std::int64_t d_ns = std::llround(d_ms * 1e6);
  // Every commit shows in the series as the oldest one not replayed (for 300 ms): its instant,
  // to the microsecond.
  const auto commit_us = [&](std::size_t k) {
    return std::llround(r.sample_times_ms[k] * 1e3 - r.lag_ms[0][k] * 1e3);
  };
  std::set<std::int64_t> commits;
  for (std::size_t k = 0; k < r.sample_times_ms.size(); ++k) {
    if (!std::isnan(r.lag_ms[0][k]) && r.lag_ms[0][k] > 0) commits.insert(commit_us(k));
  }
  int checked = 0;
  double tracked_sum = 0;
  for (std::size_t k = 0; k < r.sample_times_ms.size(); ++k) {
    const double lag = r.lag_ms[0][k], bytes = r.lag_bytes[0][k], tracked = r.tracked_lag_ms[0][k];
    if (std::isnan(lag) || lag <= 1.0) continue;  // caught up, or the WAL is still on its way
    // One write pending (the others long replayed): the replay LSN is its commit record short.
    if (bytes != static_cast<double>(commit_bytes)) {
      EXPECT_EQ(std::fmod(bytes - static_cast<double>(commit_bytes), 176.0), 0.0) << k;
      continue;
    }
    // The tracker's answer: the probe sent at t0 reached the primary before the commit, the one
    // sent at t0 + 100 ms after it, and the primary's samples are stamped at those sends; the
    // replay LSN (row bytes into the write) crossed at t0 + (row + 1) / 176 of the step. The lag
    // was last evaluated when the answer of the last probe back by the sample arrived: tp + 2d.
    const std::int64_t s_ns = std::llround(r.sample_times_ms[k] * 1e6);
    const std::int64_t commit_ns = commit_us(k) * 1000;
    const std::int64_t t0 = (commit_ns - d_ns) / p_ns * p_ns, tp = (s_ns - 2 * d_ns) / p_ns * p_ns;
    if (tp < t0 + p_ns || tp + d_ns - commit_ns < 1'000'000) continue;  // not yet probed past it
    // Alone between two probes (else the primary's step spans more writes), and held already
    // when the probe at tp read the replica (the previous write replayed 300 ms after its commit).
    const auto it = commits.find(commit_us(k));
    EXPECT_NE(it, commits.end());
    if (it == commits.end()) continue;
    const std::int64_t prev_ns = it != commits.begin() ? *std::prev(it) * 1000 : -1;
    if (prev_ns >= t0 + d_ns || prev_ns + 301'000'000 >= tp + d_ns ||
        (std::next(it) != commits.end() && *std::next(it) * 1000 <= t0 + p_ns + d_ns)) {
      continue;
    }
    const double crossing_ms = static_cast<double>(t0) * 1e-6 + static_cast<double>(row + 1) / 176.0 * 100.0;
    EXPECT_NEAR(tracked, static_cast<double>(tp + 2 * d_ns) * 1e-6 - crossing_ms, 0.01) << "sample " << k;
    tracked_sum += tracked;
    ++checked;
  }
  std::printf("[Sim.TrackedLag] commit record %lld bytes, client latency %.2f ms: %d samples, mean tracked lag %.2f ms\n",
              static_cast<long long>(commit_bytes), d_ms, checked, checked ? tracked_sum / checked : 0.0);
  return {checked, checked ? tracked_sum / checked : 0.0};
}

// PostgreSQL's recoveryApplyDelay holds only commit records: a held write's rows are replayed,
// and the replay LSN stands at its commit record. The tracker maps that LSN to a time between
// the primary's samples around the commit (a steady WAL rate), so the tracked lag follows.
TEST(Sim, ApplyDelayHoldsTheReplayLsnAtTheCommitRecord) {
  const std::uint64_t seed = replikit::testing::printed_seed("Sim.ApplyDelayCommitRecord", 13);
  double mean_tracked[2] = {0, 0};
  for (const std::int64_t commit_bytes : {std::int64_t{40}, std::int64_t{176}}) {
    const auto [checked, mean] = check_tracked_lag(seed, commit_bytes, 0.25);
    EXPECT_GT(checked, 300);
    mean_tracked[commit_bytes == 176] = mean;
  }
  // The same samples (one seed): the replay LSN 136 of 176 bytes further on reads as that
  // share of the probe interval less lag.
  EXPECT_NEAR(mean_tracked[1] - mean_tracked[0], 136.0 / 176.0 * 100.0, 0.1);
  // The held write is not visible: a replay LSN inside it does not satisfy its read-your-writes.
  SimConfig c = sparse_delayed_writes();
  c.read_rate_per_s = 100;
  c.read_back_share = 1;
  c.read_back_delay_ms = 10;
  const SimResult r = simulate(c, seed);
  EXPECT_EQ(r.levels[level(Consistency::ReadYourWrites)].stale, 0u);
  EXPECT_GT(r.levels[level(Consistency::ReadYourWrites)].served_by_primary, 50u);
}

// The probes as the real prober stamps them: the primary at the send, a replica at the answer's
// arrival, so a lagging replica's tracked lag carries the probe's round trip (2d on top of the
// time since the crossing on the send grid). Checked sample by sample at three client latencies
// (not 0: the answers would arrive at the instants the series samples).
TEST(Sim, TrackedLagCountsTheProbesRoundTrip) {
  const std::uint64_t seed = replikit::testing::printed_seed("Sim.TrackedLagRoundTrip", 17);
  for (const double d_ms : {0.05, 0.25, 2.0}) {
    EXPECT_GT(check_tracked_lag(seed, 40, d_ms).first, 300) << d_ms;
  }
}

TEST(Sim, PromotionEndsTheApplyDelay) {
  SimConfig c = workload(/*duration_ms=*/3000, /*write_rate_per_s=*/1000, /*read_rate_per_s=*/0, /*replicas=*/1);
  c.apply_delays = {ApplyDelay{1, 5000}};
  c.crash_primary_at_ms = 1050;
  c.heartbeat_interval_ms = 100;
  c.missed_heartbeats = 3;
  c.promote_ms = 200;
  const SimResult r = simulate(c, 5);
  ASSERT_TRUE(r.failover.crashed);
  // The replica received nearly everything and replayed none of it; promoted (detection 250
  // ms + promote_ms 200), it replays the ~1050 writes at once (~53 ms at 20000/s) instead of
  // waiting out the 5 s delay.
  EXPECT_GT(r.failover.recovery_ms, 480);
  EXPECT_LT(r.failover.recovery_ms, 550);
  EXPECT_LT(r.failover.writes_lost, 20u);
  EXPECT_TRUE(r.conserved());
}

TEST(Sim, RecoveryTakesHeartbeatIntervalTimesThresholdPlusPromotion) {
  SimConfig c = crash_under_load(ReplicationMode::Async);
  c.heartbeat_interval_ms = 100;
  c.missed_heartbeats = 3;
  c.promote_ms = 200;
  c.crash_primary_at_ms = 1050;
  const SimResult r = simulate(c, 1);
  ASSERT_TRUE(r.failover.crashed);
  EXPECT_NEAR(r.failover.detection_ms, 250, 1e-6);  // heartbeats at 1100, 1200, 1300 missed
  EXPECT_NEAR(r.failover.recovery_ms, 450, 1.0);
  // Writes are acknowledged again after the promotion.
  EXPECT_GT(r.writes_acknowledged, 5000u * 1.5);
}

// The surviving standby receives nothing for repoint_ms after the promotion: its lag grows by
// about that much, eventual reads on it go stale meanwhile; 0 (the default) changes nothing.
TEST(Sim, SurvivingStandbyFallsBehindWhileRepointing) {
  SimConfig c = crash_under_load(ReplicationMode::Async);
  c.crash_primary_at_ms = 1050;
  c.write_rate_per_s = 200;
  c.replica_latency = LatencyDistribution::constant(0.25);
  c.consistency_mix = {1, 0, 0, 0, 0, 0};
  const SimResult prompt = simulate(c, 2);
  c.repoint_ms = 0;
  EXPECT_EQ(simulate(c, 2).levels[level(Consistency::Eventual)].stale,
            prompt.levels[level(Consistency::Eventual)].stale);
  c.repoint_ms = 300;
  const SimResult slow = simulate(c, 2);
  ASSERT_TRUE(slow.failover.promoted.has_value());
  EXPECT_NEAR(slow.failover.recovery_ms, prompt.failover.recovery_ms, 1.0);
  const std::string survivor = *slow.failover.promoted == "replica1" ? "replica2" : "replica1";
  double survivor_max = -1, prompt_max = -1;
  for (std::size_t i = 0; i < slow.replicas.size(); ++i) {
    if (slow.replicas[i].name != survivor) continue;
    survivor_max = slow.replicas[i].max_lag_ms;
    prompt_max = prompt.replicas[i].max_lag_ms;
  }
  EXPECT_GT(survivor_max, 260);  // from the first write after the promotion (5 ms apart), 10 ms samples
  EXPECT_LT(survivor_max, 320);
  EXPECT_LT(prompt_max, 50);
  EXPECT_GT(slow.levels[level(Consistency::Eventual)].stale, prompt.levels[level(Consistency::Eventual)].stale + 50);
  EXPECT_TRUE(slow.conserved());
  // Sync: a commit waits for the survivor, so writes stall until it reconnects, then resume.
  c.mode = ReplicationMode::Sync;
  const SimResult sync = simulate(c, 2);
  EXPECT_TRUE(sync.conserved());
  EXPECT_EQ(sync.writes_pending, 0u);
  EXPECT_GT(sync.writes_acknowledged, slow.writes_acknowledged * 9 / 10);
  EXPECT_GT(sync.mean_write_latency_ms, slow.mean_write_latency_ms + 5);
}

class NeverSuspects final : public FailoverModel {
 public:
  void heartbeat(std::int64_t, bool) override {}
  bool suspected(std::int64_t) const override { return false; }
  int select(const std::vector<PromotionCandidate>&, Lsn) override { return -1; }
  std::string describe() const override { return "never"; }
};

TEST(Sim, FailoverModelIsPluggable) {
  const SimResult r = simulate(crash_under_load(ReplicationMode::Async), 3,
                               [](const SimConfig&) { return std::make_unique<NeverSuspects>(); });
  EXPECT_EQ(r.failover.model, "never");
  EXPECT_EQ(r.failover.detection_ms, -1);
  EXPECT_EQ(r.failover.recovery_ms, -1);
  EXPECT_FALSE(r.failover.promoted.has_value());
  EXPECT_GT(r.writes_failed_by[static_cast<std::size_t>(FailReason::NodeDown)], 0u);
  EXPECT_TRUE(r.conserved());
}

TEST(Sim, ReadBackDelayDecidesThePrimaryShare) {
  SimConfig c = workload(/*duration_ms=*/2000, /*write_rate_per_s=*/1000, /*read_rate_per_s=*/0, /*replicas=*/2);
  c.read_back_share = 1.0;
  c.probe_interval_ms = 50;
  c.read_back_delay_ms = 0;
  const SimResult soon = simulate(c, 11);
  c.read_back_delay_ms = 500;
  const SimResult later = simulate(c, 11);
  EXPECT_GT(soon.primary_read_share(), 0.9);
  EXPECT_LT(later.primary_read_share(), 0.05);
  EXPECT_GT(soon.read_reasons[static_cast<std::size_t>(Reason::NoReplicaCaughtUp)], 0u);
}

TEST(Sim, BadInputNamesTheField) {
  const auto bad = [](auto edit) {
    SimConfig c;
    edit(c);
    return [c] { simulate(c, 1); };
  };
  expect_invalid("duration_ms", bad([](SimConfig& c) { c.duration_ms = 0; }));
  expect_invalid("repoint_ms", bad([](SimConfig& c) { c.repoint_ms = -1; }));
  expect_invalid("duration_ms", bad([](SimConfig& c) { c.duration_ms = std::nan(""); }));
  expect_invalid("write_rate_per_s", bad([](SimConfig& c) { c.write_rate_per_s = -1; }));
  expect_invalid("read_rate_per_s", bad([](SimConfig& c) { c.read_rate_per_s = 1e300; }));
  expect_invalid("sessions", bad([](SimConfig& c) { c.sessions = 0; }));
  expect_invalid("commit_record_bytes", bad([](SimConfig& c) { c.commit_record_bytes = 0; }));
  expect_invalid("commit_record_bytes", bad([](SimConfig& c) { c.write_size_bytes = 30; }));
  expect_invalid("consistency_mix", bad([](SimConfig& c) { c.consistency_mix = {0, 0, 0, 0, 0, 0}; }));
  expect_invalid("consistency_mix", bad([](SimConfig& c) { c.consistency_mix[2] = -1; }));
  expect_invalid("read_back_share", bad([](SimConfig& c) { c.read_back_share = 1.5; }));
  expect_invalid("replicas", bad([](SimConfig& c) { c.replicas = kMaxReplicas + 1; }));
  expect_invalid("apply_rate_per_s", bad([](SimConfig& c) { c.apply_rate_per_s = 0; }));
  expect_invalid("sync_count", bad([](SimConfig& c) { c.mode = ReplicationMode::SemiSync; c.sync_count = 3; }));
  expect_invalid("mode", bad([](SimConfig& c) { c.mode = ReplicationMode::Sync; c.replicas = 0; }));
  expect_invalid("pauses", bad([](SimConfig& c) { c.pauses = {ReplicaPause{1, 10, 5}}; }));
  expect_invalid("pauses", bad([](SimConfig& c) { c.pauses = {ReplicaPause{5, 1, 5}}; }));
  expect_invalid("slow_replicas", bad([](SimConfig& c) { c.slow_replicas = {SlowReplica{0, 2}}; }));
  expect_invalid("apply_delays", bad([](SimConfig& c) { c.apply_delays = {ApplyDelay{0, 10}}; }));
  expect_invalid("apply_delays", bad([](SimConfig& c) { c.apply_delays = {ApplyDelay{1, -1}}; }));
  expect_invalid("apply_delays", bad([](SimConfig& c) { c.apply_delays = {ApplyDelay{1, 1}, ApplyDelay{1, 2}}; }));
  expect_invalid("missed_heartbeats", bad([](SimConfig& c) { c.missed_heartbeats = 0; }));
  expect_invalid("max_samples", bad([](SimConfig& c) { c.max_samples = 0; }));
  expect_invalid("names", bad([](SimConfig& c) { c.names = {"a", "a", "b"}; }));
  expect_invalid("names", bad([](SimConfig& c) { c.names = {"a"}; }));
  expect_invalid("read_service", bad([](SimConfig& c) { c.read_service = LatencyDistribution::pareto(1, 0.5); }));
  expect_invalid("max_lag_ms", bad([](SimConfig& c) { c.lag.max_lag_ms = -1; }));
}

TEST(Sim, BoundsHold) {
  SimConfig c;
  c.duration_ms = 100'000;
  c.max_samples = 50;
  c.max_events = 10'000;
  const SimResult r = simulate(c, 1);
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.events, 10'000u);
  EXPECT_LE(r.sample_times_ms.size(), 50u);
  EXPECT_TRUE(r.conserved());
  // A replica that cannot keep up: its lag grows, but no queue grows without bound in memory.
  SimConfig slow;
  slow.duration_ms = 2000;
  slow.write_rate_per_s = 20000;
  slow.apply_rate_per_s = 1000;
  slow.mode = ReplicationMode::RemoteApply;
  slow.max_in_flight = 1000;
  const SimResult s = simulate(slow, 2);
  EXPECT_GT(s.writes_failed_by[static_cast<std::size_t>(FailReason::QueueFull)], 0u);
  EXPECT_TRUE(s.conserved());
}

}  // namespace

namespace {

TEST(Sim, CoreDetectorAndSelectionDriveTheFailover) {
  for (ReplicationMode m : {ReplicationMode::Async, ReplicationMode::Sync, ReplicationMode::SemiSync}) {
    SimConfig c = crash_under_load(m);
    c.crash_primary_at_ms = 1050;
    const SimResult r = simulate(c, 4, core_failover_model);
    EXPECT_NE(r.failover.model.find("core FailureDetector"), std::string::npos);
    EXPECT_NEAR(r.failover.detection_ms, 250, 1e-6) << to_string(m);  // misses at 1100, 1200, 1300
    EXPECT_GE(r.failover.recovery_ms, 450 - 1e-6) << to_string(m);
    ASSERT_TRUE(r.failover.promoted.has_value()) << to_string(m);
    if (m != ReplicationMode::Async) {
      EXPECT_EQ(r.failover.writes_lost_acknowledged, 0u) << to_string(m);
    }
    EXPECT_TRUE(r.conserved());
    c.failover_model = FailoverModelKind::Core;  // the same, chosen in the configuration
    EXPECT_EQ(simulate(c, 4).failover.model, r.failover.model);
  }
}

}  // namespace
