#include "replikit/quorum.hpp"

#include <cmath>
#include <string>

#include "replikit/errors.hpp"

namespace replikit {

namespace {

void require_n(int n) {
  require(n >= 1, "n", "must be at least 1, got " + std::to_string(n));
  require(n <= kQuorumMaxNodes, "n",
          "must be at most " + std::to_string(kQuorumMaxNodes) + ", got " + std::to_string(n));
}

void require_size(int value, int n, const char* argument) {
  require(value >= 1 && value <= n, argument,
          "must be in [1, n=" + std::to_string(n) + "], got " + std::to_string(value));
}

void require_probability(double p, const char* argument) {
  // Written so that NaN fails too.
  require(p >= 0.0 && p <= 1.0, argument, "must be a probability in [0, 1]");
}

}  // namespace

void validate_quorum(int n, int w, int r) {
  require_n(n);
  require_size(w, n, "w");
  require_size(r, n, "r");
}

bool is_strong_quorum(int n, int w, int r) {
  validate_quorum(n, w, r);
  return w + r > n;
}

bool writes_may_conflict(int n, int w) {
  require_n(n);
  require_size(w, n, "w");
  return 2 * w <= n;
}

int read_fault_tolerance(int n, int r) {
  require_n(n);
  require_size(r, n, "r");
  return n - r;
}

int write_fault_tolerance(int n, int w) {
  require_n(n);
  require_size(w, n, "w");
  return n - w;
}

double at_least_k_up_probability(int n, int k, double p_up) {
  require_n(n);
  require(k >= 0 && k <= n, "k", "must be in [0, n=" + std::to_string(n) + "], got " + std::to_string(k));
  require_probability(p_up, "p_up");
  if (k == 0) return 1.0;
  if (p_up == 0.0) return 0.0;
  if (p_up == 1.0) return 1.0;
  // Sum the binomial terms in log space: C(n, i) p^i q^(n-i) underflows as plain products
  // for large n, and the log of C(n, i) is built incrementally to stay exact enough.
  const double log_p = std::log(p_up);
  const double log_q = std::log1p(-p_up);
  double log_choose = 0.0;  // log C(n, 0)
  double tail = 0.0;
  double lower = 0.0;
  for (int i = 0; i <= n; ++i) {
    if (i > 0) log_choose += std::log(static_cast<double>(n - i + 1)) - std::log(static_cast<double>(i));
    const double term = std::exp(log_choose + i * log_p + (n - i) * log_q);
    if (i >= k) {
      tail += term;
    } else {
      lower += term;
    }
  }
  // Return the smaller side directly and complement the larger one, which keeps the
  // relative error small at both ends.
  const double result = tail <= lower ? tail : 1.0 - lower;
  return result < 0.0 ? 0.0 : (result > 1.0 ? 1.0 : result);
}

double read_availability(int n, int r, double p_up) {
  require_n(n);
  require_size(r, n, "r");
  return at_least_k_up_probability(n, r, p_up);
}

double write_availability(int n, int w, double p_up) {
  require_n(n);
  require_size(w, n, "w");
  return at_least_k_up_probability(n, w, p_up);
}

double stale_read_probability(int n, int w, int r) {
  validate_quorum(n, w, r);
  if (r > n - w) return 0.0;
  // C(N-W, R) / C(N, R) = prod_{i<R} (N-W-i) / (N-i): no large intermediate values.
  double p = 1.0;
  for (int i = 0; i < r; ++i) p *= static_cast<double>(n - w - i) / static_cast<double>(n - i);
  return p;
}

namespace {

QuorumAnalysis analyze_unchecked(int n, int w, int r, double p_up, const std::vector<double>& at_least) {
  QuorumAnalysis a;
  a.n = n;
  a.w = w;
  a.r = r;
  a.strong = w + r > n;
  a.writes_may_conflict = 2 * w <= n;
  a.read_fault_tolerance = n - r;
  a.write_fault_tolerance = n - w;
  a.p_up = p_up;
  a.read_availability = at_least[static_cast<std::size_t>(r)];
  a.write_availability = at_least[static_cast<std::size_t>(w)];
  a.stale_read_probability = stale_read_probability(n, w, r);
  return a;
}

std::vector<double> availability_by_k(int n, double p_up) {
  std::vector<double> at_least(static_cast<std::size_t>(n) + 1);
  for (int k = 0; k <= n; ++k) at_least[static_cast<std::size_t>(k)] = at_least_k_up_probability(n, k, p_up);
  return at_least;
}

}  // namespace

QuorumAnalysis analyze_quorum(int n, int w, int r, double p_up) {
  validate_quorum(n, w, r);
  require_probability(p_up, "p_up");
  std::vector<double> at_least(static_cast<std::size_t>(n) + 1, 0.0);
  at_least[static_cast<std::size_t>(w)] = at_least_k_up_probability(n, w, p_up);
  at_least[static_cast<std::size_t>(r)] = at_least_k_up_probability(n, r, p_up);
  return analyze_unchecked(n, w, r, p_up, at_least);
}

std::vector<QuorumAnalysis> quorum_table(int n, double p_up) {
  require_n(n);
  require(n <= kQuorumTableMaxNodes, "n",
          "quorum_table accepts at most " + std::to_string(kQuorumTableMaxNodes) + " nodes, got " +
              std::to_string(n));
  require_probability(p_up, "p_up");
  // The binomial tails depend only on k, so compute them once: O(N^2) instead of O(N^3).
  const std::vector<double> at_least = availability_by_k(n, p_up);
  std::vector<QuorumAnalysis> rows;
  rows.reserve(static_cast<std::size_t>(n) * static_cast<std::size_t>(n));
  for (int w = 1; w <= n; ++w) {
    for (int r = 1; r <= n; ++r) rows.push_back(analyze_unchecked(n, w, r, p_up, at_least));
  }
  return rows;
}

QuorumChoice minimum_quorum(int n, ConsistencyGoal goal, int failed_nodes) {
  require_n(n);
  require(failed_nodes >= 0 && failed_nodes <= n, "failed_nodes",
          "must be in [0, n=" + std::to_string(n) + "], got " + std::to_string(failed_nodes));
  require(goal == ConsistencyGoal::Strong || goal == ConsistencyGoal::Eventual, "goal", "unknown goal");
  QuorumChoice choice;
  choice.n = n;
  choice.failed_nodes = failed_nodes;
  const int live = n - failed_nodes;
  if (live < 1) {
    choice.reason = "no live node is left to read or write";
    return choice;
  }
  if (goal == ConsistencyGoal::Eventual) {
    choice.feasible = true;
    choice.w = 1;
    choice.r = 1;
    return choice;
  }
  // W + R = N + 1 is the least total that overlaps; the balanced split with W >= R gives
  // W = floor(N/2) + 1, a write majority, so concurrent writes cannot both succeed.
  const int w = n / 2 + 1;
  const int r = n + 1 - w;
  if (w > live) {
    choice.reason = "strong consistency needs W + R > N with W, R <= live nodes; " + std::to_string(live) +
                    " live of " + std::to_string(n) + " cannot hold a write majority of " + std::to_string(w);
    return choice;
  }
  choice.feasible = true;
  choice.w = w;
  choice.r = r;
  return choice;
}

}  // namespace replikit
