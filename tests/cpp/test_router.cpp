// Router: writes, each policy, each consistency level, the time-window rule, counters and bad
// input (issue 2).
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "replikit/errors.hpp"
#include "replikit/lag.hpp"
#include "replikit/router.hpp"

#include "testing.hpp"

using namespace replikit;
using replikit::testing::expect_invalid;
using replikit::testing::node;

namespace {

constexpr std::int64_t kMs = 1000000;
constexpr std::int64_t kNowMs = 1000;
constexpr std::int64_t kNow = kNowMs * kMs;

// The primary writes 1000 bytes per ms from LSN 1000 at t = 0.
Lsn lsn_at_ms(std::int64_t ms) { return Lsn(static_cast<std::uint64_t>(1000 + ms * 1000)); }

struct ReplicaDef {
  std::string name;
  std::string region = "";
  double weight = 1.0;
};

// A primary "p" sampled every ms for a second (now = 1000 ms) and replicas whose time lag is set
// exactly through the LagTracker (LAGGING above 100 ms, OK again below 50 ms).
struct Cluster {
  std::shared_ptr<Topology> t;
  std::unique_ptr<LagTracker> lag;

  explicit Cluster(const std::vector<ReplicaDef>& defs, std::string primary_region = "") {
    std::vector<NodeSpec> specs;
    for (const auto& d : defs) specs.push_back(node(d.name, d.region, d.weight));
    t = std::make_shared<Topology>(node("p", std::move(primary_region)), specs);
    LagConfig c;
    c.max_lag_ms = 100;
    c.recover_lag_ms = 50;
    lag = std::make_unique<LagTracker>(t, c);
    for (std::int64_t ms = 0; ms <= kNowMs; ++ms) lag->primary_sample(ms * kMs, lsn_at_ms(ms));
  }
  explicit Cluster(int replicas) : Cluster(names(replicas)) {}
  static std::vector<ReplicaDef> names(int n) {
    std::vector<ReplicaDef> out;
    for (int i = 1; i <= n; ++i) out.push_back({"r" + std::to_string(i)});
    return out;
  }
  // The replay LSN of a replica exactly `ms` behind now.
  static Lsn replay_behind(std::int64_t ms) { return ms == 0 ? lsn_at_ms(kNowMs) : Lsn(lsn_at_ms(kNowMs - ms).value - 1); }
  void set_lag(const std::string& name, std::int64_t ms) {
    Lsn r = replay_behind(ms);
    lag->replica_sample(name, kNow, r, r);
    EXPECT_EQ(lag->replica(t->index_of(name)).lag_ns, ms * kMs);
  }
  int idx(const std::string& name) const { return t->index_of(name); }
};

RouterConfig with_policy(Policy p, std::string region = "") {
  RouterConfig c;
  c.policy = p;
  c.region = std::move(region);
  return c;
}

std::map<int, int> tally(Router& r, int reads, Consistency c = Consistency::Eventual, const Session& s = {},
                         ReadOptions o = {}) {
  std::map<int, int> out;
  for (int k = 0; k < reads; ++k) ++out[r.route_read(s, c, kNow, o).node];
  return out;
}

}  // namespace

// ---------------------------------------------------------------- writes

TEST(Router, WritesGoToThePrimary) {
  Cluster c(2);
  Router r(c.t);
  Decision d = r.route_write();
  EXPECT_EQ(d.node, 0);
  EXPECT_EQ(d.reason, Reason::Write);
  EXPECT_EQ(d.epoch, 1u);
  EXPECT_TRUE(d.to_primary());

  c.t->set_up("p", false);
  d = r.route_write();
  EXPECT_EQ(d.node, kNoNode);
  EXPECT_EQ(d.reason, Reason::PrimaryDown);
  EXPECT_FALSE(d.to_primary());

  c.t->promote("r2");
  d = r.route_write();
  EXPECT_EQ(d.node, c.idx("r2"));
  EXPECT_EQ(d.reason, Reason::Write);
  EXPECT_EQ(d.epoch, 2u);
  // The old primary came back as a replica (down until rewound); then it serves reads.
  c.t->set_up("p", true);
  EXPECT_EQ(tally(r, 4), (std::map<int, int>{{0, 2}, {c.idx("r1"), 2}}));
}

// ---------------------------------------------------------------- policies

TEST(Router, RoundRobinCyclesThroughHealthyReplicas) {
  Cluster c(3);
  Router r(c.t, with_policy(Policy::RoundRobin));
  std::vector<int> seen;
  for (int k = 0; k < 30; ++k) {
    Decision d = r.route_read({}, Consistency::Eventual, kNow);
    EXPECT_EQ(d.reason, Reason::ReplicaAvailable);
    EXPECT_EQ(d.required_lsn, Lsn());
    seen.push_back(d.node);
  }
  for (int k = 3; k < 30; ++k) EXPECT_EQ(seen[k], seen[k - 3]) << "period 3 at " << k;
  std::set<int> first(seen.begin(), seen.begin() + 3);
  EXPECT_EQ(first, (std::set<int>{1, 2, 3}));

  // A replica down: its turn passes to the next one, and the others stay even.
  c.t->set_up("r2", false);
  auto counts = tally(r, 300);
  EXPECT_EQ(counts.count(c.idx("r2")), 0u);
  EXPECT_EQ(counts[1] + counts[3], 300);
  EXPECT_NEAR(counts[1], 150, 1);
  EXPECT_NEAR(counts[3], 150, 1);
}

TEST(Router, RoundRobinStaysEvenWhateverIsDown) {
  // Every up/down pattern of five replicas: each healthy replica gets its share (+-1).
  for (unsigned pattern = 1; pattern < 32; ++pattern) {
    Cluster c(5);
    Router r(c.t, with_policy(Policy::RoundRobin));
    int healthy = 0;
    for (int i = 0; i < 5; ++i) {
      bool up = (pattern >> i) & 1u;
      c.t->set_up("r" + std::to_string(i + 1), up);
      healthy += up;
    }
    SCOPED_TRACE("pattern=" + std::to_string(pattern));
    const int reads = 60 * healthy;
    auto counts = tally(r, reads);
    for (int i = 0; i < 5; ++i) {
      if ((pattern >> i) & 1u) {
        EXPECT_NEAR(counts[i + 1], 60, 1) << "r" << i + 1;
      } else {
        EXPECT_EQ(counts.count(i + 1), 0u) << "r" << i + 1;
      }
    }
  }
}

TEST(Router, StickyReadsStayWhileTheReplicaQualifies) {
  Cluster c(3);
  RouterConfig cfg = with_policy(Policy::RoundRobin);
  cfg.sticky_reads = 3;
  Router r(c.t, cfg);
  std::vector<int> seen;
  for (int k = 0; k < 9; ++k) seen.push_back(r.route_read({}, Consistency::Eventual, kNow).node);
  for (int k = 0; k < 9; ++k) EXPECT_EQ(seen[k], seen[k / 3 * 3]) << k;
  EXPECT_EQ(std::set<int>(seen.begin(), seen.end()).size(), 3u);
  // The replica stuck to goes down: the very next read moves.
  int stuck = r.route_read({}, Consistency::Eventual, kNow).node;
  c.t->set_up(c.t->name(stuck), false);
  EXPECT_NE(r.route_read({}, Consistency::Eventual, kNow).node, stuck);
  c.t->set_up(c.t->name(stuck), true);
  // ... or stops covering what the session needs.
  c.set_lag("r1", 40);
  c.set_lag("r2", 5);
  c.set_lag("r3", 40);
  Session s;
  s.record_write(Cluster::replay_behind(10), kNow);
  for (int k = 0; k < 6; ++k) {
    Decision d = r.route_read(s, Consistency::ReadYourWrites, kNow);
    EXPECT_EQ(d.node, c.idx("r2"));
    EXPECT_EQ(d.reason, Reason::ReplicaCaughtUp);
  }
  RouterConfig bad = cfg;
  for (std::uint32_t v : {0u, 1000001u}) {
    bad.sticky_reads = v;
    expect_invalid<InvalidArgument>([&] { Router x(c.t, bad); }, "sticky_reads");
  }
}

TEST(Router, WeightedFollowsIntegerWeightsExactlyOverEachPeriod) {
  Cluster c({{"a", "", 5}, {"b", "", 1}, {"c", "", 1}});
  Router r(c.t, with_policy(Policy::Weighted));
  const int a = c.idx("a"), b = c.idx("b"), cc = c.idx("c");
  std::vector<int> seen;
  for (int k = 0; k < 700; ++k) seen.push_back(r.route_read({}, Consistency::Eventual, kNow).node);
  for (int period = 0; period < 100; ++period) {
    std::map<int, int> n;
    for (int k = 0; k < 7; ++k) ++n[seen[period * 7 + k]];
    EXPECT_EQ(n, (std::map<int, int>{{a, 5}, {b, 1}, {cc, 1}})) << "period " << period;
  }
  // Smooth: the two light replicas are never served back to back.
  for (int k = 1; k < 700; ++k) EXPECT_FALSE(seen[k] != a && seen[k - 1] != a) << k;

  // New weights take effect at once, with the new period.
  c.t->set_weight("a", 1);
  c.t->set_weight("c", 2);
  EXPECT_EQ(tally(r, 400), (std::map<int, int>{{a, 100}, {b, 100}, {cc, 200}}));
  // Weight 0: never served while others qualify.
  c.t->set_weight("b", 0);
  EXPECT_EQ(tally(r, 300), (std::map<int, int>{{a, 100}, {cc, 200}}));
}

TEST(Router, WeightedSkipsUnhealthyReplicasAndKeepsProportions) {
  Cluster c({{"a", "", 5}, {"b", "", 1}, {"c", "", 3}});
  Router r(c.t, with_policy(Policy::Weighted));
  c.t->set_up("a", false);
  auto counts = tally(r, 4000);
  EXPECT_EQ(counts.count(c.idx("a")), 0u);
  // b : c = 1 : 3 over the eligible replicas (a seeded draw; generous bounds).
  EXPECT_NEAR(counts[c.idx("c")] / 4000.0, 0.75, 0.05);
  c.t->set_up("a", true);
  c.set_lag("a", 150);  // LAGGING
  counts = tally(r, 4000);
  EXPECT_EQ(counts.count(c.idx("a")), 0u);
  EXPECT_NEAR(counts[c.idx("c")] / 4000.0, 0.75, 0.05);
}

TEST(Router, WeightedWithFractionalWeights) {
  Cluster c({{"a", "", 1.5}, {"b", "", 0.5}});
  Router r(c.t, with_policy(Policy::Weighted));
  auto counts = tally(r, 1280);
  EXPECT_NEAR(counts[c.idx("a")] / 1280.0, 0.75, 0.02);
}

TEST(Router, LeastLagPicksTheFreshestReplica) {
  Cluster c(3);
  c.set_lag("r1", 30);
  c.set_lag("r2", 10);
  c.set_lag("r3", 20);
  Router r(c.t, with_policy(Policy::LeastLag));
  EXPECT_EQ(tally(r, 50), (std::map<int, int>{{c.idx("r2"), 50}}));
  c.t->set_up("r2", false);
  EXPECT_EQ(tally(r, 50), (std::map<int, int>{{c.idx("r3"), 50}}));
  c.set_lag("r1", 20);  // a tie: both share the load
  auto counts = tally(r, 100);
  EXPECT_EQ(counts[c.idx("r1")] + counts[c.idx("r3")], 100);
  EXPECT_GE(counts[c.idx("r1")], 40);
  EXPECT_GE(counts[c.idx("r3")], 40);
}

TEST(Router, LeastLagRanksUnknownLagLast) {
  // A replica that has never reported has no known lag; it must not look like the freshest.
  Cluster c(3);
  c.set_lag("r1", 40);
  c.set_lag("r3", 30);
  Router r(c.t, with_policy(Policy::LeastLag));
  EXPECT_EQ(tally(r, 20), (std::map<int, int>{{c.idx("r3"), 20}}));
  c.t->set_up("r1", false);
  c.t->set_up("r3", false);
  EXPECT_EQ(tally(r, 5), (std::map<int, int>{{c.idx("r2"), 5}})) << "unknown lag still serves when alone";
}

TEST(Router, LeastOutstandingAvoidsBusyReplicas) {
  Cluster c(3);
  RouterConfig cfg = with_policy(Policy::LeastOutstanding);
  cfg.seed = 42;
  Router r(c.t, cfg);
  for (int k = 0; k < 3; ++k) r.begin(c.idx("r1"));
  for (int k = 0; k < 5; ++k) r.begin(c.idx("r3"));
  EXPECT_EQ(c.t->info(c.idx("r3")).outstanding, 5);
  auto counts = tally(r, 300);
  EXPECT_EQ(counts.count(c.idx("r3")), 0u) << "the busiest of three is never the lesser of two";
  EXPECT_GT(counts[c.idx("r2")], counts[c.idx("r1")]);
  for (int k = 0; k < 3; ++k) r.end(c.idx("r1"));
  for (int k = 0; k < 5; ++k) r.end(c.idx("r3"));
  EXPECT_EQ(c.t->outstanding(c.idx("r3")), 0);

  // Two replicas: the idle one always wins.
  Cluster two(2);
  Router r2(two.t, cfg);
  {
    Router::InFlight busy(r2, two.idx("r1"));
    EXPECT_EQ(two.t->outstanding(two.idx("r1")), 1);
    EXPECT_EQ(tally(r2, 50), (std::map<int, int>{{two.idx("r2"), 50}}));
    Router::InFlight moved(std::move(busy));
    EXPECT_EQ(two.t->outstanding(two.idx("r1")), 1);
  }
  EXPECT_EQ(two.t->outstanding(two.idx("r1")), 0);
  expect_invalid<InvalidArgument>([&] { r2.end(two.idx("r1")); }, "node");
  expect_invalid<InvalidArgument>([&] { r2.begin(-1); }, "node");
  expect_invalid<InvalidArgument>([&] { r2.begin(3); }, "node");
  expect_invalid<InvalidArgument>([&] { r2.end(kMaxNodes); }, "node");
}

TEST(Router, NearestRegionPrefersTheClientsRegion) {
  Cluster c({{"us1", "us"}, {"eu1", "eu"}, {"eu2", "eu"}}, "us");
  Router r(c.t, with_policy(Policy::NearestRegion, "eu"));
  auto counts = tally(r, 100);
  EXPECT_EQ(counts, (std::map<int, int>{{c.idx("eu1"), 50}, {c.idx("eu2"), 50}}));
  ReadOptions us;
  us.region = c.t->region_id("us");
  EXPECT_EQ(tally(r, 10, Consistency::Eventual, {}, us), (std::map<int, int>{{c.idx("us1"), 10}}));
  // No healthy replica in the region: fall back to anywhere.
  c.t->set_up("eu1", false);
  c.set_lag("eu2", 200);
  Decision d = r.route_read({}, Consistency::Eventual, kNow);
  EXPECT_EQ(d.node, c.idx("us1"));
  EXPECT_EQ(d.reason, Reason::ReplicaAvailable);
  // A region where only the primary lives: anywhere.
  Cluster c2({{"a", "eu"}, {"b", "eu"}}, "us");
  Router r2(c2.t, with_policy(Policy::NearestRegion, "us"));
  auto counts2 = tally(r2, 10);
  EXPECT_EQ(counts2[c2.idx("a")] + counts2[c2.idx("b")], 10);
  // No default region: round-robin over all.
  Router r3(c.t, with_policy(Policy::NearestRegion));
  c.t->set_up("eu1", true);
  EXPECT_EQ(tally(r3, 20), (std::map<int, int>{{c.idx("us1"), 10}, {c.idx("eu1"), 10}}));
}

// ---------------------------------------------------------------- consistency levels

TEST(Router, EventualReasons) {
  Cluster c(2);
  Router r(c.t);
  Decision d = r.route_read({}, Consistency::Eventual, kNow);
  EXPECT_NE(d.node, 0);
  EXPECT_EQ(d.reason, Reason::ReplicaAvailable);
  EXPECT_FALSE(d.to_primary());

  c.set_lag("r1", 150);
  c.set_lag("r2", 101);
  d = r.route_read({}, Consistency::Eventual, kNow);
  EXPECT_EQ(d.node, 0);
  EXPECT_EQ(d.reason, Reason::AllReplicasLagging);
  EXPECT_TRUE(d.to_primary());

  c.t->set_up("r1", false);  // one down, the other lagging: still "all lagging"
  EXPECT_EQ(r.route_read({}, Consistency::Eventual, kNow).reason, Reason::AllReplicasLagging);
  c.t->set_up("r2", false);
  d = r.route_read({}, Consistency::Eventual, kNow);
  EXPECT_EQ(d.node, 0);
  EXPECT_EQ(d.reason, Reason::NoReplicaUp);

  c.t->set_up("p", false);  // nothing can serve: no node, and the reason still says why
  d = r.route_read({}, Consistency::Eventual, kNow);
  EXPECT_EQ(d.node, kNoNode);
  EXPECT_EQ(d.reason, Reason::NoReplicaUp);

  Cluster alone(0);
  Router ra(alone.t);
  d = ra.route_read({}, Consistency::Eventual, kNow);
  EXPECT_EQ(d.node, 0);
  EXPECT_EQ(d.reason, Reason::NoReplicaUp);
}

TEST(Router, ReadYourWrites) {
  Cluster c(3);
  c.set_lag("r1", 30);
  c.set_lag("r2", 5);
  c.set_lag("r3", 20);
  Router r(c.t);
  Session s;
  s.record_write(lsn_at_ms(kNowMs - 10), kNow);  // committed 10 ms ago
  for (int k = 0; k < 20; ++k) {
    Decision d = r.route_read(s, Consistency::ReadYourWrites, kNow);
    EXPECT_EQ(d.node, c.idx("r2"));
    EXPECT_EQ(d.reason, Reason::ReplicaCaughtUp);
    EXPECT_EQ(d.required_lsn, s.write_lsn);
  }
  // Exactly at the commit LSN is enough.
  Session exact;
  exact.record_write(Cluster::replay_behind(20), kNow);
  auto counts = tally(r, 20, Consistency::ReadYourWrites, exact);
  EXPECT_EQ(counts[c.idx("r2")] + counts[c.idx("r3")], 20);
  EXPECT_GT(counts[c.idx("r3")], 0);
  // One byte short is not enough.
  Session one_more;
  one_more.record_write(Lsn(Cluster::replay_behind(20).value + 1), kNow);
  EXPECT_EQ(tally(r, 20, Consistency::ReadYourWrites, one_more), (std::map<int, int>{{c.idx("r2"), 20}}));
  Session read_one_more;
  read_one_more.observe(Lsn(Cluster::replay_behind(5).value + 1));
  Decision mono = r.route_read(read_one_more, Consistency::Monotonic, kNow);
  EXPECT_EQ(mono.node, 0);
  EXPECT_EQ(mono.reason, Reason::NoReplicaCaughtUp);

  c.t->set_up("r2", false);
  Decision d = r.route_read(s, Consistency::ReadYourWrites, kNow);
  EXPECT_EQ(d.node, 0);
  EXPECT_EQ(d.reason, Reason::NoReplicaCaughtUp);
  EXPECT_EQ(d.required_lsn, s.write_lsn);

  // A LAGGING replica is skipped even when it covers the write.
  c.t->set_up("r2", true);
  Session old;
  old.record_write(lsn_at_ms(100), kNow);
  c.set_lag("r1", 200);
  c.set_lag("r2", 200);
  c.set_lag("r3", 200);
  d = r.route_read(old, Consistency::ReadYourWrites, kNow);
  EXPECT_EQ(d.node, 0);
  EXPECT_EQ(d.reason, Reason::AllReplicasLagging);

  // No write yet: any healthy replica.
  c.set_lag("r1", 0);
  d = r.route_read({}, Consistency::ReadYourWrites, kNow);
  EXPECT_EQ(d.node, c.idx("r1"));
  EXPECT_EQ(d.reason, Reason::ReplicaAvailable);
}

TEST(Router, MonotonicSurvivesLosingTheReplicaItReadFrom) {
  Cluster c(3);
  c.set_lag("r1", 2);
  c.set_lag("r2", 40);
  c.set_lag("r3", 40);
  Router r(c.t, with_policy(Policy::LeastLag));
  Session s;
  Decision d = r.route_read(s, Consistency::Monotonic, kNow);
  ASSERT_EQ(d.node, c.idx("r1"));
  EXPECT_EQ(d.reason, Reason::ReplicaAvailable);
  s.observe(Lsn(c.t->replay_lsn(d.node)));

  // r1 goes down: the others have not replayed what the session saw.
  c.t->set_up("r1", false);
  d = r.route_read(s, Consistency::Monotonic, kNow);
  EXPECT_EQ(d.node, 0);
  EXPECT_EQ(d.reason, Reason::NoReplicaCaughtUp);
  EXPECT_EQ(d.required_lsn, s.read_lsn);
  // ... and the same once it is removed for good.
  c.t->remove_replica("r1");
  EXPECT_EQ(r.route_read(s, Consistency::Monotonic, kNow).reason, Reason::NoReplicaCaughtUp);
  // r3 catches up past what was read: served there.
  c.lag->replica_sample("r3", kNow + 1, Cluster::replay_behind(1), Cluster::replay_behind(1));
  d = r.route_read(s, Consistency::Monotonic, kNow);
  EXPECT_EQ(d.node, c.idx("r3"));
  EXPECT_EQ(d.reason, Reason::ReplicaCaughtUp);
  // Monotonic ignores the session's writes, and the time window.
  Session w = s;
  w.record_write(lsn_at_ms(kNowMs), kNow);
  w.record_write(Lsn(), kNow);
  EXPECT_EQ(r.route_read(w, Consistency::Monotonic, kNow).node, c.idx("r3"));
}

TEST(Router, CausalNeedsBothIncludingMergedTokens) {
  Cluster c(3);
  c.set_lag("r1", 30);
  c.set_lag("r2", 10);
  c.set_lag("r3", 20);
  Router r(c.t);
  Session mine;
  mine.record_write(Cluster::replay_behind(30), kNow);  // all three cover my write
  auto counts = tally(r, 30, Consistency::Causal, mine);
  EXPECT_EQ(counts.size(), 3u);

  // I read another user's comment, which was written at what r2 (10 ms behind) has.
  Session theirs;
  theirs.record_write(Cluster::replay_behind(10), kNow);
  Session merged = mine;
  merged.merge(decode_token(encode_token(theirs)));
  EXPECT_EQ(merged.causal_lsn(), Cluster::replay_behind(10));
  counts = tally(r, 30, Consistency::Causal, merged);
  EXPECT_EQ(counts, (std::map<int, int>{{c.idx("r2"), 30}}));
  // Read LSN counts too.
  Session reader;
  reader.observe(Cluster::replay_behind(20));
  counts = tally(r, 30, Consistency::Causal, reader);
  EXPECT_EQ(counts[c.idx("r2")] + counts[c.idx("r3")], 30);
  EXPECT_EQ(counts.count(c.idx("r1")), 0u);
  // RYW alone would not have needed the read LSN.
  EXPECT_EQ(tally(r, 30, Consistency::ReadYourWrites, reader).size(), 3u);
  Decision d = r.route_read(merged, Consistency::Causal, kNow);
  EXPECT_EQ(d.required_lsn, merged.causal_lsn());
  c.t->set_up("r2", false);
  d = r.route_read(merged, Consistency::Causal, kNow);
  EXPECT_EQ(d.node, 0);
  EXPECT_EQ(d.reason, Reason::NoReplicaCaughtUp);
}

TEST(Router, BoundedStaleness) {
  Cluster c(3);
  c.set_lag("r1", 30);
  c.set_lag("r2", 10);
  Router r(c.t);  // r3 never reported: its staleness is unknown
  ReadOptions o;
  o.max_staleness_ms = 15;
  for (int k = 0; k < 20; ++k) {
    Decision d = r.route_read({}, Consistency::BoundedStaleness, kNow, o);
    EXPECT_EQ(d.node, c.idx("r2"));
    EXPECT_EQ(d.reason, Reason::ReplicaFresh);
  }
  o.max_staleness_ms = 10;  // the bound is inclusive
  EXPECT_EQ(r.route_read({}, Consistency::BoundedStaleness, kNow, o).node, c.idx("r2"));
  o.max_staleness_ms = 9.999999;
  Decision d = r.route_read({}, Consistency::BoundedStaleness, kNow, o);
  EXPECT_EQ(d.node, 0);
  EXPECT_EQ(d.reason, Reason::NoReplicaFresh);
  o.max_staleness_ms = 0;
  c.set_lag("r1", 0);
  EXPECT_EQ(r.route_read({}, Consistency::BoundedStaleness, kNow, o).node, c.idx("r1"));
  o.max_staleness_ms = 1e10;
  auto counts = tally(r, 30, Consistency::BoundedStaleness, {}, o);
  EXPECT_EQ(counts.count(c.idx("r3")), 0u) << "unknown staleness never satisfies a bound";
  // Lagging beats stale in the reason when nothing healthy is left.
  c.set_lag("r1", 500);
  c.set_lag("r2", 500);
  c.set_lag("r3", 500);
  EXPECT_EQ(r.route_read({}, Consistency::BoundedStaleness, kNow, o).reason, Reason::AllReplicasLagging);
}

TEST(Router, StrongReadsGoToThePrimary) {
  Cluster c(2);
  Router r(c.t);
  Decision d = r.route_read({}, Consistency::Strong, kNow);
  EXPECT_EQ(d.node, 0);
  EXPECT_EQ(d.reason, Reason::StrongRead);
  EXPECT_TRUE(d.to_primary());
  c.t->set_up("p", false);
  d = r.route_read({}, Consistency::Strong, kNow);
  EXPECT_EQ(d.node, kNoNode);
  EXPECT_EQ(d.reason, Reason::StrongRead);
}

TEST(Router, TimeWindowAfterAWriteWithUnknownLsn) {
  Cluster c(2);
  RouterConfig cfg;
  cfg.time_window_ms = 2000;
  Router r(c.t, cfg);
  Session s;
  const std::int64_t written = kNow;
  s.record_write(Lsn(), written);
  for (Consistency level : {Consistency::ReadYourWrites, Consistency::Causal}) {
    SCOPED_TRACE(to_string(level));
    for (std::int64_t dt : {std::int64_t{0}, std::int64_t{1}, 1999 * kMs, 2000 * kMs - 1}) {
      Decision d = r.route_read(s, level, written + dt);
      EXPECT_EQ(d.node, 0);
      EXPECT_EQ(d.reason, Reason::RecentWrite);
      EXPECT_TRUE(d.to_primary());
    }
    Decision d = r.route_read(s, level, written + 2000 * kMs);
    EXPECT_NE(d.node, 0);
    EXPECT_EQ(d.reason, Reason::ReplicaAvailable);
    // A clock that reads earlier than the write (another machine's token) is still "recent",
    // up to one window ahead; a write time further in the future is not trusted.
    EXPECT_EQ(r.route_read(s, level, written - 5 * kMs).reason, Reason::RecentWrite);
    Session ahead;
    ahead.record_write(Lsn(), written + 5000 * kMs);
    EXPECT_EQ(r.route_read(ahead, level, written + 3000 * kMs).reason, Reason::RecentWrite);
    EXPECT_EQ(r.route_read(ahead, level, written + 3000 * kMs - 1).reason, Reason::ReplicaAvailable);
  }
  // Other levels ignore the window.
  EXPECT_EQ(r.route_read(s, Consistency::Eventual, written).reason, Reason::ReplicaAvailable);
  EXPECT_EQ(r.route_read(s, Consistency::Monotonic, written).reason, Reason::ReplicaAvailable);
  // The window travels in the token.
  Session carried;
  carried.merge(decode_token(encode_token(s)));
  EXPECT_EQ(r.route_read(carried, Consistency::Causal, written + 1999 * kMs).reason, Reason::RecentWrite);
  // time_window_ms = 0 turns the rule off.
  RouterConfig off;
  off.time_window_ms = 0;
  Router r0(c.t, off);
  EXPECT_EQ(r0.route_read(s, Consistency::ReadYourWrites, written).reason, Reason::ReplicaAvailable);
  // The window applies even when the primary is down (nothing serves, the reason says why).
  c.t->set_up("p", false);
  Decision d = r.route_read(s, Consistency::ReadYourWrites, written);
  EXPECT_EQ(d.node, kNoNode);
  EXPECT_EQ(d.reason, Reason::RecentWrite);
}

TEST(Router, ReasonPrecedence) {
  // NoReplicaUp > AllReplicasLagging > NoReplicaCaughtUp > NoReplicaFresh, by what is left.
  Cluster c(3);
  c.set_lag("r1", 500);  // LAGGING (and far behind)
  c.set_lag("r2", 40);
  c.set_lag("r3", 60);
  Router r(c.t);
  Session s;
  s.record_write(Cluster::replay_behind(20), kNow);
  EXPECT_EQ(r.route_read(s, Consistency::ReadYourWrites, kNow).reason, Reason::NoReplicaCaughtUp);
  ReadOptions o;
  o.max_staleness_ms = 30;
  EXPECT_EQ(r.route_read({}, Consistency::BoundedStaleness, kNow, o).reason, Reason::NoReplicaFresh);
  c.t->set_up("r2", false);
  c.t->set_up("r3", false);
  EXPECT_EQ(r.route_read(s, Consistency::ReadYourWrites, kNow).reason, Reason::AllReplicasLagging);
  c.t->set_up("r1", false);
  EXPECT_EQ(r.route_read(s, Consistency::ReadYourWrites, kNow).reason, Reason::NoReplicaUp);
  c.t->remove_replica("r1");
  c.t->remove_replica("r2");
  c.t->remove_replica("r3");
  EXPECT_EQ(r.route_read(s, Consistency::ReadYourWrites, kNow).reason, Reason::NoReplicaUp);
}

// ---------------------------------------------------------------- counters

TEST(Router, CountersAddUpToTheDecisions) {
  Cluster c(3);
  c.set_lag("r3", 500);
  Router r(c.t);
  std::vector<std::uint64_t> by_node(static_cast<std::size_t>(c.t->size()), 0);
  std::array<std::uint64_t, kReasonCount> by_reason{};
  Session s;
  s.record_write(Cluster::replay_behind(0), kNow);
  auto note = [&](const Decision& d) {
    if (d.node != kNoNode) ++by_node[d.node];
    ++by_reason[static_cast<int>(d.reason)];
  };
  for (int k = 0; k < 50; ++k) {
    note(r.route_write());
    note(r.route_read({}, Consistency::Eventual, kNow));
    note(r.route_read(s, Consistency::ReadYourWrites, kNow));
    note(r.route_read({}, Consistency::Strong, kNow));
  }
  c.t->set_up("p", false);
  note(r.route_write());
  note(r.route_read({}, Consistency::Strong, kNow));
  RouterCounters got = r.counters();
  EXPECT_EQ(got.total, 202u);
  EXPECT_EQ(got.by_node, by_node);
  for (int k = 0; k < kReasonCount; ++k) EXPECT_EQ(got.by_reason[k], by_reason[k]) << to_string(static_cast<Reason>(k));
  EXPECT_EQ(got.by_reason[static_cast<int>(Reason::PrimaryDown)], 1u);
  EXPECT_EQ(got.by_node[3], 0u);  // LAGGING replica
  std::uint64_t with_node = 0;
  for (auto v : got.by_node) with_node += v;
  EXPECT_EQ(with_node, 200u);  // the two decisions with no node are counted by reason only
  r.reset_counters();
  got = r.counters();
  EXPECT_EQ(got.total, 0u);
  for (auto v : got.by_node) EXPECT_EQ(v, 0u);
}

TEST(Router, EnumNames) {
  EXPECT_STREQ(to_string(Policy::LeastOutstanding), "least_outstanding");
  EXPECT_STREQ(to_string(Consistency::BoundedStaleness), "bounded_staleness");
  EXPECT_STREQ(to_string(Reason::NoReplicaCaughtUp), "no_replica_caught_up");
  for (int k = 0; k < kReasonCount; ++k) EXPECT_STRNE(to_string(static_cast<Reason>(k)), "?");
  EXPECT_STREQ(to_string(static_cast<Reason>(kReasonCount)), "?");
}

// ---------------------------------------------------------------- bad input

TEST(Router, BadInputNamesTheArgument) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  Cluster c(2);
  expect_invalid<InvalidArgument>([] { Router r(nullptr); }, "topology");
  auto with = [&](auto edit) {
    RouterConfig cfg;
    edit(cfg);
    return [t = c.t, cfg] { Router r(t, cfg); };
  };
  expect_invalid<InvalidArgument>(with([&](RouterConfig& g) { g.time_window_ms = nan; }), "time_window_ms");
  expect_invalid<InvalidArgument>(with([](RouterConfig& g) { g.time_window_ms = -1; }), "time_window_ms");
  expect_invalid<InvalidArgument>(with([&](RouterConfig& g) { g.time_window_ms = inf; }), "time_window_ms");
  expect_invalid<InvalidArgument>(with([](RouterConfig& g) { g.time_window_ms = 1e11; }), "time_window_ms");
  expect_invalid<InvalidArgument>(with([](RouterConfig& g) { g.policy = static_cast<Policy>(5); }), "policy");
  expect_invalid<InvalidArgument>(with([](RouterConfig& g) { g.region = "mars"; }), "region");

  Router r(c.t);
  Session s;
  expect_invalid<InvalidArgument>([&] { r.route_read(s, Consistency::Eventual, -1); }, "now_ns");
  expect_invalid<InvalidArgument>([&] { r.route_read(s, static_cast<Consistency>(6), kNow); }, "consistency");
  expect_invalid<InvalidArgument>([&] { r.route_read(s, Consistency::BoundedStaleness, kNow); }, "max_staleness_ms");
  for (double bad : {nan, -1.0, -1e-9, inf, -inf, 1e10 + 1}) {
    ReadOptions o;
    o.max_staleness_ms = bad;
    expect_invalid<InvalidArgument>([&] { r.route_read(s, Consistency::BoundedStaleness, kNow, o); },
                                    "max_staleness_ms");
  }
  for (int bad : {-2, kMaxRegions, 1000}) {
    ReadOptions o;
    o.region = bad;
    expect_invalid<InvalidArgument>([&] { r.route_read(s, Consistency::Eventual, kNow, o); }, "region");
  }
  EXPECT_EQ(r.counters().total, 0u) << "rejected requests are not counted";
}

TEST(Router, EndNeverDrivesTheInFlightCountNegative) {
  Cluster c(2);
  Router r(c.t);
  const int r1 = c.t->index_of("r1");
  EXPECT_FALSE(r.end_noexcept(r1));
  EXPECT_FALSE(r.end_noexcept(kNoNode));
  EXPECT_FALSE(r.end_noexcept(1000));
  EXPECT_EQ(c.t->outstanding(r1), 0);
  {
    Router::InFlight guard(r, r1);
    EXPECT_EQ(c.t->outstanding(r1), 1);
    EXPECT_TRUE(r.end_noexcept(r1));  // a stray end() inside the guard ...
  }                                   // ... and the guard's own end() does not throw
  EXPECT_EQ(c.t->outstanding(r1), 0);
  expect_invalid("node", [&] { r.end(r1); });
  EXPECT_EQ(c.t->outstanding(r1), 0);
}
