#include "replikit/detector.hpp"

#include <algorithm>
#include <cmath>

#include "replikit/errors.hpp"

namespace replikit {

namespace {

constexpr double kNsPerMs = 1e6;
constexpr int kMaxMissedThreshold = 1000;
constexpr int kMaxPhiWindow = 100000;

bool positive_finite(double v) { return std::isfinite(v) && v > 0; }

// -log10 of the logistic approximation of the normal tail P(X > mean + y * std), written so
// that it neither overflows nor underflows: with a = y * (1.5976 + 0.070566 y^2) the tail is
// 1 / (1 + e^a), so phi = log10(1 + e^a). Strictly increasing in y.
double phi_of(double y) {
  const double a = y * (1.5976 + 0.070566 * y * y);
  const double ln10 = std::log(10.0);
  if (a > 0) return (a + std::log1p(std::exp(-a))) / ln10;
  return std::log1p(std::exp(a)) / ln10;
}

}  // namespace

DetectorConfig DetectorConfig::fast() { return DetectorConfig{}; }

DetectorConfig DetectorConfig::brief() {
  DetectorConfig c;
  c.interval_ms = 5000.0;
  c.missed_threshold = 3;
  return c;
}

DetectorConfig DetectorConfig::phi_accrual(double interval_ms) {
  DetectorConfig c;
  c.kind = DetectorKind::PhiAccrual;
  c.interval_ms = interval_ms;
  c.validate();
  return c;
}

void DetectorConfig::validate() const {
  require(kind == DetectorKind::Heartbeat || kind == DetectorKind::PhiAccrual, "kind", "unknown detector kind");
  require(positive_finite(interval_ms), "interval_ms", "must be a finite number > 0");
  require(missed_threshold >= 1 && missed_threshold <= kMaxMissedThreshold, "missed_threshold",
          "must be in [1, 1000]");
  require(positive_finite(phi_threshold), "phi_threshold", "must be a finite number > 0");
  require(phi_window >= 2 && phi_window <= kMaxPhiWindow, "phi_window", "must be in [2, 100000]");
  require(positive_finite(min_std_ms), "min_std_ms", "must be a finite number > 0");
  require(std::isfinite(acceptable_pause_ms) && acceptable_pause_ms >= 0, "acceptable_pause_ms",
          "must be a finite number >= 0");
  // The silence limit in ns must fit an int64 (interval_ms * (threshold + 1) * 1e6).
  require(interval_ms * (missed_threshold + 1) < 9e12, "interval_ms", "is too large (at most about 9e9 ms x threshold)");
}

FailureDetector::FailureDetector(DetectorConfig config) : config_(config) {
  config_.validate();
  window_.assign(static_cast<std::size_t>(config_.phi_window), 0.0);
}

void FailureDetector::reset() noexcept {
  std::fill(window_.begin(), window_.end(), 0.0);
  next_ = count_ = missed_ = refused_ = 0;
  sum_ = sum_sq_ = 0.0;
  answered_ = false;
  gaps_ = ignored_ = 0;
  last_alive_ns_ = last_record_ns_ = last_watch_ns_ = gap_start_ns_ = gap_end_ns_ = -1;
}

void FailureDetector::watch(std::int64_t now_ns) {
  require(now_ns >= 0, "now_ns", "must not be negative");
  if (now_ns <= last_watch_ns_) return;
  const auto window_ns = static_cast<std::int64_t>(config_.window_ms() * kNsPerMs);
  // Late more than the window in a row since the last answer: a watcher late every round is
  // slow, not stalled, and its later gaps no longer excuse the node's silence or timeouts.
  if (last_watch_ns_ >= 0 && now_ns - last_watch_ns_ > window_ns && gaps_++ < config_.missed_threshold) {
    gap_start_ns_ = last_watch_ns_;
    gap_end_ns_ = now_ns;
  }
  gaps_ = std::min(gaps_, kMaxMissedThreshold);
  last_watch_ns_ = now_ns;
}

void FailureDetector::sleep_until(std::int64_t wake_ns) {
  require(wake_ns >= 0, "wake_ns", "must not be negative");
  last_watch_ns_ = std::max(last_watch_ns_, wake_ns);
}

void FailureDetector::add_interval(double ms) {
  const auto cap = static_cast<int>(window_.size());
  if (count_ == cap) {
    const double old = window_[static_cast<std::size_t>(next_)];
    sum_ -= old;
    sum_sq_ -= old * old;
  } else {
    ++count_;
  }
  window_[static_cast<std::size_t>(next_)] = ms;
  sum_ += ms;
  sum_sq_ += ms * ms;
  next_ = (next_ + 1) % cap;
  if (next_ == 0) {
    // Once per lap, recompute the sums so that rounding from the running updates never builds up.
    sum_ = sum_sq_ = 0.0;
    for (int i = 0; i < count_; ++i) {
      const double v = window_[static_cast<std::size_t>(i)];
      sum_ += v;
      sum_sq_ += v * v;
    }
  }
}

void FailureDetector::record(std::int64_t now_ns, ProbeOutcome outcome, std::int64_t sent_ns) {
  require(now_ns >= 0, "now_ns", "must not be negative");
  require(now_ns >= last_record_ns_, "now_ns", "is earlier than the previous record (time must not go backwards)");
  require(outcome <= ProbeOutcome::Overloaded, "outcome", "unknown probe outcome");
  require(sent_ns >= -1 && sent_ns <= now_ns, "sent_ns", "must be -1 (unknown) or in [0, now_ns]");
  last_record_ns_ = now_ns;
  // A timeout of a probe in flight across the watcher's stall says nothing of the node; at
  // most missed_threshold of them in a row, so that timeouts alone still suspect it.
  if (outcome == ProbeOutcome::Timeout && sent_ns >= 0 && sent_ns < gap_end_ns_ && now_ns > gap_start_ns_ &&
      ignored_ < config_.missed_threshold) {
    ++ignored_;
    if (last_alive_ns_ < 0) last_alive_ns_ = now_ns;
    return;
  }
  switch (outcome) {
    case ProbeOutcome::Ok:
    case ProbeOutcome::Overloaded:
      // An interval spanning the watcher's stall measures the stall, not the node.
      if (answered_ && last_alive_ns_ >= gap_end_ns_) add_interval(static_cast<double>(now_ns - last_alive_ns_) / kNsPerMs);
      answered_ = true;
      last_alive_ns_ = now_ns;
      missed_ = refused_ = gaps_ = ignored_ = 0;
      break;
    case ProbeOutcome::Refused:
      ++refused_;
      ++missed_;
      break;
    case ProbeOutcome::Timeout:
      refused_ = 0;
      ++missed_;
      break;
  }
  // Silence is measured from the first record when nothing has answered yet: watching began then.
  if (last_alive_ns_ < 0) last_alive_ns_ = now_ns;
  // Saturate: a node that never answers must not overflow the counters.
  missed_ = std::min(missed_, kMaxMissedThreshold);
  refused_ = std::min(refused_, kMaxMissedThreshold);
}

double FailureDetector::silence_ms(std::int64_t now_ns) const noexcept {
  // Silence during the watcher's own stall is not held against the node.
  const std::int64_t from = std::max(last_alive_ns_, gap_end_ns_);
  if (last_alive_ns_ < 0 || now_ns <= from) return 0.0;
  return static_cast<double>(now_ns - from) / kNsPerMs;
}

double FailureDetector::mean_interval_ms() const noexcept {
  return count_ == 0 ? config_.interval_ms : sum_ / count_;
}

double FailureDetector::std_interval_ms() const noexcept {
  // Before enough samples, assume a quarter of the interval (a loose first estimate).
  double sd = config_.interval_ms / 4.0;
  if (count_ >= 2) {
    const double mean = sum_ / count_;
    sd = std::sqrt(std::max(0.0, sum_sq_ / count_ - mean * mean));
  }
  return std::max(sd, config_.min_std_ms);
}

double FailureDetector::phi(std::int64_t now_ns) const {
  if (last_alive_ns_ < 0) return 0.0;
  const double silence = silence_ms(now_ns);
  if (config_.kind == DetectorKind::Heartbeat) {
    // The probe due at last_alive + k * interval is missed once the next one is due.
    const double implied = std::floor(silence / config_.interval_ms) - 1.0;
    return std::max(static_cast<double>(missed_), implied);
  }
  const double y = (silence - mean_interval_ms() - config_.acceptable_pause_ms) / std_interval_ms();
  return phi_of(y);
}

bool FailureDetector::suspected(std::int64_t now_ns) const {
  if (last_alive_ns_ < 0) return false;
  if (config_.kind == DetectorKind::Heartbeat) return phi(now_ns) >= config_.missed_threshold;
  return refused_ >= config_.missed_threshold || phi(now_ns) >= config_.phi_threshold;
}

const char* to_string(ProbeOutcome outcome) noexcept {
  switch (outcome) {
    case ProbeOutcome::Ok: return "ok";
    case ProbeOutcome::Refused: return "refused";
    case ProbeOutcome::Timeout: return "timeout";
    case ProbeOutcome::Overloaded: return "overloaded";
  }
  return "unknown";
}

const char* to_string(DetectorKind kind) noexcept {
  switch (kind) {
    case DetectorKind::Heartbeat: return "heartbeat";
    case DetectorKind::PhiAccrual: return "phi_accrual";
  }
  return "unknown";
}

}  // namespace replikit
