// Topology: nodes, roles, epochs, bounds, bad input, and updates racing the lock-free
// read path.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "replikit/errors.hpp"
#include "replikit/lag.hpp"
#include "replikit/random.hpp"
#include "replikit/router.hpp"
#include "replikit/topology.hpp"

#include "testing.hpp"

using namespace replikit;
using replikit::testing::node;

namespace {

std::vector<NodeSpec> replica_specs(int n) {
  std::vector<NodeSpec> out;
  for (int i = 0; i < n; ++i) out.push_back(node("r" + std::to_string(i), i % 2 ? "eu" : "us", 1.0 + i, i));
  return out;
}

// Topology's errors name the argument in their message too.
template <typename E, typename F>
void expect_invalid(F&& f, const std::string& argument) {
  replikit::testing::expect_invalid<E>(std::forward<F>(f), argument, replikit::testing::NameInMessage::Required);
}

}  // namespace

TEST(Topology, PrimaryAndSixtyFourReplicas) {
  Topology t(node("p", "us", 1.0, 7), replica_specs(64));
  EXPECT_EQ(t.size(), 65);
  EXPECT_EQ(t.primary(), 0);
  EXPECT_EQ(t.epoch(), 1u);
  EXPECT_EQ(t.replica_count(), 64);
  std::vector<int> expected;
  for (int i = 1; i <= 64; ++i) expected.push_back(i);
  EXPECT_EQ(t.replicas(), expected);
  for (int k = 0; k < t.replica_count(); ++k) EXPECT_EQ(t.replica_at(k), k + 1);
  auto all = t.nodes();
  ASSERT_EQ(all.size(), 65u);
  EXPECT_EQ(all[0].role, Role::Primary);
  EXPECT_EQ(all[0].name, "p");
  EXPECT_EQ(all[0].priority, 7);
  for (int i = 1; i <= 64; ++i) {
    const NodeInfo& info = all[i];
    EXPECT_EQ(info.index, i);
    EXPECT_EQ(info.name, "r" + std::to_string(i - 1));
    EXPECT_EQ(info.region, (i - 1) % 2 ? "eu" : "us");
    EXPECT_EQ(info.role, Role::Replica);
    EXPECT_TRUE(info.up);
    EXPECT_DOUBLE_EQ(info.weight, 1.0 + (i - 1));
    EXPECT_EQ(info.priority, i - 1);
    EXPECT_FALSE(info.lag_known);
    EXPECT_EQ(info.lag_state, LagState::Ok);
    EXPECT_EQ(info.outstanding, 0);
    EXPECT_EQ(t.index_of(info.name), i);
    EXPECT_EQ(t.find(info.name), i);
    EXPECT_EQ(t.name(i), info.name);
    EXPECT_EQ(region_of(t.flags(i)), t.region_id(info.region));
  }
  EXPECT_EQ(t.region_id("us"), 0);
  EXPECT_EQ(t.region_id("eu"), 1);
  EXPECT_EQ(t.region_id("mars"), kNoNode);
  EXPECT_EQ(t.find("nobody"), kNoNode);
}

TEST(Topology, PrimaryOnly) {
  Topology t(node("p"), {});
  EXPECT_EQ(t.size(), 1);
  EXPECT_EQ(t.replica_count(), 0);
  EXPECT_TRUE(t.replicas().empty());
  EXPECT_EQ(region_of(t.flags(0)), kNoNode);
}

TEST(Topology, UpdatesAreVisibleInInfo) {
  Topology t(node("p"), {node("a"), node("b")});
  auto v0 = t.weights_version();
  t.set_up("a", false);
  EXPECT_FALSE(t.info(1).up);
  EXPECT_TRUE(t.info(2).up);
  t.set_up("a", true);
  EXPECT_TRUE(t.info(1).up);
  t.set_up("p", false);
  EXPECT_FALSE(t.info(0).up);
  t.set_weight("b", 2.5);
  EXPECT_DOUBLE_EQ(t.weight(2), 2.5);
  EXPECT_DOUBLE_EQ(t.info(2).weight, 2.5);
  EXPECT_GT(t.weights_version(), v0);
  t.set_weight("b", 0.0);  // zero is allowed: the replica is not preferred
  EXPECT_DOUBLE_EQ(t.weight(2), 0.0);
  t.set_priority("a", -3);
  EXPECT_EQ(t.info(1).priority, -3);
  // None of these changes the primary, so the epoch stays.
  EXPECT_EQ(t.epoch(), 1u);
}

TEST(Topology, EpochChangesExactlyWhenThePrimaryChanges) {
  auto t = std::make_shared<Topology>(node("p"), std::vector<NodeSpec>{node("a"), node("b")});
  LagTracker tracker(t);
  tracker.primary_sample(0, Lsn(0x1000));
  tracker.replica_sample("a", 0, Lsn(0x1000), Lsn(0x1000));
  EXPECT_TRUE(t->info(1).lag_known);
  auto v = t->weights_version();

  EXPECT_EQ(t->promote("a"), 2u);
  EXPECT_EQ(t->epoch(), 2u);
  EXPECT_EQ(t->primary(), 1);
  EXPECT_GT(t->weights_version(), v);
  NodeInfo old = t->info(0), fresh = t->info(1);
  EXPECT_EQ(old.role, Role::Replica);
  EXPECT_FALSE(old.up) << "the old primary must not serve until rewound";
  EXPECT_FALSE(old.lag_known);
  EXPECT_EQ(fresh.role, Role::Primary);
  EXPECT_EQ(fresh.lag_state, LagState::Ok);
  EXPECT_EQ(t->replicas(), (std::vector<int>{0, 2}));

  // Non-primary changes leave the epoch alone.
  t->set_up("p", true);
  t->set_weight("b", 3);
  t->add_replica(node("c"));
  t->remove_replica("c");
  EXPECT_EQ(t->epoch(), 2u);

  expect_invalid<InvalidArgument>([&] { t->promote("a"); }, "name");
  EXPECT_EQ(t->epoch(), 2u);
  EXPECT_EQ(t->promote("p"), 3u);
  EXPECT_EQ(t->primary(), 0);
  EXPECT_EQ(t->promote("b"), 4u);
  EXPECT_EQ(t->epoch(), 4u);
}

TEST(Topology, MakePrimaryToleratesANodeAlreadyPromoted) {
  // A failover finishing after the prober adopted the promoted node's timeline: no error.
  auto t = std::make_shared<Topology>(node("p"), std::vector<NodeSpec>{node("a"), node("b")});
  EXPECT_EQ(t->promote("a"), 2u);
  EXPECT_EQ(t->make_primary("a"), 2u);
  EXPECT_EQ(t->epoch(), 2u);
  EXPECT_EQ(t->primary(), 1);
  EXPECT_EQ(t->make_primary("b"), 3u);
  EXPECT_EQ(t->primary(), 2);
  EXPECT_EQ(t->info(1).role, Role::Replica);
  expect_invalid<NotFound>([&] { t->make_primary("nobody"); }, "name");
  EXPECT_EQ(t->epoch(), 3u);
}

// make_primary's announce: after the checks, before the change (the topology still shows the old
// primary), under the write lock; not for a node already the primary nor a removed one; a throw
// from it leaves the topology as it was.
TEST(Topology, MakePrimaryAnnouncesOnlyAChangeItMakesAndBeforeIt) {
  auto t = std::make_shared<Topology>(node("p"), std::vector<NodeSpec>{node("a"), node("b")});
  std::vector<int> announced;
  auto announce = [&](int old) {
    announced.push_back(old);
    EXPECT_EQ(t->primary(), old);  // not changed yet
    EXPECT_EQ(t->epoch(), 1u);
  };
  EXPECT_EQ(t->make_primary("a", announce), 2u);
  EXPECT_EQ(announced, std::vector<int>{0});
  EXPECT_EQ(t->make_primary("a", announce), 2u);  // already the primary: nothing announced
  EXPECT_EQ(announced.size(), 1u);
  t->remove_replica("b");
  expect_invalid<NotFound>([&] { t->make_primary("b", announce); }, "name");
  EXPECT_EQ(announced.size(), 1u);
  // A throwing announce: no change.
  auto t2 = std::make_shared<Topology>(node("p"), std::vector<NodeSpec>{node("a")});
  EXPECT_THROW(t2->make_primary("a", [](int) { throw InvalidArgument("announce", "refused"); }), InvalidArgument);
  EXPECT_EQ(t2->primary(), 0);
  EXPECT_EQ(t2->epoch(), 1u);
  EXPECT_EQ(t2->info(1).role, Role::Replica);
}

TEST(Topology, RemovedReplicaKeepsItsSlotAndName) {
  Topology t(node("p"), {node("a"), node("b"), node("c")});
  t.remove_replica("b");
  EXPECT_EQ(t.size(), 4);
  EXPECT_EQ(t.info(2).role, Role::Removed);
  EXPECT_FALSE(t.info(2).up);
  EXPECT_EQ(t.replicas(), (std::vector<int>{1, 3}));
  EXPECT_EQ(t.replica_count(), 2);
  EXPECT_EQ(t.nodes().size(), 3u);
  EXPECT_EQ(t.find("b"), kNoNode);
  expect_invalid<NotFound>([&] { t.index_of("b", "replica"); }, "replica");
  expect_invalid<NotFound>([&] { t.set_up("b", true); }, "name");
  expect_invalid<NotFound>([&] { t.remove_replica("b"); }, "name");
  expect_invalid<InvalidArgument>([&] { t.add_replica(node("b")); }, "spec");  // names are never reused
  EXPECT_EQ(t.add_replica(node("d")), 4);
  EXPECT_EQ(t.replicas(), (std::vector<int>{1, 3, 4}));
  expect_invalid<InvalidArgument>([&] { t.remove_replica("p"); }, "name");
}

TEST(Topology, CapacityOfNodeSlots) {
  // kMaxNodes slots over the lifetime, removed ones included.
  Topology t(node("p"), replica_specs(kMaxNodes - 2));
  EXPECT_EQ(t.add_replica(node("last")), kMaxNodes - 1);
  t.remove_replica("last");
  EXPECT_THROW(t.add_replica(node("one-more")), CapacityExceeded);
  EXPECT_EQ(t.size(), kMaxNodes);
  // The largest topology the constructor accepts, and one past it.
  EXPECT_NO_THROW(Topology(node("p"), replica_specs(kMaxNodes - 1)));
  // A replica list that cannot fit is a bad value of that argument (add_replica on a full
  // topology, above, is the library's bound being reached).
  expect_invalid<InvalidArgument>([] { Topology(node("p"), replica_specs(kMaxNodes)); }, "replicas");
}

TEST(Topology, CapacityOfRegions) {
  std::vector<NodeSpec> specs;
  for (int i = 0; i < kMaxRegions - 1; ++i) specs.push_back(node("r" + std::to_string(i), "region" + std::to_string(i)));
  Topology t(node("p", "home"), specs);
  EXPECT_EQ(t.region_id("region62"), kMaxRegions - 1);
  EXPECT_THROW(t.add_replica(node("x", "one-region-too-many")), CapacityExceeded);
  EXPECT_EQ(t.find("x"), kNoNode) << "a rejected node must not be half-added";
  EXPECT_EQ(t.add_replica(node("y", "home")), kMaxRegions);  // a known region still fits
}

TEST(Topology, BadInputNamesTheArgument) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  expect_invalid<InvalidArgument>([&] { Topology(node(""), {}); }, "primary");
  expect_invalid<InvalidArgument>([&] { Topology(node("p", "", -1.0), {}); }, "primary");
  expect_invalid<InvalidArgument>([&] { Topology(node("p"), {node("")}); }, "replicas");
  expect_invalid<InvalidArgument>([&] { Topology(node("p"), {node("a"), node("a")}); }, "replicas");
  expect_invalid<InvalidArgument>([&] { Topology(node("p"), {node("p")}); }, "replicas");
  expect_invalid<InvalidArgument>([&] { Topology(node("p"), {node("a", "", -0.5)}); }, "replicas");
  expect_invalid<InvalidArgument>([&] { Topology(node("p"), {node("a", "", nan)}); }, "replicas");
  expect_invalid<InvalidArgument>([&] { Topology(node("p"), {node("a", "", inf)}); }, "replicas");
  expect_invalid<InvalidArgument>([&] { Topology(node("p"), {node("has space")}); }, "replicas");
  expect_invalid<InvalidArgument>([&] { Topology(node("p"), {node(std::string(64, 'x'))}); }, "replicas");
  expect_invalid<InvalidArgument>([&] { Topology(node("p"), {node("a", std::string(64, 'r'))}); }, "replicas");
  EXPECT_NO_THROW(Topology(node("p"), {node(std::string(63, 'x'))}));

  Topology t(node("p"), {node("a")});
  expect_invalid<InvalidArgument>([&] { t.add_replica(node("")); }, "spec");
  expect_invalid<InvalidArgument>([&] { t.add_replica(node("a")); }, "spec");
  expect_invalid<InvalidArgument>([&] { t.add_replica(node("z", "", nan)); }, "spec");
  expect_invalid<InvalidArgument>([&] { t.add_replica(node("tab\tname")); }, "spec");
  expect_invalid<InvalidArgument>([&] { t.set_weight("a", -1.0); }, "weight");
  expect_invalid<InvalidArgument>([&] { t.set_weight("a", nan); }, "weight");
  expect_invalid<InvalidArgument>([&] { t.set_weight("a", inf); }, "weight");
  expect_invalid<InvalidArgument>([&] { t.set_weight("a", -0.0 - 1e-300); }, "weight");
  expect_invalid<NotFound>([&] { t.set_weight("nobody", 1.0); }, "name");
  expect_invalid<NotFound>([&] { t.set_up("nobody", true); }, "name");
  expect_invalid<NotFound>([&] { t.set_priority("nobody", 1); }, "name");
  expect_invalid<NotFound>([&] { t.promote("nobody"); }, "name");
  expect_invalid<NotFound>([&] { t.remove_replica(""); }, "name");
  expect_invalid<NotFound>([&] { t.index_of("nobody"); }, "name");
  expect_invalid<InvalidArgument>([&] { t.name(-1); }, "index");
  expect_invalid<InvalidArgument>([&] { t.name(2); }, "index");
  expect_invalid<InvalidArgument>([&] { t.info(2); }, "index");
  expect_invalid<InvalidArgument>([&] { t.info(kNoNode); }, "index");
  expect_invalid<InvalidArgument>([&] { t.check_index(kMaxNodes, "node"); }, "node");
  // Nothing above changed the topology.
  EXPECT_EQ(t.size(), 2);
  EXPECT_DOUBLE_EQ(t.weight(1), 1.0);
  EXPECT_EQ(t.epoch(), 1u);
}

// Two routing threads and one updating thread: every decision must name a node that was, at
// some moment of the run, in the role its reason implies; never an out-of-range index, never a
// node that was never up. Bounded iterations; meant to run under ASan/UBSan and TSan too.
TEST(TopologyConcurrency, RoutingWhileUpdating) {
  constexpr int kInitialReplicas = 6;
  constexpr int kUpdates = 3000;
  constexpr int kReadsPerThread = 30000;
  constexpr std::uint64_t kSeed = 0xC0FFEE;
  auto t = std::make_shared<Topology>(node("p", "us"), replica_specs(kInitialReplicas));
  // A replica that is never up and never promoted: no decision may name it.
  const int never_up = t->add_replica(node("never-up", "us", 5.0, 0, false));
  LagTracker tracker(t, LagConfig{});

  std::array<std::atomic<bool>, kMaxNodes> ever_primary{}, ever_replica{};
  ever_primary[0] = true;
  for (int i : t->replicas()) ever_replica[i] = true;

  std::vector<std::unique_ptr<Router>> routers;
  for (int p = 0; p <= 4; ++p) {
    RouterConfig c;
    c.policy = static_cast<Policy>(p);
    c.seed = kSeed + static_cast<std::uint64_t>(p);
    c.time_window_ms = 1;
    routers.push_back(std::make_unique<Router>(t, c));
  }

  std::atomic<bool> failed{false};
  std::atomic<std::uint64_t> decisions_with_node[5] = {}, decisions[5] = {};
  std::atomic<std::uint64_t> final_epoch_seen{0};

  auto check = [&](const Decision& d, int size_bound) {
    if (d.node == kNoNode) return d.reason == Reason::PrimaryDown || d.to_primary();
    if (d.node < 0 || d.node >= size_bound || d.node >= kMaxNodes) return false;
    if (d.node == never_up) return false;
    if (d.epoch < 1) return false;
    if (d.to_primary()) return ever_primary[d.node].load();
    return ever_replica[d.node].load();
  };

  std::atomic<int> ready{0};
  auto start_together = [&] {  // all three threads start at once, so the work overlaps
    ready.fetch_add(1);
    while (ready.load() < 3) std::this_thread::yield();
  };

  auto reader = [&](int id) {
    start_together();
    Xoshiro256 rng(kSeed * 31 + static_cast<std::uint64_t>(id));
    Session s;
    for (int k = 0; k < kReadsPerThread && !failed.load(std::memory_order_relaxed); ++k) {
      int r = static_cast<int>(rng.below(5));
      Router& router = *routers[r];
      Decision d;
      if (rng.below(8) == 0) {
        d = router.route_write();
        if (d.node != kNoNode) s.record_write(Lsn(rng.below(1u << 20)), k);
      } else {
        auto c = static_cast<Consistency>(rng.below(6));
        ReadOptions o;
        o.max_staleness_ms = 50.0 * rng.below(4);
        if (rng.below(2)) o.region = static_cast<int>(rng.below(2));
        d = router.route_read(s, c, static_cast<std::int64_t>(k) * 1000, o);
        if (d.node != kNoNode) s.observe(Lsn(t->replay_lsn(d.node)));
        if (d.node != kNoNode && r == static_cast<int>(Policy::LeastOutstanding)) {
          Router::InFlight in_flight(router, d.node);
        }
      }
      decisions[r].fetch_add(1, std::memory_order_relaxed);
      if (d.node != kNoNode) decisions_with_node[r].fetch_add(1, std::memory_order_relaxed);
      if (!check(d, t->size())) {
        failed = true;
        ADD_FAILURE() << "thread " << id << " decision " << k << ": node " << d.node << " reason "
                      << to_string(d.reason) << " epoch " << d.epoch << " seed=" << kSeed;
      }
      std::uint64_t e = d.epoch, seen = final_epoch_seen.load();
      while (e > seen && !final_epoch_seen.compare_exchange_weak(seen, e)) {
      }
    }
  };

  auto updater = [&] {
    start_together();
    Xoshiro256 rng(kSeed);
    std::int64_t now = 0;
    std::uint64_t primary_lsn = 0x1000;
    int added = 0;
    for (int k = 0; k < kUpdates && !failed.load(std::memory_order_relaxed); ++k) {
      std::vector<int> reps = t->replicas();
      std::vector<int> candidates;
      for (int i : reps) {
        if (i != never_up) candidates.push_back(i);
      }
      int victim = candidates.empty() ? kNoNode : candidates[rng.below(static_cast<std::uint32_t>(candidates.size()))];
      now += 1000000;
      switch (rng.below(8)) {
        case 0:
        case 1:
          if (victim != kNoNode) t->set_up(t->name(victim), rng.below(2) == 0);
          break;
        case 2:
          if (victim != kNoNode) t->set_weight(t->name(victim), rng.below(10));
          break;
        case 3:
          if (victim != kNoNode && rng.below(4) == 0) {
            int old = t->primary();
            ever_primary[victim] = true;
            ever_replica[old] = true;
            t->promote(t->name(victim));
            t->set_up(t->name(old), true);  // "rewound" at once, for more churn
            tracker.reset();
            primary_lsn = 0x1000;
          }
          break;
        case 4:
          if (added < 40 && rng.below(2)) {
            ever_replica[t->size()] = true;  // the next slot
            t->add_replica(node("added" + std::to_string(added++), rng.below(2) ? "us" : "eu"));
          } else if (victim != kNoNode && reps.size() > 3) {
            t->remove_replica(t->name(victim));
          }
          break;
        default: {
          primary_lsn += rng.below(1u << 16);
          tracker.primary_sample(now, Lsn(primary_lsn));
          if (victim != kNoNode) {
            std::uint64_t behind = rng.below(1u << 17);
            Lsn replay(primary_lsn > behind ? primary_lsn - behind : 0);
            tracker.replica_sample(victim, now, replay, replay);
          }
          break;
        }
      }
    }
  };

  std::thread r1(reader, 1), r2(reader, 2), u(updater);
  r1.join();
  r2.join();
  u.join();
  ASSERT_FALSE(failed.load());
  EXPECT_LE(final_epoch_seen.load(), t->epoch());
  EXPECT_GT(t->epoch(), 1u) << "the run should have changed the primary at least once";
  std::uint64_t all = 0;
  for (int r = 0; r < 5; ++r) {
    RouterCounters c = routers[r]->counters();
    EXPECT_EQ(c.total, decisions[r].load());
    std::uint64_t by_node = 0;
    for (auto v : c.by_node) by_node += v;
    EXPECT_EQ(by_node, decisions_with_node[r].load());
    ASSERT_GT(c.by_node.size(), static_cast<std::size_t>(never_up));
    EXPECT_EQ(c.by_node[never_up], 0u);
    all += c.total;
    for (int i = 0; i < t->size(); ++i) EXPECT_EQ(t->outstanding(i), 0);
  }
  EXPECT_EQ(all, 2u * kReadsPerThread);
}
