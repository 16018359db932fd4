#include "pbs_sampler.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "replikit/errors.hpp"

namespace replikit {

namespace pbs_detail {

double Component::upper_quantile(double v) const {
  switch (kind) {
    case ComponentKind::Exponential:
      return -std::log(v) / a + 0.0;  // + 0.0: v = 1 gives 0, not -0
    case ComponentKind::Pareto:
      return a * std::pow(v, b);
    default:
      return a;
  }
}

double Component::deep_tail(std::uint64_t bits) const {
  // Probability 2^-kTableOctaves: v is uniform below 2^-kTableOctaves; take it afresh at full
  // precision and use the closed form.
  const double fresh = static_cast<double>((bits >> 11) + 1);  // [1, 2^53]
  return upper_quantile(fresh * 0x1.0p-53 * 0x1.0p-32);
}

double Component::at(double v) const {
  if (kind == ComponentKind::Empirical) {
    const auto& s = *samples;
    auto i = static_cast<std::size_t>((1.0 - v) * static_cast<double>(s.size()));
    if (i >= s.size()) i = s.size() - 1;
    return s[i];
  }
  return a;  // Atom
}

namespace {

// Octave o holds v in [2^-(o+1), 2^-o], split into kCells equal cells; the entry at v = 1 is
// the exact minimum, the last one.
std::vector<double> quantile_table(const Component& c) {
  std::vector<double> table(static_cast<std::size_t>(kTableOctaves) * (kCells + 1));
  for (int o = 0; o < kTableOctaves; ++o) {
    const double base = std::ldexp(1.0, -(o + 1));
    for (int j = 0; j <= kCells; ++j) {
      const double v = base * (1.0 + static_cast<double>(j) / kCells);
      table[static_cast<std::size_t>(o) * (kCells + 1) + static_cast<std::size_t>(j)] = c.upper_quantile(v);
    }
  }
  return table;
}

Component compile(const LatencyDistribution& d) {
  Component c;
  switch (d.kind()) {
    case LatencyKind::Constant:
      c.kind = ComponentKind::Atom;
      c.a = d.value_ms();
      break;
    case LatencyKind::Exponential:
      c.kind = ComponentKind::Exponential;
      c.a = d.rate_per_ms();
      break;
    case LatencyKind::Pareto:
      c.kind = ComponentKind::Pareto;
      c.a = d.scale_ms();
      c.b = -1.0 / d.shape();
      break;
    case LatencyKind::Empirical:
      c.kind = ComponentKind::Empirical;
      c.samples = std::make_shared<const std::vector<double>>(d.samples_ms());
      break;
    case LatencyKind::Mixture:
      break;  // flattened by the caller
  }
  if (c.kind == ComponentKind::Exponential || c.kind == ComponentKind::Pareto) c.table = quantile_table(c);
  return c;
}

// Flattens nested mixtures: a component's weight is the product of the weights on its path.
void flatten(const LatencyDistribution& d, double weight, std::vector<double>& weights,
             std::vector<Component>& out) {
  if (d.kind() != LatencyKind::Mixture) {
    weights.push_back(weight);
    out.push_back(compile(d));
    return;
  }
  for (std::size_t i = 0; i < d.components().size(); ++i) {
    flatten(d.components()[i], weight * d.weights()[i], weights, out);
  }
}

}  // namespace

}  // namespace pbs_detail

WarsSimulation::Sampler::Sampler(const LatencyDistribution& d) {
  std::vector<double> weights;
  std::vector<pbs_detail::Component> components;
  pbs_detail::flatten(d, 1.0, weights, components);
  double running = 0;
  for (std::size_t i = 0; i < components.size(); ++i) {
    running += weights[i];
    all_tables = all_tables && components[i].tabled();
    const auto end = static_cast<std::uint64_t>(std::min(running, 1.0) * 0x1.0p53);
    slots.push_back(Slot{end, 0x1.0p-53 / weights[i], std::move(components[i])});
  }
  slots.back().end = pbs_detail::kTwo53;  // every x < 2^53 lands in some component
  bounds = slots.size() - 1;
}

std::vector<double> sample_latency(const LatencyDistribution& d, std::uint64_t count, std::uint64_t seed) {
  require(count >= 1 && count <= kPbsMaxKeptSamples, "count",
          "must be in [1, " + std::to_string(kPbsMaxKeptSamples) + "]");
  const WarsSimulation::Sampler sampler(d);
  Xoshiro256 rng(seed);
  std::vector<double> out(count);
  for (auto& x : out) x = sampler.sample(rng);
  return out;
}

}  // namespace replikit
