// What a read needs (router rules 2-4 and 7), worked out before any replica is looked at:
// internal to router.cpp, in a header of its own to keep that file small.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "replikit/errors.hpp"
#include "replikit/lag.hpp"
#include "replikit/router.hpp"

namespace replikit {

namespace detail {

// Rule 7: the session's last write (write_lsn, 0 when unknown) was made elapsed_ns ago, and the
// target's probability is at most kDelayLevels[level].
struct ProbabilityTarget {
  std::uint64_t write_lsn = 0;
  std::int64_t elapsed_ns = 0;
  int level = kDelayLevelCount - 1;
};

}  // namespace detail

namespace router_detail {

// Does replica `i` (up, not LAGGING) likely show the write of `g`? Known to have replayed it,
// or its delay quantile at g.level is within the time elapsed less its time lag: then at least
// that level's share of its measured delays are (LagTracker::consistent_probability >= level).
inline bool likely_consistent(const Topology& t, int i, const detail::ProbabilityTarget& g) noexcept {
  if (g.write_lsn != 0 && t.replay_lsn(i) >= g.write_lsn) return true;
  if (!(t.flags(i) & detail::kLagKnownBit) || t.delay_samples(i) < kMinDelaySamples) return false;
  return g.elapsed_ns - t.lag_ns(i) >= t.delay_quantile_ns(i, g.level);
}

// Router::pick_fair's per-replica test beyond rules 2-6: none on the common path...
struct AnyReplica {
  static constexpr bool kActive = false;
  bool operator()(const Topology&, int) const noexcept { return true; }
};

// ... or rule 7's (a read with p_consistent).
struct LikelyConsistent {
  static constexpr bool kActive = true;
  const detail::ProbabilityTarget& target;
  bool operator()(const Topology& t, int i) const noexcept { return likely_consistent(t, i, target); }
};

// "No staleness bound" for ReadNeeds::min_fresh_ns (every replica, even of unknown freshness).
// Negative, and a bound is never negative (see read_needs): a sign test, no 64-bit constant.
inline constexpr std::int64_t kAnyFreshness = -1;

// What a read at one consistency level needs: the LSN a replica must cover and the lag it may
// have, or that only the primary will do (and why).
struct ReadNeeds {
  std::uint64_t required_lsn = 0;
  // BOUNDED_STALENESS: the replica must be known fresh as of this instant or later
  // (Topology::fresh_as_of_ns), now - max_staleness but at least 0; kAnyFreshness: no bound.
  std::int64_t min_fresh_ns = kAnyFreshness;
  bool replica_allowed = true;
  Reason primary_reason = Reason::NoReplicaUp;   // when !replica_allowed
  Reason served = Reason::ReplicaAvailable;      // when a replica serves it
};

inline void check_read_arguments(std::int64_t now_ns, const ReadOptions& options) {
  if (now_ns < 0) throw InvalidArgument("now_ns", "must not be negative");
  if (options.region < kNoNode || options.region >= kMaxRegions) {
    throw InvalidArgument("region", "region id " + std::to_string(options.region) +
                                        " is out of range (Topology::region_id, or -1 for the default)");
  }
}

// Rule 7's target of a read with p_consistent (checked here, with within_ms); true when the
// session's last write is recent enough for it to apply.
inline bool probability_target(const Session& session, Consistency consistency, std::int64_t now_ns,
                               const ReadOptions& options, detail::ProbabilityTarget* target) {
  const double p = *options.p_consistent;
  if (!(p > 0 && p <= 1)) throw InvalidArgument("p_consistent", "must be a probability in (0, 1]");
  if (!(options.within_ms >= 0 && options.within_ms <= 1e10)) {  // NaN fails too
    throw InvalidArgument("within_ms", "must be a number of milliseconds in [0, 1e10]");
  }
  if (consistency != Consistency::Eventual) {
    throw InvalidArgument("p_consistent", "applies to EVENTUAL reads only (the other levels say what a read must see)");
  }
  if (session.last_write_ns == kNever) return false;
  // A write stamped ahead of this clock (another host's) counts as just made.
  const std::int64_t elapsed_ns = session.last_write_ns >= now_ns ? 0 : now_ns - session.last_write_ns;
  if (static_cast<double>(elapsed_ns) > options.within_ms * 1e6) return false;
  target->write_lsn = session.write_lsn.value;
  target->elapsed_ns = elapsed_ns;
  int level = 0;
  while (level < kDelayLevelCount - 1 && kDelayLevels[static_cast<std::size_t>(level)] < p) ++level;
  target->level = level;
  return true;
}

inline ReadNeeds read_needs(const Session& session, Consistency consistency, std::int64_t now_ns,
                            const ReadOptions& options) {
  ReadNeeds needs;
  switch (consistency) {
    case Consistency::Strong:
      needs.replica_allowed = false;
      needs.primary_reason = Reason::StrongRead;
      break;
    case Consistency::Eventual:
      break;
    case Consistency::ReadYourWrites:
    case Consistency::Causal:
      // A write of unknown commit LSN: no replica is known to show it, however long ago it
      // was (the primary may have died before shipping it), until resolve_untracked_write
      // turns it into an LSN.
      if (session.untracked_write_ns != kNever) {
        needs.replica_allowed = false;
        needs.primary_reason = Reason::RecentWrite;
        break;
      }
      needs.required_lsn = (consistency == Consistency::Causal ? session.causal_lsn() : session.write_lsn).value;
      break;
    case Consistency::Monotonic:
      needs.required_lsn = session.read_lsn.value;
      break;
    case Consistency::BoundedStaleness:
      if (!(std::isfinite(options.max_staleness_ms) && options.max_staleness_ms >= 0 &&
            options.max_staleness_ms <= 1e10)) {
        throw InvalidArgument("max_staleness_ms", "BOUNDED_STALENESS needs a finite max_staleness_ms in [0, 1e10]");
      }
      if (options.tracker_now_ns < -1) throw InvalidArgument("tracker_now_ns", "must not be negative (-1: now_ns)");
      // Both clocks >= 0 and the bound <= 1e16 ns: no overflow. Clamped at 0, which changes no
      // answer (a known instant is a sample time, >= 0; kFreshUnknown is below 0) and keeps the
      // bound apart from kAnyFreshness.
      needs.min_fresh_ns = std::max<std::int64_t>(
          0, (options.tracker_now_ns >= 0 ? options.tracker_now_ns : now_ns) -
                 static_cast<std::int64_t>(std::llround(options.max_staleness_ms * 1e6)));
      needs.served = Reason::ReplicaFresh;
      break;
    default:
      throw InvalidArgument("consistency", "unknown consistency level");
  }
  if (needs.required_lsn != 0) needs.served = Reason::ReplicaCaughtUp;
  return needs;
}

}  // namespace router_detail

}  // namespace replikit
