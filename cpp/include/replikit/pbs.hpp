#pragma once
/// \file pbs.hpp
/// Probabilistically Bounded Staleness (Bailis et al., VLDB 2012): k-staleness in closed
/// form and t-visibility by Monte Carlo over the WARS model (W: write request delay,
/// A: write acknowledgement delay, R: read request delay, S: read response delay), with
/// pluggable one-way latency distributions. Seeded and reproducible; no wall clock.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace replikit {

/// Largest N the WARS simulation accepts.
inline constexpr int kPbsMaxNodes = 64;
/// Largest trial count one call accepts (about eight minutes of one core at 20M trials/s).
inline constexpr std::uint64_t kPbsMaxTrials = 10'000'000'000ull;
/// Largest number of trials kept to estimate one quantile (80 MB of doubles).
inline constexpr std::uint64_t kPbsMaxKeptSamples = 10'000'000ull;
/// Largest number of samples an empirical distribution keeps.
inline constexpr std::size_t kLatencyMaxSamples = 50'000'000;
/// Largest number of components of one mixture.
inline constexpr std::size_t kLatencyMaxComponents = 64;
/// YMMR's default write Pareto shape: the authors' simulator's value (the fits table says 3.35).
inline constexpr double kYmmrWriteParetoShape = 3.5;

/// The kinds of one-way latency distribution.
enum class LatencyKind { Constant, Exponential, Pareto, Empirical, Mixture };

/// A one-way message latency distribution in milliseconds (immutable value).
class LatencyDistribution {
 public:
  /// Always `value_ms` (>= 0).
  static LatencyDistribution constant(double value_ms);
  /// Exponential with rate `rate_per_ms` (> 0; mean 1/rate).
  static LatencyDistribution exponential(double rate_per_ms);
  /// Pareto with minimum `scale_ms` (> 0) and tail index `shape` (> 0).
  static LatencyDistribution pareto(double scale_ms, double shape);
  /// Resampling of measured latencies (non-empty, finite, >= 0).
  static LatencyDistribution empirical(std::vector<double> samples_ms);
  /// `components[i]` with probability weights[i] / sum(weights) (weights >= 0, sum > 0).
  static LatencyDistribution mixture(const std::vector<double>& weights,
                                     const std::vector<LatencyDistribution>& components);

  /// Which kind this is.
  LatencyKind kind() const { return kind_; }
  /// The value of a Constant.
  double value_ms() const { return a_; }
  /// The rate of an Exponential.
  double rate_per_ms() const { return a_; }
  /// The minimum of a Pareto.
  double scale_ms() const { return a_; }
  /// The tail index of a Pareto.
  double shape() const { return b_; }
  /// The sorted samples of an Empirical.
  const std::vector<double>& samples_ms() const;
  /// The normalised weights of a Mixture.
  const std::vector<double>& weights() const { return weights_; }
  /// The components of a Mixture.
  const std::vector<LatencyDistribution>& components() const { return components_; }

  /// P(X > x_ms).
  double survival(double x_ms) const;
  /// P(X <= x_ms).
  double cdf(double x_ms) const { return 1.0 - survival(x_ms); }
  /// The smallest x with P(X <= x) >= q, for q in [0, 1] (q = 1 gives the largest finite value reached).
  double quantile(double q) const;
  /// The smallest x with P(X > x) <= v, v in (0, 1]: the quantile 1 - v without cancellation.
  double upper_quantile(double v) const;
  /// The mean (infinite for a Pareto with shape <= 1).
  double mean_ms() const;
  /// A short human-readable description.
  std::string describe() const;
  /// Same kind and parameters (empirical: the same sample set object).
  bool same_as(const LatencyDistribution& other) const;

 private:
  LatencyDistribution() = default;
  LatencyKind kind_ = LatencyKind::Constant;
  double a_ = 0;
  double b_ = 0;
  std::shared_ptr<const std::vector<double>> samples_;
  std::vector<double> weights_;
  std::vector<LatencyDistribution> components_;
};

/// The four WARS distributions of one-way delays between a coordinator and each replica.
struct WarsModel {
  LatencyDistribution w;  ///< write request, coordinator -> replica
  LatencyDistribution a;  ///< write acknowledgement, replica -> coordinator
  LatencyDistribution r;  ///< read request, coordinator -> replica
  LatencyDistribution s;  ///< read response, replica -> coordinator

  /// The same distribution for all four delays.
  static WarsModel uniform(const LatencyDistribution& d) { return WarsModel{d, d, d, d}; }
  /// LinkedIn Voldemort on SSDs (paper's LNKD-SSD fit: W=A=R=S).
  static WarsModel lnkd_ssd();
  /// LinkedIn Voldemort on spinning disks (LNKD-DISK: W from the disk fit, A=R=S as LNKD-SSD).
  static WarsModel lnkd_disk();
  /// Yammer Riak (YMMR: W from the write fit, A=R=S from the read fit). The write Pareto
  /// shape defaults to 3.5, the value in the authors' published simulator, which reproduces
  /// the published YMMR figures; the paper's fits table gives 3.35 (pass it to use that).
  static WarsModel ymmr(double write_pareto_shape = kYmmrWriteParetoShape);
};

/// Probability that a read of R random replicas misses all of the last k writes, each to W
/// random replicas (non-expanding quorums): (C(N-W,R)/C(N,R))^k.
double k_staleness_probability(int n, int w, int r, int k);

/// Probability that a read returns one of the last k versions: 1 - k_staleness_probability.
double k_consistency_probability(int n, int w, int r, int k);

/// Draws `count` (<= kPbsMaxKeptSamples) samples of `d` with the compiled sampler the WARS
/// simulation uses (an inverse-CDF table with constant relative resolution in the tail).
std::vector<double> sample_latency(const LatencyDistribution& d, std::uint64_t count, std::uint64_t seed);

/// Quantiles of operation latency in one WARS run.
struct OperationLatency {
  double read_ms = 0;   ///< R-th fastest read response
  double write_ms = 0;  ///< W-th fastest write acknowledgement
};

/// A compiled, immutable WARS Monte Carlo simulation for one (N, W, R, model).
/// Each trial draws N samples each of W, A, R, S; the write commits at the W-th fastest
/// W[i]+A[i]; the read goes to all replicas t ms later and returns at the R-th fastest
/// R[i]+S[i]; it is consistent when one of those R replicas had the write when the read
/// request arrived: W[i] <= commit + t + R[i].
class WarsSimulation {
 public:
  /// Validates n, w, r (1 <= w, r <= n <= kPbsMaxNodes) and compiles the samplers.
  WarsSimulation(int n, int w, int r, const WarsModel& model);
  ~WarsSimulation();
  WarsSimulation(const WarsSimulation&) = delete;
  WarsSimulation& operator=(const WarsSimulation&) = delete;

  /// N.
  int n() const { return n_; }
  /// W.
  int w() const { return w_; }
  /// R.
  int r() const { return r_; }

  /// P(consistent read) at each of `times_ms` (>= 0, finite) after commit, from `trials` trials.
  std::vector<double> consistency_probability(const std::vector<double>& times_ms, std::uint64_t trials,
                                              std::uint64_t seed) const;
  /// The smallest t >= 0 (ms after commit) with P(consistent) >= p, estimated from `trials` trials.
  double t_visibility_ms(double p, std::uint64_t trials, std::uint64_t seed) const;
  /// The p-quantile of read and write latency (e.g. p = 0.999), from `trials` trials.
  OperationLatency operation_latency_ms(double p, std::uint64_t trials, std::uint64_t seed) const;
  /// The raw per-trial staleness margins min_i (W[i] - commit - R[i]) over the R read
  /// replicas; a read t ms after commit is consistent iff margin <= t (trials <= kPbsMaxKeptSamples).
  std::vector<double> staleness_margins_ms(std::uint64_t trials, std::uint64_t seed) const;

  struct Sampler;  // compiled sampler (defined in cpp/src/pbs_sampler.hpp)

 private:
  int n_, w_, r_;
  std::array<std::shared_ptr<const Sampler>, 4> samplers_;  // W, A, R, S (shared when equal)
};

}  // namespace replikit
