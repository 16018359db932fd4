// The simulator's clients: request arrivals, reads held for their session's write in flight, and
// clients that send one request at a time (one writer thread, reader threads).
#include <algorithm>

#include "engine.hpp"

namespace replikit::sim::detail {

void Simulation::on_write_arrival() {
  int session = 0;
  if (!c_.write_arrivals.empty()) {
    session = c_.write_arrivals[next_traced(c_.write_arrivals, next_write_, Ev::WriteArrival)].session;
    ++res_.writes_submitted;
  } else {
    const std::int64_t next = now_ + std::max<std::int64_t>(1, exp_ns(write_gap_ns_));
    if (next < duration_ns_) events_.push(next, Ev::WriteArrival, 0);
    ++res_.writes_submitted;
    session = static_cast<int>(rng_.below(static_cast<std::uint32_t>(c_.sessions)));
  }
  if (c_.sequential_writes && writer_busy_) {  // the writer thread is still waiting for its last one
    if (pending_writes_.size() < static_cast<std::size_t>(c_.max_queue_length)) {
      pending_writes_.push_back(session);
      return;
    }
    ++res_.writes_failed;
    ++res_.writes_failed_by[static_cast<std::size_t>(FailReason::QueueFull)];
    return;
  }
  issue_write(session);
}

void Simulation::issue_write(int session) {
  writer_busy_ = c_.sequential_writes;
  if (in_flight_writes_ + in_flight_reads_ >= static_cast<std::uint64_t>(c_.max_in_flight)) {
    ++res_.writes_failed;
    ++res_.writes_failed_by[static_cast<std::size_t>(FailReason::QueueFull)];
    if (c_.sequential_writes) events_.push(now_, Ev::WriterFree, 0);
    return;
  }
  const std::uint32_t id = new_job(true, session);
  ++session_writes_[static_cast<std::size_t>(session)];
  const Decision d = router_->route_write();
  if (d.node == kNoNode) return fail(id, FailReason::NoNode);
  jobs_[id].node = static_cast<std::int16_t>(d.node);
  events_.push(now_ + draw_ns(client_latency_), Ev::AtNode, d.node, id, jobs_[id].gen);
}

void Simulation::on_writer_free() {
  writer_busy_ = false;
  if (pending_writes_.empty()) return;
  const int session = pending_writes_.front();
  pending_writes_.pop_front();
  issue_write(session);  // counted as submitted when it arrived: sent even after the run's end
}

bool Simulation::hold_read(int session, Consistency level, int reader) {
  const auto s = static_cast<std::size_t>(session);
  if (!c_.session_reads_wait_for_writes || session_writes_[s] == 0) return false;
  if (level != Consistency::ReadYourWrites && level != Consistency::Causal) return false;
  if (held_reads_[s].size() >= static_cast<std::size_t>(c_.max_queue_length)) return false;  // bounded
  held_reads_[s].push_back(HeldRead{level, reader});
  return true;
}

void Simulation::on_session_free(int session) {
  const auto s = static_cast<std::size_t>(session);
  if (session_writes_[s] != 0) return;  // another write started meanwhile: they wait for it too
  std::vector<HeldRead> held;
  held.swap(held_reads_[s]);
  for (const HeldRead& h : held) {
    if (now_ < duration_ns_) {
      issue_read(session, h.level, h.reader);
    } else if (h.reader >= 0) {
      events_.push(now_, Ev::ReaderFree, 0, static_cast<std::uint32_t>(h.reader));
    }
  }
}

void Simulation::on_read_arrival() {
  if (!c_.read_arrivals.empty()) {
    const std::size_t due = next_traced(c_.read_arrivals, next_read_, Ev::ReadArrival);
    const Arrival& a = c_.read_arrivals[due];
    if (!c_.read_arrival_readers.empty()) return client_read(c_.read_arrival_readers[due], a.session, a.level);
    if (hold_read(a.session, a.level)) return;
    return issue_read(a.session, a.level);
  }
  const std::int64_t next = now_ + std::max<std::int64_t>(1, exp_ns(read_gap_ns_));
  if (next < duration_ns_) events_.push(next, Ev::ReadArrival, 0);
  const int session = static_cast<int>(rng_.below(static_cast<std::uint32_t>(c_.sessions)));
  const double x = rng_.uniform() * level_cdf_.back();
  int level = 0;
  while (level + 1 < kLevels && x >= level_cdf_[static_cast<std::size_t>(level)]) ++level;
  if (hold_read(session, static_cast<Consistency>(level))) return;
  issue_read(session, static_cast<Consistency>(level));
}

void Simulation::client_read(int reader, int session, Consistency level) {
  const auto r = static_cast<std::size_t>(reader);
  if (r >= reader_busy_.size()) {
    reader_busy_.resize(r + 1, 0);
    reader_queue_.resize(r + 1);
  }
  // A reader still waiting for its last read sends this one after it (beyond the bound: at once).
  if (reader_busy_[r] && reader_queue_[r].size() < static_cast<std::size_t>(c_.max_queue_length)) {
    reader_queue_[r].emplace_back(session, level);
    return;
  }
  reader_busy_[r] = 1;
  if (hold_read(session, level, reader)) return;
  issue_read(session, level, reader);
}

void Simulation::on_reader_free(int reader) {
  const auto r = static_cast<std::size_t>(reader);
  reader_busy_[r] = 0;
  if (reader_queue_[r].empty()) return;
  if (now_ >= duration_ns_) {  // the run is over: a reader sends nothing more
    reader_queue_[r].clear();
    return;
  }
  const auto [session, level] = reader_queue_[r].front();
  reader_queue_[r].pop_front();
  client_read(reader, session, level);
}

}  // namespace replikit::sim::detail
