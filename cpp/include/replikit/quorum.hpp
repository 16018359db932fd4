#pragma once
/// \file quorum.hpp
/// N/W/R quorum arithmetic for leaderless (Dynamo-style) replication: overlap, conflicting
/// writes, fault tolerance, exact availability when each node is up with probability p,
/// the smallest quorums for a consistency goal, and the whole (W, R) table for one N.

#include <cstdint>
#include <string>
#include <vector>

namespace replikit {

/// Largest N the quorum functions accept (the table for N has N*N rows).
inline constexpr int kQuorumMaxNodes = 1024;

/// Throws InvalidArgument naming `n`, `w` or `r` unless 1 <= w, r <= n <= kQuorumMaxNodes.
void validate_quorum(int n, int w, int r);

/// True when every read quorum meets every write quorum (W + R > N).
bool is_strong_quorum(int n, int w, int r);

/// True when two concurrent writes can both succeed on disjoint replica sets (2W <= N).
bool writes_may_conflict(int n, int w);

/// How many failed nodes a read (R of N) tolerates: N - R.
int read_fault_tolerance(int n, int r);

/// How many failed nodes a write (W of N) tolerates: N - W.
int write_fault_tolerance(int n, int w);

/// P(at least k of n nodes are up) when each is up independently with probability p_up (exact binomial tail).
double at_least_k_up_probability(int n, int k, double p_up);

/// Probability that a read quorum of R can be formed among N nodes each up with probability p_up.
double read_availability(int n, int r, double p_up);

/// Probability that a write quorum of W can be formed among N nodes each up with probability p_up.
double write_availability(int n, int w, double p_up);

/// Probability that a read of R random replicas misses a write on W random replicas: C(N-W,R)/C(N,R).
double stale_read_probability(int n, int w, int r);

/// Everything the quorum math says about one (N, W, R) for nodes up with probability p_up.
struct QuorumAnalysis {
  int n = 0;
  int w = 0;
  int r = 0;
  bool strong = false;               ///< W + R > N
  bool writes_may_conflict = false;  ///< 2W <= N
  int read_fault_tolerance = 0;      ///< N - R failed nodes
  int write_fault_tolerance = 0;     ///< N - W failed nodes
  double p_up = 0;                   ///< per-node probability of being up
  double read_availability = 0;      ///< P(at least R up)
  double write_availability = 0;     ///< P(at least W up)
  double stale_read_probability = 0; ///< C(N-W,R)/C(N,R), random static quorums
};

/// The analysis of one configuration.
QuorumAnalysis analyze_quorum(int n, int w, int r, double p_up = 0.99);

/// Every (W, R) for one N, W-major then R, as N*N rows (N <= kQuorumTableMaxNodes).
std::vector<QuorumAnalysis> quorum_table(int n, double p_up = 0.99);

/// Largest N quorum_table accepts (65536 rows).
inline constexpr int kQuorumTableMaxNodes = 256;

/// The consistency a caller asks minimum_quorum for.
enum class ConsistencyGoal { Strong, Eventual };

/// The answer of minimum_quorum: a (W, R) or, when none exists, why.
struct QuorumChoice {
  bool feasible = false;
  int n = 0;
  int failed_nodes = 0;
  int w = 0;
  int r = 0;
  std::string reason;  ///< empty when feasible
};

/// Smallest W and R for `goal` with `failed_nodes` of N permanently down: minimal W + R, then
/// most balanced with W >= R (so writes do not conflict when possible); both must fit in
/// the N - failed_nodes live nodes.
QuorumChoice minimum_quorum(int n, ConsistencyGoal goal, int failed_nodes = 0);

}  // namespace replikit
