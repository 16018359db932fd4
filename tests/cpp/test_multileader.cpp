// Multi-leader replication: conflict detection per leader pair and the resolution strategies.
#include <gtest/gtest.h>

#include <cstdio>
#include <limits>
#include <map>
#include <set>

#include "replikit/errors.hpp"
#include "replikit/multileader.hpp"
#include "replikit/random.hpp"

#include "testing.hpp"

namespace {

using namespace replikit;
using replikit::testing::expect_invalid;

MultiLeaderOptions opts(int leaders, ConflictResolution res, double delay_ms = 50) {
  MultiLeaderOptions o;
  o.leaders = leaders;
  o.resolution = res;
  o.default_delay_ms = delay_ms;
  return o;
}

TEST(MultiLeader, ConcurrentWritesAreConflictsSequentialOnesAreNot) {
  MultiLeaderCluster c(opts(2, ConflictResolution::LastWriterWins));
  c.write(0, "k", "a", 0);
  c.write(1, "k", "b", 10);   // leader 1 has not seen "a" (arrives at 50): conflict
  c.write(1, "k", "c", 100);  // after both replicated: no conflict
  c.settle();
  EXPECT_EQ(c.conflicts()[0][1], 1u);
  EXPECT_EQ(c.conflicts()[1][0], 1u);
  EXPECT_EQ(c.total_conflicts(), 1u);
  EXPECT_TRUE(c.converged());
  EXPECT_EQ(c.read(0, "k").values, std::vector<std::string>{"c"});
}

TEST(MultiLeader, LastWriterWinsLosesACausallyLaterWriteUnderClockSkew) {
  MultiLeaderOptions o = opts(2, ConflictResolution::LastWriterWins);
  o.clock_skew_ms = {100, 0};  // leader 0's clock runs 100 ms ahead
  MultiLeaderCluster c(o);
  c.write(0, "k", "old", 0);
  c.run_until(60);             // leader 1 has seen "old"
  c.write(1, "k", "new", 60);  // stamped 60 < 100: loses although it came later
  c.settle();
  EXPECT_TRUE(c.converged());
  EXPECT_EQ(c.read(1, "k").values, std::vector<std::string>{"old"});
  EXPECT_EQ(c.total_conflicts(), 0u);
}

TEST(MultiLeader, SiblingsKeepEveryConcurrentValue) {
  MultiLeaderCluster c(opts(3, ConflictResolution::Siblings));
  c.write(0, "k", "a", 0);
  c.write(1, "k", "b", 1);
  c.write(2, "k", "c", 2);
  c.settle();
  EXPECT_TRUE(c.converged());
  EXPECT_EQ(c.read(2, "k").values, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(c.total_conflicts(), 3u);  // every pair
  EXPECT_EQ(c.keys_with_siblings(), 1u);
  c.write(0, "k", "merged", c.now_ms());  // a local write supersedes the siblings it has seen
  c.settle();
  EXPECT_EQ(c.read(1, "k").values, std::vector<std::string>{"merged"});
}

TEST(MultiLeader, MergeFunctionsLoseNothing) {
  MultiLeaderCluster counter(opts(3, ConflictResolution::CounterMerge));
  MultiLeaderCluster set(opts(3, ConflictResolution::SetMerge));
  Xoshiro256 rng(99);
  std::int64_t expected = 0;
  std::set<std::string> elements;
  double t = 0;
  for (int i = 0; i < 500; ++i) {
    t += static_cast<double>(rng.below(20));
    const int leader = static_cast<int>(rng.below(3));
    const std::int64_t delta = static_cast<std::int64_t>(rng.below(7)) - 3;
    counter.write(leader, "c", "", t, delta);
    expected += delta;
    const std::string e = "e" + std::to_string(rng.below(50));
    set.write(leader, "s", e, t);
    elements.insert(e);
  }
  counter.settle();
  set.settle();
  EXPECT_TRUE(counter.converged());
  EXPECT_TRUE(set.converged());
  EXPECT_EQ(counter.read(1, "c").counter, expected);
  EXPECT_EQ(set.read(2, "s").values, std::vector<std::string>(elements.begin(), elements.end()));
  EXPECT_GT(counter.total_conflicts(), 0u);
}

// Slow reference for the conflict count: two writes by different leaders are concurrent
// when neither leader had received the other's write when it wrote. With a fixed delay d
// between every pair, leader j has received a write from time t_i iff t_i + d <= t_j.
TEST(MultiLeader, ConflictCountMatchesPairwiseReference) {
  const std::uint64_t seed = 31337;
  std::printf("[multileader] seed %llu\n", static_cast<unsigned long long>(seed));
  Xoshiro256 rng(seed);
  for (int round = 0; round < 20; ++round) {
    const int leaders = 2 + static_cast<int>(rng.below(2));
    const double d = 5 + static_cast<double>(rng.below(30));
    MultiLeaderCluster c(opts(leaders, ConflictResolution::LastWriterWins, d));
    struct W { int leader; double t; };
    std::vector<W> writes;
    double t = 0;
    for (int i = 0; i < 60; ++i) {
      t += static_cast<double>(rng.below(15));
      const int leader = static_cast<int>(rng.below(static_cast<std::uint32_t>(leaders)));
      c.write(leader, "k", "v", t);
      writes.push_back({leader, t});
    }
    std::vector<std::vector<std::uint64_t>> ref(leaders, std::vector<std::uint64_t>(leaders, 0));
    for (std::size_t i = 0; i < writes.size(); ++i) {
      for (std::size_t j = i + 1; j < writes.size(); ++j) {
        const auto& a = writes[i];
        const auto& b = writes[j];
        if (a.leader == b.leader) continue;
        const bool b_saw_a = a.t + d <= b.t;  // deliveries at time t precede writes at t
        if (!b_saw_a) {
          ++ref[a.leader][b.leader];
          ++ref[b.leader][a.leader];
        }
      }
    }
    c.settle();
    EXPECT_EQ(c.conflicts(), ref) << "round " << round;
    EXPECT_TRUE(c.converged());
  }
}

TEST(MultiLeader, WorkloadReportsConflictsPerPair) {
  MultiLeaderOptions o = opts(3, ConflictResolution::Siblings);
  o.replication_delay_ms = {{0, 20, 150}, {20, 0, 150}, {150, 150, 0}};
  MultiLeaderWorkload w;
  w.writes_per_s = {200, 200, 200};
  w.keys = 50;
  w.duration_ms = 5000;
  w.seed = 7;
  const MultiLeaderReport a = run_multileader_workload(o, w);
  const MultiLeaderReport b = run_multileader_workload(o, w);
  EXPECT_EQ(a.conflicts, b.conflicts);  // seeded
  EXPECT_TRUE(a.converged);
  EXPECT_GT(a.writes, 2500u);
  // The distant leader 2 conflicts more with each of the others than 0 and 1 with each other.
  EXPECT_GT(a.conflicts[0][2], a.conflicts[0][1]);
  EXPECT_GT(a.conflicts[1][2], a.conflicts[0][1]);
}

TEST(MultiLeader, BadInputNamesTheArgument) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  expect_invalid("leaders", [] { MultiLeaderCluster(opts(1, ConflictResolution::Siblings)); });
  expect_invalid("leaders", [] { MultiLeaderCluster(opts(9, ConflictResolution::Siblings)); });
  expect_invalid("default_delay_ms", [] { MultiLeaderCluster(opts(2, ConflictResolution::Siblings, -1)); });
  MultiLeaderOptions bad = opts(2, ConflictResolution::Siblings);
  bad.replication_delay_ms = {{0, 1}};
  expect_invalid("replication_delay_ms", [&] { MultiLeaderCluster{bad}; });
  bad.replication_delay_ms = {{0, nan}, {1, 0}};
  expect_invalid("replication_delay_ms", [&] { MultiLeaderCluster{bad}; });
  MultiLeaderCluster c(opts(2, ConflictResolution::Siblings));
  expect_invalid("leader", [&] { c.write(2, "k", "v", 0); });
  expect_invalid("at_ms", [&] { c.write(0, "k", "v", nan); });
  c.write(0, "k", "v", 10);
  expect_invalid("at_ms", [&] { c.write(0, "k", "v", 5); });
  MultiLeaderWorkload w;
  w.writes_per_s = {1.0};
  expect_invalid("writes_per_s", [&] { run_multileader_workload(opts(2, ConflictResolution::Siblings), w); });
  w.writes_per_s = {1e9, 1e9};
  expect_invalid("writes_per_s", [&] { run_multileader_workload(opts(2, ConflictResolution::Siblings), w); });
  w.writes_per_s = {1, 1};
  w.keys = 0;
  expect_invalid("keys", [&] { run_multileader_workload(opts(2, ConflictResolution::Siblings), w); });
}

}  // namespace
