// BOUNDED_STALENESS reads are routed on a safe upper bound of staleness that holds at the moment
// of routing (now - Topology::fresh_as_of_ns), not on the interpolated lag of the last probe.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "replikit/lag.hpp"
#include "replikit/router.hpp"
#include "testing.hpp"

namespace replikit {
namespace {

using testing::node;
using testing::replay_hint;
using testing::run_seeds;

constexpr std::int64_t kMs = 1000000;
constexpr std::uint64_t kBase = 0x1000000;

// The reproduction: a write commits at 1001 ms (176 bytes of WAL, the commit record last);
// r1 replays its rows and waits at the commit record (recovery_min_apply_delay), 136 bytes in.
// Interpolation puts r1 22 ms behind at its probe, while it lacks a commit made 149 ms before
// the read.
struct HeldAtCommit {
  std::shared_ptr<Topology> topology = std::make_shared<Topology>(node("primary"), std::vector<NodeSpec>{node("r1")});
  LagTracker tracker{topology};
  Router router{topology};
  int r1 = topology->index_of("r1");

  HeldAtCommit() {
    tracker.primary_sample(1000 * kMs, Lsn(kBase));
    tracker.primary_sample(1100 * kMs, Lsn(kBase + 176));
    tracker.replica_sample(r1, 1100 * kMs, Lsn(kBase + 176), Lsn(kBase + 136));
  }
  Decision read(std::int64_t now_ns, double max_staleness_ms) {
    ReadOptions o;
    o.max_staleness_ms = max_staleness_ms;
    return router.route_read(Session{}, Consistency::BoundedStaleness, now_ns, o);
  }
};

TEST(BoundedStaleness, ReplicaHeldAtACommitRecordIsNotFresh) {
  HeldAtCommit c;
  // The estimate for monitoring is unchanged: interpolated, about 22.2 ms.
  EXPECT_NEAR(static_cast<double>(c.tracker.replica(c.r1).lag_ns) / kMs, 22.16, 0.01);
  // Known to hold every commit only as of 1000 ms, the primary's last sample at or below its LSN.
  EXPECT_EQ(c.topology->fresh_as_of_ns(c.r1), 1000 * kMs);
  Decision d = c.read(1150 * kMs, 30.0);
  EXPECT_EQ(d.node, c.topology->primary());
  EXPECT_EQ(d.reason, Reason::NoReplicaFresh);
  // A bound above the 150 ms it may be behind takes it.
  d = c.read(1150 * kMs, 200.0);
  EXPECT_EQ(d.node, c.r1);
  EXPECT_EQ(d.reason, Reason::ReplicaFresh);
}

TEST(BoundedStaleness, TheBoundGrowsBetweenProbes) {
  HeldAtCommit c;
  // No new sample: at 1200 ms it may be 200 ms behind (the bound is inclusive), then more.
  EXPECT_EQ(c.read(1200 * kMs, 200.0).node, c.r1);
  const Decision d = c.read(1200 * kMs + 1, 200.0);
  EXPECT_EQ(d.node, c.topology->primary());
  EXPECT_EQ(d.reason, Reason::NoReplicaFresh);
  // An idle primary seen at the replica's LSN moves the instant on with every primary sample.
  c.tracker.replica_sample(c.r1, 1300 * kMs, Lsn(kBase + 176), Lsn(kBase + 176));
  EXPECT_EQ(c.topology->fresh_as_of_ns(c.r1), 1100 * kMs);
  c.tracker.primary_sample(1400 * kMs, Lsn(kBase + 176));
  EXPECT_EQ(c.topology->fresh_as_of_ns(c.r1), 1400 * kMs);
  EXPECT_EQ(c.read(1430 * kMs, 30.0).node, c.r1);
  EXPECT_EQ(c.read(1430 * kMs + 1, 30.0).reason, Reason::NoReplicaFresh);
}

TEST(BoundedStaleness, UnknownBeforeAnyPrimarySampleAndAfterReset) {
  auto t = std::make_shared<Topology>(node("p"), std::vector<NodeSpec>{node("r1")});
  LagTracker tracker(t);
  Router router(t);
  ReadOptions o;
  o.max_staleness_ms = 1e10;
  tracker.replica_sample("r1", 100 * kMs, Lsn(kBase), Lsn(kBase));
  EXPECT_EQ(t->fresh_as_of_ns(1), kFreshUnknown);
  EXPECT_EQ(router.route_read(Session{}, Consistency::BoundedStaleness, 100 * kMs, o).reason, Reason::NoReplicaFresh);
  tracker.primary_sample(150 * kMs, Lsn(kBase));
  EXPECT_EQ(router.route_read(Session{}, Consistency::BoundedStaleness, 150 * kMs, o).node, 1);
  tracker.reset();
  EXPECT_EQ(t->fresh_as_of_ns(1), kFreshUnknown);
  EXPECT_EQ(router.route_read(Session{}, Consistency::BoundedStaleness, 150 * kMs, o).reason, Reason::NoReplicaFresh);
}

TEST(BoundedStaleness, NodeInfoShowsTheInstantRoutingUses) {
  HeldAtCommit c;
  EXPECT_EQ(c.topology->info(c.r1).fresh_as_of_ns, 1000 * kMs);
  c.tracker.primary_sample(1400 * kMs, Lsn(kBase + 176));
  c.tracker.replica_sample(c.r1, 1400 * kMs, Lsn(kBase + 176), Lsn(kBase + 176));
  EXPECT_EQ(c.topology->info(c.r1).fresh_as_of_ns, 1400 * kMs);
  // The primary has no such instant; nor the promoted replica as primary, nor the deposed one.
  EXPECT_EQ(c.topology->info(c.topology->primary()).fresh_as_of_ns, kFreshUnknown);
  c.topology->promote("r1");
  for (const NodeInfo& n : c.topology->nodes()) EXPECT_EQ(n.fresh_as_of_ns, kFreshUnknown) << n.name;
}

// ---------------------------------------------------------------- ground truth

// One WAL write of the primary: it reached `end` at `time`; `commit` when it is a commit record
// (the transaction is acknowledged then).
struct Chunk {
  std::int64_t time;
  std::uint64_t end;
  bool commit;
};

struct Truth {
  std::vector<Chunk> wal;                   // in time and LSN order
  std::vector<std::vector<std::int64_t>> applied;  // per replica, when it replayed wal[k]

  // The primary's LSN at `t`.
  std::uint64_t primary_at(std::int64_t t) const {
    auto it = std::upper_bound(wal.begin(), wal.end(), t, [](std::int64_t v, const Chunk& c) { return v < c.time; });
    return it == wal.begin() ? kBase : (it - 1)->end;
  }
  // Replica j's replay LSN at `t`.
  std::uint64_t replica_at(std::size_t j, std::int64_t t) const {
    const auto& a = applied[j];
    auto it = std::upper_bound(a.begin(), a.end(), t);
    return it == a.begin() ? kBase : wal[static_cast<std::size_t>(it - a.begin()) - 1].end;
  }
  // How stale a replica that has replayed `replay` is at `now`: now - the oldest commit made by
  // then that it lacks (0 when it lacks none).
  std::int64_t staleness(std::uint64_t replay, std::int64_t now) const {
    // The first WAL past `replay` (wal is in LSN order), then its commit record: the oldest
    // commit the replica lacks (commits are in time order too).
    auto it = std::upper_bound(wal.begin(), wal.end(), replay, [](std::uint64_t v, const Chunk& c) { return v < c.end; });
    while (it != wal.end() && !it->commit) ++it;
    return it == wal.end() || it->time > now ? 0 : now - it->time;
  }
};

// A uniform integer in [0, n) (n > 0), for spans of nanoseconds.
std::int64_t below(Xoshiro256& rng, std::int64_t n) {
  return static_cast<std::int64_t>(rng.next() % static_cast<std::uint64_t>(n));
}

// Commits at random times with random row and commit-record sizes; each replica replays in
// order with its own delays, holding commit records for a random apply delay.
Truth make_truth(Xoshiro256& rng, std::size_t replicas, std::int64_t horizon) {
  Truth t;
  const std::int64_t gap = (1 + static_cast<std::int64_t>(rng.below(100))) * kMs;  // mean commit gap
  std::uint64_t lsn = kBase;
  for (std::int64_t now = 0; now < horizon;) {
    const std::int64_t commit_at = now + 1 + below(rng, 2 * gap);
    const std::int64_t rows_at = now + below(rng, commit_at - now);
    lsn += 1 + rng.below(400);  // the rows
    t.wal.push_back({rows_at, lsn, false});
    lsn += 24 + rng.below(40);  // the commit record
    t.wal.push_back({commit_at, lsn, true});
    now = commit_at;
  }
  t.applied.resize(replicas);
  for (std::size_t j = 0; j < replicas; ++j) {
    const std::int64_t hold = rng.below(3) == 0 ? 0 : static_cast<std::int64_t>(rng.below(200)) * kMs;
    const std::int64_t jitter = 1 + static_cast<std::int64_t>(rng.below(30)) * kMs;
    std::int64_t last = 0;
    for (const Chunk& c : t.wal) {
      std::int64_t at = c.time + below(rng, jitter);
      if (c.commit) at = std::max(at, c.time + hold);  // recovery_min_apply_delay
      last = std::max(last, at);
      t.applied[j].push_back(last);
    }
  }
  return t;
}

TEST(BoundedStalenessProperty, RoutedReadsAreWithinTheBoundInTheGroundTruth) {
  const auto seeds = run_seeds(0xB57A1E, 150);
  std::uint64_t on_replica = 0, on_primary = 0, unsafe_by_lag = 0, checked = 0;
  std::printf("[BoundedStalenessProperty] seed %llu, %d runs (a failing run names its own seed; replay it with "
              "REPLIKIT_TEST_SEED)\n", static_cast<unsigned long long>(seeds.base), seeds.runs);
  for (int run = 0; run < seeds.runs; ++run) {
    const std::uint64_t seed = seeds.seed(run);
    SCOPED_TRACE(replay_hint(seed, "BoundedStalenessProperty.*"));
    Xoshiro256 rng(seed);
    const std::size_t n = 1 + rng.below(3);
    std::vector<NodeSpec> specs;
    for (std::size_t j = 0; j < n; ++j) specs.push_back(node("r" + std::to_string(j)));
    auto topology = std::make_shared<Topology>(node("p"), specs);
    LagConfig config;
    config.max_lag_ms = 1e6;  // never LAGGING: every replica is judged on its staleness alone
    config.history_capacity = rng.below(4) == 0 ? 2 + rng.below(30) : 8192;
    config.stale_sample_ms = static_cast<double>(50 + rng.below(1000));
    LagTracker tracker(topology, config);
    Router router(topology);
    const std::int64_t horizon = 3000 * kMs;
    const Truth truth = make_truth(rng, n, horizon);
    const std::int64_t primary_every = (5 + static_cast<std::int64_t>(rng.below(200))) * kMs;
    std::vector<std::uint64_t> sampled(n, 0);  // replay LSN at each replica's last sample (0: none)
    std::int64_t next_primary = 0;
    for (std::int64_t now = 0; now < horizon; now += 1 + below(rng, 10 * kMs)) {
      if (now >= next_primary) {
        tracker.primary_sample(now, Lsn(truth.primary_at(now)));
        next_primary = now + primary_every / 2 + below(rng, primary_every);
      }
      for (std::size_t j = 0; j < n; ++j) {
        if (rng.below(8) != 0) continue;
        sampled[j] = truth.replica_at(j, now);
        tracker.replica_sample(static_cast<int>(j) + 1, now, Lsn(sampled[j]), Lsn(sampled[j]));
      }
      ReadOptions o;
      o.max_staleness_ms = static_cast<double>(rng.below(300)) + rng.uniform();
      const std::int64_t bound_ns = static_cast<std::int64_t>(o.max_staleness_ms * 1e6 + 0.5);
      // Every replica the bound admits, judged on what was known of it (its last sample).
      for (std::size_t j = 0; j < n; ++j) {
        const int i = static_cast<int>(j) + 1;
        const std::int64_t fresh = topology->fresh_as_of_ns(i);
        const bool admitted = fresh != kFreshUnknown && now - fresh <= bound_ns;
        const std::int64_t truly = truth.staleness(sampled[j], now);
        ++checked;
        if (admitted) {
          EXPECT_LE(truly, bound_ns) << "replica r" << j << " at " << now;
        }
        const bool lag_admits = (topology->flags(i) & detail::kLagKnownBit) && topology->lag_ns(i) <= bound_ns;
        if (lag_admits && truly > bound_ns) ++unsafe_by_lag;
      }
      const Decision d = router.route_read(Session{}, Consistency::BoundedStaleness, now, o);
      if (d.node == topology->primary()) {
        ++on_primary;
        continue;
      }
      ++on_replica;
      ASSERT_EQ(d.reason, Reason::ReplicaFresh);
      const std::size_t j = static_cast<std::size_t>(d.node - 1);
      ASSERT_LE(truth.staleness(sampled[j], now), bound_ns) << "read at " << now << " on r" << j;
    }
  }
  std::printf("[BoundedStalenessProperty] %llu reads on replicas, %llu on the primary, %llu replica checks; "
              "the interpolated lag would have admitted %llu stale ones\n",
              static_cast<unsigned long long>(on_replica), static_cast<unsigned long long>(on_primary),
              static_cast<unsigned long long>(checked), static_cast<unsigned long long>(unsafe_by_lag));
  if (!seeds.replay) {
    EXPECT_GT(on_replica, 1000u);  // not vacuous
    EXPECT_GT(unsafe_by_lag, 0u);  // and the model does catch the interpolated lag's defect
  }
}

}  // namespace
}  // namespace replikit
