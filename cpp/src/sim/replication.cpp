// The simulator's replication: commit on the primary, WAL streaming, replay, standby
// confirmations and the acknowledgement rule of each mode.
#include <algorithm>
#include <array>
#include <cstdint>

#include "engine.hpp"

namespace replikit::sim::detail {

void Simulation::commit(std::uint32_t id) {
  Job& j = jobs_[id];
  const std::uint64_t seq = ++last_seq_;
  j.seq = seq;
  j.timeline = timeline_;
  Node& p = nodes_[static_cast<std::size_t>(primary_)];
  p.received = p.applied = seq;
  if (!j.background) last_judged_seq_ = seq;
  const std::uint64_t back = std::min<std::uint64_t>(seq - last_judged_seq_, UINT32_MAX);
  Commit& cm = commits_[seq & (kCommitRing - 1)];
  cm = Commit{now_, seq, timeline_, false, j.background, static_cast<std::uint32_t>(back)};
  for (int n = 0; n < static_cast<int>(nodes_.size()); ++n) {
    if (is_replica(n) && !nodes_[static_cast<std::size_t>(n)].detached) send(nodes_[static_cast<std::size_t>(n)].wal, n, Ev::WalArrive, seq);
  }
  if (mode_ == ReplicationMode::Async) {
    j.state = JobState::ToClient;
    events_.push(now_ + draw_ns(client_latency_), Ev::WriteAcked, 0, id, j.gen);
    return;
  }
  j.state = JobState::WaitSync;
  wait_sync_.emplace_back(seq, id);
  release_synced();
}

void Simulation::send(Link& link, int node, Ev kind, std::uint64_t seq, std::int64_t after_ns) {
  // One connection delivers in order (TCP): never before what was sent earlier.
  // From the crash on, the new primary's link (the same draws when no other latency is set).
  const std::int64_t delay = draw_ns(crash_ns_ >= 0 ? replica_latency_after_crash_ : replica_latency_);
  const std::int64_t at = std::max(link.last_arrival, now_ + after_ns + delay);
  link.last_arrival = at;
  if (link.fifo.empty()) events_.push(at, kind, node, 0, nodes_[static_cast<std::size_t>(node)].link_gen);
  link.fifo.emplace_back(at, seq);
}

void Simulation::on_wal_arrive(int node, std::uint32_t gen) {
  Node& n = nodes_[static_cast<std::size_t>(node)];
  if (gen != n.link_gen || n.wal.fifo.empty()) return;
  const std::uint64_t seq = n.wal.fifo.front().second;
  n.wal.fifo.pop_front();
  if (!n.wal.fifo.empty()) events_.push(n.wal.fifo.front().first, Ev::WalArrive, node, 0, gen);
  if (!n.alive || n.diverged) return;
  n.received = std::max(n.received, seq);
  if (mode_ == ReplicationMode::SemiSync || mode_ == ReplicationMode::Sync) {
    send(n.acks, node, Ev::AckArrive, n.received);
  }
  start_apply(node);
}

void Simulation::start_apply(int node) {
  Node& n = nodes_[static_cast<std::size_t>(node)];
  if (n.applying || n.paused > 0 || n.applied >= n.received || node == primary_ || !n.alive || n.diverged) return;
  n.applying = true;
  n.apply_start_ns = now_;
  // recovery_min_apply_delay: the replay waits for commit + delay (a promotion ends the wait);
  // the wait is not replay work, so the apply server's busy time starts after it. PostgreSQL
  // delays only commit records (recoveryApplyDelay): the write's row WAL, received with its
  // commit record, is replayed at once and the replay LSN waits just before the commit record.
  if (n.apply_delay_ns > 0 && !(node == promoting_ && promote_due_)) {
    n.apply_start_ns = std::max(now_, commit_time(n.applied + 1) + n.apply_delay_ns);
    if (n.apply_start_ns > now_) n.holding = true;
  }
  events_.push(n.apply_start_ns + exp_ns(apply_mean_ns_ * n.slow), Ev::ApplyDone, node, 0, n.apply_gen);
}

void Simulation::on_apply_done(int node, std::uint32_t gen) {
  Node& n = nodes_[static_cast<std::size_t>(node)];
  if (!n.applying || gen != n.apply_gen) return;
  n.applying = false;
  n.apply_busy_ns += now_ - n.apply_start_ns;
  if (!n.alive || n.diverged) return;
  const std::uint64_t seq = ++n.applied;
  n.holding = false;
  const Commit& cm = commits_[seq & (kCommitRing - 1)];
  if (cm.seq == seq) {
    n.apply_delay_sum_ms += static_cast<double>(now_ - cm.commit_ns) * 1e-6;
    ++n.apply_delay_count;
  }
  if (mode_ == ReplicationMode::RemoteApply && node != primary_) send(n.acks, node, Ev::AckArrive, seq);
  if (node == promoting_ && promote_due_ && n.applied >= n.received) {
    complete_promotion(node);
    return;
  }
  start_apply(node);
}

void Simulation::on_ack_arrive(int node, std::uint32_t gen) {
  Node& n = nodes_[static_cast<std::size_t>(node)];
  if (gen != n.link_gen || n.acks.fifo.empty()) return;
  const std::uint64_t seq = n.acks.fifo.front().second;
  n.acks.fifo.pop_front();
  if (!n.acks.fifo.empty()) events_.push(n.acks.fifo.front().first, Ev::AckArrive, node, 0, gen);
  if (!nodes_[static_cast<std::size_t>(primary_)].alive) return;  // a crashed primary hears nothing
  n.confirmed = std::max(n.confirmed, seq);
  release_synced();
}

std::uint64_t Simulation::synced_seq() const {
  // The k-th highest confirmation among the attached standbys (Sync: all of them). Fewer
  // standbys than required: nothing is synced (PostgreSQL's commits wait).
  std::array<std::uint64_t, kMaxReplicas + 1> confirmed{};
  int count = 0;
  for (int n = 0; n < static_cast<int>(nodes_.size()); ++n) {
    const Node& r = nodes_[static_cast<std::size_t>(n)];
    if (is_replica(n) && !r.detached) confirmed[static_cast<std::size_t>(count++)] = r.confirmed;
  }
  const int k = mode_ == ReplicationMode::Sync ? count : c_.sync_count;
  if (count == 0 || k > count) return 0;
  std::nth_element(confirmed.begin(), confirmed.begin() + (k - 1), confirmed.begin() + count, std::greater<>());
  return confirmed[static_cast<std::size_t>(k - 1)];
}

void Simulation::release_synced() {
  if (wait_sync_.empty()) return;
  const std::uint64_t synced = synced_seq();
  while (!wait_sync_.empty() && wait_sync_.front().first <= synced) {
    const std::uint32_t id = wait_sync_.front().second;
    wait_sync_.pop_front();
    Job& j = jobs_[id];
    j.state = JobState::ToClient;
    events_.push(now_ + draw_ns(client_latency_), Ev::WriteAcked, 0, id, j.gen);
  }
}

std::uint64_t Simulation::latest_seq() const {
  if (nodes_[static_cast<std::size_t>(primary_)].alive) return last_seq_;
  // No primary: the latest write that can survive is the most any live standby received
  // (what the crash did not lose); staleness and lag are judged against that.
  std::uint64_t best = 0;
  for (int n = 0; n < static_cast<int>(nodes_.size()); ++n) {
    if (is_replica(n)) best = std::max(best, nodes_[static_cast<std::size_t>(n)].received);
  }
  return std::min(best, last_seq_);
}

std::int64_t Simulation::commit_time(std::uint64_t seq) const {
  // Older than the kept commits: the oldest kept one's time, an upper bound (commits are in
  // time order), so a delayed replay never comes early.
  const Commit& cm = commits_[seq & (kCommitRing - 1)];
  if (cm.seq == seq) return cm.commit_ns;
  const std::uint64_t oldest = last_seq_ > kCommitRing - 1 ? last_seq_ - (kCommitRing - 1) : 1;
  return commits_[oldest & (kCommitRing - 1)].commit_ns;
}

std::uint64_t Simulation::committed_before(std::int64_t t) const {
  // The highest sequence committed at or before t, by binary search over the kept commits
  // (older than the ring: the oldest kept minus one, a lower bound).
  if (last_seq_ == 0) return 0;
  std::uint64_t lo = last_seq_ > kCommitRing - 1 ? last_seq_ - (kCommitRing - 1) : 1;
  std::uint64_t hi = last_seq_;
  const auto at = [&](std::uint64_t s) { return commits_[s & (kCommitRing - 1)].commit_ns; };
  if (at(lo) > t) return lo - 1;
  while (lo < hi) {  // invariant: at(lo) <= t
    const std::uint64_t mid = lo + (hi - lo + 1) / 2;
    if (at(mid) <= t) lo = mid; else hi = mid - 1;
  }
  return lo;
}

}  // namespace replikit::sim::detail
