#pragma once
// The backend's two clocks, at the bottom layer so that the pool, the prober and the database
// read the same ones without including the public facade.
#include <chrono>
#include <cmath>
#include <cstdint>

namespace replikit::pg::detail {

/// Steady-clock nanoseconds (CLOCK_MONOTONIC): probes, lag samples, deadlines, waits.
inline std::int64_t steady_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Wall-clock nanoseconds since the Unix epoch: session time, which tokens carry between hosts.
inline std::int64_t wall_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Milliseconds (a validated option) as nanoseconds.
inline std::int64_t ms_to_ns(double ms) noexcept { return static_cast<std::int64_t>(std::llround(ms * 1e6)); }

}  // namespace replikit::pg::detail
