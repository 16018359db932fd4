#pragma once
// The compiled latency sampler behind WarsSimulation and sample_latency (private to the
// core). Exact in distribution where it matters:
//  - a mixture picks its component with 53 random bits against the cumulative weights, then
//    reuses their position inside that component's interval as the component's own uniform
//    (uniform there, at a resolution of 2^-53 / weight), so one draw serves both, and a
//    component's bounds and atoms never blur into another's;
//  - a constant is an atom: exactly its value;
//  - an empirical distribution resamples its values exactly;
//  - exponential and Pareto draw from an inverse-CDF table of their own closed form
//    (constant relative resolution in the tail mass v = 1 - u, interpolated linearly inside
//    a cell: the quantile is smooth and monotone there, so every draw stays between the
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

  /// True for Exponential and Pareto (drawn with from_table), false for Atom and Empirical
  /// (drawn with at).
  bool tabled() const { return kind == ComponentKind::Exponential || kind == ComponentKind::Pareto; }

  /// An Atom's or Empirical's draw at upper tail mass v in (0, 1] (v uniform makes it a
  /// sample). Out of line, and neither this nor any other out-of-line call takes the
  /// generator: its state must stay in registers through the trial loop.
  double at(double v) const;

  /// An Exponential's or Pareto's draw at upper tail mass v in (0, 1].
  double from_table(double v, Xoshiro256& rng) const {
    // The double's exponent is the octave and its top mantissa bits the cell.
    std::uint64_t repr;
    std::memcpy(&repr, &v, sizeof repr);
    const int octave = 1022 - static_cast<int>(repr >> 52);  // v in [2^-(octave+1), 2^-octave)
    if (static_cast<unsigned>(octave) >= static_cast<unsigned>(kTableOctaves)) {
      // v = 1 (after rounding: >= 1) is the minimum; v < 2^-kTableOctaves is the deep tail.
      return v >= 1.0 ? table[kCells] : deep_tail(rng.next());
    }
    const std::uint64_t mantissa = repr & ((1ull << 52) - 1);
    const std::uint64_t cell = mantissa >> kFractionBits;
    const double frac = static_cast<double>(mantissa & ((1ull << kFractionBits) - 1)) * 0x1.0p-45;
    const double* t = table.data() + static_cast<std::size_t>(octave) * (kCells + 1) + cell;
    return t[0] + frac * (t[1] - t[0]);
  }

 private:
  /// The deep tail, v < 2^-kTableOctaves, from 64 fresh random bits.
  double deep_tail(std::uint64_t bits) const;
};

static_assert(kFractionBits == 45, "frac scaling assumes 45 fraction bits");
static_assert(kTableOctaves == 32, "the deep-tail draw scales by 2^-32");

}  // namespace pbs_detail

struct WarsSimulation::Sampler {
  // One slot per component, contiguous. A draw takes x, 53 random bits; the component whose
  // interval [end - width, end) of x holds it serves the draw with v = (end - x) * 2^-53 /
  // weight, uniform in (0, 1]. Integer bounds keep the choice exact and short.
  struct Slot {
    std::uint64_t end;     // the last slot ends at 2^53
    double v_per_step;     // 2^-53 / the component's weight
    pbs_detail::Component component;
  };
  std::vector<Slot> slots;
  std::size_t bounds = 0;  // slots.size() - 1: the inner bounds to compare against
  bool all_tables = true;  // every component is exponential or Pareto: no dispatch per draw

  explicit Sampler(const LatencyDistribution& d);

  double sample(Xoshiro256& rng) const {
    const std::uint64_t x = rng.next() >> 11;  // [0, 2^53)
    const Slot* s = slots.data();
    // Branch-free choice (a mispredicted branch per draw would cost more than the draw).
    for (std::size_t k = 0; k < bounds; ++k) s += static_cast<std::size_t>(x >= s[0].end);
    // end - x is in [1, 2^53]: exact as a signed integer and as a double. A rounding step
    // above 1 reads as 1, the minimum.
    const double v = static_cast<double>(static_cast<std::int64_t>(s->end - x)) * s->v_per_step;
    const pbs_detail::Component& c = s->component;
    return all_tables || c.tabled() ? c.from_table(v, rng) : c.at(v);
  }
};

}  // namespace replikit
