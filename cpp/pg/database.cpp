// ReplicatedDatabase: construction, routing (with the bounded wait for a replica), node
// status, counters and close. The read path is in read_path.cpp, the write path in
// write_path.cpp; every query of both runs through classify.hpp's exec().
#include <chrono>
#include <cmath>
#include <optional>
#include <utility>

#include "conninfo.hpp"
#include "database_impl.hpp"

namespace replikit::pg {

namespace {

using detail::ms_to_ns;

void check_range(double value, double low, double high, const char* argument) {
  require(std::isfinite(value), argument, "must be a finite number");
  require(value >= low && value <= high,
          argument, "must be in [" + std::to_string(low) + ", " + std::to_string(high) + "], got " +
                        std::to_string(value));
}

NodeSpec spec_of(const NodeConfig& c) {
  NodeSpec s;
  s.name = c.name;
  s.region = c.region;
  s.weight = c.weight;
  s.priority = c.priority;
  s.up = true;
  return s;
}

}  // namespace

void check_options(const DatabaseOptions& o) {
  check_range(o.probe_interval_ms, 1, 60000, "probe_interval_ms");
  check_range(o.probe_timeout_ms, 1, 60000, "probe_timeout_ms");
  require(o.pool_size >= 1 && o.pool_size <= 1024, "pool_size", "must be in [1, 1024]");
  check_range(o.acquire_timeout_ms, 0, 3600000, "acquire_timeout_ms");
  check_range(o.connect_timeout_ms, 1, 3600000, "connect_timeout_ms");
  check_range(o.tcp_user_timeout_ms, 0, 3600000, "tcp_user_timeout_ms");
  check_range(o.statement_timeout_ms, 1, 86400000, "statement_timeout_ms");
  check_range(o.query_grace_ms, 0, 3600000, "query_grace_ms");
  check_catch_up(o.wait_for_replica, "wait_for_replica_ms");
  require(o.read_retries >= 0 && o.read_retries <= 16, "read_retries", "must be in [0, 16]");
  require(o.event_capacity >= 1 && o.event_capacity <= (1 << 20), "event_capacity", "must be in [1, 1048576]");
}

// ---- Impl: the pieces shared by the read and write paths ----

ReplicatedDatabase::Impl::Deadline::Deadline(Impl& impl, detail::Lease& conn, int primary)
    : impl_(impl), entry_(&conn.watch()) {
  impl.watchdog.arm(*entry_, conn->sock(), detail::steady_now_ns() + impl.query_timeout_ns, primary);
  // A failover between the routing and the arm: the prober may have cut the deposed node's
  // calls before this one was armed (an atomic load here; the cut is rare).
  if (primary != kNoNode && impl.topology->primary() != primary) impl.watchdog.fire_deposed(impl.topology->primary());
}

bool ReplicatedDatabase::Impl::Deadline::disarm() {
  if (entry_ != nullptr) {
    fired_ = impl_.watchdog.disarm(*entry_, &deposed_);
    if (fired_) impl_.counters.watchdog_fired.fetch_add(1, std::memory_order_relaxed);
    entry_ = nullptr;
  }
  return fired_;
}

std::string ReplicatedDatabase::Impl::primary_down_message() const {
  const int p = topology->primary();
  std::string out = "primary '" + topology->name(p) + "' is down";
  const std::string error = prober ? prober->state(p).last_error : std::string();
  if (!error.empty()) out += " (last probe: " + error + ")";  // the prober stores it trimmed
  return out;
}

void ReplicatedDatabase::Impl::mark_down(int node, const std::string& error) {
  if (prober) {
    const detail::ProbeState p = prober->state(node);
    std::lock_guard<std::mutex> lock(call_error_mutex);
    CallError& e = call_errors[static_cast<std::size_t>(node)];
    e.message = error;
    e.probes_seen = p.probes_ok + p.probes_failed;
    e.set = true;
  }
  if (mark_down_hook) mark_down_hook();
  // NodeDown, then routing drops the node, in one step: a good probe racing this one either
  // comes first (this NodeDown is the last word) or after (its NodeUp is, and it is routed again).
  if (node_events->down(node, error)) counters.marked_down.fetch_add(1, std::memory_order_relaxed);
  pools[static_cast<std::size_t>(node)]->drop_idle();
}

// For a write, and for any call on the primary, every idle connection's socket is checked
// first: a write sent on a connection the server already closed would end in CommitUnknown,
// and a read that lost its connection to the primary marks the primary down (failing writes
// until its next probe) and is not retried there. A read on a replica skips the check (a
// poll() per call) on connections idle for less than kReadIdleCheckNs: if one died since,
// the read fails over like after any lost connection. A TimeoutError (the pool stayed
// exhausted) says nothing about the node, nor does a connect refused by a full server (53300):
// it answered, and its pooled connections still serve; the caller gets a QueryError with that
// SQLSTATE once the pool found none of them free in time.
detail::Lease ReplicatedDatabase::Impl::acquire(int node, bool write) {
  const bool check_all = write || node == topology->primary();
  try {
    return pools[static_cast<std::size_t>(node)]->acquire(detail::steady_now_ns() + acquire_timeout_ns,
                                                          options.acquire_timeout_ms,
                                                          check_all ? 0 : detail::kReadIdleCheckNs);
  } catch (const detail::ServerFull& e) {
    throw QueryError(e.what(), kServerFullSqlstate);
  } catch (const ConnectionError& e) {
    if (open.load(std::memory_order_acquire)) mark_down(node, e.what());  // a closed pool says nothing about the node
    throw;
  }
}

bool ReplicatedDatabase::Impl::lost(Deadline& deadline, int node, const std::string& error) {
  const bool cut = deadline.disarm();
  if (!cut) mark_down(node, "node '" + topology->name(node) + "': " + error);
  return cut;
}

std::string ReplicatedDatabase::Impl::deadline_message() const {
  return "no answer within statement_timeout_ms + query_grace_ms (" +
         std::to_string(std::llround(options.statement_timeout_ms + options.query_grace_ms)) + " ms)";
}

std::string ReplicatedDatabase::Impl::cut_message(const Deadline& deadline) const {
  if (!deadline.deposed()) return deadline_message();
  return "deposed while the call waited on it (a failover made '" + topology->name(topology->primary()) +
         "' the primary); the connection was abandoned";
}

bool ReplicatedDatabase::Impl::resolve(Session& session) const {
  if (session.untracked_write_ns == kNever) return true;
  // Wall clock first: a steady reading taken later maps the write later (sound).
  const std::int64_t wall = detail::wall_now_ns();
  return resolve_untracked_write(session, *tracker, wall, detail::steady_now_ns(), options.router.time_window_ms);
}

namespace {

// The router's options for a read (not counted: the caller counts the final decision).
ReadOptions read_options(const Topology& topology, const QueryOptions& q) {
  ReadOptions ro;
  ro.max_staleness_ms = q.max_staleness_ms;
  ro.p_consistent = q.p_consistent;
  ro.within_ms = q.within_ms;
  ro.count = false;
  if (!q.region.empty()) {
    ro.region = topology.region_id(q.region);
    if (ro.region == kNoNode) require(false, "region", "no node is in region '" + q.region + "'");
  }
  return ro;
}

// A read that waits: no replica has caught up yet (or, for a probability target, none likely
// shows the session's last write yet), or the session has a write of unknown commit LSN and the
// primary, the one node sure to show it, is down (a probe of it after its restart resolves the
// write).
bool catching_up(const Decision& d) {
  return d.reason == Reason::NoReplicaCaughtUp || d.reason == Reason::NoReplicaLikelyConsistent;
}
bool worth_waiting(const Decision& d) {
  return catching_up(d) || (d.reason == Reason::RecentWrite && d.node == kNoNode);
}

}  // namespace

Decision ReplicatedDatabase::Impl::route(const Session& given, const QueryOptions& q, double* waited_ms,
                                         bool may_wait, CatchUpReason* wait_reason) {
  // A copy only for a session with an unresolved write, re-resolved after every probe.
  std::optional<Session> copy;
  if (given.untracked_write_ns != kNever) {
    copy.emplace(given);
    resolve(*copy);
  }
  const Session& session = copy ? *copy : given;
  ReadOptions ro = read_options(*topology, q);
  // The prober samples on the steady clock; sessions' write times are on the wall clock.
  ro.tracker_now_ns = detail::steady_now_ns();
  Decision d = router->route_read(session, q.consistency, detail::wall_now_ns(), ro);
  auto reroute = [&] {
    if (copy) resolve(*copy);
    ro.tracker_now_ns = detail::steady_now_ns();
    return router->route_read(session, q.consistency, detail::wall_now_ns(), ro);
  };
  if (!worth_waiting(d) || !may_wait) return d;
  const CatchUpWait& setting = q.wait_for_replica ? *q.wait_for_replica : options.wait_for_replica;
  CatchUpPlan plan;
  if (catching_up(d)) {
    plan = tracker->plan_catch_up(setting);
  } else if (setting.mode == CatchUpMode::Fixed) {
    plan.wait_ms = setting.max_wait_ms;
  } else {
    // A write of unknown LSN while the primary is down waits for the primary's return, which
    // no replay delay predicts: auto does not wait for it.
    plan.reason = CatchUpReason::NoReplicaExpected;
  }
  if (wait_reason != nullptr) *wait_reason = plan.reason;
  const double wait_ms = plan.wait_ms;
  if (wait_ms <= 0) return d;
  counters.waits.fetch_add(1, std::memory_order_relaxed);
  const std::int64_t start = detail::steady_now_ns();
  const std::int64_t deadline = start + ms_to_ns(wait_ms);
  std::unique_lock<std::mutex> lock(probe_mutex);
  // Bounded by the deadline: each pass waits for the next probe or the deadline.
  while (true) {
    const std::int64_t now = detail::steady_now_ns();
    if (now >= deadline || !open.load(std::memory_order_acquire)) break;
    const std::uint64_t seen = probe_generation;
    // Probe the replicas now instead of at their next period: catching up usually takes
    // far less than a probe interval on a healthy replica.
    if (prober) prober->expedite();
    probe_cv.wait_for(lock, std::chrono::nanoseconds(deadline - now), [&] { return probe_generation != seen; });
    lock.unlock();
    d = reroute();
    lock.lock();
    if (!worth_waiting(d)) break;
  }
  lock.unlock();
  *waited_ms = static_cast<double>(detail::steady_now_ns() - start) / 1e6;
  if (!d.to_primary()) counters.waits_served.fetch_add(1, std::memory_order_relaxed);
  return d;
}

void ReplicatedDatabase::Impl::on_probe(int node, bool ok) {
  if (!ok) pools[static_cast<std::size_t>(node)]->drop_idle();
  {
    std::lock_guard<std::mutex> lock(probe_mutex);
    ++probe_generation;
  }
  probe_cv.notify_all();
}

bool ReplicatedDatabase::Impl::wait_primary_release() {
  if (!primary_held.load(std::memory_order_acquire)) return false;
  // A switchover drains the old primary: wait for its release (bounded by acquire_timeout_ms),
  // then route to whatever is the primary by then.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(acquire_timeout_ns);
  std::unique_lock<std::mutex> lock(probe_mutex);
  probe_cv.wait_until(lock, deadline, [&] {
    return !primary_held.load(std::memory_order_acquire) || !open.load(std::memory_order_acquire);
  });
  return true;
}

ReplicatedDatabase::Impl::Call::Call(Impl& m, const Decision& d)
    : m_(d.node == kNoNode ? nullptr : &m), decision_(d) {
  if (m_ == nullptr) return;
  m.router->begin(d.node);
  if (d.to_primary()) admitted_ = m.admit_primary_call(d.node);
}

bool ReplicatedDatabase::Impl::admit_primary_call(int node) noexcept {
  // One compare-and-swap with hold_primary's fetch_or on the same word: the drain's read after
  // the hold counts every call admitted before it, and no call is admitted after it.
  std::atomic<std::uint64_t>& word = primary_calls[static_cast<std::size_t>(node)];
  std::uint64_t seen = word.load();
  // Lock-free: retried only when another call or a hold changed the word meanwhile.
  while ((seen & kHeldBit) == 0) {
    if (word.compare_exchange_weak(seen, seen + kInFlightOne)) return true;
  }
  return false;
}

void ReplicatedDatabase::Impl::Call::end(bool ran) noexcept {
  if (m_ == nullptr) return;
  // One step: a drain counts the call ended or in flight, never both nor neither. A call that
  // never ran leaves the in-flight count without counting as ended.
  if (admitted_) {
    std::atomic<std::uint64_t>& word = m_->primary_calls[static_cast<std::size_t>(decision_.node)];
    if (ran) {
      word.fetch_add(kEndedOne - kInFlightOne);
    } else {
      word.fetch_sub(kInFlightOne);
    }
    if (m_->call_end_hook) m_->call_end_hook();
  }
  m_->router->end_noexcept(decision_.node);
  m_ = nullptr;
}

TimelineHistory ReplicatedDatabase::timeline_history() const {
  std::lock_guard<std::mutex> lock(impl_->history_mutex);
  return impl_->history;
}

void ReplicatedDatabase::set_timeline_history(TimelineHistory history) {
  std::lock_guard<std::mutex> lock(impl_->history_mutex);
  impl_->history_current.store(history.current(), std::memory_order_release);
  impl_->history = std::move(history);
}

PrimaryCalls ReplicatedDatabase::hold_primary(bool hold) {
  Impl& m = *impl_;
  const auto primary = static_cast<std::size_t>(m.topology->primary());
  std::uint64_t at_primary = 0;
  // Held before the words are: a call not admitted finds the hold to wait for. Released after.
  if (hold) m.primary_held.store(true);
  for (std::size_t i = 0; i < m.primary_calls.size(); ++i) {
    const std::uint64_t was =
        hold ? m.primary_calls[i].fetch_or(Impl::kHeldBit) : m.primary_calls[i].fetch_and(~Impl::kHeldBit);
    if (i == primary) at_primary = was;
  }
  if (!hold) m.primary_held.store(false);
  {
    std::lock_guard<std::mutex> lock(m.probe_mutex);
    ++m.probe_generation;
  }
  m.probe_cv.notify_all();
  return Impl::calls_of(at_primary);
}

std::uint64_t ReplicatedDatabase::primary_calls_ended(int node) const { return primary_calls(node).ended; }

PrimaryCalls ReplicatedDatabase::primary_calls(int node) const {
  impl_->topology->check_index(node, "node");
  return Impl::calls_of(impl_->primary_calls[static_cast<std::size_t>(node)].load());
}

void ReplicatedDatabase::set_primary_route_hook(std::function<void()> hook) {
  impl_->primary_route_hook = std::move(hook);
}

std::uint64_t ReplicatedDatabase::make_primary(const std::string& name, const std::string& why) {
  Topology& topo = *impl_->topology;
  const int next = topo.index_of(name, "name");
  impl_->node_events->promotion(next, why);  // the lag tracker starts afresh there
  return topo.epoch();
}

void ReplicatedDatabase::set_call_end_hook(std::function<void()> hook) { impl_->call_end_hook = std::move(hook); }

void ReplicatedDatabase::set_mark_down_hook(std::function<void()> hook) { impl_->mark_down_hook = std::move(hook); }

void ReplicatedDatabase::set_event_hook(std::function<void(const Event&)> hook) {
  impl_->node_events->set_hook(std::move(hook));
}

// ---- construction and close ----

namespace {

// The conninfo of the user pools and of the prober for each node.
void build_pools(ReplicatedDatabase::Impl& m, std::vector<std::string>* probe_conninfos) {
  const DatabaseOptions& o = m.options;
  const long connect_s = std::max<long>(2, std::lround(std::ceil(o.connect_timeout_ms / 1000.0)));
  const std::vector<std::pair<std::string, std::string>> defaults = {
      {"connect_timeout", std::to_string(connect_s)},
      {"tcp_user_timeout", std::to_string(std::llround(o.tcp_user_timeout_ms))},
      {"keepalives", "1"},
      {"keepalives_idle", "5"},
      {"keepalives_interval", "1"},
      {"keepalives_count", "3"},
      {"application_name", "replikit"},
  };
  for (const auto& c : m.configs) {
    require(!c.dsn.empty(), "dsn", "node '" + c.name + "' has an empty DSN");
    // libpq reads a DSN as a C string: the text after a NUL would be dropped without a word.
    require(c.dsn.find('\0') == std::string::npos, "dsn", "node '" + c.name + "': the DSN holds a NUL character");
    // A DSN's connect_timeout=0 (libpq: forever) would let a pool connect hang: replaced.
    std::string user = detail::build_conninfo(
        c.name, c.dsn, defaults, "-c statement_timeout=" + std::to_string(std::llround(o.statement_timeout_ms)),
        {"connect_timeout"});
    std::string probe = detail::build_conninfo(c.name, c.dsn, {{"application_name", "replikit_prober"}},
                                               "-c statement_timeout=" + std::to_string(std::llround(o.probe_timeout_ms)));
    m.pools.push_back(std::make_unique<detail::Pool>(c.name, user, o.pool_size, &m.watchdog));
    probe_conninfos->push_back(std::move(probe));
  }
}

}  // namespace

ReplicatedDatabase::ReplicatedDatabase(NodeConfig primary, std::vector<NodeConfig> replicas, DatabaseOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  check_options(options);
  m.options = std::move(options);
  m.acquire_timeout_ns = ms_to_ns(m.options.acquire_timeout_ms);
  m.query_timeout_ns = ms_to_ns(m.options.statement_timeout_ms + m.options.query_grace_ms);
  std::vector<NodeSpec> replica_specs;
  for (const auto& r : replicas) replica_specs.push_back(spec_of(r));
  m.topology = std::make_shared<Topology>(spec_of(primary), std::move(replica_specs));
  m.tracker = std::make_shared<LagTracker>(m.topology, probed_lag_config(m.options.lag, m.options.probe_interval_ms));
  m.router = std::make_shared<Router>(m.topology, m.options.router);
  m.events = std::make_shared<EventLog>(static_cast<std::size_t>(m.options.event_capacity));
  m.node_events = std::make_unique<detail::NodeEvents>(m.events, m.topology, m.tracker);

  const auto size = static_cast<std::size_t>(m.topology->size());
  m.configs.resize(size);
  m.call_errors.resize(size);
  m.configs[static_cast<std::size_t>(m.topology->index_of(primary.name))] = primary;
  for (const auto& r : replicas) m.configs[static_cast<std::size_t>(m.topology->index_of(r.name))] = r;

  std::vector<std::string> probe_conninfos;
  build_pools(m, &probe_conninfos);
  detail::ProberConfig pc;
  pc.interval_ns = ms_to_ns(m.options.probe_interval_ms);
  pc.probe_timeout_ns = ms_to_ns(m.options.probe_timeout_ms);
  pc.connect_timeout_ns = ms_to_ns(m.options.connect_timeout_ms);
  Impl* raw = impl_.get();
  m.prober = std::make_unique<detail::Prober>(pc, m.topology, m.tracker, std::move(probe_conninfos), &m.watchdog,
                                              [raw](int node, bool ok) { raw->on_probe(node, ok); },
                                              *m.node_events);
  m.prober->start();
}

ReplicatedDatabase::~ReplicatedDatabase() { close(); }

void ReplicatedDatabase::close() {
  Impl& m = *impl_;
  // One caller closes; concurrent callers wait here until it has, then return.
  std::lock_guard<std::mutex> closing(m.close_mutex);
  if (m.closed) return;
  m.open.store(false, std::memory_order_release);
  // Refuse new connections and wake waiters first (acquire and the wait for a replica end with
  // ConnectionError), then stop the prober: it keeps cutting the deadlines of calls in flight
  // until the last one returned, so none of them can hang on a server that stopped answering.
  for (auto& p : m.pools) p->close();
  {
    std::lock_guard<std::mutex> lock(m.probe_mutex);
    ++m.probe_generation;
  }
  m.probe_cv.notify_all();
  if (m.prober) m.prober->stop();
  m.events->close();  // after the prober and the calls in flight: their last events are in
  m.closed = true;
}

bool ReplicatedDatabase::is_open() const noexcept { return impl_->open.load(std::memory_order_acquire); }

std::int64_t ReplicatedDatabase::now_ns() noexcept { return detail::steady_now_ns(); }

std::int64_t ReplicatedDatabase::wall_clock_ns() noexcept { return detail::wall_now_ns(); }

void ReplicatedDatabase::mark_down(const std::string& name) {
  impl_->mark_down(impl_->topology->index_of(name, "name"), "node '" + name + "': marked down by mark_down()");
}

bool ReplicatedDatabase::wait_probes(int count, double timeout_ms) const {
  require(count >= 1 && count <= 1000, "count", "must be in [1, 1000]");
  check_range(timeout_ms, 0, 3600000, "timeout_ms");
  return impl_->prober->wait_probes(count, ms_to_ns(timeout_ms));
}

std::string ReplicatedDatabase::dsn(const std::string& name) const {
  return impl_->configs[static_cast<std::size_t>(impl_->topology->index_of(name, "name"))].dsn;
}

const std::shared_ptr<Topology>& ReplicatedDatabase::topology() const noexcept { return impl_->topology; }
const std::shared_ptr<LagTracker>& ReplicatedDatabase::lag_tracker() const noexcept { return impl_->tracker; }
const std::shared_ptr<Router>& ReplicatedDatabase::router() const noexcept { return impl_->router; }
const std::shared_ptr<EventLog>& ReplicatedDatabase::events() const noexcept { return impl_->events; }
const DatabaseOptions& ReplicatedDatabase::options() const noexcept { return impl_->options; }

}  // namespace replikit::pg
