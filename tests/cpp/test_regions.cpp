// Multi-region model: latencies by hand on the default map, the multi-leader conflict rate
// against the exact counting of MultiLeaderCluster, leaderless quorums, and bad input.
#include <gtest/gtest.h>

#include <cmath>

#include "replikit/multileader.hpp"
#include "replikit/regions.hpp"

#include "testing.hpp"

namespace {

using namespace replikit;
using replikit::testing::expect_invalid;

TEST(Regions, SingleLeaderByHand) {
  PlacementConfig c;  // primary in us, one replica in each region, async
  const RegionReport r = model_regions(RegionMap::defaults(), c);
  ASSERT_EQ(r.regions.size(), 3u);
  EXPECT_EQ(r.regions[1].region, "eu");
  EXPECT_DOUBLE_EQ(r.regions[1].write_ms, 80);  // to the primary and back
  EXPECT_DOUBLE_EQ(r.regions[1].read_ms, 1);    // the local replica
  EXPECT_EQ(r.regions[1].read_from, "eu");
  // The ack takes 40 ms to reach eu, the WAL 40 ms (+0.5 replay) to reach eu's replica: the
  // read-back arrives there 40.5 ms after the commit, just as it is applied.
  EXPECT_DOUBLE_EQ(r.regions[1].read_your_writes_ms, 1);
  EXPECT_EQ(r.stored_in, (std::vector<std::string>{"us", "eu", "asia"}));

  c.sync_standbys = 2;  // the 2 nearest standbys from us: us (1 ms) and eu (80 ms)
  const RegionReport sync = model_regions(RegionMap::defaults(), c);
  EXPECT_DOUBLE_EQ(sync.regions[0].write_ms, 1 + 80);
  EXPECT_DOUBLE_EQ(sync.regions[2].write_ms, 160 + 80);
}

TEST(Regions, SingleLeaderWithoutLocalReplicaReadsRemotely) {
  PlacementConfig c;
  c.replicas_per_region = {1, 0, 0};
  const RegionReport r = model_regions(RegionMap::defaults(), c);
  EXPECT_DOUBLE_EQ(r.regions[2].read_ms, 160);  // asia reads in us
  EXPECT_EQ(r.regions[2].read_from, "us");
  EXPECT_EQ(r.stored_in, (std::vector<std::string>{"us"}));
}

TEST(Regions, LeaderlessQuorums) {
  PlacementConfig c;
  c.placement = Placement::Leaderless;
  c.write_quorum = 1;
  c.read_quorum = 3;
  const RegionReport r = model_regions(RegionMap::defaults(), c);
  EXPECT_TRUE(r.strong);
  EXPECT_DOUBLE_EQ(r.regions[0].write_ms, 1);    // the local replica
  EXPECT_DOUBLE_EQ(r.regions[0].read_ms, 160);   // the farthest of three
  EXPECT_DOUBLE_EQ(r.regions[1].read_ms, 230);
  c.read_quorum = 1;
  EXPECT_FALSE(model_regions(RegionMap::defaults(), c).strong);
}

TEST(Regions, MultiLeaderConflictsMatchExactCounting) {
  // Writes at 200/s per region over 50 keys for 20 s: the analytic rate of concurrent pairs
  // against MultiLeaderCluster's exact count, with one-way delays of half the round trip.
  const RegionMap map = RegionMap::defaults();
  PlacementConfig c;
  c.placement = Placement::MultiLeader;
  c.writes_per_s = {200, 200, 200};
  c.keys = 50;
  const RegionReport r = model_regions(map, c);
  MultiLeaderOptions options;
  options.leaders = 3;
  options.replication_delay_ms.assign(3, std::vector<double>(3, 0.0));
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) options.replication_delay_ms[i][j] = i == j ? 0 : map.rtt_ms[i][j] / 2;
  }
  MultiLeaderWorkload workload;
  workload.writes_per_s = c.writes_per_s;
  workload.keys = c.keys;
  workload.duration_ms = 20000;
  workload.seed = replikit::testing::seed_from_env(20261129);
  const MultiLeaderReport sim = run_multileader_workload(options, workload);
  const double measured_per_s = static_cast<double>(sim.total_conflicts) / 20.0;
  // Transitive knowledge (a leader learning of a write through a third one's later write to the
  // key) only removes pairs; at these rates the analytic figure is within a few percent.
  EXPECT_NEAR(measured_per_s / r.conflicts_per_s, 1.0, 0.08)
      << "measured " << measured_per_s << " model " << r.conflicts_per_s << " seed " << workload.seed;
}

TEST(Regions, BadInputNamesTheField) {
  const RegionMap map = RegionMap::defaults();
  auto with = [&](auto set) {
    PlacementConfig c;
    set(c);
    return [map, c] { model_regions(map, c); };
  };
  expect_invalid<NotFound>(with([](PlacementConfig& c) { c.primary_region = "mars"; }), "primary_region");
  expect_invalid("sync_standbys", with([](PlacementConfig& c) { c.sync_standbys = 4; }));
  expect_invalid("replicas_per_region", with([](PlacementConfig& c) { c.replicas_per_region = {1, 1}; }));
  expect_invalid("replicas_per_region", with([](PlacementConfig& c) { c.replicas_per_region = {0, 0, 0}; }));
  expect_invalid("replay_ms", with([](PlacementConfig& c) { c.replay_ms = -1; }));
  expect_invalid("keys", with([](PlacementConfig& c) { c.keys = 0; }));
  expect_invalid("write_quorum", with([](PlacementConfig& c) { c.placement = Placement::Leaderless; c.write_quorum = 4; }));
  expect_invalid("writes_per_s", with([](PlacementConfig& c) { c.placement = Placement::MultiLeader; c.writes_per_s = {1}; }));
  RegionMap bad = map;
  bad.rtt_ms[0][1] = 81;
  expect_invalid("rtt_ms", [&] { model_regions(bad, PlacementConfig{}); });
  bad = map;
  bad.regions[2] = "us";
  expect_invalid("regions", [&] { model_regions(bad, PlacementConfig{}); });
}

}  // namespace
