// Router: what the routing tables (tests/testdata/routing/*.txt, run by test_routing_tables.cpp)
// do not express: loops over every up/down pattern, weighted smoothness, in-flight accounting,
// counters and bad input.
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

// ---------------------------------------------------------------- policies

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
}

TEST(Router, LeastOutstandingAvoidsBusyReplicas) {
  Cluster c(3);
  RouterConfig cfg = with_policy(Policy::LeastOutstanding);
  cfg.seed = 42;
  Router r(c.t, cfg);
  for (int k = 0; k < 3; ++k) r.begin(c.idx("r1"));
  for (int k = 0; k < 5; ++k) r.begin(c.idx("r3"));
  EXPECT_EQ(c.t->info(c.idx("r3")).outstanding, 5);
  for (int k = 0; k < 3; ++k) r.end(c.idx("r1"));
  for (int k = 0; k < 5; ++k) r.end(c.idx("r3"));
  EXPECT_EQ(c.t->outstanding(c.idx("r3")), 0);

  // Two replicas: the idle one always wins.
  Cluster two(2);
  Router r2(two.t, cfg);
  {
    Router::InFlight busy(r2, two.idx("r1"));
    EXPECT_EQ(two.t->outstanding(two.idx("r1")), 1);
    Router::InFlight moved(std::move(busy));
    EXPECT_EQ(two.t->outstanding(two.idx("r1")), 1);
  }
  EXPECT_EQ(two.t->outstanding(two.idx("r1")), 0);
  expect_invalid<InvalidArgument>([&] { r2.end(two.idx("r1")); }, "node");
  expect_invalid<InvalidArgument>([&] { r2.begin(-1); }, "node");
  expect_invalid<InvalidArgument>([&] { r2.begin(3); }, "node");
  expect_invalid<InvalidArgument>([&] { r2.end(kMaxNodes); }, "node");
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
