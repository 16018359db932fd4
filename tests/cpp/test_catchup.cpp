// The replay-delay distribution of LagTracker and the catch-up wait planned from it: exact
// values on a hand-made history, then random clusters (seeded, replayable) where a simulated
// read waits as the PostgreSQL backend does, checked against the bound and the session's LSN.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
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

std::shared_ptr<Topology> two_replicas() {
  return std::make_shared<Topology>(node("p"), std::vector<NodeSpec>{node("a"), node("b")});
}

// The nearest-rank quantile of `v` (the slow obvious reference).
double reference_quantile(std::vector<std::int64_t> v, double q) {
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  rank = std::clamp<std::size_t>(rank, 1, v.size());
  return static_cast<double>(v[rank - 1]) / 1e6;
}

}  // namespace

TEST(CatchUp, DelaysAreMeasuredWhenReplayAdvances) {
  auto t = two_replicas();
  LagTracker lag(t);
  lag.primary_sample(0, Lsn(100));
  lag.replica_sample(1, 0, Lsn(100), Lsn(100));
  // The primary reaches 200 at 10 ms (seen first then, after 100 at 0..10 ms: crossing of 199
  // interpolates to just before 10 ms); replica a shows 200 at 13 ms: about 3 ms.
  for (int k = 1; k <= 10; ++k) {
    const std::int64_t base = k * 100 * kMs;
    lag.primary_sample(base, Lsn(100 + 100 * static_cast<std::uint64_t>(k)));
    lag.replica_sample(1, base + 3 * kMs, Lsn(100 + 100 * k), Lsn(100 + 100 * k));
  }
  EXPECT_EQ(lag.replay_delay_count(1), 10u);
  EXPECT_EQ(lag.replay_delay_count(2), 0u);
  const double p99 = *lag.replay_delay_ms(1, 0.99);
  EXPECT_GT(p99, 2.9);
  EXPECT_LT(p99, 4.1);
  EXPECT_FALSE(lag.replay_delay_ms(2, 0.99).has_value());
  EXPECT_DOUBLE_EQ(*lag.replay_probability(1, 10.0), 1.0);
  EXPECT_DOUBLE_EQ(*lag.replay_probability(1, 1.0), 0.0);
  // A replica at an LSN the primary was not yet seen at counts as 0.
  lag.replica_sample(1, 1200 * kMs, Lsn(5000), Lsn(5000));
  EXPECT_EQ(lag.replay_delay_count(1), 11u);
  EXPECT_DOUBLE_EQ(*lag.replay_delay_ms(1, 0.01), 0.0);

  CatchUpPlan plan = lag.plan_catch_up(CatchUpWait::automatic(2.0));
  EXPECT_EQ(plan.reason, CatchUpReason::NoReplicaExpected);
  EXPECT_EQ(plan.wait_ms, 0.0);
  plan = lag.plan_catch_up(CatchUpWait::automatic(20.0));
  EXPECT_EQ(plan.reason, CatchUpReason::ReplicaExpected);
  EXPECT_EQ(plan.node, 1);
  EXPECT_EQ(plan.wait_ms, 20.0);
  plan = lag.plan_catch_up(CatchUpWait{CatchUpMode::Fixed, 7.0, 0.99});
  EXPECT_EQ(plan.reason, CatchUpReason::FixedWait);
  EXPECT_EQ(plan.wait_ms, 7.0);
}

TEST(CatchUp, BadInputNamesTheArgument) {
  auto t = two_replicas();
  LagConfig c;
  c.delay_capacity = 0;
  expect_invalid("delay_capacity", [&] { LagTracker bad(t, c); });
  LagTracker lag(t);
  expect_invalid("wait_for_replica_ms", [&] { lag.plan_catch_up(CatchUpWait::automatic(-1)); });
  expect_invalid("wait_for_replica_ms", [&] { lag.plan_catch_up(CatchUpWait::automatic(std::nan(""))); });
  expect_invalid("quantile", [&] { lag.plan_catch_up(CatchUpWait{CatchUpMode::Auto, 5, 0}); });
  expect_invalid("quantile", [&] { lag.replay_delay_ms(1, 1.5); });
  expect_invalid("within_ms", [&] { lag.replay_probability(1, -1); });
  expect_invalid("node", [&] { lag.replay_delay_count(9); });
}

// Random clusters: replicas replay with random delays, some pause, some go down. A session
// writes, then reads at ReadYourWrites; a read no replica has caught up with waits as the
// backend does (re-routing after each probe until the planned wait ends). Checked: the ring
// stays within delay_capacity and matches the reference; the wait never passes its bound
// (Auto: max_wait_ms; Fixed: exactly it); a replica that serves has replayed the session's LSN;
// ReplicaExpected names an up, not LAGGING replica whose quantile is within the bound.
TEST(CatchUpProperty, WaitIsBoundedAndNeverServesBelowTheSession) {
  const auto seeds = run_seeds(0xCA7C4, 200);
  std::array<int, 4> by_reason{};  // plans by CatchUpReason, over all runs
  int served_after_wait = 0;
  for (int run = 0; run < seeds.runs; ++run) {
    const std::uint64_t seed = seeds.seed(run);
    SCOPED_TRACE(replay_hint(seed, "CatchUpProperty.*"));
    Xoshiro256 rng(seed);
    const int n = 1 + static_cast<int>(rng.below(4));
    std::vector<NodeSpec> specs;
    for (int i = 0; i < n; ++i) specs.push_back(node("r" + std::to_string(i)));
    auto t = std::make_shared<Topology>(node("p"), specs);
    LagConfig c;
    c.delay_capacity = 1 + rng.below(40);
    c.max_lag_ms = 50 + rng.below(500);
    LagTracker lag(t, c);
    Router router(t);
    const CatchUpWait wait = rng.below(4) == 0
                                 ? CatchUpWait{CatchUpMode::Fixed, static_cast<double>(rng.below(30)), 0.99}
                                 : CatchUpWait{CatchUpMode::Auto, static_cast<double>(rng.below(60)),
                                               0.5 + 0.5 * rng.uniform()};
    // Per replica: its typical replay delay, and whether it is paused (replays nothing).
    std::vector<std::int64_t> typical(static_cast<std::size_t>(n) + 1);
    std::vector<bool> paused(static_cast<std::size_t>(n) + 1);
    std::vector<std::uint64_t> replayed(static_cast<std::size_t>(n) + 1, 1);
    std::vector<std::vector<std::int64_t>> ref(static_cast<std::size_t>(n) + 1);
    for (int i = 1; i <= n; ++i) {
      typical[i] = static_cast<std::int64_t>(rng.below(40)) * kMs / 2;
      paused[i] = rng.below(5) == 0;
      if (rng.below(8) == 0) t->set_up(t->name(i), false);
    }
    std::uint64_t primary = 1;
    std::int64_t now = 0;
    std::vector<std::pair<std::int64_t, std::uint64_t>> commits;  // (time, lsn)
    // One probe round at `now`: the primary, then each replica at what it has replayed.
    auto probe = [&] {
      lag.primary_sample(now, Lsn(primary));
      for (int i = 1; i <= n; ++i) {
        std::uint64_t to = replayed[i];
        if (!paused[i]) {
          for (const auto& [at, lsn] : commits) {
            if (at + typical[i] <= now) to = std::max(to, lsn);
          }
        }
        if (to > replayed[i] && lag.replica(i).known) {
          const std::int64_t reached = lag.primary_time_past(Lsn(to - 1));
          const std::int64_t d = reached == std::numeric_limits<std::int64_t>::min() ? 0 : std::max<std::int64_t>(0, now - reached);
          ref[i].push_back(d);
          if (ref[i].size() > c.delay_capacity) ref[i].erase(ref[i].begin());
        }
        replayed[i] = to;
        lag.replica_sample(i, now, Lsn(to), Lsn(to));
      }
    };
    probe();
    for (int step = 0; step < 60; ++step) {
      Session session;
      primary += 1 + rng.below(1000);
      commits.push_back({now, primary});
      session.record_write(Lsn(primary), 1);
      now += static_cast<std::int64_t>(rng.below(3)) * kMs;
      if (rng.below(2) == 0) probe();
      Decision d = router.route_read(session, Consistency::ReadYourWrites, 1);
      if (d.reason == Reason::NoReplicaCaughtUp) {
        const CatchUpPlan plan = lag.plan_catch_up(wait);
        ++by_reason[static_cast<std::size_t>(plan.reason)];
        ASSERT_LE(plan.wait_ms, wait.max_wait_ms);
        if (wait.mode == CatchUpMode::Fixed) {
          ASSERT_EQ(plan.wait_ms, wait.max_wait_ms);
        }
        if (plan.reason == CatchUpReason::ReplicaExpected) {
          ASSERT_EQ(role_of(t->flags(plan.node)), Role::Replica);
          ASSERT_TRUE(t->flags(plan.node) & detail::kUpBit);
          ASSERT_LE(plan.predicted_ms, wait.max_wait_ms);
          ASSERT_LE(lag.replica(plan.node).lag_ns, std::llround(wait.max_wait_ms * 1e6));
        }
        const std::int64_t start = now;
        const std::int64_t deadline = start + std::llround(plan.wait_ms * 1e6);
        while (now < deadline && d.reason == Reason::NoReplicaCaughtUp) {
          now = std::min(deadline, now + static_cast<std::int64_t>(1 + rng.below(6)) * kMs);
          probe();
          d = router.route_read(session, Consistency::ReadYourWrites, 1);
        }
        ASSERT_LE(now - start, std::llround(wait.max_wait_ms * 1e6));
        if (!d.to_primary()) ++served_after_wait;
      }
      if (!d.to_primary()) {
        ASSERT_GE(replayed[d.node], primary) << "a replica below the session's LSN served";
      }
      for (int i = 1; i <= n; ++i) {
        ASSERT_LE(lag.replay_delay_count(i), c.delay_capacity);
        ASSERT_EQ(lag.replay_delay_count(i), ref[i].size());
        if (ref[i].size() >= kMinDelaySamples) {
          ASSERT_DOUBLE_EQ(*lag.replay_delay_ms(i, wait.quantile), reference_quantile(ref[i], wait.quantile));
        }
      }
      now += static_cast<std::int64_t>(rng.below(20)) * kMs;
      if (rng.below(3) == 0) probe();
    }
  }
  // The runs reach every kind of plan, and waits that end on a replica (unless replaying one seed).
  if (seeds.runs > 1) {
    for (int k = 0; k < 4; ++k) EXPECT_GT(by_reason[static_cast<std::size_t>(k)], 0) << "reason " << k;
    EXPECT_GT(served_after_wait, 0);
  }
}
