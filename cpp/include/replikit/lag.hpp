#pragma once
/// \file lag.hpp
/// Replica lag in bytes and in time, with thresholds and hysteresis.
///
/// Time lag is derived from the primary's LSN history: a replica that has replayed LSN L is
/// behind by (now - the moment the primary first wrote past L). The history stores runs of
/// equal LSNs as one entry, so an idle primary costs nothing, and it is bounded: the oldest
/// entries are dropped first, and a replica older than the whole history is reported with
/// the lag to the oldest entry (a lower bound, flagged in ReplicaLag::lag_is_lower_bound).
/// Such a replica's true lag is unknown (right after reset() the history is one sample old),
/// so it is published to the Topology with its time lag unknown (NodeInfo::lag_known false):
/// bounded-staleness reads and probability targets never take it until it replays past the
/// oldest entry. Its OK/LAGGING state follows the lower bound (a lower bound above max_lag_ms
/// is LAGGING; below it the replica stays OK for reads that need no freshness bound).
/// Between two primary samples the moment is interpolated (a steady WAL rate), except across
/// a gap longer than stale_sample_ms (the primary was out): then it is the earlier sample's
/// time, the earliest the primary may have passed L, so an outage never hides a replica's lag.
///
/// A replica is known fresh only as of the primary's last sample, at t_last. While the primary
/// is not sampled (down, frozen, unreachable) it may still acknowledge commits that no replica
/// has, so once t_last is more than stale_sample_ms older than a replica's sample time `now`,
/// that replica's time lag is at least now - t_last (also a lower bound, flagged the same way).
/// It grows with every replica sample; the OK/LAGGING state follows the measured lag only, so the primary's silence alone never turns a
/// replica LAGGING. The measured lag still grows with every replica sample when the primary's
/// last samples showed it past the replica's replay LSN (a replica paused or cut off), so reads
/// that need no freshness bound stay on the replicas while the primary is out only as long as
/// that lag stays within max_lag_ms. The next primary sample restores the measured lag.
///
/// The time lag is an estimate, for monitoring, thresholds, least-lag ranking and probability
/// targets: interpolation can put it far below the truth (a replica held at a commit record by
/// recovery_min_apply_delay stands most of the write's WAL into it), and it is as of the last
/// sample. Bounded-staleness reads need a guarantee, so each replica also gets the instant it is
/// known fresh as of (Topology::fresh_as_of_ns): the last primary sample at an LSN at or below
/// its replay LSN, with no interpolation. Every commit acknowledged before that instant is on the
/// replica, so at any later now its staleness is at most now - that instant (kFreshUnknown before
/// any primary sample at or below it, e.g. older than the history).

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "replikit/lsn.hpp"
#include "replikit/session.hpp"
#include "replikit/topology.hpp"

namespace replikit {

/// Thresholds and bounds of a LagTracker.
struct LagConfig {
  double max_lag_ms = 1000.0;      ///< a replica turns LAGGING above this time lag
  std::optional<double> recover_lag_ms;  ///< ... and OK again only below this (<= max_lag_ms); unset: max_lag_ms / 2
  std::int64_t max_lag_bytes = 0;  ///< also LAGGING above this many bytes (0: no byte threshold)
  std::optional<std::int64_t> recover_lag_bytes;  ///< ... and OK again only below this (<= max_lag_bytes); unset: max_lag_bytes / 2
  double stale_sample_ms = 1000.0;  ///< a replica silent this long is judged at the primary's time;
                                    ///< a primary silent this long bounds every replica's lag from below
  std::size_t history_capacity = 8192;  ///< primary LSN history entries kept (>= 2)
  std::size_t event_capacity = 1024;    ///< transition events kept (>= 1)
  std::size_t delay_capacity = 256;     ///< replay delays kept per replica, the most recent (in [1, 65536])
};

/// `config` for a tracker whose samples come from a prober that probes every node every
/// `probe_interval_ms`: its stale_sample_ms raised to at least twice the interval. Below that a
/// primary probed on time would read as silent between two of its samples: every gap an outage,
/// so a replica one byte behind the primary's last sample would read a whole gap behind (LAGGING
/// at probe_interval_ms >= max_lag_ms), and every replica's lag a lower bound before each probe.
/// InvalidArgument ("probe_interval_ms") unless the interval is positive and finite.
LagConfig probed_lag_config(LagConfig config, double probe_interval_ms);

/// How a read that needs an LSN no replica is known to have replayed waits for one.
enum class CatchUpMode : std::uint8_t {
  Fixed = 0,  ///< wait up to max_wait_ms (0: go to the primary at once)
  Auto = 1,   ///< wait up to max_wait_ms only when the replay-delay distribution says a replica will make it
};

/// Why a read waits for a replica, or does not.
enum class CatchUpReason : std::uint8_t {
  FixedWait = 0,          ///< Fixed mode: waits max_wait_ms (or not at all when it is 0)
  ReplicaExpected = 1,    ///< Auto: a replica's replay-delay quantile is within max_wait_ms
  NoReplicaExpected = 2,  ///< Auto: no healthy replica's quantile is within max_wait_ms: no wait
  NoDelaySamples = 3,     ///< Auto: a healthy replica has too few replay-delay samples: waits to measure
};

/// A catch-up wait setting: a fixed wait, or one decided per read from the measurements.
struct CatchUpWait {
  /// The bound of "auto" when the caller gives none.
  static constexpr double kAutoMaxWaitMs = 50;
  CatchUpMode mode = CatchUpMode::Fixed;
  double max_wait_ms = 0;   ///< the wait (Fixed) or its bound (Auto), in [0, 60000]
  double quantile = 0.99;   ///< Auto: the replay-delay quantile that must be within max_wait_ms, in (0, 1]
  /// Auto mode with the default bound.
  static CatchUpWait automatic(double max_wait_ms = kAutoMaxWaitMs) noexcept {
    return {CatchUpMode::Auto, max_wait_ms, 0.99};
  }
};

/// Throws InvalidArgument naming the field of `wait` out of range (`argument` prefixes it).
void check_catch_up(const CatchUpWait& wait, const char* argument = "wait_for_replica_ms");

/// What a read that needs an LSN not yet seen replayed does: wait up to wait_ms, and why.
struct CatchUpPlan {
  double wait_ms = 0;        ///< 0: go to the primary at once; never above CatchUpWait::max_wait_ms
  CatchUpReason reason = CatchUpReason::FixedWait;
  int node = kNoNode;        ///< Auto, ReplicaExpected: the replica expected first
  double predicted_ms = 0;   ///< ... and its replay-delay quantile
  std::size_t samples = 0;   ///< ... from this many samples
};

/// Replay delays need this many samples of a replica before Auto trusts its quantile.
inline constexpr std::size_t kMinDelaySamples = 8;

/// What a transition event says.
enum class LagEventKind : std::uint8_t { BecameLagging = 0, Recovered = 1 };

/// One OK <-> LAGGING transition.
struct LagEvent {
  std::uint64_t sequence = 0;  ///< 1, 2, 3, ... in order of occurrence
  int node = kNoNode;
  LagEventKind kind = LagEventKind::BecameLagging;
  std::int64_t time_ns = 0;
  std::int64_t lag_ns = 0;
  std::int64_t lag_bytes = 0;
};

/// A replica's lag as last computed.
struct ReplicaLag {
  int node = kNoNode;
  bool known = false;            ///< false until the first sample after construction or reset
  Lsn receive_lsn;
  Lsn replay_lsn;
  std::int64_t lag_bytes = 0;    ///< primary's current LSN - replay LSN (>= 0)
  std::int64_t receive_lag_bytes = 0;
  std::int64_t lag_ns = 0;       ///< time lag of replay (an estimate; bounded staleness uses Topology::fresh_as_of_ns)
  bool lag_is_lower_bound = false;  ///< older than the kept history, or the primary's last sample is stale
  LagState state = LagState::Ok;
  std::int64_t sample_time_ns = 0;  ///< when the replica was last sampled
};

/// Tracks every replica's lag from samples and publishes it into the Topology for routing.
/// Thread-safe: samples and queries may come from any thread.
class LagTracker {
 public:
  /// A tracker feeding `topology`; throws InvalidArgument for inconsistent `config`.
  LagTracker(std::shared_ptr<Topology> topology, LagConfig config = {});

  /// The primary was at `current_lsn` at `now_ns`. Times and LSNs must not go backwards
  /// (call reset() after a primary change).
  void primary_sample(std::int64_t now_ns, Lsn current_lsn);
  /// Replica `node` had received `receive_lsn` and replayed `replay_lsn` at `now_ns`.
  void replica_sample(int node, std::int64_t now_ns, Lsn receive_lsn, Lsn replay_lsn);
  /// The same, by node name.
  void replica_sample(std::string_view name, std::int64_t now_ns, Lsn receive_lsn, Lsn replay_lsn);

  /// Replica `node`'s lag as last computed.
  ReplicaLag replica(int node) const;
  /// Every current replica's lag.
  std::vector<ReplicaLag> replicas() const;
  /// Transition events with sequence > `after_sequence`, oldest first, at most `max_events`.
  std::vector<LagEvent> events(std::uint64_t after_sequence = 0, std::size_t max_events = 1024) const;
  /// Events dropped because the event buffer was full.
  std::uint64_t events_dropped() const;
  /// Calls `listener` with each transition as it is recorded, under this tracker's lock and
  /// before the Topology (routing) shows it, so a listener that publishes it makes it visible no
  /// later than the routing change. It must not block or call this tracker; what it throws is
  /// dropped. Replaces the one set before; an empty function removes it.
  void set_transition_listener(std::function<void(const LagEvent&)> listener);
  /// When the primary first wrote past `lsn` (interpolated between samples), or INT64_MIN
  /// when it has not yet, per the kept history.
  std::int64_t primary_time_past(Lsn lsn) const;
  /// The primary's last sampled LSN.
  Lsn primary_lsn() const;
  /// The smallest primary LSN of a sample taken at or after `since_ns` (0/0: none kept). The
  /// primary was at that LSN after `since_ns`, so every commit acknowledged before `since_ns`
  /// ends at or below it (with synchronous_commit on: a commit is acknowledged after its
  /// flush, and the prober samples the flush LSN).
  Lsn primary_lsn_since(std::int64_t since_ns) const;
  /// The `quantile` (in (0, 1]) of replica `node`'s recent replay delays in ms, from its last
  /// delay_capacity samples; nullopt before kMinDelaySamples. A replay delay is measured each
  /// time a replica's replay LSN advances: sample time minus when the primary was first seen at
  /// that LSN (0 when the primary was not yet seen there).
  std::optional<double> replay_delay_ms(int node, double quantile) const;
  /// The fraction of replica `node`'s recent replay delays at most `within_ms` (nullopt before
  /// kMinDelaySamples): the measured probability that it shows a commit `within_ms` after it.
  std::optional<double> replay_probability(int node, double within_ms) const;
  /// The measured probability (PBS style) that replica `node` shows a commit made `elapsed_ms`
  /// ago: 1 when its published replay LSN covers `write_lsn` (when valid); else the fraction of
  /// its recent replay delays at most elapsed_ms minus its published time lag (a replica running
  /// that far behind shows a commit that much later); nullopt before kMinDelaySamples. Each delay
  /// is taken at its most here: from the primary's last sample below the LSN replayed (sparse
  /// primary samples make this err towards a lower probability, never a higher one); 0 for a
  /// replica older than the kept history (its time lag is unknown). The exact
  /// form of what Router checks for ReadOptions::p_consistent from the published quantiles.
  std::optional<double> consistent_probability(int node, double elapsed_ms, Lsn write_lsn = Lsn()) const;
  /// Replay-delay samples kept for replica `node` (at most delay_capacity).
  std::size_t replay_delay_count(int node) const;
  /// How a read needing an LSN no replica is yet seen to have replayed waits under `wait`:
  /// Fixed waits max_wait_ms. Auto considers the up, not LAGGING replicas whose time lag is
  /// within max_wait_ms: it waits max_wait_ms when one's replay-delay quantile is within it
  /// (ReplicaExpected), or when one has fewer than kMinDelaySamples (NoDelaySamples: the
  /// wait's probes measure), and not at all otherwise (NoReplicaExpected).
  CatchUpPlan plan_catch_up(const CatchUpWait& wait) const;
  /// Entries in the primary LSN history now.
  std::size_t history_size() const;
  /// Replica `node` is about to be promoted: forgets its lag, with a Recovered event first when it
  /// was LAGGING (a lag alert on it resolves; routing drops its lag flag as it promotes it). Call
  /// before Topology::promote; the history is kept (the new primary continues the old one's WAL)
  /// until reset(), which the PostgreSQL backend calls once the promotion is made.
  void forget_replica(int node);
  /// Forgets the history and all replica lag (after a primary change); a node of the topology
  /// that was LAGGING gets a Recovered event (lag 0, now unknown), as routing takes it back.
  void reset();

  /// The configuration in force (defaults resolved: recover_lag_ms and recover_lag_bytes are set).
  const LagConfig& config() const noexcept { return config_; }
  /// The topology this tracker feeds.
  const std::shared_ptr<Topology>& topology() const noexcept { return topology_; }

 private:
  struct HistoryEntry {
    std::uint64_t lsn;
    std::int64_t first_ns;  // first sample at this LSN
    std::int64_t last_ns;   // last sample at this LSN
  };
  struct Replica {
    bool known = false;
    Lsn receive_lsn, replay_lsn;
    std::int64_t sample_ns = 0;
    std::int64_t lag_ns = 0, lag_bytes = 0, receive_lag_bytes = 0;
    bool lower_bound = false;
    bool before_history = false;  // replay LSN below the oldest history entry: time lag unknown
    bool lagging = false;
    std::vector<std::int64_t> delays;  // ring of replay delays, at most delay_capacity
    std::vector<std::int64_t> delays_most;  // the same delays at their most (consistent_probability)
    std::size_t delay_next = 0;
  };

  std::int64_t crossing_ns_locked(std::uint64_t lsn, bool* lower_bound) const;
  std::int64_t fresh_as_of_locked(std::uint64_t replay_lsn) const;
  void evaluate_locked(int node, std::int64_t at_ns);
  void record_event_locked(int node, LagEventKind kind, std::int64_t time_ns, const Replica& r);
  // Forgets replica `node`'s lag; a Recovered event at `at_ns` when it was LAGGING and `announce`.
  void forget_locked(int node, std::int64_t at_ns, bool announce);
  ReplicaLag view_locked(int node) const;
  void record_delay_locked(int node, Replica& r, std::int64_t now_ns, Lsn replay_lsn);
  void publish_delays_locked(int node, const Replica& r) const;

  std::shared_ptr<Topology> topology_;
  LagConfig config_;
  std::int64_t max_lag_ns_, recover_lag_ns_, stale_ns_;
  mutable std::mutex mutex_;
  std::deque<HistoryEntry> history_;
  std::int64_t last_primary_ns_ = 0;
  bool have_primary_ = false;
  std::vector<Replica> replicas_;  // indexed by node, sized kMaxNodes
  std::deque<LagEvent> events_;
  std::uint64_t next_sequence_ = 1;
  std::uint64_t dropped_ = 0;
  std::function<void(const LagEvent&)> listener_;
};

/// Resolves `session`'s write of unknown commit LSN (Session::untracked_write_ns, wall clock)
/// with the first primary LSN `tracker` sampled at least `margin_ms` after that write: the LSN
/// becomes a write LSN of the session (an upper bound of the commit, which replicas that
/// replayed it show) and the write is no longer untracked. `wall_now_ns` and `now_ns` are the
/// wall clock and the tracker's clock read together: the write maps onto the tracker's clock
/// at now_ns - (wall_now_ns - write time), a write time ahead of wall_now_ns counting as
/// wall_now_ns (the write has happened). `margin_ms` absorbs clock skew between the host that
/// wrote and this one, and clock steps since. True when the session has no unresolved write
/// (anymore); false while no sample qualifies yet (the primary unreachable since the write).
/// Throws InvalidArgument for a negative time or a bad margin_ms.
bool resolve_untracked_write(Session& session, const LagTracker& tracker, std::int64_t wall_now_ns,
                             std::int64_t now_ns, double margin_ms);

/// Text names for enums.
const char* to_string(LagEventKind kind) noexcept;
const char* to_string(CatchUpMode mode) noexcept;
const char* to_string(CatchUpReason reason) noexcept;

}  // namespace replikit
