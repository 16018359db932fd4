#pragma once
/// \file random.hpp
/// Small, fast, seeded generators. The core never uses a global generator: every user of
/// randomness owns one of these, seeded by the caller, so runs replay exactly.

#include <cstdint>

namespace replikit {

/// SplitMix64: used to expand one seed into independent streams.
struct SplitMix64 {
  std::uint64_t state;
  explicit constexpr SplitMix64(std::uint64_t seed) : state(seed) {}
  /// The next 64 random bits.
  constexpr std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};

/// xoshiro256**: the workhorse generator (Blackman and Vigna), seeded through SplitMix64.
class Xoshiro256 {
 public:
  explicit constexpr Xoshiro256(std::uint64_t seed) : s_{} {
    SplitMix64 sm(seed);
    for (auto& word : s_) word = sm.next();
  }
  /// The next 64 random bits.
  constexpr std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  /// A uniform double in [0, 1) with 53 random bits.
  constexpr double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// A uniform integer in [0, bound) (bound > 0), by Lemire's multiply-shift (tiny bias for
  /// bounds far below 2^32, irrelevant here).
  constexpr std::uint32_t below(std::uint32_t bound) {
    return static_cast<std::uint32_t>(((next() >> 32) * bound) >> 32);
  }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

}  // namespace replikit
