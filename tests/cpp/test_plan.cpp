// Capacity planner: the arithmetic by hand on small cases, monotonicity in load, the binding
// constraint, and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "replikit/plan.hpp"

#include "testing.hpp"

namespace {

using namespace replikit;
using replikit::testing::expect_invalid;

PlanInput exercise() {
  PlanInput in;
  in.writes_per_s = 5000;
  in.reads_per_s = 50000;
  in.read_back_delay_ms = 200;  // a page load after the write: every replica has caught up
  return in;
}

TEST(Plan, ExerciseByHand) {
  const CapacityPlan p = plan_capacity(exercise());
  ASSERT_TRUE(p.feasible);
  // 50000 reads over replicas at 15000 x 0.7 = 10500 each: 4.76 -> 5, plus 1 spare.
  EXPECT_EQ(p.replicas_for_load, 5);
  EXPECT_EQ(p.replicas, 6);
  EXPECT_EQ(p.binding, PlanConstraint::ReplicaReadCapacity);
  EXPECT_NEAR(p.primary_utilization, 0.5, 1e-9);  // 5000 writes of 10000
  EXPECT_NEAR(p.replica_utilization, 50000.0 / (6 * 15000), 1e-6);
  EXPECT_NEAR(p.degraded_replica_utilization, 50000.0 / (5 * 15000), 1e-6);
  // M/M/1 apply queue: 1 / (20000 - 5000) s = 0.0667 ms, plus 0.5 ms of network.
  EXPECT_NEAR(p.replay_delay_ms, 0.5 + 1000.0 / 15000, 1e-9);
  EXPECT_FALSE(p.reasoning.empty());
}

TEST(Plan, ImmediateReadBackLoadsThePrimaryAndTheWaitThatFixesIt) {
  PlanInput in = exercise();
  in.read_back_delay_ms = 0;
  const CapacityPlan p = plan_capacity(in);
  EXPECT_FALSE(p.feasible);
  EXPECT_EQ(p.binding, PlanConstraint::PrimaryCapacity);
  EXPECT_NEAR(p.primary_read_share, 0.1, 1e-12);  // every read-back finds no replica caught up
  ASSERT_TRUE(p.min_wait_for_replica_ms.has_value());
  in.wait_for_replica_ms = *p.min_wait_for_replica_ms + 1e-6;
  const CapacityPlan fixed = plan_capacity(in);
  EXPECT_TRUE(fixed.feasible);
  EXPECT_LE(fixed.primary_utilization, 0.7 + 1e-9);
}

TEST(Plan, WritesAloneOverThePrimaryHaveNoWaitThatHelps) {
  PlanInput in = exercise();
  in.writes_per_s = 7500;  // 75% of the primary's write capacity, over the 70% target
  in.replica_apply_per_s = 100000;
  const CapacityPlan p = plan_capacity(in);
  EXPECT_FALSE(p.feasible);
  EXPECT_EQ(p.binding, PlanConstraint::PrimaryCapacity);
  EXPECT_FALSE(p.min_wait_for_replica_ms.has_value());
}

TEST(Plan, ApplyRateBindsBeforeAnythingElse) {
  PlanInput in = exercise();
  in.replica_apply_per_s = 6000;  // 5000 / 6000 = 83% > 70%
  const CapacityPlan p = plan_capacity(in);
  EXPECT_FALSE(p.feasible);
  EXPECT_EQ(p.binding, PlanConstraint::ReplicaApplyRate);
}

TEST(Plan, NoReadsMeansRedundancyDecides) {
  PlanInput in = exercise();
  in.reads_per_s = 0;
  in.spare_replicas = 2;
  const CapacityPlan p = plan_capacity(in);
  EXPECT_TRUE(p.feasible);
  EXPECT_EQ(p.binding, PlanConstraint::Redundancy);
  EXPECT_EQ(p.replicas, 2);
}

TEST(Plan, TooManyReplicasIsInfeasible) {
  PlanInput in = exercise();
  in.reads_per_s = 1e9;
  in.write_capacity_per_s = 1e9;
  const CapacityPlan p = plan_capacity(in);
  EXPECT_FALSE(p.feasible);
  EXPECT_EQ(p.binding, PlanConstraint::ReplicaLimit);
}

TEST(Plan, MonotonicInLoad) {
  int last = 0;
  for (double reads = 0; reads <= 500000; reads += 2500) {
    PlanInput in = exercise();
    in.reads_per_s = reads;
    const CapacityPlan p = plan_capacity(in);
    ASSERT_TRUE(p.feasible) << reads;
    EXPECT_GE(p.replicas, last) << reads;
    last = p.replicas;
  }
  double utilization = 0;
  for (double writes = 0; writes <= 6000; writes += 250) {
    PlanInput in = exercise();
    in.writes_per_s = writes;
    const CapacityPlan p = plan_capacity(in);
    EXPECT_GE(p.primary_utilization, utilization) << writes;
    utilization = p.primary_utilization;
  }
}

TEST(Plan, ReplayDelayModel) {
  PlanInput in = exercise();
  EXPECT_EQ(replay_delay_exceeds(in, 0.25), 1.0);  // inside the network shift
  EXPECT_NEAR(replay_delay_exceeds(in, 0.5 + 1000.0 / 15000), std::exp(-1.0), 1e-12);
  in.replay_delay_ms = 2.0;  // measured: exponential with that mean, no shift
  EXPECT_NEAR(replay_delay_exceeds(in, 2.0), std::exp(-1.0), 1e-12);
}

TEST(Plan, BadInputNamesTheField) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto with = [](auto set) {
    PlanInput in = exercise();
    set(in);
    return [in] { plan_capacity(in); };
  };
  expect_invalid("writes_per_s", with([](PlanInput& in) { in.writes_per_s = -1; }));
  expect_invalid("reads_per_s", with([&](PlanInput& in) { in.reads_per_s = nan; }));
  expect_invalid("read_capacity_per_s", with([](PlanInput& in) { in.read_capacity_per_s = 0; }));
  expect_invalid("write_capacity_per_s", with([](PlanInput& in) { in.write_capacity_per_s = -3; }));
  expect_invalid("replica_apply_per_s",
                 with([](PlanInput& in) { in.replica_apply_per_s = std::numeric_limits<double>::infinity(); }));
  expect_invalid("headroom", with([](PlanInput& in) { in.headroom = 1; }));
  expect_invalid("headroom", with([](PlanInput& in) { in.headroom = -0.1; }));
  expect_invalid("spare_replicas", with([](PlanInput& in) { in.spare_replicas = -1; }));
  expect_invalid("ryw_share", with([](PlanInput& in) { in.ryw_share = 1.5; }));
  expect_invalid("ryw_share", with([](PlanInput& in) { in.ryw_share = 0.6; in.strong_share = 0.6; }));
  expect_invalid("strong_share", with([&](PlanInput& in) { in.strong_share = nan; }));
  expect_invalid("read_back_delay_ms", with([](PlanInput& in) { in.read_back_delay_ms = -1; }));
  expect_invalid("wait_for_replica_ms", with([&](PlanInput& in) { in.wait_for_replica_ms = nan; }));
  expect_invalid("network_ms", with([](PlanInput& in) { in.network_ms = -0.5; }));
  expect_invalid("replay_delay_ms", with([](PlanInput& in) { in.replay_delay_ms = -2.0; }));
}

}  // namespace
