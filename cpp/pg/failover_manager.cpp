// FailoverManager: the thread (detection from the prober's probes, reconciliation) and the
// public calls. The procedures themselves are in failover_run.cpp.
#include <chrono>

#include "failover_manager_impl.hpp"
#include "replikit/errors.hpp"

namespace replikit::pg {

namespace {

void check_range(double v, double lo, double hi, const char* name) {
  if (!(v >= lo && v <= hi)) {
    throw InvalidArgument(name, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
}

// What the prober's last probe of a node means to a failure detector.
ProbeOutcome outcome_of(const NodeStatus& st, bool answered) {
  if (answered) return ProbeOutcome::Ok;
  if (st.last_error.find("server is full") != std::string::npos) return ProbeOutcome::Overloaded;
  if (st.last_error.find("Connection refused") != std::string::npos ||
      st.last_error.find("No such file or directory") != std::string::npos) {
    return ProbeOutcome::Refused;
  }
  return ProbeOutcome::Timeout;
}

}  // namespace

void check_options(const FailoverManagerOptions& o) {
  o.detector.validate();
  if (o.failover.max_lag_bytes && *o.failover.max_lag_bytes < 0) throw InvalidArgument("max_lag_bytes", "must be >= 0");
  check_range(o.action_timeout_ms, 1, 600000, "action_timeout_ms");
  check_range(o.check_interval_ms, 1, 10000, "check_interval_ms");
  check_range(o.state_interval_ms, 10, 600000, "state_interval_ms");
  check_range(o.retry_interval_ms, 10, 600000, "retry_interval_ms");
  check_range(o.max_switchover_ms, 1, 600000, "max_switchover_ms");
  check_range(o.max_drain_ms, 0, 600000, "max_drain_ms");
}

FailoverManager::Impl::Impl(ReplicatedDatabase& database, FailoverManagerOptions o)
    : db(database), options(std::move(o)), detector(options.detector) {
  actions.timeout_ms = options.action_timeout_ms;
}

void FailoverManager::Impl::observe(std::int64_t now) {
  const auto& topo = *db.topology();
  const int p = topo.primary();
  const NodeStatus st = db.node(topo.name(p));
  const std::uint64_t count = st.probes_ok + st.probes_failed;
  if (p != watched) {
    // A new primary: watch it from scratch (its history says nothing of the old one).
    watched = p;
    detector.reset();
    seen_probes = count;
    seen_ok = st.probes_ok;
    last_record_ns = now;
    detector.record(now, ProbeOutcome::Ok);
    return;
  }
  if (count == seen_probes) return;
  const bool answered = st.probes_ok > seen_ok && st.reachable;
  seen_probes = count;
  seen_ok = st.probes_ok;
  last_record_ns = std::max(last_record_ns, std::min(now, st.last_probe_ns > 0 ? st.last_probe_ns : now));
  const std::int64_t sent = st.last_probe_sent_ns > 0 ? std::min(st.last_probe_sent_ns, last_record_ns) : -1;
  detector.record(last_record_ns, outcome_of(st, answered), sent);
}

void FailoverManager::Impl::refresh_primary_state() {
  const auto& topo = *db.topology();
  const std::string name = topo.name(topo.primary());
  // The watch thread waits for this read: a primary that froze meanwhile must not hold off
  // detection for longer than one detection window.
  ActionOptions bounded = actions;
  bounded.timeout_ms = std::min(actions.timeout_ms, std::max(50.0, options.detector.window_ms()));
  const NodeState st = read_node_state(name, db.dsn(name), bounded);
  if (!st.reachable || st.in_recovery) return;
  std::lock_guard<std::mutex> lock(state_mutex);
  primary_state.last_known_lsn = st.lsn;
  primary_state.timeline = st.timeline;
  primary_state.synchronous_mode = st.synchronous_mode;
  primary_state.synchronous_standbys = st.synchronous_now;
  if (st.synchronous_standby_names != kFencedStandby) primary_synchronous = st.synchronous_standby_names;
  timelines[name] = st.timeline;
}

std::string FailoverManager::Impl::synchronous_setting() const {
  std::lock_guard<std::mutex> lock(state_mutex);
  return primary_synchronous;
}

void FailoverManager::Impl::run() {
  const std::int64_t tick = detail::ms_to_ns(options.check_interval_ms);
  // Bounded by stop_flag: every round waits at most one tick.
  while (!stop_flag.load()) {
    const std::int64_t now = detail::steady_now_ns();
    try {
      // A round late by more than the detection window (this process stopped or descheduled)
      // is not evidence about the primary: it is suspected only once probes sent since go unanswered.
      detector.watch(now);
      observe(now);
      if (now >= next_state_ns) {
        next_state_ns = now + detail::ms_to_ns(options.state_interval_ms);
        if (detector.missed() == 0) refresh_primary_state();
      }
      // Without a permit (coordinated mode, not the leader) the thread only observes.
      const bool acting = may_act();
      if (acting && detector.suspected(now) && now >= retry_after_ns) {
        std::lock_guard<std::mutex> lock(act_mutex);
        publish(fail_over("failover"));
      } else if (acting && now >= next_reconcile_ns) {
        next_reconcile_ns = now + detail::ms_to_ns(std::max(100.0, options.detector.interval_ms));
        std::lock_guard<std::mutex> lock(act_mutex);
        reconcile();
      }
    } catch (const std::exception&) {
      // A failed round (e.g. the database closed) is retried at the next tick.
    }
    // Work and the planned wait are not a stall; only a wake later than planned by a window is.
    detector.sleep_until(detail::steady_now_ns() + tick);
    std::unique_lock<std::mutex> lock(wake_mutex);
    wake.wait_for(lock, std::chrono::nanoseconds(tick), [&] { return stop_flag.load(); });
  }
}

bool FailoverManager::Impl::may_act() const {
  if (!options.require_permit) return true;
  std::lock_guard<std::mutex> lock(permit_mutex);
  return permit && permit->valid(detail::steady_now_ns());
}

ActionOptions FailoverManager::Impl::permitted(const char* step) const {
  if (!options.require_permit) return actions;
  std::lock_guard<std::mutex> lock(permit_mutex);
  const std::int64_t now = detail::steady_now_ns();
  if (!permit || !permit->valid(now)) throw NoPermit{step};
  ActionOptions clipped = actions;
  clipped.timeout_ms = std::min(actions.timeout_ms, std::max(1.0, static_cast<double>(permit->valid_until_ns - now) / 1e6));
  return clipped;
}

std::int64_t FailoverManager::Impl::permit_revision() const {
  std::lock_guard<std::mutex> lock(permit_mutex);
  return options.require_permit && permit ? permit->revision : 0;
}

void FailoverManager::Impl::publish(const FailoverReport& report) {
  {
    std::lock_guard<std::mutex> lock(reports_mutex);
    if (reports.size() >= kMaxReports) reports.pop_front();
    reports.push_back(report);
  }
  reports_cv.notify_all();
}

FailoverManager::FailoverManager(ReplicatedDatabase& database, FailoverManagerOptions options) {
  check_options(options);
  impl_ = std::make_unique<Impl>(database, std::move(options));
}

FailoverManager::~FailoverManager() { stop(); }

void FailoverManager::start() {
  std::lock_guard<std::mutex> lock(impl_->thread_mutex);
  if (impl_->thread.joinable()) return;
  impl_->stop_flag.store(false);
  impl_->running.store(true);
  impl_->thread = std::thread([m = impl_.get()] { m->run(); });
}

void FailoverManager::stop() {
  std::lock_guard<std::mutex> lock(impl_->thread_mutex);
  if (!impl_->thread.joinable()) return;
  {
    std::lock_guard<std::mutex> wake_lock(impl_->wake_mutex);
    impl_->stop_flag.store(true);
  }
  impl_->wake.notify_all();
  impl_->thread.join();
  impl_->running.store(false);
}

bool FailoverManager::running() const noexcept { return impl_->running.load(); }

FailoverReport FailoverManager::failover_now() {
  std::lock_guard<std::mutex> lock(impl_->act_mutex);
  FailoverReport r = impl_->fail_over("failover");
  impl_->publish(r);
  return r;
}

FailoverReport FailoverManager::switchover(const std::string& candidate) {
  std::lock_guard<std::mutex> lock(impl_->act_mutex);
  FailoverReport r = impl_->switch_over(candidate);
  impl_->publish(r);
  return r;
}

std::vector<FailoverReport> FailoverManager::reports() const {
  std::lock_guard<std::mutex> lock(impl_->reports_mutex);
  return {impl_->reports.begin(), impl_->reports.end()};
}

bool FailoverManager::wait_reports(std::size_t count, double timeout_ms) const {
  std::unique_lock<std::mutex> lock(impl_->reports_mutex);
  return impl_->reports_cv.wait_for(lock, std::chrono::nanoseconds(detail::ms_to_ns(timeout_ms)),
                                    [&] { return impl_->reports.size() >= count; });
}

void FailoverManager::grant_permit(const LeasePermit& permit) {
  if (permit.revision < 1) throw InvalidArgument("permit", "revision must be > 0");
  std::lock_guard<std::mutex> lock(impl_->permit_mutex);
  // A permit of an older leadership never replaces a newer one.
  if (permit.revision < impl_->newest_permit_revision) return;
  impl_->newest_permit_revision = permit.revision;
  impl_->permit = permit;
}

void FailoverManager::revoke_permit() {
  std::lock_guard<std::mutex> lock(impl_->permit_mutex);
  impl_->permit.reset();
}

std::optional<LeasePermit> FailoverManager::permit() const {
  std::lock_guard<std::mutex> lock(impl_->permit_mutex);
  return impl_->permit;
}

const FailoverManagerOptions& FailoverManager::options() const noexcept { return impl_->options; }

}  // namespace replikit::pg
