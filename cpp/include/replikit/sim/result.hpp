#pragma once
/// \file sim/result.hpp
/// What one simulated run measured: a value. Conservation holds for every run:
/// writes_submitted == writes_acknowledged + writes_failed + writes_pending, and the same for
/// reads and for background writes; writes_lost_acknowledged counts acknowledged writes the
/// failover lost (a subset of writes_acknowledged), background_writes_lost_acknowledged the
/// same of background writes.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "replikit/router.hpp"
#include "replikit/sim/config.hpp"

namespace replikit::sim {

/// Why a request failed.
enum class FailReason : std::uint8_t {
  QueueFull = 0,     ///< the node's queue (or the run's in-flight bound) was full
  NodeDown = 1,      ///< the node it was sent to had crashed or was taken out
  NoNode = 2,        ///< the router found no node (primary down, no replica qualified)
  PrimaryCrash = 3,  ///< a write committed on a primary that crashed before acknowledging it
};
inline constexpr int kFailReasons = 4;

/// Reads of one consistency level.
struct LevelStats {
  std::uint64_t submitted = 0;
  std::uint64_t answered = 0;
  std::uint64_t stale = 0;   ///< answered by a node that lacked a write the level required
  std::uint64_t failed = 0;
  std::uint64_t served_by_primary = 0;
  /// stale / answered (0 when none answered).
  double stale_rate() const { return answered == 0 ? 0.0 : static_cast<double>(stale) / static_cast<double>(answered); }
};

/// One node's load.
struct NodeLoad {
  std::string name;
  double utilisation = 0;        ///< busy server time / (servers x simulated time)
  std::uint64_t reads_served = 0;
  std::uint64_t writes_served = 0;
  int max_queue_length = 0;      ///< longest queue seen
  double apply_utilisation = 0;  ///< replicas: time spent replaying / simulated time
};

/// A replica's replication delay and lag.
struct ReplicaStats {
  std::string name;
  std::uint64_t writes_applied = 0;
  double mean_apply_delay_ms = 0;  ///< mean time from commit on the primary to replay here
  double max_lag_ms = 0;           ///< largest sampled time lag
};

/// The failover after a primary crash.
struct FailoverStats {
  bool crashed = false;
  std::optional<std::string> promoted;  ///< the replica promoted (none: no candidate)
  double detection_ms = -1;             ///< crash -> primary suspected (-1: not detected)
  double recovery_ms = -1;              ///< crash -> new primary accepting writes (-1: never)
  std::uint64_t writes_lost_acknowledged = 0;  ///< acknowledged writes not on the new primary
  std::uint64_t writes_lost = 0;               ///< committed writes (acknowledged or not, background ones too) not on it
  std::uint64_t background_writes_lost_acknowledged = 0;  ///< acknowledged background writes not on it
  std::vector<std::string> diverged;    ///< replicas ahead of the new primary (taken out)
  std::string model;                    ///< the detection and selection model used
};

/// Reads and replica lag of one span of simulated time: a read counts in the window of the
/// instant it was submitted (wherever it ends), a lag sample in the window of its instant.
struct WindowStats {
  std::string name;   ///< "before_crash", "outage", "after_recovery"; fixed windows: "window <i>"
  double from_ms = 0;  ///< start of the window
  double to_ms = 0;    ///< its end (exclusive)
  std::array<LevelStats, kLevels> levels{};  ///< reads submitted in the window, by Consistency
  std::uint64_t reads_submitted = 0, reads_answered = 0, reads_failed = 0;
  /// Samples of a replica's true time lag (nodes that were replicas, up and in the cluster).
  std::uint64_t lag_samples = 0;
  double mean_lag_ms = 0, max_lag_ms = 0;
  /// Samples of the time lag the LagTracker reported for them (known ones only).
  std::uint64_t tracked_lag_samples = 0;
  double mean_tracked_lag_ms = 0, max_tracked_lag_ms = 0;
};

/// One sample the lag tracker was fed by its prober, as the tracker took it.
struct ProbeSample {
  int node = 0;           ///< the node probed
  bool primary = false;   ///< a sample of the primary's position (else of a replica's replay)
  double stamp_ms = 0;    ///< the tracker's stamp: the query's send (primary) or its answer (replica)
  std::uint64_t lsn = 0;  ///< the primary's current LSN or the replica's replay LSN
  double tracked_lag_ms = 0;  ///< a replica's time lag as the tracker computed it then (primary: 0)
};

/// The outputs of one run.
struct SimResult {
  std::uint64_t seed = 0;
  std::uint64_t events = 0;     ///< events processed
  bool truncated = false;       ///< stopped at max_events
  double simulated_ms = 0;      ///< time of the last event processed

  std::uint64_t writes_submitted = 0, writes_acknowledged = 0, writes_failed = 0, writes_pending = 0;
  std::uint64_t reads_submitted = 0, reads_answered = 0, reads_failed = 0, reads_pending = 0;
  /// SimConfig::background_write_rate_per_s's writes (not in writes_*; failed for any reason).
  std::uint64_t background_writes_submitted = 0, background_writes_acknowledged = 0;
  std::uint64_t background_writes_failed = 0, background_writes_pending = 0;
  std::array<std::uint64_t, kFailReasons> writes_failed_by{};
  std::array<std::uint64_t, kFailReasons> reads_failed_by{};
  double mean_write_latency_ms = 0;  ///< submit -> acknowledgement, acknowledged writes
  double mean_read_latency_ms = 0;   ///< submit -> answer, answered reads

  std::array<LevelStats, kLevels> levels{};  ///< indexed by Consistency
  /// Routing decisions of reads by Reason (those with Decision::to_primary() went to the primary).
  std::array<std::uint64_t, kReasonCount> read_reasons{};
  std::uint64_t reads_routed_to_primary = 0;  ///< reads sent to the primary (it was up as far as the router knew)
  /// Those reads by Reason: why the primary served them.
  std::array<std::uint64_t, kReasonCount> primary_read_reasons{};

  std::vector<NodeLoad> nodes;          ///< node 0 is the first primary
  std::vector<ReplicaStats> replicas;   ///< nodes 1..replicas
  std::vector<double> sample_times_ms;  ///< lag series times
  std::vector<std::vector<double>> lag_ms;     ///< per replica: true time lag at each sample
  std::vector<std::vector<double>> lag_bytes;  ///< per replica: bytes behind the primary
  /// Per replica: the time lag the LagTracker reported (what the router went by; NaN until known).
  std::vector<std::vector<double>> tracked_lag_ms;
  /// The first SimConfig::max_probe_samples samples the lag tracker was fed, in order.
  std::vector<ProbeSample> probe_samples;
  FailoverStats failover;
  /// SimConfig::window_edges_ms's windows, in order.
  std::vector<WindowStats> windows;
  /// With a primary crash configured: "before_crash" [0, crash), "outage" [crash, recovery) and
  /// "after_recovery" [recovery, duration) (empty when it never recovered); else empty.
  std::vector<WindowStats> failover_windows;

  /// Share of answered reads that the primary served.
  double primary_read_share() const;
  /// True when every submitted request is acknowledged/answered, failed or pending.
  bool conserved() const;
};

/// Text names for enums.
const char* to_string(FailReason reason) noexcept;

}  // namespace replikit::sim
