#pragma once
/// \file failover.hpp
/// Candidate selection when the primary has failed: which replica to promote, which to
/// repoint, what the promotion is expected to lose, and why every other replica was passed
/// over. Pure: the same states give the same plan.
///
/// The rules, in order:
/// 1. Exclusions (each with a reason): unreachable; tagged no-failover; on an older timeline
///    than the newest one seen (its LSNs are not comparable, and it would need a rewind);
///    more than `max_lag_bytes` behind the reference LSN (Patroni's maximum_lag_on_failover);
///    in synchronous mode, a replica that was not a synchronous standby, or one that has not
///    flushed every acknowledged commit.
/// 2. Among the eligible: the highest position (max of receive and replay LSN: what the
///    replica holds, flushed), then the highest priority, then a replica in the preferred
///    region, then the highest replay LSN (less to replay before promotion ends), then the
///    smallest name (determinism). The others are listed with the rule that passed them over.
/// 3. In synchronous mode with no eligible synchronous standby (the primary and its
///    synchronous standbys gone together): promote no one and say why; promoting an async
///    replica could silently lose acknowledged commits.
///
/// The reference LSN is the primary's last known LSN, raised to the highest position of any
/// replica on the newest timeline (the primary had at least what a replica received). The
/// expected loss is reference - the chosen replica's position (>= 0).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "replikit/lsn.hpp"

namespace replikit {

/// What the failover manager knows of one replica when the primary has failed.
struct CandidateState {
  std::string name;             ///< unique among the candidates, not empty
  bool reachable = true;        ///< answered its last probe
  Lsn receive_lsn;              ///< pg_last_wal_receive_lsn(); 0/0 unknown
  Lsn replay_lsn;               ///< pg_last_wal_replay_lsn(); 0/0 unknown
  std::uint32_t timeline = 1;   ///< the timeline of its WAL (PostgreSQL starts at 1); 0 unknown (excluded)
  int priority = 0;             ///< higher is preferred (after the position)
  bool no_failover = false;     ///< never promote (Patroni's nofailover tag)
  std::string region;           ///< may be empty
  bool was_synchronous = false; ///< was a synchronous (or quorum) standby of the primary

  /// What the replica holds: max(receive_lsn, replay_lsn).
  Lsn position() const noexcept { return lsn_max(receive_lsn, replay_lsn); }
};

/// What the failover manager knew of the primary while it was up.
struct PrimaryState {
  Lsn last_known_lsn;            ///< its last known current WAL LSN; 0/0 unknown
  std::uint32_t timeline = 1;    ///< its timeline (PostgreSQL starts at 1); 0 unknown
  bool synchronous_mode = false; ///< synchronous_standby_names was set
  /// The standby names of synchronous_standby_names ("*" matches every standby).
  std::vector<std::string> synchronous_standbys;
  /// Commits acknowledged to clients up to here (synchronous mode); 0/0 unknown (no check).
  Lsn last_acknowledged_commit_lsn;
};

/// Settings of plan_failover; every default is defined here.
struct FailoverConfig {
  /// Refuse candidates more than this many bytes behind the reference LSN; unset: no limit.
  std::optional<std::int64_t> max_lag_bytes;
  /// Prefer a candidate in this region when position and priority tie; empty: none.
  std::string preferred_region;
};

/// Why a candidate was not chosen.
enum class ExclusionReason : std::uint8_t {
  Unreachable = 0,
  NoFailoverTag = 1,
  TimelineBehind = 2,             ///< older timeline than the newest seen (or unknown)
  TooFarBehind = 3,               ///< more than max_lag_bytes behind the reference LSN
  NotSynchronous = 4,             ///< synchronous mode: was not a synchronous standby
  NotFlushedAllAcknowledged = 5,  ///< synchronous mode: misses acknowledged commits
  LessUpToDate = 6,               ///< eligible, lower position than the chosen one
  LowerPriority = 7,              ///< eligible, same position, lower priority
  OtherRegion = 8,                ///< eligible, tie, not in the preferred region
  LessReplayed = 9,               ///< eligible, tie, lower replay LSN
  NameOrder = 10,                 ///< eligible, full tie, broken by name
};

/// One candidate not chosen, and why.
struct Exclusion {
  std::string name;
  ExclusionReason reason = ExclusionReason::Unreachable;
  std::string detail;  ///< readable, with the numbers that decided
};

/// The outcome of plan_failover.
struct FailoverPlan {
  std::optional<std::string> promote;  ///< the replica to promote; none: promote no one
  std::string reason;                  ///< why this one, or why no one
  std::vector<Exclusion> excluded;     ///< every other candidate, in input order, and why
  std::int64_t expected_loss_bytes = 0;  ///< reference LSN - the chosen position (>= 0); 0 if none
  std::vector<std::string> repoint;    ///< the other reachable replicas, in input order
  Lsn reference_lsn;                   ///< what the primary had at least (see the file comment)
  Lsn promote_lsn;                     ///< the chosen replica's position; 0/0 if none
  std::uint32_t timeline = 0;          ///< the newest timeline seen (the chosen one's)
};

/// Most candidates plan_failover accepts.
inline constexpr int kMaxCandidates = 256;

/// The plan for replacing a failed primary (see the file comment); no candidates: promote no
/// one. Throws InvalidArgument naming `candidates` (an empty or duplicate name, more than
/// kMaxCandidates) or `config` (negative max_lag_bytes).
FailoverPlan plan_failover(const std::vector<CandidateState>& candidates, const PrimaryState& primary,
                           const FailoverConfig& config = {});

/// Lower-case name of an exclusion reason, e.g. "too_far_behind".
const char* to_string(ExclusionReason reason) noexcept;
/// A multi-line readable rendering of a plan (promote, reason, loss, each exclusion).
std::string describe(const FailoverPlan& plan);

}  // namespace replikit
