#pragma once
// The compiled latency sampler behind WarsSimulation and sample_latency (private to the
// core). Exact in distribution where it matters:
//  - a mixture draws its component first (one uniform against the cumulative weights), so a
//    component's bounds and atoms never blur into another's;
//  - a constant is an atom: exactly its value;
//  - an empirical distribution resamples its values exactly;
//  - exponential and Pareto draw from an inverse-CDF table of their own closed form
//    (constant relative resolution in the tail mass v = 1 - u, interpolated linearly inside
//    a cell: the quantile is smooth and monotone there, so every draw stays within the
//    cell's two exact quantiles and never goes below the minimum), and from the closed form
//    itself for the deep tail (v < 2^-kTableOctaves), with fresh random bits: not clipped.

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "replikit/pbs.hpp"
#include "replikit/random.hpp"

namespace replikit {

namespace pbs_detail {

constexpr int kCellBits = 7;              // 128 cells per octave of tail mass
constexpr int kCells = 1 << kCellBits;
constexpr int kTableOctaves = 32;         // the table covers v in [2^-32, 1]
constexpr int kFractionBits = 52 - kCellBits;
constexpr std::uint64_t kTwo53 = 1ull << 53;
constexpr std::uint64_t kTableFloor = kTwo53 >> kTableOctaves;  // m below this: deep tail

enum class ComponentKind : std::uint8_t { Atom, Exponential, Pareto, Empirical };

/// One mixture component (a non-mixture distribution is a mixture of one).
struct Component {
  ComponentKind kind = ComponentKind::Atom;
  double a = 0;  // Atom: the value; Exponential: the rate; Pareto: the scale (minimum)
  double b = 0;  // Pareto: -1 / shape
  std::vector<double> table;                              // Exponential, Pareto
  std::shared_ptr<const std::vector<double>> samples;     // Empirical: sorted values

  /// Exact closed-form quantile at upper tail mass v in (0, 1].
  double upper_quantile(double v) const;

  double sample(Xoshiro256& rng) const {
    switch (kind) {
      case ComponentKind::Atom:
        return a;
      case ComponentKind::Empirical: {
        const auto& s = *samples;
        auto i = static_cast<std::size_t>(rng.uniform() * static_cast<double>(s.size()));
        if (i >= s.size()) i = s.size() - 1;
        return s[i];
      }
      default:
        return from_table(rng);
    }
  }

 private:
  double from_table(Xoshiro256& rng) const {
    // v = m / 2^53 with m uniform in [1, 2^53]; the double's exponent is the octave and its
    // top mantissa bits the cell.
    const std::uint64_t m = (rng.next() >> 11) + 1;
    if (m < kTableFloor) {
      // Deep tail, probability 2^-kTableOctaves: v is uniform below 2^-kTableOctaves; draw
      // it afresh at full precision and use the closed form.
      const double fresh = static_cast<double>((rng.next() >> 11) + 1);  // [1, 2^53]
      return upper_quantile(fresh * 0x1.0p-53 * 0x1.0p-32);
    }
    if (m == kTwo53) return table[kCells];  // v = 1 (octave 0's last entry): the minimum
    const double dm = static_cast<double>(m);  // exact: m < 2^53
    std::uint64_t repr;
    std::memcpy(&repr, &dm, sizeof repr);
    const int octave = 52 - (static_cast<int>(repr >> 52) - 1023);  // 0 .. kTableOctaves-1
    const std::uint64_t mantissa = repr & ((1ull << 52) - 1);
    const std::uint64_t cell = mantissa >> kFractionBits;
    const double frac = static_cast<double>(mantissa & ((1ull << kFractionBits) - 1)) * 0x1.0p-45;
    const double* t = table.data() + static_cast<std::size_t>(octave) * (kCells + 1) + cell;
    return t[0] + frac * (t[1] - t[0]);
  }
};

static_assert(kFractionBits == 45, "frac scaling assumes 45 fraction bits");
static_assert(kTableOctaves == 32, "the deep-tail draw scales by 2^-32");

}  // namespace pbs_detail

struct WarsSimulation::Sampler {
  std::vector<double> cumulative;  // cumulative component weights (the last one catches rounding)
  std::vector<pbs_detail::Component> components;

  explicit Sampler(const LatencyDistribution& d);

  double sample(Xoshiro256& rng) const {
    if (components.size() == 1) return components[0].sample(rng);
    const double u = rng.uniform();
    std::size_t i = 0;
    const std::size_t last = components.size() - 1;
    while (i < last && u >= cumulative[i]) ++i;
    return components[i].sample(rng);
  }
};

}  // namespace replikit
