// The simulator's loop, request arrivals, node service and request completion.
#include "engine.hpp"

#include <algorithm>
#include <cmath>

#include "replikit/errors.hpp"

namespace replikit::sim {

namespace detail {

namespace {
bool later(const Event& a, const Event& b) { return a.t != b.t ? a.t > b.t : a.order > b.order; }

std::shared_ptr<Topology> make_topology(const SimConfig& c) {
  NodeSpec primary;
  primary.name = c.node_name(0);
  std::vector<NodeSpec> replicas;
  for (int i = 1; i <= c.replicas; ++i) {
    NodeSpec r;
    r.name = c.node_name(i);
    replicas.push_back(r);
  }
  return std::make_shared<Topology>(primary, replicas);
}
}  // namespace

void EventQueue::push(std::int64_t t, Ev kind, int node, std::uint32_t id, std::uint32_t gen) {
  heap_.push_back(Event{t, next_order_++, id, gen, static_cast<std::int16_t>(node), kind});
  std::push_heap(heap_.begin(), heap_.end(), later);
}

Event EventQueue::pop() {
  std::pop_heap(heap_.begin(), heap_.end(), later);
  Event e = heap_.back();
  heap_.pop_back();
  return e;
}

Simulation::Simulation(const SimConfig& config, std::uint64_t seed, std::unique_ptr<FailoverModel> failover)
    : c_(config),
      rng_(seed),
      check_rng_(SplitMix64(seed ^ 0xC4EC4EC4EC4EC4ECull).next()),
      probe_rng_(SplitMix64(seed ^ 0x9B0BE9B0BE9B0BE9ull).next()),
      failover_(std::move(failover)),
      topology_(make_topology(config)),
      read_service_(config.read_service),
      write_service_(config.write_service),
      client_latency_(config.client_latency),
      replica_latency_(config.replica_latency),
      probe_latency_(config.probe_latency.value_or(config.client_latency)),
      replica_latency_after_crash_(config.replica_latency_after_crash.value_or(config.replica_latency)),
      nodes_(static_cast<std::size_t>(config.replicas) + 1),
      sessions_(static_cast<std::size_t>(config.sessions)),
      session_writes_(static_cast<std::size_t>(config.sessions)),
      held_reads_(static_cast<std::size_t>(config.sessions)),
      commits_(kCommitRing),
      bytes_(static_cast<std::uint64_t>(config.write_size_bytes)),
      row_bytes_(static_cast<std::uint64_t>(config.write_size_bytes - config.commit_record_bytes)) {
  res_.seed = seed;
  mode_ = config.mode;
  tracker_ = std::make_unique<LagTracker>(topology_, probed_lag_config(config.lag, config.probe_interval_ms));
  RouterConfig rc = config.router;
  rc.seed = SplitMix64(seed ^ 0x5EED5EED5EED5EEDull).next();
  router_ = std::make_unique<Router>(topology_, rc);
  router_->reset_thread_state();
  duration_ns_ = ns(config.duration_ms);
  end_ns_ = duration_ns_ + ns(config.drain_ms);
  write_gap_ns_ = config.write_rate_per_s > 0 ? 1e9 / config.write_rate_per_s : 0;
  read_gap_ns_ = config.read_rate_per_s > 0 ? 1e9 / config.read_rate_per_s : 0;
  apply_mean_ns_ = 1e9 / config.apply_rate_per_s;
  const double after = config.background_write_rate_after_crash_per_s < 0 ? config.background_write_rate_per_s
                                                                          : config.background_write_rate_after_crash_per_s;
  background_gap_ns_ = config.background_write_rate_per_s > 0 ? 1e9 / config.background_write_rate_per_s : 0;
  background_gap_after_ns_ = after > 0 ? 1e9 / after : 0;
  double sum = 0;
  for (double w : config.consistency_mix) level_cdf_.push_back(sum += w);
  for (const auto& s : config.slow_replicas) nodes_[static_cast<std::size_t>(s.replica)].slow *= s.factor;
  for (const auto& d : config.apply_delays) nodes_[static_cast<std::size_t>(d.replica)].apply_delay_ns = ns(d.delay_ms);
  rounds_apart_ = rounds_apart(config.probe_round_lags_ms, config.probe_parallel_gap_ms);
  rounds_apart_after_ = rounds_apart(config.probe_round_lags_after_crash_ms, config.probe_parallel_gap_ms);
  const double span = std::max(config.sample_interval_ms, config.duration_ms / config.max_samples);
  sample_step_ns_ = std::max<std::int64_t>(1, ns(span));
  probe_step_ns_ = std::max<std::int64_t>(1, ns(config.probe_interval_ms));
  heartbeat_step_ns_ = std::max<std::int64_t>(1, ns(config.heartbeat_interval_ms + config.heartbeat_late_ms));
  res_.failover.model = failover_->describe();
  init_windows();
}

std::int64_t Simulation::exp_ns(double mean_ns) {
  // 1 - u is in (0, 1]: the log is finite.
  return static_cast<std::int64_t>(-std::log(1.0 - rng_.uniform()) * mean_ns);
}

void Simulation::schedule_start() {
  if (!c_.write_arrivals.empty()) {
    events_.push(ns(c_.write_arrivals.front().at_ms), Ev::WriteArrival, 0);
  } else if (write_gap_ns_ > 0) {
    events_.push(exp_ns(write_gap_ns_), Ev::WriteArrival, 0);
  }
  if (!c_.read_arrivals.empty()) {
    events_.push(ns(c_.read_arrivals.front().at_ms), Ev::ReadArrival, 0);
  } else if (read_gap_ns_ > 0) {
    events_.push(exp_ns(read_gap_ns_), Ev::ReadArrival, 0);
  }
  events_.push(0, Ev::Probe, 0);
  events_.push(0, Ev::Sample, 0);
  if (c_.crash_primary_at_ms >= 0) {
    events_.push(ns(c_.crash_primary_at_ms), Ev::Crash, 0);
    events_.push(heartbeat_step_ns_, Ev::Heartbeat, 0);
  }
  for (const auto& p : c_.pauses) {
    events_.push(ns(p.from_ms), Ev::PauseStart, p.replica);
    events_.push(ns(p.to_ms), Ev::PauseEnd, p.replica);
  }
  schedule_background(0, background_gap_ns_);
}

void Simulation::schedule_background(std::int64_t from, double gap_ns) {
  if (gap_ns <= 0) return;
  const std::int64_t at = from + std::max<std::int64_t>(from > 0 ? 1 : 0, exp_ns(gap_ns));
  if (at < duration_ns_) events_.push(at, Ev::BackgroundArrival, 0, 0, background_gen_);
}

SimResult Simulation::run() {
  schedule_start();
  while (!events_.empty()) {
    const Event e = events_.pop();
    if (e.t > end_ns_) break;
    if (res_.events >= c_.max_events) {
      res_.truncated = true;
      break;
    }
    now_ = e.t;
    ++res_.events;
    dispatch(e);
    if (now_ >= duration_ns_ && in_flight_writes_ + in_flight_reads_ == 0) break;
  }
  SimResult out = std::move(res_);
  finish(out);
  return out;
}

void Simulation::dispatch(const Event& e) {
  switch (e.kind) {
    case Ev::WriteArrival: on_write_arrival(); break;
    case Ev::ReadArrival: on_read_arrival(); break;
    case Ev::ReadBack:
      if (now_ < duration_ns_) issue_read(static_cast<int>(e.id), c_.read_back_consistency);
      break;
    case Ev::AtNode: if (live(e.id, e.gen)) on_at_node(e.id); break;
    case Ev::ServiceDone: if (live(e.id, e.gen)) on_service_done(e.id); break;
    case Ev::WalArrive: on_wal_arrive(e.node, e.gen); break;
    case Ev::ApplyDone: on_apply_done(e.node, e.gen); break;
    case Ev::AckArrive: on_ack_arrive(e.node, e.gen); break;
    case Ev::WriteAcked: if (live(e.id, e.gen)) on_write_acked(e.id); break;
    case Ev::ReadDone: if (live(e.id, e.gen)) on_read_done(e.id); break;
    case Ev::Probe: if (e.gen == probe_gen_) on_probe(); break;
    case Ev::ProbeAt: on_probe_at(e.node); break;
    case Ev::ProbeAnswer: on_probe_answer(e.node); break;
    case Ev::Sample: on_sample(); break;
    case Ev::Heartbeat: on_heartbeat(); break;
    case Ev::Crash: on_crash(); break;
    case Ev::PauseStart: ++nodes_[static_cast<std::size_t>(e.node)].paused; break;
    case Ev::PauseEnd:
      --nodes_[static_cast<std::size_t>(e.node)].paused;
      start_apply(e.node);
      break;
    case Ev::Promote: on_promote(e.node); break;
    case Ev::Repoint: on_repoint(e.node); break;
    case Ev::Detect: on_detect(); break;
    case Ev::BackgroundArrival: on_background_arrival(e.gen); break;
    case Ev::ProbeSend: if (e.gen == probe_gen_) send_probe(e.node); break;
    case Ev::SessionFree: on_session_free(static_cast<int>(e.id)); break;
    case Ev::ProbeRound: on_probe_round(); break;
    case Ev::WriterFree: on_writer_free(); break;
    case Ev::ReaderFree: on_reader_free(static_cast<int>(e.id)); break;
  }
}

Job* Simulation::live(std::uint32_t id, std::uint32_t gen) {
  Job& j = jobs_[id];
  return j.gen == gen && j.state != JobState::Free ? &j : nullptr;
}

std::uint32_t Simulation::new_job(bool write, int session, bool background) {
  std::uint32_t id;
  if (!free_jobs_.empty()) {
    id = free_jobs_.back();
    free_jobs_.pop_back();
  } else {
    id = static_cast<std::uint32_t>(jobs_.size());
    jobs_.emplace_back();
  }
  Job& j = jobs_[id];
  j.write = write;
  j.background = background;
  j.session = session;
  j.submit_ns = now_;
  j.timeline = timeline_;
  j.to_primary = j.stale = false;
  j.reader = -1;
  j.required_seq = j.seq = 0;
  j.state = JobState::ToNode;
  (write ? in_flight_writes_ : in_flight_reads_)++;
  if (background) ++in_flight_background_;
  return id;
}

void Simulation::free_job(std::uint32_t id) {
  Job& j = jobs_[id];
  if (j.write && !j.background && --session_writes_[static_cast<std::size_t>(j.session)] == 0 &&
      !held_reads_[static_cast<std::size_t>(j.session)].empty()) {
    // Sent by an event of their own: this may run inside a loop over jobs_ that issuing would grow.
    events_.push(now_, Ev::SessionFree, 0, static_cast<std::uint32_t>(j.session));
  }
  // A client thread that sent it sends its next request now (an event of its own, as above).
  if (j.write && !j.background && c_.sequential_writes) events_.push(now_, Ev::WriterFree, 0);
  if (!j.write && j.reader >= 0) events_.push(now_, Ev::ReaderFree, 0, static_cast<std::uint32_t>(j.reader));
  (j.write ? in_flight_writes_ : in_flight_reads_)--;
  if (j.background) --in_flight_background_;
  j.state = JobState::Free;
  ++j.gen;  // events still queued for it are now stale
  free_jobs_.push_back(id);
}

void Simulation::fail(std::uint32_t id, FailReason reason) {
  Job& j = jobs_[id];
  const auto r = static_cast<std::size_t>(reason);
  if (j.background) {
    ++res_.background_writes_failed;
  } else if (j.write) {
    ++res_.writes_failed;
    ++res_.writes_failed_by[r];
  } else {
    ++res_.reads_failed;
    ++res_.reads_failed_by[r];
    ++res_.levels[j.level].failed;
    if (windowed_) count_read(j.submit_ns, j.level, ReadCount::Failed);
  }
  free_job(id);
}

std::size_t Simulation::next_traced(const std::vector<Arrival>& trace, std::size_t& next, Ev kind) {
  const std::size_t due = next++;
  if (next < trace.size()) events_.push(std::max(now_, ns(trace[next].at_ms)), kind, 0);
  return due;
}

void Simulation::on_background_arrival(std::uint32_t gen) {
  if (gen != background_gen_) return;  // drawn at a rate that no longer holds
  schedule_background(now_, crash_ns_ >= 0 ? background_gap_after_ns_ : background_gap_ns_);
  ++res_.background_writes_submitted;
  if (in_flight_writes_ + in_flight_reads_ >= static_cast<std::uint64_t>(c_.max_in_flight)) {
    ++res_.background_writes_failed;
    return;
  }
  const std::uint32_t id = new_job(true, -1, true);
  const Decision d = router_->route_write();
  if (d.node == kNoNode) return fail(id, FailReason::NoNode);
  jobs_[id].node = static_cast<std::int16_t>(d.node);
  events_.push(now_ + draw_ns(client_latency_), Ev::AtNode, d.node, id, jobs_[id].gen);
}

void Simulation::issue_read(int session, Consistency level, int reader) {
  ++res_.reads_submitted;
  const auto li = static_cast<std::size_t>(level);
  ++res_.levels[li].submitted;
  if (windowed_) count_read(now_, li, ReadCount::Submitted);
  if (in_flight_writes_ + in_flight_reads_ >= static_cast<std::uint64_t>(c_.max_in_flight)) {
    ++res_.reads_failed;
    ++res_.reads_failed_by[static_cast<std::size_t>(FailReason::QueueFull)];
    ++res_.levels[li].failed;
    if (windowed_) count_read(now_, li, ReadCount::Failed);
    if (reader >= 0) events_.push(now_, Ev::ReaderFree, 0, static_cast<std::uint32_t>(reader));
    return;
  }
  const Session& s = sessions_[static_cast<std::size_t>(session)];
  const std::uint32_t id = new_job(false, session);
  Job& j = jobs_[id];
  j.level = static_cast<std::uint8_t>(level);
  j.reader = static_cast<std::int16_t>(reader);
  switch (level) {
    case Consistency::ReadYourWrites: j.required_seq = seq_of(s.write_lsn); break;
    case Consistency::Monotonic: j.required_seq = seq_of(s.read_lsn); break;
    case Consistency::Causal: j.required_seq = seq_of(s.causal_lsn()); break;
    case Consistency::Strong: j.required_seq = acked_high_; break;
    default: break;  // eventual, bounded staleness: judged when service starts
  }
  ReadOptions options;
  options.count = false;
  if (level == Consistency::BoundedStaleness) options.max_staleness_ms = c_.max_staleness_ms;
  const Decision d = router_->route_read(s, level, now_, options);
  ++res_.read_reasons[static_cast<std::size_t>(d.reason)];
  if (d.node == kNoNode) return fail(id, FailReason::NoNode);
  j.to_primary = d.to_primary();
  if (j.to_primary) {
    ++res_.reads_routed_to_primary;
    ++res_.primary_read_reasons[static_cast<std::size_t>(d.reason)];
  }
  j.node = static_cast<std::int16_t>(d.node);
  j.epoch = d.epoch;
  events_.push(now_ + draw_ns(client_latency_), Ev::AtNode, d.node, id, j.gen);
}

void Simulation::on_at_node(std::uint32_t id) {
  Job& j = jobs_[id];
  Node& n = nodes_[static_cast<std::size_t>(j.node)];
  if (!n.alive || n.diverged) return fail(id, FailReason::NodeDown);
  if (n.busy < c_.servers_per_node) return start_service(j.node, id);
  if (n.queue.size() >= static_cast<std::size_t>(c_.max_queue_length)) return fail(id, FailReason::QueueFull);
  n.queue.push_back(id);
  j.state = JobState::Queued;
  n.max_queue = std::max(n.max_queue, static_cast<int>(n.queue.size()));
}

void Simulation::start_service(int node, std::uint32_t id) {
  Node& n = nodes_[static_cast<std::size_t>(node)];
  Job& j = jobs_[id];
  ++n.busy;
  j.state = JobState::InService;
  j.start_ns = now_;
  if (!j.write) {
    // What the read sees: the node's replayed state (a primary's: everything it committed).
    j.seq = n.applied;
    const auto level = static_cast<Consistency>(j.level);
    if (level == Consistency::Eventual) j.required_seq = judged_seq(latest_seq());
    if (level == Consistency::BoundedStaleness) {
      j.required_seq = judged_seq(std::min(latest_seq(), committed_before(now_ - ns(c_.max_staleness_ms))));
    }
    j.stale = j.seq < j.required_seq;
  }
  const std::int64_t service = draw_ns(j.write ? write_service_ : read_service_);
  events_.push(now_ + service, Ev::ServiceDone, node, id, j.gen);
}

void Simulation::on_service_done(std::uint32_t id) {
  Job& j = jobs_[id];
  const int node = j.node;
  Node& n = nodes_[static_cast<std::size_t>(node)];
  --n.busy;
  n.busy_ns += now_ - j.start_ns;
  if (!n.queue.empty()) {
    const std::uint32_t next = n.queue.front();
    n.queue.pop_front();
    start_service(node, next);
  }
  if (j.write) {
    ++n.writes_served;
    commit(id);
  } else {
    ++n.reads_served;
    j.state = JobState::ToClient;
    events_.push(now_ + draw_ns(client_latency_), Ev::ReadDone, node, id, j.gen);
  }
}

void Simulation::on_write_acked(std::uint32_t id) {
  Job& j = jobs_[id];
  if (j.background) return on_background_acked(id);
  ++res_.writes_acknowledged;
  write_latency_sum_ms_ += static_cast<double>(now_ - j.submit_ns) * 1e-6;
  const bool lost = j.timeline == lost_timeline_ && j.seq > lost_cutoff_;
  if (lost) {
    ++res_.failover.writes_lost_acknowledged;
  } else {
    if (j.timeline == timeline_) {
      Commit& cm = commits_[j.seq & (kCommitRing - 1)];
      if (cm.seq == j.seq && cm.timeline == j.timeline) cm.acked = true;
      acked_high_ = std::max(acked_high_, j.seq);
    }
    sessions_[static_cast<std::size_t>(j.session)].record_write(lsn(j.seq), now_);
    if (c_.read_back_share > 0 && rng_.uniform() < c_.read_back_share) {
      events_.push(now_ + ns(c_.read_back_delay_ms), Ev::ReadBack, 0, static_cast<std::uint32_t>(j.session));
    }
  }
  free_job(id);
}

void Simulation::on_background_acked(std::uint32_t id) {
  Job& j = jobs_[id];
  ++res_.background_writes_acknowledged;
  if (j.timeline == lost_timeline_ && j.seq > lost_cutoff_) {
    ++res_.failover.background_writes_lost_acknowledged;
  } else if (j.timeline == timeline_) {
    Commit& cm = commits_[j.seq & (kCommitRing - 1)];
    if (cm.seq == j.seq && cm.timeline == j.timeline) cm.acked = true;
  }
  free_job(id);
}

void Simulation::on_read_done(std::uint32_t id) {
  Job& j = jobs_[id];
  ++res_.reads_answered;
  read_latency_sum_ms_ += static_cast<double>(now_ - j.submit_ns) * 1e-6;
  LevelStats& l = res_.levels[j.level];
  ++l.answered;
  if (j.stale) ++l.stale;
  if (j.to_primary) ++l.served_by_primary;
  if (windowed_) count_read(j.submit_ns, j.level, ReadCount::Answered, j.stale, j.to_primary);
  // A read of a timeline a failover cut short may have seen lost writes: not observed. Only
  // monotonic and causal reads record what they saw, as in the PostgreSQL backend (where that
  // costs a query): an eventual or read-your-writes read leaves no replica hint behind.
  const auto level = static_cast<Consistency>(j.level);
  const bool observes = level == Consistency::Monotonic || level == Consistency::Causal;
  const bool lost = j.timeline == lost_timeline_ && j.seq > lost_cutoff_;
  if (observes && !lost) {
    Session& s = sessions_[static_cast<std::size_t>(j.session)];
    if (j.to_primary) {
      s.observe(lsn(j.seq));
    } else {
      s.observe_replica(lsn(j.seq), j.node, j.epoch);
    }
  }
  free_job(id);
}

}  // namespace detail

SimResult simulate(const SimConfig& config, std::uint64_t seed) {
  if (config.failover_model == FailoverModelKind::Core) return simulate(config, seed, core_failover_model);
  return simulate(config, seed, simple_failover_model);
}

SimResult simulate(const SimConfig& config, std::uint64_t seed, const SimFailoverFactory& failover) {
  config.validate();
  require(static_cast<bool>(failover), "failover", "must be a factory");
  auto model = failover(config);
  require(model != nullptr, "failover", "the factory returned no model");
  detail::Simulation sim(config, seed, std::move(model));
  return sim.run();
}

}  // namespace replikit::sim
