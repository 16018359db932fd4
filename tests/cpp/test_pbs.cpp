// PBS: closed-form k-staleness, the compiled samplers, and the WARS Monte Carlo against the
// figures published by Bailis et al.
//
// Source of the published figures and fits: the authors' LaTeX of the CACM 2014 version
// ("Quantifying Eventual Consistency with PBS", repository
// github.com/pbailis/paper-repo-cacm-pbs-research-highlight, pbs-cacm.tex, section
// "PBS in Action" and its latency/staleness table; the fits table is in graveyard.txt of
// the same repository). These are the VLDB 2012 paper's production results:
//   N=3, R=W=1, probability of a consistent read right after commit (t = 0):
//     LNKD-SSD 97.4 %, LNKD-DISK 43.9 % (92.5 % at t = 10 ms), YMMR 89.3 %.
//   t for a 99.9 % probability of a consistent read ("for 50,000 reads and writes"):
//     R=W=1:      LNKD-SSD 1.85 ms, LNKD-DISK 45.5 ms, YMMR 1364 ms
//     R=2, W=1:   LNKD-SSD 0 ms,    LNKD-DISK 13.6 ms, YMMR 202 ms
//   99.9th percentile latencies (1M trials), e.g. R=W=1 LNKD-SSD Lr = Lw = 0.66 ms,
//     LNKD-DISK Lw = 10.99 ms, YMMR Lr = 5.58 ms; R=2 reads: SSD/DISK 1.63, YMMR 32.6 ms.
// One discrepancy found: the fits table gives the YMMR write Pareto shape as 3.35, but the
// authors' Java simulator (class YammerDelayModel in a later version of Simulator.java,
// package ernst.simulator, than the one kept in pbailis/pbs-vldb-historical-paper-material)
// draws getNextPareto(3, 3.5). With 3.5 this model gives 89.29 % at t = 0
// (published 89.3 %); with 3.35 it gives 88.7 %. The YMMR checks below use 3.5.
// The paper also says it saw no staleness for LNKD-SSD with R=2, W=1 over 10M writes; this
// model gives about 0.06 % stale reads at t = 0 (still >= 99.9 %, so t = 0 as in the table).
// That remark is not reproduced and not tested.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>

#include "replikit/errors.hpp"
#include "replikit/pbs.hpp"

#include "testing.hpp"

namespace {

using namespace replikit;
using replikit::testing::expect_invalid;

std::uint64_t test_seed() { return replikit::testing::printed_seed("pbs", 20120827ull); }

TEST(PbsKStaleness, PaperClosedFormExamples) {
  // Section "PBS (K, p)-regular semantics": N=3, R=W=1 -> stale 2/3; within 2 versions
  // 0.5 recurring; 3 -> 0.703 recurring; 5 -> > 0.868; 10 -> > 0.98.
  EXPECT_NEAR(k_staleness_probability(3, 1, 1, 1), 2.0 / 3.0, 1e-15);
  EXPECT_NEAR(k_consistency_probability(3, 1, 1, 2), 5.0 / 9.0, 1e-15);
  EXPECT_NEAR(k_consistency_probability(3, 1, 1, 3), 19.0 / 27.0, 1e-15);
  EXPECT_GT(k_consistency_probability(3, 1, 1, 5), 0.868);
  EXPECT_GT(k_consistency_probability(3, 1, 1, 10), 0.98);
  // N=3, R=1, W=2: k=1 -> 0.6 recurring, k=2 -> 0.8 recurring, k=5 -> > 0.995.
  EXPECT_NEAR(k_consistency_probability(3, 2, 1, 1), 2.0 / 3.0, 1e-15);
  EXPECT_NEAR(k_consistency_probability(3, 2, 1, 2), 8.0 / 9.0, 1e-15);
  EXPECT_GT(k_consistency_probability(3, 2, 1, 5), 0.995);
  // N=100, R=W=30: p_s = 1.88e-6.
  EXPECT_NEAR(k_staleness_probability(100, 30, 30, 1), 1.88e-6, 0.005e-6);
  // Strict quorums are never stale.
  EXPECT_EQ(k_staleness_probability(5, 3, 3, 1), 0.0);
}

// Kolmogorov distance between the compiled sampler and the exact CDF: with m samples the
// statistic exceeds 1.95/sqrt(m) with probability ~0.1 %, so 2.5/sqrt(m) is a safe bound.
void expect_sampler_matches(const LatencyDistribution& d, std::uint64_t seed) {
  const std::uint64_t m = 200000;
  std::vector<double> xs = sample_latency(d, m, seed);
  std::sort(xs.begin(), xs.end());
  double worst = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double f = d.cdf(xs[i]);
    worst = std::max({worst, std::fabs(f - static_cast<double>(i) / m), std::fabs(f - static_cast<double>(i + 1) / m)});
  }
  EXPECT_LT(worst, 2.5 / std::sqrt(static_cast<double>(m))) << d.describe();
  for (double x : xs) ASSERT_GE(x, 0.0);
}

TEST(PbsSampler, MatchesExactDistribution) {
  const std::uint64_t seed = test_seed();
  expect_sampler_matches(LatencyDistribution::exponential(0.183), seed);
  expect_sampler_matches(LatencyDistribution::pareto(1.05, 1.51), seed + 1);
  expect_sampler_matches(WarsModel::lnkd_disk().w, seed + 2);
  expect_sampler_matches(WarsModel::ymmr().w, seed + 3);
}

TEST(PbsSampler, TailQuantilesAreAccurate) {
  // The table keeps constant relative resolution in the tail: compare the fraction of
  // samples above exact far-tail quantiles with the nominal tail mass.
  const auto d = WarsModel::lnkd_disk().w;
  const std::uint64_t m = 4000000;
  const auto xs = sample_latency(d, m, test_seed());
  for (double tail : {1e-2, 1e-3, 1e-4}) {
    const double q = d.upper_quantile(tail);
    const double above = static_cast<double>(std::count_if(xs.begin(), xs.end(), [&](double x) { return x > q; }));
    const double sd = std::sqrt(tail * (1 - tail) * m);
    EXPECT_NEAR(above, tail * m, 5 * sd) << "tail " << tail;
  }
}

// Mass below x: the fraction of samples strictly below x against cdf(x) (the CDF of a
// distribution with atoms is right-continuous, so P(X < x) is the CDF just left of x; the
// points below avoid atoms). Allow 5 binomial standard errors, with the variance floored
// at one sample so that a mass of 0 still tolerates nothing but chance.
void expect_mass_below_matches(const LatencyDistribution& d, const std::vector<double>& xs_ms,
                               std::uint64_t seed) {
  const std::uint64_t m = 4000000;
  const auto xs = sample_latency(d, m, seed);
  const double lowest = *std::min_element(xs.begin(), xs.end());
  EXPECT_GE(lowest, d.quantile(0.0)) << d.describe() << ": a sample below the minimum";
  const double md = static_cast<double>(m);
  for (double x : xs_ms) {
    const double below = static_cast<double>(std::count_if(xs.begin(), xs.end(), [&](double v) { return v < x; })) / md;
    const double p = d.cdf(x);
    const double se = std::sqrt(std::max(p * (1 - p), 1.0 / md) / md);
    EXPECT_NEAR(below, p, 5 * se) << d.describe() << " below " << x << " ms";
  }
}

// Points just above each minimum and bound, and at quantiles from the body to the tail.
std::vector<double> probe_points(const LatencyDistribution& d, std::vector<double> extra) {
  for (double q : {1e-4, 1e-3, 1e-2, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999}) extra.push_back(d.quantile(q));
  return extra;
}

TEST(PbsSampler, MassBelowQuantilesMatchesTheCdf) {
  // The old table interpolated linearly across its lowest cell, which straddles a Pareto's
  // scale inside a mixture: YMMR's A put 0.0039 below 1.5 ms where the CDF says 0.00058.
  const std::uint64_t seed = test_seed();
  const auto ymmr = WarsModel::ymmr();
  expect_mass_below_matches(ymmr.a, probe_points(ymmr.a, {0.5, 1.0, 1.5, 1.5 * (1 + 1e-9), 1.6}), seed);
  expect_mass_below_matches(ymmr.w, probe_points(ymmr.w, {1.0, 3.0, 3.0 * (1 + 1e-9), 3.1}), seed + 1);
  const auto disk = WarsModel::lnkd_disk();
  expect_mass_below_matches(disk.w, probe_points(disk.w, {0.5, 1.05, 1.06}), seed + 2);
  expect_mass_below_matches(disk.a, probe_points(disk.a, {0.1, 0.235, 0.236, 0.24}), seed + 3);
  const auto pareto = LatencyDistribution::pareto(1.05, 1.51);
  expect_mass_below_matches(pareto, probe_points(pareto, {1.05, 1.05 * (1 + 1e-6)}), seed + 4);
  const auto expo = LatencyDistribution::exponential(0.183);
  expect_mass_below_matches(expo, probe_points(expo, {1e-4, 1e-2}), seed + 5);
}

TEST(PbsSampler, AtomsAreDrawnWithTheirWeight) {
  // A constant component is an atom: exactly its value, with exactly its weight.
  const auto d = LatencyDistribution::mixture(
      {0.3, 0.2, 0.5}, {LatencyDistribution::constant(2.0), LatencyDistribution::constant(0.0),
                        LatencyDistribution::exponential(1.0)});
  const std::uint64_t m = 1000000;
  const auto xs = sample_latency(d, m, test_seed());
  for (auto [value, weight] : {std::pair<double, double>{2.0, 0.3}, {0.0, 0.2}}) {
    const double c = static_cast<double>(std::count(xs.begin(), xs.end(), value)) / static_cast<double>(m);
    EXPECT_NEAR(c, weight, 5 * std::sqrt(weight * (1 - weight) / static_cast<double>(m))) << value;
  }
  expect_mass_below_matches(d, {1e-3, 0.5, 1.9, 2.0 + 1e-9, 3.0, 10.0}, test_seed() + 1);
  const auto only = sample_latency(LatencyDistribution::constant(7.25), 1000, test_seed());
  EXPECT_TRUE(std::all_of(only.begin(), only.end(), [](double v) { return v == 7.25; }));
}

TEST(PbsSampler, EmpiricalResamplesTheGivenValues) {
  const auto d = LatencyDistribution::empirical({3.0, 1.0, 2.0});
  const auto xs = sample_latency(d, 30000, test_seed());
  for (double v : {1.0, 2.0, 3.0}) {
    const double c = static_cast<double>(std::count(xs.begin(), xs.end(), v));
    EXPECT_NEAR(c / 30000.0, 1.0 / 3.0, 5 * std::sqrt(2.0 / 9.0 / 30000.0));
  }
  EXPECT_EQ(d.quantile(0.0), 1.0);
  EXPECT_EQ(d.quantile(1.0), 3.0);
  EXPECT_NEAR(d.mean_ms(), 2.0, 1e-15);
}

TEST(PbsWars, StrictQuorumsAreAlwaysConsistent) {
  const std::uint64_t seed = test_seed();
  for (const auto& model : {WarsModel::lnkd_disk(), WarsModel::ymmr()}) {
    WarsSimulation sim(3, 2, 2, model);
    EXPECT_EQ(sim.consistency_probability({0.0}, 100000, seed)[0], 1.0);
    WarsSimulation sim5(5, 1, 5, model);
    EXPECT_EQ(sim5.t_visibility_ms(0.999, 100000, seed), 0.0);
  }
}

TEST(PbsWars, SeededRunsReplayExactly) {
  WarsSimulation sim(3, 1, 1, WarsModel::lnkd_disk());
  const auto a = sim.consistency_probability({0, 1, 5, 10}, 50000, 7);
  const auto b = sim.consistency_probability({0, 1, 5, 10}, 50000, 7);
  const auto c = sim.consistency_probability({0, 1, 5, 10}, 50000, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // Probabilities rise with t; the same margins give the same answer through every API.
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  const auto margins = sim.staleness_margins_ms(50000, 7);
  const double at_five = static_cast<double>(std::count_if(margins.begin(), margins.end(), [](double m) { return m <= 5; })) / 50000.0;
  EXPECT_DOUBLE_EQ(at_five, a[2]);
}

struct Published {
  const char* name;
  WarsModel model;
  double p0;         // R=W=1, t=0 (fraction)
  double t_r1_ms;    // R=W=1, 99.9 %
  double t_r2_ms;    // R=2, W=1, 99.9 %
  double grid_ms;    // time step of the authors' sweep (simutils SWEEP options)
};

std::vector<Published> published() {
  return {{"LNKD-SSD", WarsModel::lnkd_ssd(), 0.974, 1.85, 0.0, 0.01},
          {"LNKD-DISK", WarsModel::lnkd_disk(), 0.439, 45.5, 13.6, 1.0},
          {"YMMR", WarsModel::ymmr(3.5), 0.893, 1364.0, 202.0, 1.0}};
}

TEST(PbsPaper, ConsistencyRightAfterCommit) {
  // Ours: 1M trials (sd <= 0.0005). Theirs: trial count not stated for these sentences;
  // assume the table's 50,000 (the most conservative stated count), sd <= 0.0022, plus
  // 0.0005 for rounding to 0.1 %. Tolerance 4 combined sd + rounding.
  const std::uint64_t seed = test_seed();
  for (const auto& p : published()) {
    WarsSimulation sim(3, 1, 1, p.model);
    const double ours = sim.consistency_probability({0.0}, 1000000, seed)[0];
    const double sd = std::sqrt(p.p0 * (1 - p.p0) / 50000.0 + p.p0 * (1 - p.p0) / 1e6);
    std::printf("[pbs] %s R=W=1 P(consistent, t=0): ours %.4f, published %.3f\n", p.name, ours, p.p0);
    EXPECT_NEAR(ours, p.p0, 4 * sd + 0.0005) << p.name;
  }
  WarsSimulation disk(3, 1, 1, WarsModel::lnkd_disk());
  const double at_ten = disk.consistency_probability({10.0}, 1000000, seed)[0];
  const double sd = std::sqrt(0.925 * 0.075 / 50000.0 + 0.925 * 0.075 / 1e6);
  EXPECT_NEAR(at_ten, 0.925, 4 * sd + 0.0005);
}

TEST(PbsPaper, TimeToNinetyNinePointNinePercent) {
  // The published t comes from 50,000 trials per configuration, so it carries the
  // sampling spread of a 99.9 % quantile estimated from 50 exceedances: around 5-10 % for
  // these tails. Measure that spread with 24 independent 50,000-trial runs of this model
  // and require the published value within 4 of their standard deviations of their mean
  // (plus the authors' sweep step).
  const std::uint64_t seed = test_seed();
  for (const auto& p : published()) {
    for (int r : {1, 2}) {
      WarsSimulation sim(3, 1, r, p.model);
      std::vector<double> estimates;
      for (int i = 0; i < 24; ++i) estimates.push_back(sim.t_visibility_ms(0.999, 50000, seed + 1000 + i));
      const double mean = std::accumulate(estimates.begin(), estimates.end(), 0.0) / static_cast<double>(estimates.size());
      double var = 0;
      for (double e : estimates) var += (e - mean) * (e - mean);
      const double sd = std::sqrt(var / static_cast<double>(estimates.size() - 1));
      const double published_t = r == 1 ? p.t_r1_ms : p.t_r2_ms;
      std::printf("[pbs] %s R=%d W=1 t(99.9%%): ours %.2f ms (sd of a 50k-trial estimate %.2f), published %.2f ms\n",
                  p.name, r, mean, sd, published_t);
      EXPECT_NEAR(mean, published_t, 4 * sd + p.grid_ms) << p.name << " R=" << r;
    }
  }
}

TEST(PbsPaper, OperationLatencies) {
  // 99.9th percentiles, published from 1M trials. 400k trials here; the relative spread of
  // such a tail quantile is a few percent (about 1/(tail index * sqrt(exceedances))), so
  // allow 8 %.
  const std::uint64_t seed = test_seed();
  struct Row { WarsModel model; int r; double read_ms, write_ms; };
  const Row rows[] = {{WarsModel::lnkd_ssd(), 1, 0.66, 0.66},  {WarsModel::lnkd_disk(), 1, 0.66, 10.99},
                      {WarsModel::ymmr(3.5), 1, 5.58, 10.83},  {WarsModel::lnkd_ssd(), 2, 1.63, 0.65},
                      {WarsModel::lnkd_disk(), 2, 1.63, 10.9}, {WarsModel::ymmr(3.5), 2, 32.6, 10.73}};
  for (const auto& row : rows) {
    WarsSimulation sim(3, 1, row.r, row.model);
    const OperationLatency lat = sim.operation_latency_ms(0.999, 400000, seed);
    EXPECT_NEAR(lat.read_ms, row.read_ms, 0.08 * row.read_ms);
    EXPECT_NEAR(lat.write_ms, row.write_ms, 0.08 * row.write_ms);
  }
}

TEST(PbsErrors, BadInputNamesTheArgument) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  expect_invalid("rate_per_ms", [] { LatencyDistribution::exponential(0); });
  expect_invalid("rate_per_ms", [&] { LatencyDistribution::exponential(nan); });
  expect_invalid("scale_ms", [] { LatencyDistribution::pareto(-1, 2); });
  expect_invalid("shape", [&] { LatencyDistribution::pareto(1, inf); });
  expect_invalid("value_ms", [] { LatencyDistribution::constant(-0.5); });
  expect_invalid("samples_ms", [] { LatencyDistribution::empirical({}); });
  expect_invalid("samples_ms", [] { LatencyDistribution::empirical({1.0, -2.0}); });
  expect_invalid("samples_ms", [&] { LatencyDistribution::empirical({1.0, nan}); });
  expect_invalid("weights", [] {
    LatencyDistribution::mixture({1.0}, {LatencyDistribution::constant(1), LatencyDistribution::constant(2)});
  });
  expect_invalid("weights", [] { LatencyDistribution::mixture({-1.0}, {LatencyDistribution::constant(1)}); });
  expect_invalid("weights", [] { LatencyDistribution::mixture({0.0}, {LatencyDistribution::constant(1)}); });
  expect_invalid("components", [] { LatencyDistribution::mixture({}, {}); });
  expect_invalid("write_pareto_shape", [] { WarsModel::ymmr(0); });
  const auto model = WarsModel::lnkd_ssd();
  expect_invalid("n", [&] { WarsSimulation(0, 1, 1, model); });
  expect_invalid("n", [&] { WarsSimulation(kPbsMaxNodes + 1, 1, 1, model); });
  expect_invalid("w", [&] { WarsSimulation(3, 4, 1, model); });
  expect_invalid("r", [&] { WarsSimulation(3, 1, 0, model); });
  WarsSimulation sim(3, 1, 1, model);
  expect_invalid("trials", [&] { sim.consistency_probability({0.0}, 0, 1); });
  expect_invalid("trials", [&] { sim.consistency_probability({0.0}, kPbsMaxTrials + 1, 1); });
  expect_invalid("times_ms", [&] { sim.consistency_probability({}, 10, 1); });
  expect_invalid("times_ms", [&] { sim.consistency_probability({-1.0}, 10, 1); });
  expect_invalid("times_ms", [&] { sim.consistency_probability({nan}, 10, 1); });
  expect_invalid("p", [&] { sim.t_visibility_ms(0.0, 10, 1); });
  expect_invalid("p", [&] { sim.t_visibility_ms(1.5, 10, 1); });
  expect_invalid("p", [&] { sim.t_visibility_ms(nan, 10, 1); });
  expect_invalid("p", [&] { sim.t_visibility_ms(0.5, kPbsMaxTrials, 1); });  // too many kept trials
  expect_invalid("k", [] { k_staleness_probability(3, 1, 1, 0); });
  expect_invalid("n", [] { k_staleness_probability(0, 1, 1, 1); });
  expect_invalid("count", [] { sample_latency(LatencyDistribution::constant(1), 0, 1); });
  expect_invalid("q", [] { LatencyDistribution::constant(1).quantile(2); });
}

}  // namespace
