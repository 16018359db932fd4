// Quorum math: every N <= 9 and every (W, R) against brute-force set enumeration.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "replikit/errors.hpp"
#include "replikit/quorum.hpp"

#include "testing.hpp"

namespace {

using namespace replikit;
using replikit::testing::expect_invalid;

int popcount(unsigned x) {
  int c = 0;
  for (; x; x &= x - 1) ++c;
  return c;
}

std::vector<unsigned> subsets_of_size(int n, int k) {
  std::vector<unsigned> out;
  for (unsigned m = 0; m < (1u << n); ++m) {
    if (popcount(m) == k) out.push_back(m);
  }
  return out;
}

// Slow, obvious references.
bool brute_strong(int n, int w, int r) {
  for (unsigned a : subsets_of_size(n, w)) {
    for (unsigned b : subsets_of_size(n, r)) {
      if ((a & b) == 0) return false;
    }
  }
  return true;
}

bool brute_conflict(int n, int w) {
  const auto sets = subsets_of_size(n, w);
  for (unsigned a : sets) {
    for (unsigned b : sets) {
      if ((a & b) == 0) return true;
    }
  }
  return false;
}

// Largest f such that after any f failures some quorum of size k is still alive.
int brute_tolerance(int n, int k) {
  int best = -1;
  for (int f = 0; f <= n; ++f) {
    bool ok = true;
    for (unsigned failed : subsets_of_size(n, f)) ok = ok && (n - popcount(failed) >= k);
    if (ok) best = f;
  }
  return best;
}

double brute_availability(int n, int k, double p) {
  double total = 0;
  for (unsigned up = 0; up < (1u << n); ++up) {
    const int u = popcount(up);
    if (u >= k) total += std::pow(p, u) * std::pow(1 - p, n - u);
  }
  return total;
}

double brute_stale(int n, int w, int r) {
  const auto ws = subsets_of_size(n, w);
  const auto rs = subsets_of_size(n, r);
  double disjoint = 0;
  for (unsigned a : ws) {
    for (unsigned b : rs) disjoint += (a & b) == 0;
  }
  return disjoint / (static_cast<double>(ws.size()) * static_cast<double>(rs.size()));
}

TEST(QuorumMath, ExhaustiveAgainstBruteForceUpToNine) {
  const double ps[] = {0.0, 0.1, 0.5, 0.9, 0.99, 1.0};
  for (int n = 1; n <= 9; ++n) {
    for (int w = 1; w <= n; ++w) {
      EXPECT_EQ(writes_may_conflict(n, w), brute_conflict(n, w)) << "n=" << n << " w=" << w;
      EXPECT_EQ(write_fault_tolerance(n, w), brute_tolerance(n, w));
      for (int r = 1; r <= n; ++r) {
        SCOPED_TRACE("n=" + std::to_string(n) + " w=" + std::to_string(w) + " r=" + std::to_string(r));
        EXPECT_EQ(is_strong_quorum(n, w, r), brute_strong(n, w, r));
        EXPECT_EQ(read_fault_tolerance(n, r), brute_tolerance(n, r));
        EXPECT_NEAR(stale_read_probability(n, w, r), brute_stale(n, w, r), 1e-12);
        for (double p : ps) {
          const QuorumAnalysis a = analyze_quorum(n, w, r, p);
          EXPECT_NEAR(a.read_availability, brute_availability(n, r, p), 1e-12) << "p=" << p;
          EXPECT_NEAR(a.write_availability, brute_availability(n, w, p), 1e-12) << "p=" << p;
          EXPECT_EQ(a.strong, brute_strong(n, w, r));
        }
      }
    }
  }
}

TEST(QuorumMath, TableMatchesSingleAnalysis) {
  for (int n : {1, 5, 9, 64}) {
    const auto rows = quorum_table(n, 0.95);
    ASSERT_EQ(rows.size(), static_cast<std::size_t>(n * n));
    for (const auto& row : rows) {
      const QuorumAnalysis a = analyze_quorum(n, row.w, row.r, 0.95);
      EXPECT_EQ(row.strong, a.strong);
      EXPECT_DOUBLE_EQ(row.read_availability, a.read_availability);
      EXPECT_DOUBLE_EQ(row.write_availability, a.write_availability);
      EXPECT_DOUBLE_EQ(row.stale_read_probability, a.stale_read_probability);
    }
  }
}

TEST(QuorumMath, FiveNodeExerciseOneCallEach) {
  // (a) strong consistency: majority reads and writes.
  const QuorumChoice strong = minimum_quorum(5, ConsistencyGoal::Strong);
  EXPECT_TRUE(strong.feasible);
  EXPECT_EQ(strong.w, 3);
  EXPECT_EQ(strong.r, 3);
  // (b) eventual consistency: one node each.
  const QuorumChoice eventual = minimum_quorum(5, ConsistencyGoal::Eventual);
  EXPECT_TRUE(eventual.feasible);
  EXPECT_EQ(eventual.w, 1);
  EXPECT_EQ(eventual.r, 1);
  // (c) one node permanently down: 3 + 3 > 5 still fits in the 4 live nodes.
  const QuorumChoice one_down = minimum_quorum(5, ConsistencyGoal::Strong, 1);
  EXPECT_TRUE(one_down.feasible);
  EXPECT_EQ(one_down.w, 3);
  EXPECT_EQ(one_down.r, 3);
  // Three of five down: no overlapping quorums fit in two live nodes.
  const QuorumChoice three_down = minimum_quorum(5, ConsistencyGoal::Strong, 3);
  EXPECT_FALSE(three_down.feasible);
  EXPECT_FALSE(three_down.reason.empty());
}

TEST(QuorumMath, MinimumQuorumAgainstBruteForce) {
  for (int n = 1; n <= 9; ++n) {
    for (int f = 0; f <= n; ++f) {
      int best_sum = std::numeric_limits<int>::max();
      for (int w = 1; w <= n - f; ++w) {
        for (int r = 1; r <= n - f; ++r) {
          if (w + r > n) best_sum = std::min(best_sum, w + r);
        }
      }
      const QuorumChoice c = minimum_quorum(n, ConsistencyGoal::Strong, f);
      SCOPED_TRACE("n=" + std::to_string(n) + " f=" + std::to_string(f));
      EXPECT_EQ(c.feasible, best_sum != std::numeric_limits<int>::max());
      if (c.feasible) {
        EXPECT_EQ(c.w + c.r, best_sum);
        EXPECT_TRUE(is_strong_quorum(n, c.w, c.r));
        EXPECT_LE(c.w, n - f);
        EXPECT_LE(c.r, n - f);
        EXPECT_GE(c.w, c.r);
        EXPECT_FALSE(writes_may_conflict(n, c.w));
      }
    }
  }
}

TEST(QuorumMath, LargeNAvailabilityIsAProbability) {
  const double a = at_least_k_up_probability(1024, 513, 0.5);
  EXPECT_GT(a, 0.45);
  EXPECT_LT(a, 0.5);
  EXPECT_NEAR(at_least_k_up_probability(1024, 1, 0.999), 1.0, 1e-15);
  EXPECT_NEAR(at_least_k_up_probability(1024, 1024, 0.999), std::pow(0.999, 1024), 1e-12);
}

TEST(QuorumMath, BadInputNamesTheArgument) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  expect_invalid("n", [] { is_strong_quorum(0, 1, 1); });
  expect_invalid("n", [] { quorum_table(0); });
  expect_invalid("n", [] { quorum_table(kQuorumTableMaxNodes + 1); });
  expect_invalid("n", [] { analyze_quorum(-3, 1, 1); });
  expect_invalid("w", [] { is_strong_quorum(3, 4, 1); });
  expect_invalid("w", [] { writes_may_conflict(3, 0); });
  expect_invalid("r", [] { is_strong_quorum(3, 1, 4); });
  expect_invalid("r", [] { read_fault_tolerance(3, 0); });
  expect_invalid("p_up", [] { analyze_quorum(3, 2, 2, -0.1); });
  expect_invalid("p_up", [] { analyze_quorum(3, 2, 2, 1.5); });
  expect_invalid("p_up", [&] { read_availability(3, 2, nan); });
  expect_invalid("p_up", [&] { quorum_table(3, nan); });
  expect_invalid("k", [] { at_least_k_up_probability(3, 4, 0.5); });
  expect_invalid("failed_nodes", [] { minimum_quorum(5, ConsistencyGoal::Strong, 6); });
  expect_invalid("failed_nodes", [] { minimum_quorum(5, ConsistencyGoal::Strong, -1); });
}

}  // namespace
