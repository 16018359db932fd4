// The simulator's outputs per time window: reads by the instant they were submitted, replica lag
// by the sample's instant, in fixed windows (SimConfig::window_edges_ms) and around a failover.
#include <algorithm>
#include <cmath>
#include <string>

#include "engine.hpp"

namespace replikit::sim::detail {

namespace {

void add_read(WindowStats& w, std::size_t level, ReadCount what, bool stale, bool to_primary) {
  LevelStats& l = w.levels[level];
  switch (what) {
    case ReadCount::Submitted:
      ++w.reads_submitted;
      ++l.submitted;
      break;
    case ReadCount::Answered:
      ++w.reads_answered;
      ++l.answered;
      if (stale) ++l.stale;
      if (to_primary) ++l.served_by_primary;
      break;
    case ReadCount::Failed:
      ++w.reads_failed;
      ++l.failed;
      break;
  }
}

// During the run the mean fields hold sums; finish_windows divides.
void add_lag(WindowStats& w, double lag_ms, double tracked_ms) {
  if (!std::isnan(lag_ms)) {
    ++w.lag_samples;
    w.mean_lag_ms += lag_ms;
    w.max_lag_ms = std::max(w.max_lag_ms, lag_ms);
  }
  if (!std::isnan(tracked_ms)) {
    ++w.tracked_lag_samples;
    w.mean_tracked_lag_ms += tracked_ms;
    w.max_tracked_lag_ms = std::max(w.max_tracked_lag_ms, tracked_ms);
  }
}

void finish_lag(WindowStats& w) {
  if (w.lag_samples) w.mean_lag_ms /= static_cast<double>(w.lag_samples);
  if (w.tracked_lag_samples) w.mean_tracked_lag_ms /= static_cast<double>(w.tracked_lag_samples);
}

}  // namespace

void Simulation::init_windows() {
  const auto& edges = c_.window_edges_ms;
  for (std::size_t i = 0; i + 1 < edges.size(); ++i) {
    WindowStats w;
    w.name = "window " + std::to_string(i);
    w.from_ms = edges[i];
    w.to_ms = edges[i + 1];
    res_.windows.push_back(std::move(w));
  }
  if (c_.crash_primary_at_ms >= 0) {
    for (const char* name : {"before_crash", "outage", "after_recovery"}) {
      WindowStats w;
      w.name = name;
      res_.failover_windows.push_back(std::move(w));
    }
  }
  windowed_ = !res_.windows.empty() || !res_.failover_windows.empty();
}

int Simulation::phase_of(std::int64_t t) const {
  if (crash_ns_ < 0 || t < crash_ns_) return 0;
  // A read submitted after the recovery ends after it too, so the recovery is known by then.
  return recovery_ns_ >= 0 && t >= recovery_ns_ + ns(c_.outage_after_promotion_ms) ? 2 : 1;
}

WindowStats* Simulation::fixed_window(std::int64_t t) {
  const auto& edges = c_.window_edges_ms;
  const auto it = std::upper_bound(edges.begin(), edges.end(), static_cast<double>(t) * 1e-6);
  if (it == edges.begin() || it == edges.end()) return nullptr;
  return &res_.windows[static_cast<std::size_t>(it - edges.begin() - 1)];
}

void Simulation::count_read(std::int64_t submit_ns, std::size_t level, ReadCount what, bool stale, bool to_primary) {
  if (!res_.windows.empty()) {
    if (WindowStats* w = fixed_window(submit_ns)) add_read(*w, level, what, stale, to_primary);
  }
  if (!res_.failover_windows.empty()) {
    add_read(res_.failover_windows[static_cast<std::size_t>(phase_of(submit_ns))], level, what, stale, to_primary);
  }
}

void Simulation::count_lag(double lag_ms, double tracked_ms) {
  if (!res_.windows.empty()) {
    if (WindowStats* w = fixed_window(now_)) add_lag(*w, lag_ms, tracked_ms);
  }
  if (!res_.failover_windows.empty()) add_lag(res_.failover_windows[static_cast<std::size_t>(phase_of(now_))], lag_ms, tracked_ms);
}

void Simulation::finish_windows(SimResult& r) const {
  for (auto& w : r.windows) finish_lag(w);
  if (r.failover_windows.empty()) return;
  const double end = c_.duration_ms;
  const double crash = crash_ns_ >= 0 ? static_cast<double>(crash_ns_) * 1e-6 : end;
  const double recovered =
      recovery_ns_ >= 0 ? static_cast<double>(recovery_ns_ + ns(c_.outage_after_promotion_ms)) * 1e-6 : end;
  const double bounds[4] = {0, std::min(crash, end), std::min(recovered, end), end};
  for (std::size_t i = 0; i < r.failover_windows.size(); ++i) {
    WindowStats& w = r.failover_windows[i];
    w.from_ms = bounds[i];
    w.to_ms = std::max(bounds[i], bounds[i + 1]);
    finish_lag(w);
  }
}

}  // namespace replikit::sim::detail
