// A replayed workload (SimConfig::write_arrivals, read_arrivals): the listed requests arrive at
// their instants with their sessions and levels; unset, the Poisson workload is unchanged.
#include <gtest/gtest.h>

#include "replikit/errors.hpp"
#include "replikit/sim/simulator.hpp"

#include "testing.hpp"

namespace {

using namespace replikit;
using namespace replikit::sim;
using replikit::testing::expect_invalid;

constexpr std::size_t kEventual = static_cast<std::size_t>(Consistency::Eventual);
constexpr std::size_t kRyw = static_cast<std::size_t>(Consistency::ReadYourWrites);

SimConfig small() {
  SimConfig c;
  c.duration_ms = 1000;
  c.write_rate_per_s = 100;
  c.read_rate_per_s = 400;
  c.sessions = 4;
  c.consistency_mix = {1, 1, 0, 0, 0, 0};
  c.client_latency = LatencyDistribution::constant(0.1);
  c.replica_latency = LatencyDistribution::exponential(1.0);
  return c;
}

TEST(SimArrivals, ListedRequestsArriveAtTheirInstantsWithTheirLevels) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimArrivals.Listed", 31);
  SimConfig c = small();
  for (int i = 0; i < 50; ++i) c.write_arrivals.push_back(Arrival{100.0 + i, i % 4});
  // 30 eventual reads in [500, 530), 20 read-your-writes in [700, 720); ties allowed.
  for (int i = 0; i < 30; ++i) c.read_arrivals.push_back(Arrival{500.0 + i, i % 4, Consistency::Eventual});
  c.read_arrivals.push_back(Arrival{700.0, 1, Consistency::ReadYourWrites});
  for (int i = 0; i < 19; ++i) c.read_arrivals.push_back(Arrival{700.0 + i, 2, Consistency::ReadYourWrites});
  c.window_edges_ms = {0, 100, 150, 500, 530, 700, 720, 1000};
  const SimResult r = simulate(c, seed);
  EXPECT_TRUE(r.conserved());
  EXPECT_EQ(r.writes_submitted, 50u);
  EXPECT_EQ(r.reads_submitted, 50u);
  EXPECT_EQ(r.levels[kEventual].submitted, 30u);
  EXPECT_EQ(r.levels[kRyw].submitted, 20u);
  ASSERT_EQ(r.windows.size(), 7u);
  EXPECT_EQ(r.windows[0].reads_submitted + r.windows[1].reads_submitted + r.windows[2].reads_submitted, 0u);
  EXPECT_EQ(r.windows[3].levels[kEventual].submitted, 30u);
  EXPECT_EQ(r.windows[5].levels[kRyw].submitted, 20u);
  EXPECT_EQ(r.windows[4].reads_submitted + r.windows[6].reads_submitted, 0u);
  // The writes all ended long before the reads: no read misses one.
  EXPECT_EQ(r.levels[kEventual].stale, 0u);
  // Same seed, same run.
  const SimResult again = simulate(c, seed);
  EXPECT_EQ(r.events, again.events);
  EXPECT_EQ(r.levels[kEventual].stale, again.levels[kEventual].stale);
}

TEST(SimArrivals, ReadsRightAfterAWriteAreStaleAsItsDelaySays) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimArrivals.Stale", 32);
  SimConfig c = small();
  c.replica_latency = LatencyDistribution::constant(5.0);
  c.write_arrivals = {Arrival{100.0, 0}};
  // Eventual reads 1-3 ms after the write's commit (replicas lack it for 5 ms) and 20-30 ms after.
  for (int i = 0; i < 10; ++i) c.read_arrivals.push_back(Arrival{101.5 + 0.1 * i, i % 4, Consistency::Eventual});
  for (int i = 0; i < 10; ++i) c.read_arrivals.push_back(Arrival{120.0 + i, i % 4, Consistency::Eventual});
  c.window_edges_ms = {0, 110, 1000};
  const SimResult r = simulate(c, seed);
  ASSERT_EQ(r.windows.size(), 2u);
  const LevelStats& early = r.windows[0].levels[kEventual];
  const LevelStats& late = r.windows[1].levels[kEventual];
  EXPECT_EQ(early.answered, 10u);
  EXPECT_EQ(late.answered, 10u);
  EXPECT_EQ(late.stale, 0u);
  // The primary serves no eventual read here (both replicas fresh by the tracker): all stale.
  EXPECT_EQ(early.stale + early.served_by_primary, 10u);
  EXPECT_GT(early.stale, 0u);
}

TEST(SimArrivals, EmptyListsAreThePoissonWorkload) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimArrivals.Empty", 33);
  const SimConfig c = small();
  const SimResult a = simulate(c, seed);
  EXPECT_GT(a.writes_submitted, 50u);
  EXPECT_GT(a.reads_submitted, 200u);
  SimConfig d = small();
  d.write_arrivals.clear();
  d.read_arrivals.clear();
  const SimResult b = simulate(d, seed);
  EXPECT_EQ(a.events, b.events);
  EXPECT_EQ(a.reads_submitted, b.reads_submitted);
  EXPECT_EQ(a.levels[kEventual].stale, b.levels[kEventual].stale);
}

TEST(SimArrivals, BadListsNameTheField) {
  SimConfig c = small();
  c.read_arrivals = {Arrival{10.0, 0, Consistency::Eventual}, Arrival{5.0, 0, Consistency::Eventual}};
  expect_invalid("read_arrivals", [&] { simulate(c, 1); });
  c = small();
  c.write_arrivals = {Arrival{1000.0, 0}};  // at duration_ms: outside [0, duration_ms)
  expect_invalid("write_arrivals", [&] { simulate(c, 1); });
  c = small();
  c.write_arrivals = {Arrival{1.0, 4}};  // sessions = 4
  expect_invalid("write_arrivals", [&] { simulate(c, 1); });
  c = small();
  c.read_arrivals = {Arrival{-1.0, 0, Consistency::Eventual}};
  expect_invalid("read_arrivals", [&] { simulate(c, 1); });
}

}  // namespace

namespace {

using namespace replikit;
using namespace replikit::sim;

constexpr std::size_t kEventualLevel = static_cast<std::size_t>(Consistency::Eventual);

// Writes that take 5 ms on the primary: a session has one in flight 10% of the time.
SimConfig slow_session_writes() {
  SimConfig c;
  c.duration_ms = 3000;
  c.write_rate_per_s = 80;
  c.read_rate_per_s = 2000;
  c.sessions = 4;
  c.consistency_mix = {1, 1, 0, 0, 0, 0};
  c.write_service = LatencyDistribution::constant(5.0);
  c.replica_latency = LatencyDistribution::constant(0.5);
  c.client_latency = LatencyDistribution::constant(0.1);
  return c;
}

double primary_share(const LevelStats& l) {
  return l.answered ? static_cast<double>(l.served_by_primary) / static_cast<double>(l.answered) : 0.0;
}

TEST(SimSessionLock, ReadYourWritesReadsWaitForTheirSessionsWrite) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimSessionLock.Wait", 31);
  SimConfig c = slow_session_writes();
  EXPECT_FALSE(c.session_reads_wait_for_writes);
  const SimResult free_reads = simulate(c, seed);
  c.session_reads_wait_for_writes = true;
  const SimResult held = simulate(c, seed);
  EXPECT_TRUE(free_reads.conserved());
  EXPECT_TRUE(held.conserved());
  // A read-your-writes read that waited leaves with the new write's token, which no replica has
  // shown yet: the primary serves it. Before, it left at once with the older token.
  EXPECT_GT(held.levels[kRyw].answered, 2000u);
  EXPECT_GT(primary_share(held.levels[kRyw]), primary_share(free_reads.levels[kRyw]) + 0.05);
  EXPECT_EQ(held.levels[kRyw].stale, 0u);
  EXPECT_EQ(free_reads.levels[kRyw].stale, 0u);
  // The held reads leave later, not fewer (the seed's later draws come in another order).
  const auto near = [](std::uint64_t a, std::uint64_t b) {
    EXPECT_NEAR(static_cast<double>(a), static_cast<double>(b), 0.05 * static_cast<double>(b));
  };
  near(held.levels[kEventualLevel].submitted, free_reads.levels[kEventualLevel].submitted);
  near(held.levels[kRyw].submitted, free_reads.levels[kRyw].submitted);
}

TEST(SimSessionLock, ReplayedReadsWaitAlikeAndOnlyReadYourWritesOnes) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimSessionLock.Replayed", 32);
  SimConfig c = slow_session_writes();
  c.session_reads_wait_for_writes = true;
  for (int k = 0; k < 200; ++k) c.write_arrivals.push_back({10.0 + 10.0 * k, k % 4, Consistency::Eventual});
  // Each write holds its session 5 ms: a read of that session 1 ms after it waits ~4 ms.
  for (int k = 0; k < 200; ++k) {
    c.read_arrivals.push_back({11.0 + 10.0 * k, k % 4, k % 2 ? Consistency::ReadYourWrites : Consistency::Eventual});
  }
  const SimResult r = simulate(c, seed);
  EXPECT_TRUE(r.conserved());
  EXPECT_EQ(r.reads_submitted, 200u);
  EXPECT_EQ(r.levels[kRyw].answered, 100u);
  EXPECT_EQ(r.levels[kRyw].served_by_primary, 100u);  // each left with its session's newest token
  EXPECT_EQ(r.levels[kEventualLevel].served_by_primary, 0u);
  c.session_reads_wait_for_writes = false;  // leaving at once, many carry an older token a replica shows
  EXPECT_LT(simulate(c, seed).levels[kRyw].served_by_primary, 80u);
}

}  // namespace
