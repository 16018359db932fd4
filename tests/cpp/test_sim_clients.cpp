// Clients that send one request at a time (SimConfig::sequential_writes, read_arrival_readers):
// unset, every request leaves when it arrives; set, a writer's or a reader's request waits for its
// last one's answer.
#include <gtest/gtest.h>

#include "replikit/errors.hpp"
#include "replikit/sim/simulator.hpp"

#include "testing.hpp"

namespace {

using namespace replikit;
using namespace replikit::sim;
using replikit::testing::expect_invalid;

constexpr std::size_t kEventual = static_cast<std::size_t>(Consistency::Eventual);

// A synchronous cluster whose every acknowledgement takes >= 10 ms (5 ms each way to the standby).
SimConfig slow_sync() {
  SimConfig c;
  c.duration_ms = 1000;
  c.sessions = 4;
  c.mode = ReplicationMode::Sync;
  c.replicas = 1;
  c.client_latency = LatencyDistribution::constant(0.1);
  c.replica_latency = LatencyDistribution::constant(5.0);
  c.session_reads_wait_for_writes = true;
  return c;
}

TEST(SimClients, OneWriterSendsItsWritesOneAtATime) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimClients.Writer", 41);
  SimConfig c = slow_sync();
  for (int i = 0; i < 50; ++i) c.write_arrivals.push_back(Arrival{100.0 + i, i % 4});
  const SimResult open = simulate(c, seed);
  c.sequential_writes = true;
  const SimResult one = simulate(c, seed);
  EXPECT_TRUE(open.conserved());
  EXPECT_TRUE(one.conserved());
  EXPECT_EQ(open.writes_acknowledged, 50u);
  EXPECT_EQ(one.writes_acknowledged, 50u);
  // Arriving 1 ms apart, each taking >= 10 ms: at once, all done by ~160 ms; one at a time,
  // the last leaves after ~49 x 10 ms and the run drains past its end.
  EXPECT_LT(open.simulated_ms, 1000.5);
  EXPECT_GT(one.simulated_ms, 1000.0);
  c.write_arrivals = {Arrival{100.0, 0}, Arrival{300.0, 1}};  // never overlapping: the same run
  c.sequential_writes = false;
  const SimResult apart = simulate(c, seed);
  c.sequential_writes = true;
  const SimResult apart_one = simulate(c, seed);
  EXPECT_EQ(apart.mean_write_latency_ms, apart_one.mean_write_latency_ms);
  EXPECT_EQ(apart.writes_acknowledged, apart_one.writes_acknowledged);
}

TEST(SimClients, AReaderHeldBehindItsSessionsWriteHoldsBackItsNextRead) {
  const std::uint64_t seed = replikit::testing::printed_seed("SimClients.Reader", 42);
  SimConfig c = slow_sync();
  c.write_arrivals = {Arrival{10.0, 0}};  // acknowledged at >= 20 ms
  c.read_arrivals = {Arrival{11.0, 0, Consistency::ReadYourWrites},  // held until then
                     Arrival{12.0, 1, Consistency::Eventual}, Arrival{13.0, 2, Consistency::Eventual}};
  c.window_edges_ms = {0, 15, 1000};
  const SimResult open = simulate(c, seed);
  c.read_arrival_readers = {0, 0, 1};  // the first eventual read is reader 0's, behind the held one
  const SimResult readers = simulate(c, seed);
  EXPECT_TRUE(open.conserved());
  EXPECT_TRUE(readers.conserved());
  EXPECT_EQ(open.reads_answered, 3u);
  EXPECT_EQ(readers.reads_answered, 3u);
  ASSERT_EQ(readers.windows.size(), 2u);
  EXPECT_EQ(open.windows[0].levels[kEventual].submitted, 2u);
  EXPECT_EQ(readers.windows[0].levels[kEventual].submitted, 1u);  // reader 1's only
  EXPECT_EQ(readers.windows[1].levels[kEventual].submitted, 1u);
  c.read_arrival_readers = {0, 1, 2};  // a reader each: as without readers
  const SimResult each = simulate(c, seed);
  EXPECT_EQ(each.windows[0].levels[kEventual].submitted, 2u);
  EXPECT_EQ(each.mean_read_latency_ms, open.mean_read_latency_ms);
}

TEST(SimClients, BadReadersNameTheField) {
  SimConfig c = slow_sync();
  c.read_arrivals = {Arrival{11.0, 0, Consistency::Eventual}, Arrival{12.0, 1, Consistency::Eventual}};
  c.read_arrival_readers = {0};
  expect_invalid("read_arrival_readers", [&] { simulate(c, 1); });
  c.read_arrival_readers = {0, -1};
  expect_invalid("read_arrival_readers", [&] { simulate(c, 1); });
  c.read_arrival_readers = {0, kMaxReaders};
  expect_invalid("read_arrival_readers", [&] { simulate(c, 1); });
}

}  // namespace
