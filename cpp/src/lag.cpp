#include "replikit/lag.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "replikit/errors.hpp"

namespace replikit {

namespace {

constexpr double kMaxMs = 1e10;  // about 115 days: keeps every ms -> ns conversion in range

std::int64_t ms_to_ns(double ms, const char* argument) {
  require(std::isfinite(ms), argument, "must be a finite number of milliseconds");
  require(ms >= 0, argument, "must not be negative");
  require(ms <= kMaxMs, argument, "must be at most 1e10 ms");
  return static_cast<std::int64_t>(std::llround(ms * 1e6));
}

}  // namespace

const char* to_string(LagEventKind kind) noexcept {
  return kind == LagEventKind::BecameLagging ? "became_lagging" : "recovered";
}

const char* to_string(CatchUpMode mode) noexcept { return mode == CatchUpMode::Auto ? "auto" : "fixed"; }

const char* to_string(CatchUpReason reason) noexcept {
  switch (reason) {
    case CatchUpReason::FixedWait: return "fixed_wait";
    case CatchUpReason::ReplicaExpected: return "replica_expected";
    case CatchUpReason::NoReplicaExpected: return "no_replica_expected";
    case CatchUpReason::NoDelaySamples: return "no_delay_samples";
  }
  return "?";
}

void check_catch_up(const CatchUpWait& wait, const char* argument) {
  require(std::isfinite(wait.max_wait_ms) && wait.max_wait_ms >= 0 && wait.max_wait_ms <= 60000, argument,
          "must be in [0, 60000] ms");
  require(std::isfinite(wait.quantile) && wait.quantile > 0 && wait.quantile <= 1, "quantile", "must be in (0, 1]");
}

LagConfig probed_lag_config(LagConfig config, double probe_interval_ms) {
  require(std::isfinite(probe_interval_ms) && probe_interval_ms > 0, "probe_interval_ms",
          "must be a positive number of milliseconds");
  // std::max keeps a NaN stale_sample_ms (its first argument), which the tracker then rejects.
  config.stale_sample_ms = std::max(config.stale_sample_ms, 2 * probe_interval_ms);
  return config;
}

LagTracker::LagTracker(std::shared_ptr<Topology> topology, LagConfig config)
    : topology_(std::move(topology)), config_(config) {
  require(topology_ != nullptr, "topology", "must not be null");
  // The recovery marks default to half the thresholds; resolved here so config() shows them.
  max_lag_ns_ = ms_to_ns(config_.max_lag_ms, "max_lag_ms");
  if (!config_.recover_lag_ms) config_.recover_lag_ms = config_.max_lag_ms / 2;
  recover_lag_ns_ = ms_to_ns(*config_.recover_lag_ms, "recover_lag_ms");
  stale_ns_ = ms_to_ns(config_.stale_sample_ms, "stale_sample_ms");
  require(*config_.recover_lag_ms <= config_.max_lag_ms, "recover_lag_ms", "must not exceed max_lag_ms");
  require(config_.max_lag_bytes >= 0, "max_lag_bytes", "must not be negative (0 disables it)");
  if (!config_.recover_lag_bytes) config_.recover_lag_bytes = config_.max_lag_bytes / 2;
  require(*config_.recover_lag_bytes >= 0, "recover_lag_bytes", "must not be negative");
  require(config_.max_lag_bytes == 0 || *config_.recover_lag_bytes <= config_.max_lag_bytes, "recover_lag_bytes",
          "must not exceed max_lag_bytes");
  require(config_.history_capacity >= 2 && config_.history_capacity <= (1u << 24), "history_capacity",
          "must be in [2, 16777216]");
  require(config_.event_capacity >= 1 && config_.event_capacity <= (1u << 20), "event_capacity",
          "must be in [1, 1048576]");
  require(config_.delay_capacity >= 1 && config_.delay_capacity <= (1u << 16), "delay_capacity",
          "must be in [1, 65536]");
  replicas_.resize(kMaxNodes);
}

void LagTracker::primary_sample(std::int64_t now_ns, Lsn current_lsn) {
  require(now_ns >= 0, "now_ns", "must not be negative");
  std::lock_guard<std::mutex> lock(mutex_);
  if (have_primary_ && now_ns < last_primary_ns_) {
    throw InvalidArgument("now_ns", "primary samples went back in time (" + std::to_string(now_ns) +
                                        " < " + std::to_string(last_primary_ns_) + ")");
  }
  if (!history_.empty() && current_lsn.value < history_.back().lsn) {
    throw InvalidArgument("current_lsn", "primary LSN went backwards (" + current_lsn.to_string() + " < " +
                                             Lsn(history_.back().lsn).to_string() +
                                             "); call reset() after a primary change");
  }
  if (!history_.empty() && current_lsn.value == history_.back().lsn) {
    history_.back().last_ns = now_ns;
  } else {
    history_.push_back({current_lsn.value, now_ns, now_ns});
    while (history_.size() > config_.history_capacity) history_.pop_front();
  }
  have_primary_ = true;
  last_primary_ns_ = now_ns;
  topology_->publish_primary_lsn(topology_->primary(), current_lsn);
  // Byte lag moves with the primary; a silent replica is judged at the primary's time.
  int n = topology_->size();
  for (int i = 0; i < n; ++i) {
    if (!replicas_[i].known || role_of(topology_->flags(i)) != Role::Replica) continue;
    std::int64_t at = now_ns - replicas_[i].sample_ns > stale_ns_ ? now_ns : replicas_[i].sample_ns;
    evaluate_locked(i, at);
  }
}

void LagTracker::replica_sample(std::string_view name, std::int64_t now_ns, Lsn receive_lsn, Lsn replay_lsn) {
  replica_sample(topology_->index_of(name, "name"), now_ns, receive_lsn, replay_lsn);
}

void LagTracker::replica_sample(int node, std::int64_t now_ns, Lsn receive_lsn, Lsn replay_lsn) {
  topology_->check_index(node, "node");
  require(role_of(topology_->flags(node)) == Role::Replica, "node",
          "'" + topology_->name(node) + "' is not a replica");
  require(now_ns >= 0, "now_ns", "must not be negative");
  std::lock_guard<std::mutex> lock(mutex_);
  Replica& r = replicas_[node];
  if (r.known && now_ns < r.sample_ns) {
    throw InvalidArgument("now_ns", "samples of '" + topology_->name(node) + "' went back in time");
  }
  if (r.known && replay_lsn.value > r.replay_lsn.value) record_delay_locked(node, r, now_ns, replay_lsn);
  r.known = true;
  r.receive_lsn = receive_lsn;
  r.replay_lsn = replay_lsn;
  r.sample_ns = now_ns;
  evaluate_locked(node, now_ns);
}

void LagTracker::record_delay_locked(int node, Replica& r, std::int64_t now_ns, Lsn replay_lsn) {
  if (history_.empty()) return;
  // When the primary first reached replay_lsn: it first wrote past replay_lsn - 1.
  bool lower = false;
  const std::int64_t reached = crossing_ns_locked(replay_lsn.value - 1, &lower);
  if (lower) return;  // older than the kept history: the delay is unknown
  // Not yet seen on the primary: the replica is as fresh as the tracker can tell.
  const std::int64_t delay =
      reached == std::numeric_limits<std::int64_t>::min() ? 0 : std::max<std::int64_t>(0, now_ns - reached);
  // The most it can have taken: the primary was last seen below replay_lsn at the end of the
  // history entry before the first one at or past it, so that WAL was written after then. A
  // probability target is judged on these: they never overstate how soon a replica shows a
  // write (the estimate above counts 0 for a replica seen before the primary was).
  const auto past = std::upper_bound(history_.begin(), history_.end(), replay_lsn.value - 1,
                                     [](std::uint64_t v, const HistoryEntry& e) { return v < e.lsn; });
  const std::int64_t most = std::max<std::int64_t>(0, now_ns - (past - 1)->last_ns);  // past != begin: !lower
  if (r.delays.size() < config_.delay_capacity) {
    r.delays.push_back(delay);
    r.delays_most.push_back(most);
  } else {
    r.delays[r.delay_next] = delay;
    r.delays_most[r.delay_next] = most;
  }
  r.delay_next = (r.delay_next + 1) % config_.delay_capacity;
  publish_delays_locked(node, r);
}

void LagTracker::publish_delays_locked(int node, const Replica& r) const {
  // Sorting a copy costs O(n log n) per sample of an advancing replica (n <= delay_capacity);
  // the router then checks a target with one comparison per replica.
  std::vector<std::int64_t> sorted = r.delays_most;
  std::sort(sorted.begin(), sorted.end());
  const std::size_t n = sorted.size();
  const double dn = static_cast<double>(n);
  std::array<std::int64_t, kDelayLevelCount> q{};
  for (int k = 0; k < kDelayLevelCount; ++k) {
    // The nearest rank: the smallest r with r / n >= level, in the arithmetic that
    // consistent_probability compares with (so a delay at or below q[k] is a probability >= level).
    const double level = kDelayLevels[static_cast<std::size_t>(k)];
    std::size_t rank = std::clamp<std::size_t>(static_cast<std::size_t>(std::ceil(level * dn)), 1, n);
    while (rank < n && static_cast<double>(rank) / dn < level) ++rank;
    while (rank > 1 && static_cast<double>(rank - 1) / dn >= level) --rank;
    q[static_cast<std::size_t>(k)] = sorted[rank - 1];
  }
  topology_->publish_delays(node, static_cast<std::uint32_t>(n), q);
}

std::int64_t LagTracker::crossing_ns_locked(std::uint64_t lsn, bool* lower_bound) const {
  *lower_bound = false;
  auto it = std::upper_bound(history_.begin(), history_.end(), lsn,
                             [](std::uint64_t v, const HistoryEntry& e) { return v < e.lsn; });
  if (it == history_.end()) return std::numeric_limits<std::int64_t>::min();
  if (it == history_.begin()) {
    *lower_bound = true;
    return it->first_ns;
  }
  const HistoryEntry& before = *(it - 1);
  // A gap longer than stale_sample_ms is an outage (killed, frozen, unreachable), not a steady
  // WAL rate: the primary may have passed `lsn` right after before.last_ns, and interpolating
  // across the gap would under-report the lag by up to the whole outage. Take the earliest.
  if (it->first_ns - before.last_ns > stale_ns_) return before.last_ns;
  // The primary went from before.lsn (still there at before.last_ns) to it->lsn (first seen at
  // it->first_ns); assume a steady WAL rate in between to place the moment it passed `lsn`.
  long double span_bytes = static_cast<long double>(it->lsn - before.lsn);
  long double frac = static_cast<long double>(lsn + 1 - before.lsn) / span_bytes;
  long double span_ns = static_cast<long double>(it->first_ns - before.last_ns);
  return before.last_ns + static_cast<std::int64_t>(frac * span_ns);
}

void LagTracker::evaluate_locked(int node, std::int64_t at_ns) {
  Replica& r = replicas_[node];
  std::uint64_t primary_lsn = history_.empty() ? 0 : history_.back().lsn;
  r.lag_bytes = std::max<std::int64_t>(0, lsn_diff_bytes(Lsn(primary_lsn), r.replay_lsn));
  r.receive_lag_bytes = std::max<std::int64_t>(0, lsn_diff_bytes(Lsn(primary_lsn), r.receive_lsn));
  bool lower = false;
  std::int64_t crossing = history_.empty() ? std::numeric_limits<std::int64_t>::min()
                                           : crossing_ns_locked(r.replay_lsn.value, &lower);
  std::int64_t measured =
      crossing == std::numeric_limits<std::int64_t>::min() ? 0 : std::max<std::int64_t>(0, at_ns - crossing);
  r.lower_bound = lower;
  // Older than the whole history (fresh after a reset, or evicted): the primary passed the
  // replay LSN at some unknown time before the oldest entry, so the true lag may be anything
  // above `measured`. Published as unknown, so bounded-staleness reads never take it.
  r.before_history = lower;
  r.lag_ns = measured;
  // The replica is known fresh only as of the primary's last sample: once that sample is
  // stale, everything the primary may have committed since is unaccounted for.
  if (have_primary_ && at_ns - last_primary_ns_ > stale_ns_ && at_ns - last_primary_ns_ > measured) {
    r.lag_ns = at_ns - last_primary_ns_;
    r.lower_bound = true;
  }

  // The state follows the measured lag only: a silent primary must not turn every replica
  // LAGGING, or reads that need no freshness bound would follow the primary into its outage.
  const bool bytes_on = config_.max_lag_bytes > 0;
  bool lagging;
  if (r.lagging) {
    // A zero recover threshold means "no lag at all" (lag is never negative, so "< 0" would
    // keep a fully caught-up replica LAGGING for ever); same rule for time and bytes.
    bool recovered = (measured < recover_lag_ns_ || (recover_lag_ns_ == 0 && measured == 0)) &&
                     (!bytes_on || r.lag_bytes < *config_.recover_lag_bytes ||
                      (*config_.recover_lag_bytes == 0 && r.lag_bytes == 0));
    lagging = !recovered;
  } else {
    lagging = measured > max_lag_ns_ || (bytes_on && r.lag_bytes > config_.max_lag_bytes);
  }
  if (lagging != r.lagging) {
    r.lagging = lagging;
    record_event_locked(node, lagging ? LagEventKind::BecameLagging : LagEventKind::Recovered, at_ns, r);
  }
  topology_->publish_lag(node, r.receive_lsn, r.replay_lsn, r.lag_bytes, r.lag_ns, r.lagging, !r.before_history,
                         fresh_as_of_locked(r.replay_lsn.value));
}

std::int64_t LagTracker::fresh_as_of_locked(std::uint64_t replay_lsn) const {
  // The last sample of the primary at or below the replay LSN: every commit acknowledged before
  // it ends at or below that LSN, so the replica has replayed it. No interpolation: a replica
  // held at a commit record stands most of the way into the write and would look barely behind.
  auto it = std::upper_bound(history_.begin(), history_.end(), replay_lsn,
                             [](std::uint64_t v, const HistoryEntry& e) { return v < e.lsn; });
  return it == history_.begin() ? kFreshUnknown : (it - 1)->last_ns;
}

void LagTracker::record_event_locked(int node, LagEventKind kind, std::int64_t time_ns, const Replica& r) {
  if (events_.size() >= config_.event_capacity) {
    events_.pop_front();
    ++dropped_;
  }
  events_.push_back({next_sequence_++, node, kind, time_ns, r.lag_ns, r.lag_bytes});
  if (!listener_) return;
  // Before evaluate_locked publishes the state to routing. A listener that throws loses its copy
  // of this event (the tracker's log keeps it), not the routing update after it.
  try {
    listener_(events_.back());
  } catch (...) {
  }
}

void LagTracker::set_transition_listener(std::function<void(const LagEvent&)> listener) {
  std::lock_guard<std::mutex> lock(mutex_);
  listener_ = std::move(listener);
}

ReplicaLag LagTracker::view_locked(int node) const {
  const Replica& r = replicas_[node];
  ReplicaLag out;
  out.node = node;
  out.known = r.known;
  out.receive_lsn = r.receive_lsn;
  out.replay_lsn = r.replay_lsn;
  out.lag_bytes = r.lag_bytes;
  out.receive_lag_bytes = r.receive_lag_bytes;
  out.lag_ns = r.lag_ns;
  out.lag_is_lower_bound = r.lower_bound;
  out.state = r.lagging ? LagState::Lagging : LagState::Ok;
  out.sample_time_ns = r.sample_ns;
  return out;
}

ReplicaLag LagTracker::replica(int node) const {
  topology_->check_index(node, "node");
  std::lock_guard<std::mutex> lock(mutex_);
  return view_locked(node);
}

std::vector<ReplicaLag> LagTracker::replicas() const {
  std::vector<ReplicaLag> out;
  std::lock_guard<std::mutex> lock(mutex_);
  for (int i : topology_->replicas()) out.push_back(view_locked(i));
  return out;
}

std::vector<LagEvent> LagTracker::events(std::uint64_t after_sequence, std::size_t max_events) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<LagEvent> out;
  for (const auto& e : events_) {
    if (out.size() >= max_events) break;
    if (e.sequence > after_sequence) out.push_back(e);
  }
  return out;
}

std::uint64_t LagTracker::events_dropped() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return dropped_;
}

std::int64_t LagTracker::primary_time_past(Lsn lsn) const {
  std::lock_guard<std::mutex> lock(mutex_);
  bool lower = false;
  return history_.empty() ? std::numeric_limits<std::int64_t>::min() : crossing_ns_locked(lsn.value, &lower);
}

Lsn LagTracker::primary_lsn() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return history_.empty() ? Lsn() : Lsn(history_.back().lsn);
}

Lsn LagTracker::primary_lsn_since(std::int64_t since_ns) const {
  std::lock_guard<std::mutex> lock(mutex_);
  // Entries run in time and LSN order; the first whose last sample is at or after since_ns
  // holds the smallest LSN sampled since (evicted entries only make the answer larger).
  auto it = std::lower_bound(history_.begin(), history_.end(), since_ns,
                             [](const HistoryEntry& e, std::int64_t t) { return e.last_ns < t; });
  return it == history_.end() ? Lsn() : Lsn(it->lsn);
}

std::optional<double> LagTracker::replay_delay_ms(int node, double quantile) const {
  topology_->check_index(node, "node");
  require(std::isfinite(quantile) && quantile > 0 && quantile <= 1, "quantile", "must be in (0, 1]");
  std::vector<std::int64_t> d;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    d = replicas_[node].delays;
  }
  if (d.size() < kMinDelaySamples) return std::nullopt;
  // The nearest-rank quantile: the smallest sample with at least quantile * n samples <= it.
  const auto rank = static_cast<std::size_t>(std::ceil(quantile * static_cast<double>(d.size())));
  auto it = d.begin() + static_cast<std::ptrdiff_t>(std::clamp<std::size_t>(rank, 1, d.size()) - 1);
  std::nth_element(d.begin(), it, d.end());
  return static_cast<double>(*it) / 1e6;
}

std::optional<double> LagTracker::replay_probability(int node, double within_ms) const {
  topology_->check_index(node, "node");
  const std::int64_t within_ns = ms_to_ns(within_ms, "within_ms");
  std::lock_guard<std::mutex> lock(mutex_);
  const auto& d = replicas_[node].delays;
  if (d.size() < kMinDelaySamples) return std::nullopt;
  const auto hits = std::count_if(d.begin(), d.end(), [&](std::int64_t x) { return x <= within_ns; });
  return static_cast<double>(hits) / static_cast<double>(d.size());
}

std::optional<double> LagTracker::consistent_probability(int node, double elapsed_ms, Lsn write_lsn) const {
  topology_->check_index(node, "node");
  const std::int64_t elapsed_ns = ms_to_ns(elapsed_ms, "elapsed_ms");
  if (write_lsn.valid() && topology_->replay_lsn(node) >= write_lsn.value) return 1.0;
  const std::int64_t shown_ns = elapsed_ns - topology_->lag_ns(node);
  std::lock_guard<std::mutex> lock(mutex_);
  const auto& d = replicas_[node].delays_most;
  if (d.size() < kMinDelaySamples) return std::nullopt;
  // An unknown time lag (older than the history): the router never counts it likely.
  if (replicas_[node].before_history) return 0.0;
  const auto hits = std::count_if(d.begin(), d.end(), [&](std::int64_t x) { return x <= shown_ns; });
  return static_cast<double>(hits) / static_cast<double>(d.size());
}

std::size_t LagTracker::replay_delay_count(int node) const {
  topology_->check_index(node, "node");
  std::lock_guard<std::mutex> lock(mutex_);
  return replicas_[node].delays.size();
}

CatchUpPlan LagTracker::plan_catch_up(const CatchUpWait& wait) const {
  check_catch_up(wait);
  CatchUpPlan plan;
  if (wait.mode == CatchUpMode::Fixed) {
    plan.wait_ms = wait.max_wait_ms;
    return plan;
  }
  plan.reason = CatchUpReason::NoReplicaExpected;
  const std::int64_t bound_ns = ms_to_ns(wait.max_wait_ms, "max_wait_ms");
  bool unmeasured = false;  // a candidate without enough samples yet
  for (int i : topology_->replicas()) {
    const std::uint32_t flags = topology_->flags(i);
    if (!(flags & detail::kUpBit) || (flags & detail::kLaggingBit)) continue;
    const ReplicaLag lag = replica(i);
    // A replica already further behind than the bound (paused, or replaying a backlog) will not
    // show a newer commit within it, whatever its past delays say.
    if (!lag.known || lag.lag_ns > bound_ns) continue;
    const std::optional<double> q = replay_delay_ms(i, wait.quantile);
    if (!q) {
      unmeasured = true;
      continue;
    }
    if (*q > wait.max_wait_ms) continue;
    if (plan.reason != CatchUpReason::ReplicaExpected || *q < plan.predicted_ms) {
      plan.reason = CatchUpReason::ReplicaExpected;
      plan.node = i;
      plan.predicted_ms = *q;
      plan.samples = replay_delay_count(i);
    }
  }
  // Without samples there is no evidence either way: a bounded wait measures (the probes that
  // a waiting read asks for record replay delays), and the bound caps what it costs.
  if (plan.reason != CatchUpReason::ReplicaExpected && unmeasured) plan.reason = CatchUpReason::NoDelaySamples;
  if (plan.reason != CatchUpReason::NoReplicaExpected) plan.wait_ms = wait.max_wait_ms;
  return plan;
}

std::size_t LagTracker::history_size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return history_.size();
}

void LagTracker::forget_locked(int node, std::int64_t at_ns, bool announce) {
  Replica& r = replicas_[static_cast<std::size_t>(node)];
  const bool was_lagging = r.lagging;
  r = Replica{};
  if (was_lagging && announce) record_event_locked(node, LagEventKind::Recovered, at_ns, r);
}

void LagTracker::forget_replica(int node) {
  topology_->check_index(node, "node");
  std::lock_guard<std::mutex> lock(mutex_);
  forget_locked(node, std::max(last_primary_ns_, replicas_[static_cast<std::size_t>(node)].sample_ns), true);
}

void LagTracker::reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  // A LAGGING replica stops being excluded here (its lag is unknown until sampled again), so
  // observers hear a Recovered event for it, stamped with the last instant this tracker knew.
  std::int64_t last_ns = last_primary_ns_;
  for (const auto& r : replicas_) last_ns = std::max(last_ns, r.sample_ns);
  history_.clear();
  have_primary_ = false;
  last_primary_ns_ = 0;
  const int n = topology_->size();
  for (int node = 0; node < static_cast<int>(replicas_.size()); ++node) {
    forget_locked(node, last_ns, node < n && role_of(topology_->flags(node)) != Role::Removed);
  }
  topology_->clear_lag();
}

bool resolve_untracked_write(Session& session, const LagTracker& tracker, std::int64_t wall_now_ns,
                             std::int64_t now_ns, double margin_ms) {
  require(wall_now_ns >= 0, "wall_now_ns", "must not be negative");
  require(now_ns >= 0, "now_ns", "must not be negative");
  const std::int64_t margin_ns = ms_to_ns(margin_ms, "margin_ms");
  if (session.untracked_write_ns == kNever) return true;
  // Elapsed wall time since the write, in [0, wall_now_ns]: no overflow below.
  const std::int64_t elapsed =
      wall_now_ns - std::clamp<std::int64_t>(session.untracked_write_ns, 0, wall_now_ns);
  const Lsn bound = tracker.primary_lsn_since(now_ns - elapsed + margin_ns);
  if (!bound.valid()) return false;
  session.write_lsn = lsn_max(session.write_lsn, bound);
  session.untracked_write_ns = kNever;
  return true;
}

}  // namespace replikit
