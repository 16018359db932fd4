// The simulator's faults and failover, lag probes and samples, and the result.
#include <algorithm>
#include <cmath>
#include <limits>

#include "engine.hpp"

namespace replikit::sim::detail {

void Simulation::on_crash() {
  Node& p = nodes_[static_cast<std::size_t>(primary_)];
  if (!p.alive) return;
  p.alive = false;
  crash_ns_ = now_;
  crashed_last_seq_ = last_seq_;
  res_.failover.crashed = true;
  // What the primary held fails now; answers and acknowledgements already sent still arrive.
  for (std::uint32_t id = 0; id < jobs_.size(); ++id) {
    Job& j = jobs_[id];
    if (j.node != primary_) continue;
    if (j.state == JobState::Queued || j.state == JobState::InService) fail(id, FailReason::NodeDown);
    if (j.state == JobState::WaitSync) fail(id, FailReason::PrimaryCrash);
  }
  p.queue.clear();
  p.busy = 0;
  wait_sync_.clear();
  // WAL not yet received is lost with the primary: an async commit's acknowledgement does
  // not wait for it, which is where async replication loses acknowledged writes.
  for (auto& r : nodes_) {
    ++r.link_gen;
    r.wal.fifo.clear();
    r.acks.fifo.clear();
  }
  if (background_gap_after_ns_ != background_gap_ns_) {  // the background writers' rate changes now
    ++background_gen_;
    schedule_background(now_, background_gap_after_ns_);
  }
}

void Simulation::on_heartbeat() {
  if (detected_) return;
  failover_->heartbeat(now_, nodes_[static_cast<std::size_t>(primary_)].alive);
  if (!failover_->suspected(now_)) {
    events_.push(now_ + heartbeat_step_ns_, Ev::Heartbeat, 0);
    return;
  }
  detected_ = true;  // no more heartbeats
  if (c_.check_interval_ms > 0) {
    // The manager acts at its next look at the detector, at a uniform phase of its own loop.
    events_.push(now_ + static_cast<std::int64_t>(check_rng_.uniform() * c_.check_interval_ms * 1e6), Ev::Detect, 0);
    return;
  }
  on_detect();
}

void Simulation::on_detect() {
  if (crash_ns_ >= 0) res_.failover.detection_ms = static_cast<double>(now_ - crash_ns_) * 1e-6;
  const std::string& old = topology_->name(primary_);
  topology_->set_up(old, false);  // writes now fail at once instead of at a dead node
  std::vector<PromotionCandidate> candidates;
  for (int n = 0; n < static_cast<int>(nodes_.size()); ++n) {
    if (n == primary_) continue;
    const Node& r = nodes_[static_cast<std::size_t>(n)];
    PromotionCandidate pc;
    pc.node = n;
    pc.name = topology_->name(n);
    pc.reachable = r.alive && !r.diverged;
    pc.receive_lsn = lsn(r.received);
    pc.replay_lsn = replay_lsn(r);
    pc.timeline = timeline_;
    candidates.push_back(pc);
  }
  const int chosen = failover_->select(candidates, lsn(crashed_last_seq_));
  if (chosen < 0 || chosen >= static_cast<int>(candidates.size())) return;
  promoting_ = candidates[static_cast<std::size_t>(chosen)].node;
  res_.failover.promoted = topology_->name(promoting_);
  events_.push(now_ + ns(c_.promote_ms), Ev::Promote, promoting_);
}

void Simulation::on_promote(int node) {
  Node& n = nodes_[static_cast<std::size_t>(node)];
  if (!n.alive || n.diverged) return;
  promote_due_ = true;
  if (n.applying && n.apply_start_ns > now_) {
    // A promotion ends recovery_min_apply_delay's wait: replay what was received at once.
    ++n.apply_gen;
    n.applying = false;
    start_apply(node);
  }
  // A promoted standby replays what it received first (a pause holds it up, as in PostgreSQL).
  if (n.applied >= n.received && !n.applying) complete_promotion(node);
}

void Simulation::complete_promotion(int node) {
  Node& n = nodes_[static_cast<std::size_t>(node)];
  const std::uint64_t cutoff = n.received;
  lost_cutoff_ = cutoff;
  lost_timeline_ = timeline_;
  FailoverStats& f = res_.failover;
  f.writes_lost = crashed_last_seq_ > cutoff ? crashed_last_seq_ - cutoff : 0;
  for (std::uint64_t s = cutoff + 1; s <= crashed_last_seq_ && s + kCommitRing > crashed_last_seq_; ++s) {
    const Commit& cm = commits_[s & (kCommitRing - 1)];
    if (cm.seq == s && cm.timeline == timeline_ && cm.acked) {
      ++(cm.background ? f.background_writes_lost_acknowledged : f.writes_lost_acknowledged);
    }
  }
  f.recovery_ms = static_cast<double>(now_ - crash_ns_) * 1e-6;
  recovery_ns_ = now_;
  ++timeline_;
  n.timeline = timeline_;
  primary_ = node;
  mode_ = c_.mode_after_promotion.value_or(mode_);
  promoting_ = -1;
  last_seq_ = cutoff;
  last_judged_seq_ = judged_seq(cutoff);
  acked_high_ = std::min(acked_high_, cutoff);
  topology_->promote(topology_->name(node));
  if (c_.reset_tracker_on_promotion) tracker_->reset();
  if (c_.probe_at_promotion) {  // the prober's cadence restarts here (the old ticks' events lapse)
    ++probe_gen_;
    events_.push(now_, Ev::Probe, 0, 0, probe_gen_);
  }
  burst_armed_ = c_.promotion_wal_bytes > 0 && burst_seq_ == 0;
  for (int q = 0; q < static_cast<int>(nodes_.size()); ++q) {
    Node& r = nodes_[static_cast<std::size_t>(q)];
    ++r.link_gen;  // the old primary's connections are gone
    r.wal.fifo.clear();
    r.acks.fifo.clear();
    if (q == node || !r.alive || r.diverged) continue;
    if (r.received > cutoff) {
      take_out(q);
      f.diverged.push_back(topology_->name(q));
      continue;
    }
    if (c_.repoint_ms > 0 || c_.repoint_catch_up_ms > 0) {
      r.detached = true;  // reconnecting: streams again repoint_ms from now
      events_.push(now_ + ns(c_.repoint_ms), Ev::Repoint, q);
      continue;
    }
    // Repointed: the new primary streams what this standby lacks, from its flush position.
    r.timeline = timeline_;
    r.confirmed = r.received;
    if (r.received < cutoff) send(r.wal, q, Ev::WalArrive, cutoff);
  }
  // Sessions forget LSNs of the lost timeline (the real client reports them as lost writes).
  const Lsn keep = lsn(cutoff);
  for (auto& s : sessions_) {
    if (s.write_lsn > keep) s.write_lsn = keep;
    if (s.read_lsn > keep) s.read_lsn = keep;
    s.last_replica = -1;
  }
}

void Simulation::on_repoint(int node) {
  Node& r = nodes_[static_cast<std::size_t>(node)];
  if (!r.detached) return;
  r.detached = false;
  if (!r.alive || r.diverged || node == primary_) return;
  // Reconnected: the new primary streams everything this standby lacks, from its flush position.
  r.timeline = timeline_;
  r.confirmed = r.received;
  if (r.received < last_seq_) {
    // The backlog in up to kCatchUpChunks pieces spread over repoint_catch_up_ms (one at once).
    constexpr std::uint64_t kCatchUpChunks = 32;
    const std::uint64_t backlog = last_seq_ - r.received, from = r.received;
    const std::uint64_t chunks = c_.repoint_catch_up_ms > 0 ? std::min(backlog, kCatchUpChunks) : 1;
    const auto span = static_cast<double>(ns(c_.repoint_catch_up_ms));
    for (std::uint64_t i = 1; i <= chunks; ++i) {
      const auto after = static_cast<std::int64_t>(span * static_cast<double>(i) / static_cast<double>(chunks));
      send(r.wal, node, Ev::WalArrive, from + backlog * i / chunks, after);
    }
  }
  release_synced();
}

void Simulation::take_out(int node) {
  Node& r = nodes_[static_cast<std::size_t>(node)];
  r.diverged = true;
  topology_->set_up(topology_->name(node), false);
  for (std::uint32_t id = 0; id < jobs_.size(); ++id) {
    Job& j = jobs_[id];
    if (j.node == node && (j.state == JobState::Queued || j.state == JobState::InService)) fail(id, FailReason::NodeDown);
  }
  r.queue.clear();
  r.busy = 0;
}

// The measured probe rounds (probe_round_lags_ms) in which no two of the reads (lags >= 0) lie
// closer than `parallel_ms`: no two queries ran at once.
std::vector<std::uint32_t> Simulation::rounds_apart(const std::vector<std::vector<double>>& rounds, double parallel_ms) {
  std::vector<std::uint32_t> out;
  for (std::uint32_t i = 0; i < rounds.size(); ++i) {
    bool apart = true;
    for (std::size_t a = 0; a < rounds[i].size() && apart; ++a) {
      for (std::size_t b = a + 1; b < rounds[i].size() && apart; ++b) {
        const double x = rounds[i][a], y = rounds[i][b];
        apart = x < 0 || y < 0 || std::abs(x - y) >= parallel_ms;
      }
    }
    if (apart) out.push_back(i);
  }
  return out;
}
void Simulation::on_probe() {
  if (now_ + probe_step_ns_ < duration_ns_) events_.push(now_ + probe_step_ns_, Ev::Probe, 0, 0, probe_gen_);
  // As the real prober: one query per node over the network (probe_latency, else the client
  // latency, each way), a node still answering the last one skipped; a dead node never answers.
  const auto& offsets = from_crash(c_.probe_offsets_ms, c_.probe_offsets_after_crash_ms);
  open_probe_round();
  for (int n = 0; n < static_cast<int>(nodes_.size()); ++n) {
    const double offset_ms = offsets.empty() ? 0 : offsets[static_cast<std::size_t>(n)];
    if (offset_ms > 0) {
      events_.push(now_ + ns(offset_ms), Ev::ProbeSend, n, 0, probe_gen_);
    } else {
      send_probe(n);
    }
  }
  // The queries sent together in a measured round read when it is decided which round it was.
  if (round_open_ && round_first_ms_ >= 0) events_.push(now_ + ns(round_first_ms_), Ev::ProbeRound, 0);
  round_open_ = false;
}

void Simulation::open_probe_round() {
  // Both candidates are drawn now, so that the stream's order does not depend on the run.
  const auto& rounds = after_crash_rounds() ? c_.probe_round_lags_after_crash_ms : c_.probe_round_lags_ms;
  const auto& apart = after_crash_rounds() ? rounds_apart_after_ : rounds_apart_;
  round_open_ = !rounds.empty() && measured_run_lags();
  if (!round_open_) return;
  round_any_ = probe_rng_.below(static_cast<std::uint32_t>(rounds.size()));
  round_apart_ = apart.empty() ? round_any_ : apart[probe_rng_.below(static_cast<std::uint32_t>(apart.size()))];
  round_first_ms_ = -1;  // none joined yet
}

bool Simulation::join_probe_round(Node& r, int n) {
  const auto& rounds = after_crash_rounds() ? c_.probe_round_lags_after_crash_ms : c_.probe_round_lags_ms;
  // A round lists the current primary's lag first, then the other nodes' in index order.
  const auto at = static_cast<std::size_t>(n == primary_ ? 0 : n < primary_ ? n + 1 : n);
  const double any = rounds[round_any_][at], apart = rounds[round_apart_][at];
  if (any < 0 || apart < 0) return false;  // not in the drawn round: its own lag
  r.probe_in_round = true;
  r.probe_lag_any_ms = any;
  r.probe_lag_apart_ms = apart;
  round_first_ms_ = std::min(any, apart) < round_first_ms_ || round_first_ms_ < 0 ? std::min(any, apart) : round_first_ms_;
  return true;
}

void Simulation::send_probe(int n) {
  Node& r = nodes_[static_cast<std::size_t>(n)];
  if (r.probing || !r.alive || r.diverged) return;
  r.probing = true;
  r.probe_sent_ns = now_;
  if (!measured_run_lags()) {
    events_.push(now_ + draw_ns(probe_latency_), Ev::ProbeAt, n);
    return;
  }
  // A measured run lag of this node (its own stream); the answer's way back drawn now, so that
  // the other draws come in the same order whatever the lags are.
  const auto& lists = from_crash(c_.probe_run_lags_ms, c_.probe_run_lags_after_crash_ms);
  r.probe_back_ns = draw_ns(probe_latency_);
  if (lists.empty()) {  // measured after the crash only
    events_.push(now_ + draw_ns(probe_latency_), Ev::ProbeAt, n);
    return;
  }
  if (round_open_ && join_probe_round(r, n)) return;
  const auto& lags = lists[static_cast<std::size_t>(n)];
  events_.push(now_ + ns(lags[probe_rng_.below(static_cast<std::uint32_t>(lags.size()))]), Ev::ProbeAt, n);
}

void Simulation::on_probe_round() {
  // While a write's replication is in flight it holds a core: no two of the round's queries ran at
  // once, so the round is one whose reads lie apart (probe_round_lags_ms).
  const bool busy = replication_in_flight();
  for (int n = 0; n < static_cast<int>(nodes_.size()); ++n) {
    Node& r = nodes_[static_cast<std::size_t>(n)];
    if (!r.probe_in_round) continue;
    r.probe_in_round = false;
    events_.push(std::max(now_, r.probe_sent_ns + ns(busy ? r.probe_lag_apart_ms : r.probe_lag_any_ms)), Ev::ProbeAt, n);
  }
}

bool Simulation::replication_in_flight() const {
  for (int n = 0; n < static_cast<int>(nodes_.size()); ++n) {
    const Node& r = nodes_[static_cast<std::size_t>(n)];
    if (n != primary_ && r.alive && !r.diverged && !r.detached && r.applied < last_seq_) return true;
  }
  return false;
}

void Simulation::on_probe_at(int node) {
  Node& r = nodes_[static_cast<std::size_t>(node)];
  if (!r.alive || r.diverged) {
    r.probing = false;  // lost (the real prober times out and asks again)
    return;
  }
  // The node's positions when the query runs there; the answer travels back.
  r.probed_primary = node == primary_;
  if (burst_armed_ && r.probed_primary) {  // the new primary's next write carries the burst
    burst_armed_ = false;
    burst_seq_ = last_seq_ + 1;
    burst_bytes_ = static_cast<std::uint64_t>(c_.promotion_wal_bytes);
  }
  // The primary's flush position passes a write probe_commit_lag_ms after its commit here.
  const std::uint64_t shown = c_.probe_commit_lag_ms > 0 ? committed_before(now_ - ns(c_.probe_commit_lag_ms)) : last_seq_;
  r.probe_receive = on_timeline(r, r.probed_primary ? lsn(shown) : lsn(r.received));
  r.probe_replay = r.probed_primary ? r.probe_receive : on_timeline(r, replay_lsn(r));
  events_.push(now_ + (measured_run_lags() ? r.probe_back_ns : draw_ns(probe_latency_)), Ev::ProbeAnswer, node);
}

void Simulation::on_probe_answer(int node) {
  Node& r = nodes_[static_cast<std::size_t>(node)];
  r.probing = false;
  // The real prober's stamps: the primary's LSN at the probe's send time (it had reached it by
  // then or later, so a replica's lag is never understated), a replica's at the answer's arrival.
  // An answer from a node whose role changed meanwhile (a promotion) is dropped.
  if (r.probed_primary) {
    if (node != primary_) return;
    if (tracker_->primary_lsn() > r.probe_receive) tracker_->reset();  // a new primary behind the old: afresh
    tracker_->primary_sample(r.probe_sent_ns, r.probe_receive);
    trace_probe(node, true, r.probe_sent_ns, r.probe_receive);
  } else if (is_replica(node)) {
    tracker_->replica_sample(node, now_, r.probe_receive, r.probe_replay);
    trace_probe(node, false, now_, r.probe_replay);
  }
}

void Simulation::trace_probe(int node, bool primary, std::int64_t stamp_ns, Lsn lsn) {
  if (res_.probe_samples.size() >= static_cast<std::size_t>(c_.max_probe_samples)) return;
  ProbeSample s;
  s.node = node;
  s.primary = primary;
  s.stamp_ms = static_cast<double>(stamp_ns) * 1e-6;
  s.lsn = lsn.value;
  // A replica whose lag is not known yet has none to report (NaN, as in SimResult.tracked_lag_ms).
  const ReplicaLag tracked = tracker_->replica(node);
  s.tracked_lag_ms = primary       ? 0.0
                     : tracked.known ? static_cast<double>(tracked.lag_ns) * 1e-6
                                     : std::numeric_limits<double>::quiet_NaN();
  res_.probe_samples.push_back(s);
}

void Simulation::on_sample() {
  if (now_ + sample_step_ns_ < duration_ns_) events_.push(now_ + sample_step_ns_, Ev::Sample, 0);
  if (res_.sample_times_ms.size() >= static_cast<std::size_t>(c_.max_samples)) return;
  res_.sample_times_ms.push_back(static_cast<double>(now_) * 1e-6);
  res_.lag_ms.resize(static_cast<std::size_t>(c_.replicas));
  res_.lag_bytes.resize(static_cast<std::size_t>(c_.replicas));
  res_.tracked_lag_ms.resize(static_cast<std::size_t>(c_.replicas));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::uint64_t latest = latest_seq();
  for (int n = 1; n < static_cast<int>(nodes_.size()); ++n) {
    Node& r = nodes_[static_cast<std::size_t>(n)];
    double lag_ms = 0, lag_bytes = 0;
    if (!r.alive || r.diverged) {
      lag_ms = lag_bytes = nan;
    } else if (n != primary_ && r.applied < latest) {
      lag_bytes = static_cast<double>(lsn(latest).value - replay_lsn(r).value);
      // Time lag: how long ago the first write it has not replayed committed (older than the
      // kept commits: from the oldest kept, a lower bound).
      const std::uint64_t first = std::max(r.applied + 1, last_seq_ > kCommitRing - 1 ? last_seq_ - (kCommitRing - 1) : 1);
      lag_ms = static_cast<double>(now_ - commits_[first & (kCommitRing - 1)].commit_ns) * 1e-6;
      r.max_lag_ms = std::max(r.max_lag_ms, lag_ms);
    }
    res_.lag_ms[static_cast<std::size_t>(n - 1)].push_back(lag_ms);
    res_.lag_bytes[static_cast<std::size_t>(n - 1)].push_back(lag_bytes);
    // What a client reads (NodeInfo, as the real ReplicatedDatabase's NodeStatus): a replica
    // older than the tracker's whole history has an unknown time lag, not its lower bound.
    const ReplicaLag tracked = tracker_->replica(n);
    const bool known = tracked.known && (c_.tracked_lag_lower_bounds || !tracked.lag_is_lower_bound) &&
                       topology_->info(n).lag_known && n != primary_ && !std::isnan(lag_ms);
    const double tracked_ms = known ? static_cast<double>(tracked.lag_ns) * 1e-6 : nan;
    res_.tracked_lag_ms[static_cast<std::size_t>(n - 1)].push_back(tracked_ms);
    if (windowed_ && is_replica(n)) count_lag(lag_ms, tracked_ms);
  }
}

void Simulation::finish(SimResult& r) const {
  r.simulated_ms = static_cast<double>(now_) * 1e-6;
  r.writes_pending = in_flight_writes_ - in_flight_background_;
  r.background_writes_pending = in_flight_background_;
  r.reads_pending = in_flight_reads_;
  r.mean_write_latency_ms = r.writes_acknowledged ? write_latency_sum_ms_ / static_cast<double>(r.writes_acknowledged) : 0;
  r.mean_read_latency_ms = r.reads_answered ? read_latency_sum_ms_ / static_cast<double>(r.reads_answered) : 0;
  const double span_ns = std::max(1.0, static_cast<double>(now_));
  for (int i = 0; i < static_cast<int>(nodes_.size()); ++i) {
    const Node& n = nodes_[static_cast<std::size_t>(i)];
    NodeLoad load;
    load.name = topology_->name(i);
    load.utilisation = std::min(1.0, static_cast<double>(n.busy_ns) / (span_ns * c_.servers_per_node));
    load.reads_served = n.reads_served;
    load.writes_served = n.writes_served;
    load.max_queue_length = n.max_queue;
    load.apply_utilisation = std::min(1.0, static_cast<double>(n.apply_busy_ns) / span_ns);
    r.nodes.push_back(load);
    if (i == 0) continue;
    ReplicaStats rs;
    rs.name = load.name;
    rs.writes_applied = n.apply_delay_count;
    rs.mean_apply_delay_ms = n.apply_delay_count ? n.apply_delay_sum_ms / static_cast<double>(n.apply_delay_count) : 0;
    rs.max_lag_ms = n.max_lag_ms;
    r.replicas.push_back(rs);
  }
  finish_windows(r);
  if (r.lag_ms.empty() && c_.replicas > 0) {
    r.lag_ms.resize(static_cast<std::size_t>(c_.replicas));
    r.lag_bytes.resize(static_cast<std::size_t>(c_.replicas));
    r.tracked_lag_ms.resize(static_cast<std::size_t>(c_.replicas));
  }
}

}  // namespace replikit::sim::detail
