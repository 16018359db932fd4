// Router rule 7: EVENTUAL reads with a consistency probability target (ReadOptions::p_consistent)
// shortly after the session's last write. Exact cases on a hand-made history, bad input, then
// random clusters (seeded, replayable) checked against LagTracker::consistent_probability and a
// slow reference over the replay delays the test itself recorded.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "replikit/errors.hpp"
#include "replikit/lag.hpp"
#include "replikit/random.hpp"
#include "replikit/router.hpp"

#include "testing.hpp"

using namespace replikit;
using replikit::testing::expect_invalid;
using replikit::testing::node;
using replikit::testing::replay_hint;
using replikit::testing::run_seeds;

namespace {

constexpr std::int64_t kMs = 1'000'000;

ReadOptions target(double p, double within_ms = 1000) {
  ReadOptions o;
  o.p_consistent = p;
  o.within_ms = within_ms;
  return o;
}

// Replica a replays every commit 3 ms after the primary, b 20 ms after, ten times each (the
// primary is sampled 1 ms before each commit too: delays at their most are 4 and 21 ms); the
// primary is then at LSN 1100 and both replicas have replayed it.
struct TwoSpeeds {
  std::shared_ptr<Topology> t =
      std::make_shared<Topology>(node("p"), std::vector<NodeSpec>{node("a"), node("b")});
  LagTracker lag{t};
  std::int64_t now = 0;

  TwoSpeeds() {
    lag.primary_sample(0, Lsn(100));
    lag.replica_sample(1, 0, Lsn(100), Lsn(100));
    lag.replica_sample(2, 0, Lsn(100), Lsn(100));
    for (int k = 1; k <= 10; ++k) {
      now = k * 100 * kMs;
      const Lsn at(100 + 100 * static_cast<std::uint64_t>(k));
      lag.primary_sample(now - 1 * kMs, Lsn(at.value - 100));
      lag.primary_sample(now, at);
      lag.replica_sample(1, now + 3 * kMs, at, at);
      lag.replica_sample(2, now + 20 * kMs, at, at);
    }
    now += 20 * kMs;
  }
};

}  // namespace

TEST(ConsistencyTarget, ChoosesTheReplicasLikelyToShowTheWrite) {
  TwoSpeeds c;
  Router router(c.t);
  Session s;
  const std::int64_t wrote = 5'000 * kMs;  // the session's clock (wall time in the backend)
  s.record_write(Lsn(5000), wrote);        // not yet replayed anywhere
  EXPECT_EQ(s.last_write_ns, wrote);
  // 1 ms after the write: neither replica's delays are that short.
  Decision d = router.route_read(s, Consistency::Eventual, wrote + 1 * kMs, target(0.999));
  EXPECT_EQ(d.reason, Reason::NoReplicaLikelyConsistent);
  EXPECT_EQ(d.node, c.t->primary());
  EXPECT_TRUE(d.to_primary());
  // 5 ms: a's delays (about 3 ms) are, b's (about 20 ms) are not.
  for (int k = 0; k < 4; ++k) {
    d = router.route_read(s, Consistency::Eventual, wrote + 5 * kMs, target(0.999));
    EXPECT_EQ(d.reason, Reason::ReplicaLikelyConsistent);
    EXPECT_EQ(d.node, 1);
    EXPECT_FALSE(d.to_primary());
  }
  EXPECT_DOUBLE_EQ(*c.lag.consistent_probability(1, 5.0, s.write_lsn), 1.0);
  EXPECT_DOUBLE_EQ(*c.lag.consistent_probability(2, 5.0, s.write_lsn), 0.0);
  // 25 ms: both.
  std::array<int, 3> by_node{};
  for (int k = 0; k < 10; ++k) {
    d = router.route_read(s, Consistency::Eventual, wrote + 25 * kMs, target(0.999));
    ASSERT_EQ(d.reason, Reason::ReplicaLikelyConsistent);
    ++by_node[static_cast<std::size_t>(d.node)];
  }
  EXPECT_EQ(by_node[1], 5);
  EXPECT_EQ(by_node[2], 5);
  // Past within_ms the read is a plain EVENTUAL read.
  d = router.route_read(s, Consistency::Eventual, wrote + 2 * kMs, target(0.999, 1.0));
  EXPECT_EQ(d.reason, Reason::ReplicaAvailable);
  // Without a write, or without a target, too.
  Session fresh;
  d = router.route_read(fresh, Consistency::Eventual, wrote, target(0.999));
  EXPECT_EQ(d.reason, Reason::ReplicaAvailable);
  d = router.route_read(s, Consistency::Eventual, wrote);
  EXPECT_EQ(d.reason, Reason::ReplicaAvailable);
  const RouterCounters counts = router.counters();
  EXPECT_EQ(counts.by_reason[static_cast<int>(Reason::NoReplicaLikelyConsistent)], 1u);
  EXPECT_EQ(counts.by_reason[static_cast<int>(Reason::ReplicaLikelyConsistent)], 14u);
  EXPECT_STREQ(to_string(Reason::ReplicaLikelyConsistent), "replica_likely_consistent");
  EXPECT_STREQ(to_string(Reason::NoReplicaLikelyConsistent), "no_replica_likely_consistent");
}

TEST(ConsistencyTarget, AReplicaKnownToHaveReplayedTheWriteQualifiesAtOnce) {
  TwoSpeeds c;
  Router router(c.t);
  Session s;
  s.record_write(Lsn(1100), 7'000 * kMs);  // both replicas have replayed 1100
  EXPECT_DOUBLE_EQ(*c.lag.consistent_probability(2, 0.0, s.write_lsn), 1.0);
  const Decision d = router.route_read(s, Consistency::Eventual, 7'000 * kMs, target(1.0));
  EXPECT_EQ(d.reason, Reason::ReplicaLikelyConsistent);
  EXPECT_FALSE(d.to_primary());
}

TEST(ConsistencyTarget, AReplicaRunningBehindIsJudgedLater) {
  TwoSpeeds c;
  Router router(c.t);
  // The primary moves on; a shows nothing of it for 30 ms (paused): its time lag is 30 ms, so a
  // commit made 5 ms ago is as likely there as one made -25 ms ago: not at all.
  c.lag.primary_sample(c.now, Lsn(1200));
  c.lag.replica_sample(1, c.now + 30 * kMs, Lsn(1100), Lsn(1100));
  c.lag.replica_sample(2, c.now + 30 * kMs, Lsn(1200), Lsn(1200));
  EXPECT_GE(c.t->lag_ns(1), 29 * kMs);
  Session s;
  s.record_write(Lsn(1300), 9'000 * kMs);
  EXPECT_DOUBLE_EQ(*c.lag.consistent_probability(1, 5.0, s.write_lsn), 0.0);
  Decision d = router.route_read(s, Consistency::Eventual, 9'000 * kMs + 5 * kMs, target(0.9));
  EXPECT_EQ(d.reason, Reason::NoReplicaLikelyConsistent);
  // b, caught up, qualifies after its usual 20 ms; a only 30 ms later than usual.
  d = router.route_read(s, Consistency::Eventual, 9'000 * kMs + 25 * kMs, target(0.9));
  EXPECT_EQ(d.node, 2);
  EXPECT_LT(*c.lag.consistent_probability(1, 25.0, s.write_lsn), 0.9);
}

TEST(ConsistencyTarget, TooFewDelaysMeasuredIsNoEvidence) {
  auto t = std::make_shared<Topology>(node("p"), std::vector<NodeSpec>{node("a")});
  LagTracker lag(t);
  Router router(t);
  lag.primary_sample(0, Lsn(100));
  lag.replica_sample(1, 0, Lsn(100), Lsn(100));
  for (int k = 1; k < static_cast<int>(kMinDelaySamples); ++k) {
    lag.primary_sample(k * 10 * kMs, Lsn(100 + static_cast<std::uint64_t>(k)));
    lag.replica_sample(1, k * 10 * kMs, Lsn(100 + static_cast<std::uint64_t>(k)), Lsn(100 + static_cast<std::uint64_t>(k)));
  }
  EXPECT_EQ(lag.replay_delay_count(1), kMinDelaySamples - 1);
  EXPECT_EQ(t->delay_samples(1), kMinDelaySamples - 1);
  EXPECT_FALSE(lag.consistent_probability(1, 1000.0).has_value());
  Session s;
  s.record_write(Lsn(5000), 1);
  EXPECT_EQ(router.route_read(s, Consistency::Eventual, 2, target(0.5)).reason, Reason::NoReplicaLikelyConsistent);
  // A reset forgets the published quantiles with the delays.
  lag.reset();
  EXPECT_EQ(t->delay_samples(1), 0u);
}

TEST(ConsistencyTarget, OtherReasonsComeFirst) {
  TwoSpeeds c;
  Router router(c.t);
  Session s;
  s.record_write(Lsn(5000), 1);
  c.t->set_up("a", false);
  c.t->set_up("b", false);
  EXPECT_EQ(router.route_read(s, Consistency::Eventual, 2, target(0.5)).reason, Reason::NoReplicaUp);
  c.t->set_up("p", false);
  const Decision d = router.route_read(s, Consistency::Eventual, 2, target(0.5));
  EXPECT_EQ(d.reason, Reason::NoReplicaUp);
  EXPECT_EQ(d.node, kNoNode);
}

TEST(ConsistencyTarget, BadInputNamesTheArgument) {
  TwoSpeeds c;
  Router router(c.t);
  Session s;
  s.record_write(Lsn(5000), 1);
  for (double p : {0.0, -0.5, 1.0000001, 2.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    expect_invalid("p_consistent", [&] { router.route_read(s, Consistency::Eventual, 2, target(p)); });
  }
  for (double w : {-1.0, -1e-9, 1.1e10, std::nan(""), std::numeric_limits<double>::infinity()}) {
    expect_invalid("within_ms", [&] { router.route_read(s, Consistency::Eventual, 2, target(0.9, w)); });
  }
  for (Consistency level : {Consistency::ReadYourWrites, Consistency::Monotonic, Consistency::Causal,
                            Consistency::Strong}) {
    expect_invalid("p_consistent", [&] { router.route_read(s, level, 2, target(0.9)); });
  }
  expect_invalid("elapsed_ms", [&] { c.lag.consistent_probability(1, -1.0); });
  expect_invalid("node", [&] { c.lag.consistent_probability(9, 1.0); });
  // Checked on every read with a target, even one the target would not apply to.
  Session fresh;
  expect_invalid("within_ms", [&] { router.route_read(fresh, Consistency::Eventual, 2, target(0.9, -5)); });
  expect_invalid("p_consistent", [&] { router.route_read(fresh, Consistency::Strong, 2, target(0.9)); });
}

// Random clusters: replicas replay each commit after their own random delay (some paused, some
// down or LAGGING); probes come at random times. A session writes and reads EVENTUAL with a
// random target a random time later. Checked for every policy: a replica is never chosen when
// its measured probability (LagTracker::consistent_probability, itself checked against a
// reference over the delays the test recorded) is below the target; for a target that is one
// of kDelayLevels the router is exact: it goes to the primary only when no healthy replica
// meets it.
TEST(ConsistencyTargetProperty, NeverChoosesAReplicaBelowTheTarget) {
  const auto seeds = run_seeds(replikit::testing::printed_seed("ConsistencyTargetProperty", 0xB5C0), 150);
  int chosen = 0, by_delays = 0, to_primary = 0, exact_checks = 0;
  for (int run = 0; run < seeds.runs; ++run) {
    const std::uint64_t seed = seeds.seed(run);
    SCOPED_TRACE(replay_hint(seed, "ConsistencyTargetProperty.*"));
    Xoshiro256 rng(seed);
    const int n = 1 + static_cast<int>(rng.below(5));
    std::vector<NodeSpec> specs;
    for (int i = 0; i < n; ++i) specs.push_back(node("r" + std::to_string(i), "", 1.0 + rng.below(3)));
    auto t = std::make_shared<Topology>(node("p"), specs);
    LagConfig lc;
    lc.delay_capacity = 1 + rng.below(64);
    lc.max_lag_ms = 20 + rng.below(300);
    LagTracker lag(t, lc);
    RouterConfig rc;
    rc.policy = static_cast<Policy>(rng.below(4));  // NearestRegion needs regions: not here
    rc.seed = seed;
    rc.sticky_reads = 1 + static_cast<std::uint32_t>(rng.below(3));
    Router router(t, rc);
    std::vector<std::int64_t> typical(static_cast<std::size_t>(n) + 1), jitter(static_cast<std::size_t>(n) + 1);
    std::vector<bool> paused(static_cast<std::size_t>(n) + 1);
    std::vector<std::uint64_t> replayed(static_cast<std::size_t>(n) + 1, 1);
    std::vector<std::vector<std::int64_t>> ref(static_cast<std::size_t>(n) + 1);
    std::vector<std::pair<std::int64_t, std::uint64_t>> primary_samples;  // (time, LSN)
    for (int i = 1; i <= n; ++i) {
      typical[i] = static_cast<std::int64_t>(rng.below(20)) * kMs / 2;
      jitter[i] = 1 + static_cast<std::int64_t>(rng.below(10)) * kMs;
      paused[i] = rng.below(6) == 0;
      if (rng.below(10) == 0) t->set_up(t->name(i), false);
    }
    std::uint64_t primary = 1;
    std::int64_t now = 0;
    struct Commit {
      std::int64_t at;
      std::uint64_t lsn;
      std::vector<std::int64_t> delay;  // per replica
    };
    std::vector<Commit> commits;
    auto probe = [&] {
      lag.primary_sample(now, Lsn(primary));
      primary_samples.emplace_back(now, primary);
      for (int i = 1; i <= n; ++i) {
        std::uint64_t to = replayed[i];
        if (!paused[i]) {
          for (const auto& cm : commits) {
            if (cm.at + cm.delay[static_cast<std::size_t>(i)] <= now) to = std::max(to, cm.lsn);
          }
        }
        if (to > replayed[i] && lag.replica(i).known) {
          // The delay at its most: from the primary's last sample below the LSN replayed.
          std::int64_t below = 0;
          for (const auto& [at, lsn] : primary_samples) {
            if (lsn < to) below = at;
          }
          ref[i].push_back(std::max<std::int64_t>(0, now - below));
          if (ref[i].size() > lc.delay_capacity) ref[i].erase(ref[i].begin());
        }
        replayed[i] = to;
        lag.replica_sample(i, now, Lsn(to), Lsn(to));
      }
    };
    probe();
    for (int step = 0; step < 80; ++step) {
      primary += 1 + rng.below(1000);
      Commit cm{now, primary, std::vector<std::int64_t>(static_cast<std::size_t>(n) + 1)};
      for (int i = 1; i <= n; ++i) {
        cm.delay[static_cast<std::size_t>(i)] = typical[i] + static_cast<std::int64_t>(rng.below(static_cast<std::uint32_t>(jitter[i])));
      }
      commits.push_back(cm);
      if (commits.size() > 64) commits.erase(commits.begin());
      Session session;
      session.record_write(rng.below(8) == 0 ? Lsn() : Lsn(primary), now);
      if (rng.below(2) == 0) {
        now += static_cast<std::int64_t>(rng.below(4)) * kMs;
        probe();
      }
      now += static_cast<std::int64_t>(rng.below(80)) * kMs / 2;
      const bool at_level = rng.below(2) == 0;
      const double p = at_level ? kDelayLevels[rng.below(kDelayLevelCount)] : 0.01 + 0.99 * rng.uniform();
      const double elapsed_ms = static_cast<double>(now - session.last_write_ns) / 1e6;
      const Decision d = router.route_read(session, Consistency::Eventual, now, target(p, 1e6));
      // The measured probability of every replica, checked against the reference.
      bool some_meets = false;
      for (int i = 1; i <= n; ++i) {
        const std::optional<double> prob = lag.consistent_probability(i, elapsed_ms, session.write_lsn);
        ASSERT_EQ(lag.replay_delay_count(i), ref[i].size());
        if (session.write_lsn.valid() && t->replay_lsn(i) >= session.write_lsn.value) {
          ASSERT_TRUE(prob.has_value() && *prob == 1.0);
        } else if (ref[i].size() < kMinDelaySamples) {
          ASSERT_FALSE(prob.has_value());
        } else {
          const std::int64_t shown = (now - session.last_write_ns) - t->lag_ns(i);
          const auto hits = std::count_if(ref[i].begin(), ref[i].end(), [&](std::int64_t x) { return x <= shown; });
          ASSERT_DOUBLE_EQ(*prob, static_cast<double>(hits) / static_cast<double>(ref[i].size()));
        }
        const std::uint32_t f = t->flags(i);
        const bool healthy = (f & detail::kUpBit) && !(f & detail::kLaggingBit);
        if (healthy && prob && *prob >= p) some_meets = true;
      }
      if (!d.to_primary()) {
        ++chosen;
        ASSERT_EQ(d.reason, Reason::ReplicaLikelyConsistent);
        const std::optional<double> prob = lag.consistent_probability(d.node, elapsed_ms, session.write_lsn);
        ASSERT_TRUE(prob.has_value()) << "a replica without measurements was chosen";
        ASSERT_GE(*prob, p) << "replica " << t->name(d.node) << " chosen below the target";
        if (!session.write_lsn.valid() || t->replay_lsn(d.node) < session.write_lsn.value) ++by_delays;
      } else {
        ++to_primary;
        if (at_level && d.reason == Reason::NoReplicaLikelyConsistent) {
          ++exact_checks;
          ASSERT_FALSE(some_meets) << "a replica met the target " << p << " and the read went to the primary";
        }
      }
      now += static_cast<std::int64_t>(rng.below(20)) * kMs;
      if (rng.below(3) != 0) probe();
    }
  }
  std::printf("[ConsistencyTargetProperty] %d reads on replicas (%d by their delays alone), %d on the primary, "
              "%d exact checks\n", chosen, by_delays, to_primary, exact_checks);
  if (seeds.runs > 1) {
    EXPECT_GT(chosen, 500);
    EXPECT_GT(by_delays, 100);
    EXPECT_GT(to_primary, 1000);
    EXPECT_GT(exact_checks, 100);
  }
}
