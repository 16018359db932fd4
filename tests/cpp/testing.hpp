// Helpers shared by the GoogleTest suites under tests/cpp: seeds that replay, checks that an
// exception names the bad argument, and small fixtures. Header-only; each test file includes it.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <string>
#include <utility>

#include "replikit/errors.hpp"
#include "replikit/random.hpp"
#include "replikit/topology.hpp"

namespace replikit::testing {

// ---------------------------------------------------------------- seeds

/// REPLIKIT_TEST_SEED when it is set and not empty (decimal, or 0x... hex), otherwise `fallback`;
/// `replay`, when given, says which.
inline std::uint64_t seed_from_env(std::uint64_t fallback, bool* replay = nullptr) {
  const char* env = std::getenv("REPLIKIT_TEST_SEED");
  const bool from_env = env != nullptr && *env != '\0';
  if (replay != nullptr) *replay = from_env;
  return from_env ? std::strtoull(env, nullptr, 0) : fallback;
}

/// seed_from_env, printed as "[label] seed N" so that a failing run can be replayed.
inline std::uint64_t printed_seed(const char* label, std::uint64_t fallback) {
  const std::uint64_t seed = seed_from_env(fallback);
  std::printf("[%s] seed %llu (replay with REPLIKIT_TEST_SEED)\n", label, static_cast<unsigned long long>(seed));
  return seed;
}

/// The seeds of a randomised test made of independent runs: run k uses SplitMix64(base + k).
/// With REPLIKIT_TEST_SEED set there is exactly one run, with that seed, so the seed a failing
/// run reports replays that run alone.
struct RunSeeds {
  std::uint64_t base = 0;
  bool replay = false;
  int runs = 0;

  /// The seed of run `k`.
  std::uint64_t seed(int k) const { return replay ? base : SplitMix64(base + static_cast<std::uint64_t>(k)).next(); }
};

/// RunSeeds for `runs` runs from `fallback`, or one run from REPLIKIT_TEST_SEED.
inline RunSeeds run_seeds(std::uint64_t fallback, int runs) {
  RunSeeds s;
  s.base = seed_from_env(fallback, &s.replay);
  s.runs = s.replay ? 1 : runs;
  return s;
}

/// For SCOPED_TRACE: the seed, and the command line that replays it.
inline std::string replay_hint(std::uint64_t seed, const char* gtest_filter) {
  const std::string s = std::to_string(seed);
  return "seed=" + s + " (replay: REPLIKIT_TEST_SEED=" + s + " ./replikit_tests --gtest_filter='" + gtest_filter + "')";
}

/// Runs `run(k, seed)` for each run k of run_seeds(fallback, runs), under a SCOPED_TRACE of the
/// seed and the command line that replays it (replay_hint). A fatal failure ends that run only.
template <typename Run>
void for_each_seed(std::uint64_t fallback, int runs, const char* gtest_filter, Run&& run) {
  const RunSeeds seeds = run_seeds(fallback, runs);
  for (int k = 0; k < seeds.runs; ++k) {
    const std::uint64_t seed = seeds.seed(k);
    SCOPED_TRACE(replay_hint(seed, gtest_filter));
    run(k, seed);
  }
}

// ---------------------------------------------------------------- bad input

/// Whether expect_invalid also requires the argument's name in what().
enum class NameInMessage { NotChecked, Required };

/// Runs `f` and checks that it throws an `E` whose argument() is `argument` (and, if asked, whose
/// what() names it too). No exception, or one of another type, is a failure; the test goes on.
template <typename E, typename F>
void expect_invalid(F&& f, const std::string& argument, NameInMessage name_in_message = NameInMessage::NotChecked) {
  try {
    std::forward<F>(f)();
    ADD_FAILURE() << "expected an exception naming '" << argument << "'";
  } catch (const E& e) {
    EXPECT_EQ(e.argument(), argument) << e.what();
    if (name_in_message == NameInMessage::Required) {
      EXPECT_NE(std::string(e.what()).find(argument), std::string::npos) << e.what();
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

/// The same check for InvalidArgument, argument first: reads well in tables of bad input.
template <typename F>
void expect_invalid(const char* argument, F&& f) {
  expect_invalid<InvalidArgument>(std::forward<F>(f), argument);
}

// ---------------------------------------------------------------- fixtures

/// A node spec in one call.
inline NodeSpec node(std::string name, std::string region = "", double weight = 1.0, int priority = 0,
                     bool up = true) {
  NodeSpec s;
  s.name = std::move(name);
  s.region = std::move(region);
  s.weight = weight;
  s.priority = priority;
  s.up = up;
  return s;
}

/// What a token keeps of a write time: whole milliseconds, rounded up, clamped to what decodes.
inline std::int64_t token_ms_ceil(std::int64_t ns) {
  constexpr std::int64_t kNsPerMs = 1000000;
  const std::int64_t ms = ns / kNsPerMs + (ns % kNsPerMs != 0 ? 1 : 0);
  return std::min<std::int64_t>(ms, std::numeric_limits<std::int64_t>::max() / kNsPerMs) * kNsPerMs;
}

}  // namespace replikit::testing
