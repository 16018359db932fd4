#include "replikit/pbs.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <queue>
#include <sstream>
#include <string>

#include "replikit/errors.hpp"
#include "replikit/quorum.hpp"
#include "replikit/random.hpp"

#include "pbs_sampler.hpp"

namespace replikit {

// ------------------------------------------------------------------ distributions

namespace {

void require_finite(double v, const char* argument) {
  require(std::isfinite(v), argument, "must be a finite number");
}

}  // namespace

LatencyDistribution LatencyDistribution::constant(double value_ms) {
  require_finite(value_ms, "value_ms");
  require(value_ms >= 0, "value_ms", "a latency must not be negative");
  LatencyDistribution d;
  d.kind_ = LatencyKind::Constant;
  d.a_ = value_ms;
  return d;
}

LatencyDistribution LatencyDistribution::exponential(double rate_per_ms) {
  require_finite(rate_per_ms, "rate_per_ms");
  require(rate_per_ms > 0, "rate_per_ms", "must be positive");
  LatencyDistribution d;
  d.kind_ = LatencyKind::Exponential;
  d.a_ = rate_per_ms;
  return d;
}

LatencyDistribution LatencyDistribution::pareto(double scale_ms, double shape) {
  require_finite(scale_ms, "scale_ms");
  require(scale_ms > 0, "scale_ms", "must be positive");
  require_finite(shape, "shape");
  require(shape > 0, "shape", "must be positive");
  LatencyDistribution d;
  d.kind_ = LatencyKind::Pareto;
  d.a_ = scale_ms;
  d.b_ = shape;
  return d;
}

LatencyDistribution LatencyDistribution::empirical(std::vector<double> samples_ms) {
  require(!samples_ms.empty(), "samples_ms", "must not be empty");
  require(samples_ms.size() <= kLatencyMaxSamples, "samples_ms",
          "at most " + std::to_string(kLatencyMaxSamples) + " samples are accepted");
  for (double v : samples_ms) {
    require_finite(v, "samples_ms");
    require(v >= 0, "samples_ms", "latencies must not be negative");
  }
  std::sort(samples_ms.begin(), samples_ms.end());
  LatencyDistribution d;
  d.kind_ = LatencyKind::Empirical;
  d.samples_ = std::make_shared<const std::vector<double>>(std::move(samples_ms));
  return d;
}

LatencyDistribution LatencyDistribution::mixture(const std::vector<double>& weights,
                                                 const std::vector<LatencyDistribution>& components) {
  require(!components.empty(), "components", "must not be empty");
  require(components.size() <= kLatencyMaxComponents, "components",
          "at most " + std::to_string(kLatencyMaxComponents) + " components are accepted");
  require(weights.size() == components.size(), "weights",
          "needs one weight per component (" + std::to_string(components.size()) + "), got " +
              std::to_string(weights.size()));
  double total = 0;
  for (double w : weights) {
    require_finite(w, "weights");
    require(w >= 0, "weights", "must not be negative");
    total += w;
  }
  require(total > 0 && std::isfinite(total), "weights", "must have a positive, finite sum");
  LatencyDistribution d;
  d.kind_ = LatencyKind::Mixture;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] == 0) continue;  // a zero-weight component can never be drawn
    d.weights_.push_back(weights[i] / total);
    d.components_.push_back(components[i]);
  }
  return d;
}

const std::vector<double>& LatencyDistribution::samples_ms() const {
  static const std::vector<double> kNone;
  return samples_ ? *samples_ : kNone;
}

double LatencyDistribution::survival(double x_ms) const {
  require(!std::isnan(x_ms), "x_ms", "must not be NaN");
  switch (kind_) {
    case LatencyKind::Constant:
      return x_ms < a_ ? 1.0 : 0.0;
    case LatencyKind::Exponential:
      return x_ms <= 0 ? 1.0 : std::exp(-a_ * x_ms);
    case LatencyKind::Pareto:
      return x_ms < a_ ? 1.0 : std::pow(a_ / x_ms, b_);
    case LatencyKind::Empirical: {
      const auto& s = *samples_;
      const auto above = s.end() - std::upper_bound(s.begin(), s.end(), x_ms);
      return static_cast<double>(above) / static_cast<double>(s.size());
    }
    case LatencyKind::Mixture: {
      double total = 0;
      for (std::size_t i = 0; i < components_.size(); ++i) total += weights_[i] * components_[i].survival(x_ms);
      return total;
    }
  }
  return 0.0;
}

double LatencyDistribution::upper_quantile(double v) const {
  require(v > 0 && v <= 1, "v", "must be in (0, 1]");
  switch (kind_) {
    case LatencyKind::Constant:
      return a_;
    case LatencyKind::Exponential:
      return -std::log(v) / a_;
    case LatencyKind::Pareto:
      return a_ * std::pow(v, -1.0 / b_);
    case LatencyKind::Empirical: {
      const auto& s = *samples_;
      const double n = static_cast<double>(s.size());
      const double above = std::floor(v * n);  // at most this many samples may lie above x
      const double index = std::max(0.0, n - 1.0 - above);
      return s[static_cast<std::size_t>(index)];
    }
    case LatencyKind::Mixture: {
      // The mixture's quantile lies between the smallest and largest component quantile at
      // the same tail mass; bisect on the survival function (not the CDF) so that tail
      // masses near 2^-53 keep their precision.
      double lo = std::numeric_limits<double>::infinity();
      double hi = 0;
      for (const auto& c : components_) {
        const double q = c.upper_quantile(v);
        lo = std::min(lo, q);
        hi = std::max(hi, q);
      }
      if (survival(lo) <= v) return lo;
      for (int i = 0; i < 200 && hi - lo > 1e-13 * hi; ++i) {  // bounded: halves each step
        const double mid = lo + (hi - lo) / 2;
        if (mid <= lo || mid >= hi) break;
        if (survival(mid) <= v) {
          hi = mid;
        } else {
          lo = mid;
        }
      }
      return hi;
    }
  }
  return 0.0;
}

double LatencyDistribution::quantile(double q) const {
  require(q >= 0 && q <= 1, "q", "must be in [0, 1]");
  return upper_quantile(std::max(1.0 - q, 0x1.0p-53));
}

double LatencyDistribution::mean_ms() const {
  switch (kind_) {
    case LatencyKind::Constant:
      return a_;
    case LatencyKind::Exponential:
      return 1.0 / a_;
    case LatencyKind::Pareto:
      return b_ > 1 ? b_ * a_ / (b_ - 1) : std::numeric_limits<double>::infinity();
    case LatencyKind::Empirical: {
      const auto& s = *samples_;
      return std::accumulate(s.begin(), s.end(), 0.0) / static_cast<double>(s.size());
    }
    case LatencyKind::Mixture: {
      double total = 0;
      for (std::size_t i = 0; i < components_.size(); ++i) total += weights_[i] * components_[i].mean_ms();
      return total;
    }
  }
  return 0.0;
}

std::string LatencyDistribution::describe() const {
  std::ostringstream out;
  switch (kind_) {
    case LatencyKind::Constant:
      out << "Constant(value_ms=" << a_ << ")";
      break;
    case LatencyKind::Exponential:
      out << "Exponential(rate_per_ms=" << a_ << ")";
      break;
    case LatencyKind::Pareto:
      out << "Pareto(scale_ms=" << a_ << ", shape=" << b_ << ")";
      break;
    case LatencyKind::Empirical:
      out << "Empirical(" << samples_->size() << " samples)";
      break;
    case LatencyKind::Mixture:
      out << "Mixture(";
      for (std::size_t i = 0; i < components_.size(); ++i) {
        if (i) out << ", ";
        out << weights_[i] << ": " << components_[i].describe();
      }
      out << ")";
      break;
  }
  return out.str();
}

bool LatencyDistribution::same_as(const LatencyDistribution& other) const {
  if (kind_ != other.kind_ || a_ != other.a_ || b_ != other.b_) return false;
  if (kind_ == LatencyKind::Empirical) return samples_ == other.samples_;
  if (weights_ != other.weights_ || components_.size() != other.components_.size()) return false;
  for (std::size_t i = 0; i < components_.size(); ++i) {
    if (!components_[i].same_as(other.components_[i])) return false;
  }
  return true;
}

// Fits published in the PBS paper (Bailis et al., VLDB 2012, table of production fits;
// same table in the CACM 2014 version): Pareto bodies with exponential tails, in ms.
WarsModel WarsModel::lnkd_ssd() {
  const auto d = LatencyDistribution::mixture(
      {0.9122, 0.0878}, {LatencyDistribution::pareto(0.235, 10.0), LatencyDistribution::exponential(1.66)});
  return uniform(d);
}

WarsModel WarsModel::lnkd_disk() {
  WarsModel m = lnkd_ssd();
  m.w = LatencyDistribution::mixture(
      {0.38, 0.62}, {LatencyDistribution::pareto(1.05, 1.51), LatencyDistribution::exponential(0.183)});
  return m;
}

WarsModel WarsModel::ymmr(double write_pareto_shape) {
  require(std::isfinite(write_pareto_shape) && write_pareto_shape > 0, "write_pareto_shape",
          "must be a positive finite number");
  const auto ars = LatencyDistribution::mixture(
      {0.982, 0.018}, {LatencyDistribution::pareto(1.5, 3.8), LatencyDistribution::exponential(0.0217)});
  WarsModel m = uniform(ars);
  m.w = LatencyDistribution::mixture(
      {0.939, 0.061}, {LatencyDistribution::pareto(3.0, write_pareto_shape), LatencyDistribution::exponential(0.0028)});
  return m;
}

// ------------------------------------------------------------------ k-staleness

double k_staleness_probability(int n, int w, int r, int k) {
  validate_quorum(n, w, r);
  require(k >= 1, "k", "must be at least 1, got " + std::to_string(k));
  return std::pow(stale_read_probability(n, w, r), k);
}

double k_consistency_probability(int n, int w, int r, int k) {
  return 1.0 - k_staleness_probability(n, w, r, k);
}

// ------------------------------------------------------------------ WARS simulation

WarsSimulation::WarsSimulation(int n, int w, int r, const WarsModel& model) : n_(n), w_(w), r_(r) {
  require(n >= 1 && n <= kPbsMaxNodes, "n",
          "must be in [1, " + std::to_string(kPbsMaxNodes) + "], got " + std::to_string(n));
  require(w >= 1 && w <= n, "w", "must be in [1, n=" + std::to_string(n) + "], got " + std::to_string(w));
  require(r >= 1 && r <= n, "r", "must be in [1, n=" + std::to_string(n) + "], got " + std::to_string(r));
  // Each sampler holds ~33 KB of tables per exponential or Pareto component; models often
  // repeat a distribution.
  const LatencyDistribution* ds[4] = {&model.w, &model.a, &model.r, &model.s};
  for (std::size_t i = 0; i < 4; ++i) {
    for (std::size_t j = 0; j < i && !samplers_[i]; ++j) {
      if (ds[i]->same_as(*ds[j])) samplers_[i] = samplers_[j];
    }
    if (!samplers_[i]) samplers_[i] = std::make_shared<const Sampler>(*ds[i]);
  }
}

WarsSimulation::~WarsSimulation() = default;

namespace {

void require_trials(std::uint64_t trials) {
  require(trials >= 1, "trials", "must be at least 1");
  require(trials <= kPbsMaxTrials, "trials",
          "must be at most " + std::to_string(kPbsMaxTrials) + " per call; split the run and vary the seed");
}

// Runs `trials` WARS trials and calls visit(margin_ms, read_latency_ms, write_latency_ms)
// for each. Templated so the visitor inlines into the loop; no allocation per trial.
template <class Visit>
void run_trials(int n, int w, int r, const WarsSimulation::Sampler& sw, const WarsSimulation::Sampler& sa,
                const WarsSimulation::Sampler& sr, const WarsSimulation::Sampler& ss, std::uint64_t trials,
                std::uint64_t seed, Visit&& visit) {
  Xoshiro256 rng(seed);
  std::array<double, kPbsMaxNodes> ws{}, wl{}, rs{}, rl{}, sorted{};
  std::array<int, kPbsMaxNodes> order{};
  const auto nn = static_cast<std::size_t>(n);
  for (std::uint64_t t = 0; t < trials; ++t) {
    for (std::size_t i = 0; i < nn; ++i) {
      ws[i] = sw.sample(rng);
      wl[i] = ws[i] + sa.sample(rng);
      rs[i] = sr.sample(rng);
      rl[i] = rs[i] + ss.sample(rng);
    }
    // Commit time: the W-th smallest write round trip.
    double commit;
    if (w == 1) {
      commit = wl[0];
      for (std::size_t i = 1; i < nn; ++i) commit = std::min(commit, wl[i]);
    } else {
      for (std::size_t i = 0; i < nn; ++i) {  // insertion sort: N is small
        double x = wl[i];
        std::size_t j = i;
        for (; j > 0 && sorted[j - 1] > x; --j) sorted[j] = sorted[j - 1];
        sorted[j] = x;
      }
      commit = sorted[static_cast<std::size_t>(w) - 1];
    }
    double margin;
    double read_latency;
    if (r == 1) {
      std::size_t best = 0;
      for (std::size_t i = 1; i < nn; ++i) {
        if (rl[i] < rl[best]) best = i;
      }
      margin = ws[best] - commit - rs[best];
      read_latency = rl[best];
    } else {
      for (std::size_t i = 0; i < nn; ++i) {  // indices ordered by read round trip (stable)
        std::size_t j = i;
        for (; j > 0 && rl[static_cast<std::size_t>(order[j - 1])] > rl[i]; --j) order[j] = order[j - 1];
        order[j] = static_cast<int>(i);
      }
      margin = std::numeric_limits<double>::infinity();
      for (std::size_t k = 0; k < static_cast<std::size_t>(r); ++k) {
        const auto i = static_cast<std::size_t>(order[k]);
        margin = std::min(margin, ws[i] - commit - rs[i]);
      }
      read_latency = rl[static_cast<std::size_t>(order[static_cast<std::size_t>(r) - 1])];
    }
    visit(margin, read_latency, commit);
  }
}

// Keeps the `keep` largest values seen, to read off a high quantile without storing all.
class TopValues {
 public:
  explicit TopValues(std::uint64_t keep) : keep_(keep) {}
  void add(double x) {
    if (heap_.size() < keep_) {
      heap_.push(x);
    } else if (x > heap_.top()) {
      heap_.pop();
      heap_.push(x);
    }
  }
  /// The smallest kept value: the keep-th largest overall.
  double smallest() const { return heap_.top(); }

 private:
  std::uint64_t keep_;
  std::priority_queue<double, std::vector<double>, std::greater<double>> heap_;
};

// Rank (1-based) of the empirical p-quantile: the smallest K with K / trials >= p.
std::uint64_t quantile_rank(double p, std::uint64_t trials) {
  const double x = p * static_cast<double>(trials);
  const double nearest = std::round(x);
  // p * trials is often meant to be an integer (0.999 * 1e6) and lands one ulp above it.
  double k = std::fabs(x - nearest) <= 1e-9 * std::max(1.0, x) ? nearest : std::ceil(x);
  k = std::max(1.0, std::min(k, static_cast<double>(trials)));
  return static_cast<std::uint64_t>(k);
}

std::uint64_t kept_for_quantile(double p, std::uint64_t trials) {
  const std::uint64_t keep = trials - quantile_rank(p, trials) + 1;
  require(keep <= kPbsMaxKeptSamples, "p",
          "this quantile needs " + std::to_string(keep) + " kept trials, more than the bound of " +
              std::to_string(kPbsMaxKeptSamples) + "; use fewer trials or a p closer to 1");
  return keep;
}

void require_quantile_p(double p) {
  require(p > 0 && p <= 1, "p", "must be a probability in (0, 1]");
}

}  // namespace

std::vector<double> WarsSimulation::consistency_probability(const std::vector<double>& times_ms,
                                                            std::uint64_t trials, std::uint64_t seed) const {
  require(!times_ms.empty(), "times_ms", "must not be empty");
  require(times_ms.size() <= 100000, "times_ms", "at most 100000 times per call");
  for (double t : times_ms) {
    require_finite(t, "times_ms");
    require(t >= 0, "times_ms", "times after commit must not be negative");
  }
  require_trials(trials);
  std::vector<double> sorted_times = times_ms;
  std::sort(sorted_times.begin(), sorted_times.end());
  // counts[k]: trials first consistent at sorted_times[k]; counts[size]: never within range.
  std::vector<std::uint64_t> counts(sorted_times.size() + 1, 0);
  const bool single = sorted_times.size() == 1;
  const double only = sorted_times.front();
  run_trials(n_, w_, r_, *samplers_[0], *samplers_[1], *samplers_[2], *samplers_[3], trials, seed,
             [&](double margin, double, double) {
               if (single) {
                 counts[margin <= only ? 0 : 1]++;
               } else {
                 const auto k = std::lower_bound(sorted_times.begin(), sorted_times.end(), margin) -
                                sorted_times.begin();
                 counts[static_cast<std::size_t>(k)]++;
               }
             });
  std::vector<double> cumulative(sorted_times.size());
  std::uint64_t running = 0;
  for (std::size_t k = 0; k < sorted_times.size(); ++k) {
    running += counts[k];
    cumulative[k] = static_cast<double>(running) / static_cast<double>(trials);
  }
  std::vector<double> result(times_ms.size());
  for (std::size_t i = 0; i < times_ms.size(); ++i) {
    const auto k = std::lower_bound(sorted_times.begin(), sorted_times.end(), times_ms[i]) - sorted_times.begin();
    result[i] = cumulative[static_cast<std::size_t>(k)];
  }
  return result;
}

double WarsSimulation::t_visibility_ms(double p, std::uint64_t trials, std::uint64_t seed) const {
  require_quantile_p(p);
  require_trials(trials);
  TopValues top(kept_for_quantile(p, trials));
  run_trials(n_, w_, r_, *samplers_[0], *samplers_[1], *samplers_[2], *samplers_[3], trials, seed,
             [&](double margin, double, double) { top.add(margin); });
  return std::max(0.0, top.smallest());
}

OperationLatency WarsSimulation::operation_latency_ms(double p, std::uint64_t trials, std::uint64_t seed) const {
  require_quantile_p(p);
  require_trials(trials);
  const std::uint64_t keep = kept_for_quantile(p, trials);
  TopValues reads(keep), writes(keep);
  run_trials(n_, w_, r_, *samplers_[0], *samplers_[1], *samplers_[2], *samplers_[3], trials, seed,
             [&](double, double read_ms, double write_ms) {
               reads.add(read_ms);
               writes.add(write_ms);
             });
  return OperationLatency{reads.smallest(), writes.smallest()};
}

std::vector<double> WarsSimulation::staleness_margins_ms(std::uint64_t trials, std::uint64_t seed) const {
  require_trials(trials);
  require(trials <= kPbsMaxKeptSamples, "trials",
          "at most " + std::to_string(kPbsMaxKeptSamples) + " margins are returned per call");
  std::vector<double> margins;
  margins.reserve(trials);
  run_trials(n_, w_, r_, *samplers_[0], *samplers_[1], *samplers_[2], *samplers_[3], trials, seed,
             [&](double margin, double, double) { margins.push_back(margin); });
  return margins;
}

}  // namespace replikit
