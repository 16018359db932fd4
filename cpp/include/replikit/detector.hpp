#pragma once
/// \file detector.hpp
/// Failure detection of one watched node, fed probe results with their timestamps (no clock).
///
/// Two kinds:
/// - Heartbeat: the node is suspected after `missed_threshold` consecutive missed probes, or
///   after a silence long enough for that many probes to have been missed (the probe due at
///   `last_alive + k * interval` counts as missed once the next one is due, so the silence
///   limit is `(missed_threshold + 1) * interval`). Heartbeat delays of up to half the
///   detection window (`interval * missed_threshold`) never raise a false suspicion.
/// - PhiAccrual (Hayashibara et al., 2004): phi = -log10(P(a heartbeat comes later than the
///   silence so far)), from the mean and standard deviation of the last `phi_window`
///   intervals between answers, the normal tail approximated by a logistic function (as
///   Akka's detector does); suspected once phi >= `phi_threshold` (8 by default, as in
///   Cassandra and Akka).
///
/// What each probe outcome means:
/// - Ok: the node answered. Overloaded (the server refused the connection with SQLSTATE 53300
///   "too many connections" or a similar "busy" answer): the server answered, so it is alive;
///   both count as a heartbeat and reset the miss count. An overloaded primary is not failed.
/// - Timeout: no answer within the probe's timeout. A miss; in the phi kind only the growing
///   silence raises phi (timeouts are what phi's latency model is for).
/// - Refused: the host answered that nothing listens (connection refused or reset): the
///   instance is gone. A miss in both kinds; in the phi kind too, `missed_threshold`
///   consecutive refusals suspect the node at once, without waiting for phi to grow: a refusal
///   is an answer, not a late heartbeat. Refusals count as they are recorded (no minimum
///   spacing), so a prober that re-probes quickly after a refusal detects a crash sooner.
///
/// The watcher's own stall (its process stopped or descheduled) is not silence of the node:
/// a watcher that calls `watch` every round (and `sleep_until` before it waits) tells the
/// detector when it was not running. After a gap longer than the detection window between
/// the planned wake (or the previous watch) and the watch, silence is measured from the
/// gap's end, and a timeout of a probe sent before that end is not a miss (it may have timed
/// out only because nobody read its answer). A refusal is an answer and still counts. So a
/// node is suspected only once probes sent after the gap went unanswered: a death during the
/// stall is detected within the usual window after it (plus one interval). A watcher late
/// every round is slow, not stalled: only the first `missed_threshold` gaps and excused
/// timeouts since the last answer count, so a node that only times out is still suspected.

#include <cstdint>
#include <string>
#include <vector>

namespace replikit {

/// The result of one probe of the watched node.
enum class ProbeOutcome : std::uint8_t { Ok = 0, Refused = 1, Timeout = 2, Overloaded = 3 };

/// Which failure detector.
enum class DetectorKind : std::uint8_t { Heartbeat = 0, PhiAccrual = 1 };

/// Settings of a FailureDetector; every default is defined here.
struct DetectorConfig {
  DetectorKind kind = DetectorKind::Heartbeat;
  double interval_ms = 100.0;         ///< probe interval; > 0
  int missed_threshold = 3;           ///< consecutive misses that suspect the node; 1..1000
  double phi_threshold = 8.0;         ///< phi kind: suspected at phi >= this; > 0
  int phi_window = 1000;              ///< phi kind: intervals kept (a ring); 2..100000
  double min_std_ms = 25.0;           ///< phi kind: floor of the interval standard deviation; > 0
  /// Phi kind: extra silence tolerated before phi grows (added to the mean interval). The
  /// default is half of the fast preset's detection window, so jitter up to that never suspects.
  double acceptable_pause_ms = 150.0;

  /// 100 ms x 3 missed heartbeats.
  static DetectorConfig fast();
  /// 5 s x 3 missed heartbeats (the original design's).
  static DetectorConfig brief();
  /// Phi accrual probing every `interval_ms` with the other defaults.
  static DetectorConfig phi_accrual(double interval_ms = 100.0);
  /// The detection window: interval_ms * missed_threshold.
  double window_ms() const noexcept { return interval_ms * missed_threshold; }
  /// Throws InvalidArgument naming the first field out of range.
  void validate() const;
};

/// Watches one node. Deterministic: every call takes the time it refers to. Not synchronised.
class FailureDetector {
 public:
  /// A detector with `config` (validated; throws InvalidArgument naming the field).
  explicit FailureDetector(DetectorConfig config = {});

  /// Records one probe result at `now_ns` (>= 0, not earlier than the previous record);
  /// `sent_ns` is when the probe was sent (-1: unknown, taken as after any gap).
  void record(std::int64_t now_ns, ProbeOutcome outcome, std::int64_t sent_ns = -1);
  /// Notes that the watcher runs at `now_ns`; if that is later than the wake it planned (or
  /// its previous watch) by more than the detection window, it was stalled (file comment).
  void watch(std::int64_t now_ns);
  /// Notes that the watcher now waits until `wake_ns` (its next round): time spent working
  /// or waiting as planned is not a stall. Earlier instants are ignored.
  void sleep_until(std::int64_t wake_ns);
  /// End of the last such gap (-1: none since the last reset).
  std::int64_t gap_end_ns() const noexcept { return gap_end_ns_; }
  /// True once the node is considered failed at `now_ns`.
  bool suspected(std::int64_t now_ns) const;
  /// Phi at `now_ns` (phi kind); for the heartbeat kind, the effective missed count (recorded
  /// misses or those implied by the silence, whichever is more). Non-decreasing in `now_ns`
  /// between records; 0 before the first record.
  double phi(std::int64_t now_ns) const;
  /// Consecutive missed probes (Refused or Timeout) since the last answer.
  int missed() const noexcept { return missed_; }
  /// Consecutive Refused probes since the last answer or timeout.
  int refused() const noexcept { return refused_; }
  /// Time of the last answer (Ok or Overloaded), or of the first record before any answer;
  /// -1 before the first record.
  std::int64_t last_alive_ns() const noexcept { return last_alive_ns_; }
  /// Intervals between answers currently in the phi window.
  int samples() const noexcept { return count_; }
  /// Mean interval between answers in ms (interval_ms before two answers were seen).
  double mean_interval_ms() const noexcept;
  /// Standard deviation of those intervals in ms, floored at min_std_ms.
  double std_interval_ms() const noexcept;
  /// Forgets every record (e.g. to watch a newly promoted primary).
  void reset() noexcept;
  /// The settings.
  const DetectorConfig& config() const noexcept { return config_; }

 private:
  double silence_ms(std::int64_t now_ns) const noexcept;
  void add_interval(double ms);

  DetectorConfig config_;
  std::vector<double> window_;  // ring of intervals in ms, capacity phi_window
  int next_ = 0;
  int count_ = 0;
  double sum_ = 0.0;
  double sum_sq_ = 0.0;
  int missed_ = 0;
  int refused_ = 0;
  bool answered_ = false;  // an answer has been recorded since the last reset
  std::int64_t last_alive_ns_ = -1;
  std::int64_t last_record_ns_ = -1;
  std::int64_t last_watch_ns_ = -1;
  std::int64_t gap_start_ns_ = -1;  // the planned wake (or previous watch) before the last gap
  std::int64_t gap_end_ns_ = -1;
  int gaps_ = 0;     // gaps since the last answer; only the first missed_threshold count
  int ignored_ = 0;  // timeouts excused by a gap since the last answer; at most missed_threshold
};

/// Lower-case name of a probe outcome ("ok", "refused", "timeout", "overloaded").
const char* to_string(ProbeOutcome outcome) noexcept;
/// Lower-case name of a detector kind ("heartbeat", "phi_accrual").
const char* to_string(DetectorKind kind) noexcept;

}  // namespace replikit
