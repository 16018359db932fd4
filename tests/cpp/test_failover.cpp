// plan_failover: randomised comparison with a dumb reference, determinism, bad input. The
// readable cases are in tests/testdata/failover (test_failover_tables.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "replikit/failover.hpp"
#include "testing.hpp"

using namespace replikit;
using replikit::testing::expect_invalid;

namespace {

CandidateState candidate(std::string name, std::uint64_t receive, std::uint32_t timeline = 1) {
  CandidateState c;
  c.name = std::move(name);
  c.receive_lsn = Lsn(receive);
  c.replay_lsn = Lsn(receive);
  c.timeline = timeline;
  return c;
}

struct World {
  std::vector<CandidateState> candidates;
  PrimaryState primary;
  FailoverConfig config;
};

World random_world(Xoshiro256& rng) {
  World w;
  w.primary.timeline = 1 + rng.below(3);
  w.primary.last_known_lsn = Lsn(1000 + rng.below(1000));
  w.primary.synchronous_mode = rng.below(3) == 0;
  if (w.primary.synchronous_mode) w.primary.last_acknowledged_commit_lsn = Lsn(900 + rng.below(200));
  if (rng.below(2) == 0) w.config.max_lag_bytes = rng.below(600);
  if (rng.below(2) == 0) w.config.preferred_region = "eu";
  const int n = static_cast<int>(rng.below(8));
  for (int i = 0; i < n; ++i) {
    CandidateState c = candidate("r" + std::to_string(i), 600 + rng.below(600), 1 + rng.below(4));
    c.replay_lsn = Lsn(c.receive_lsn.value - rng.below(50));
    if (rng.below(5) == 0) c.receive_lsn = Lsn();  // receiver not started
    c.reachable = rng.below(5) != 0;
    c.no_failover = rng.below(8) == 0;
    c.priority = static_cast<int>(rng.below(3));
    c.region = rng.below(2) == 0 ? "eu" : "us";
    c.was_synchronous = rng.below(3) == 0;
    if (w.primary.synchronous_mode && rng.below(3) == 0) w.primary.synchronous_standbys.push_back(c.name);
    w.candidates.push_back(c);
  }
  return w;
}

// The dumb reference: the eligibility rules written out plainly.
bool eligible(const CandidateState& c, const World& w, std::uint32_t newest, Lsn reference) {
  if (!c.reachable || c.no_failover || c.timeline == 0 || c.timeline < newest) return false;
  const std::int64_t behind = std::max<std::int64_t>(0, lsn_diff_bytes(reference, c.position()));
  if (w.config.max_lag_bytes && behind > *w.config.max_lag_bytes) return false;
  if (!w.primary.synchronous_mode) return true;
  const auto& s = w.primary.synchronous_standbys;
  const bool sync = c.was_synchronous || std::find(s.begin(), s.end(), c.name) != s.end();
  return sync && c.position() >= w.primary.last_acknowledged_commit_lsn;
}

TEST(Failover, AgreesWithTheReference) {
  const auto seeds = replikit::testing::run_seeds(9, 3000);
  for (int run = 0; run < seeds.runs; ++run) {
    const std::uint64_t seed = seeds.seed(run);
    SCOPED_TRACE(replikit::testing::replay_hint(seed, "Failover.AgreesWithTheReference"));
    Xoshiro256 rng(seed);
    const World w = random_world(rng);
    const FailoverPlan plan = plan_failover(w.candidates, w.primary, w.config);
    std::uint32_t newest = w.primary.timeline;
    for (const auto& c : w.candidates) newest = c.reachable ? std::max(newest, c.timeline) : newest;
    Lsn reference = w.primary.last_known_lsn;
    for (const auto& c : w.candidates) {
      if (c.reachable && c.timeline == newest) reference = lsn_max(reference, c.position());
    }
    ASSERT_EQ(plan.reference_lsn, reference) << describe(plan);
    Lsn best;
    bool any = false;
    for (const auto& c : w.candidates) {
      if (eligible(c, w, newest, reference)) {
        any = true;
        best = lsn_max(best, c.position());
      }
    }
    ASSERT_EQ(plan.promote.has_value(), any) << describe(plan);
    ASSERT_EQ(plan.excluded.size() + (any ? 1 : 0), w.candidates.size());
    if (!any) {
      ASSERT_TRUE(plan.repoint.empty());
      continue;
    }
    const auto chosen = std::find_if(w.candidates.begin(), w.candidates.end(),
                                     [&](const CandidateState& c) { return c.name == *plan.promote; });
    ASSERT_NE(chosen, w.candidates.end());
    ASSERT_TRUE(eligible(*chosen, w, newest, reference)) << describe(plan);
    ASSERT_EQ(chosen->position(), best) << describe(plan);
    ASSERT_EQ(plan.expected_loss_bytes, std::max<std::int64_t>(0, lsn_diff_bytes(reference, best)));
    ASSERT_GE(plan.expected_loss_bytes, 0);
    for (const auto& c : w.candidates) {
      const bool listed = std::find(plan.repoint.begin(), plan.repoint.end(), c.name) != plan.repoint.end();
      ASSERT_EQ(listed, c.reachable && c.name != *plan.promote) << c.name;
    }
    // The input order does not change the choice.
    std::vector<CandidateState> reversed(w.candidates.rbegin(), w.candidates.rend());
    ASSERT_EQ(plan_failover(reversed, w.primary, w.config).promote, plan.promote);
  }
}

TEST(Failover, ExclusionsCarryDetails) {
  PrimaryState p;
  p.timeline = 1;
  p.last_known_lsn = Lsn(5000);
  FailoverConfig config;
  config.max_lag_bytes = 100;
  auto far = candidate("far", 4000);
  auto near = candidate("near", 4950);
  const FailoverPlan plan = plan_failover({far, near}, p, config);
  ASSERT_EQ(plan.promote, std::optional<std::string>("near"));
  ASSERT_EQ(plan.excluded.size(), 1u);
  EXPECT_EQ(plan.excluded[0].reason, ExclusionReason::TooFarBehind);
  EXPECT_NE(plan.excluded[0].detail.find("1000 bytes behind"), std::string::npos) << plan.excluded[0].detail;
  const std::string text = describe(plan);
  EXPECT_NE(text.find("promote near"), std::string::npos) << text;
  EXPECT_NE(text.find("far: too_far_behind"), std::string::npos) << text;
  EXPECT_EQ(plan.expected_loss_bytes, 50);
}

TEST(Failover, BadInputNamesTheArgument) {
  PrimaryState p;
  expect_invalid("candidates", [&] { plan_failover({candidate("a", 1), candidate("a", 2)}, p); });
  expect_invalid("candidates", [&] { plan_failover({candidate("", 1)}, p); });
  std::vector<CandidateState> many;
  for (int i = 0; i <= kMaxCandidates; ++i) many.push_back(candidate("r" + std::to_string(i), 1));
  expect_invalid("candidates", [&] { plan_failover(many, p); });
  FailoverConfig config;
  config.max_lag_bytes = -1;
  expect_invalid("config", [&] { plan_failover({candidate("a", 1)}, p, config); });
  EXPECT_STREQ(to_string(ExclusionReason::NotFlushedAllAcknowledged), "not_flushed_all_acknowledged");
}

}  // namespace
