#include "prober.hpp"

#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "clock.hpp"
#include "conninfo.hpp"
#include "probe_query.hpp"
#include "replikit/errors.hpp"

namespace replikit::pg::detail {

namespace {

constexpr std::int64_t kMaxPollNs = 20'000'000;  // the watchdog's resolution

// poll()'s timeout to wait from `now` until `wake`: whole milliseconds, rounded up.
int poll_timeout_ms(std::int64_t now, std::int64_t wake) {
  return static_cast<int>((std::max<std::int64_t>(0, wake - now) + 999'999) / 1'000'000);
}

// Wakes the prober thread: one byte into its (non-blocking) pipe; a full pipe wakes it anyway.
void poke(int pipe_write_fd, char byte) noexcept {
  ssize_t ignored = ::write(pipe_write_fd, &byte, 1);
  (void)ignored;
}

// Empties the (non-blocking) wake-up pipe.
void drain(int pipe_read_fd) {
  char buffer[64];
  while (::read(pipe_read_fd, buffer, sizeof buffer) > 0) {
  }
}

}  // namespace

struct Prober::Slot {
  enum class Phase { Disconnected, Connecting, Idle, Querying };
  int node = kNoNode;
  std::string conninfo;
  PGconn* conn = nullptr;
  Phase phase = Phase::Disconnected;
  PostgresPollingStatusType connect_status = PGRES_POLLING_WRITING;
  std::int64_t due_ns = 0;       // next connect (Disconnected) or probe (Idle)
  std::int64_t deadline_ns = 0;  // of the connect or probe in flight
  std::int64_t sent_ns = 0;
  std::int64_t started_ns = 0;  // the connect or probe in flight began
  ProbeAnswer answer;  // of the probe in flight, or of the last one
  // The connection broke and is being replaced before the probe counts as failed; the error.
  bool reconnecting = false;
  std::string lost_error;
  // Guarded by Prober::mutex_.
  ProbeState state;
  std::uint64_t completed = 0;
};

Prober::Prober(ProberConfig config, std::shared_ptr<Topology> topology, std::shared_ptr<LagTracker> tracker,
               std::vector<std::string> conninfos, Watchdog* watchdog, std::function<void(int, bool)> on_probe,
               NodeEvents& events)
    : config_(config),
      topology_(std::move(topology)),
      tracker_(std::move(tracker)),
      watchdog_(watchdog),
      on_probe_(std::move(on_probe)),
      events_(events) {
  for (std::size_t i = 0; i < conninfos.size(); ++i) {
    auto s = std::make_unique<Slot>();
    s->node = static_cast<int>(i);
    s->conninfo = std::move(conninfos[i]);
    slots_.push_back(std::move(s));
  }
  if (::pipe2(wake_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
    throw Error("prober: cannot create its wake-up pipe");
  }
}

Prober::~Prober() {
  stop();
  for (int fd : wake_pipe_) {
    if (fd >= 0) ::close(fd);
  }
}

void Prober::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void Prober::expedite() noexcept {
  if (expedite_.exchange(true, std::memory_order_acq_rel)) return;  // already asked
  poke(wake_pipe_[1], 2);
}

void Prober::stop() {
  std::lock_guard<std::mutex> lock(stop_mutex_);
  // Closed before the thread may exit: a call can no longer arm a deadline that nobody
  // would watch (arm() throws), and the ones armed keep being watched until disarmed.
  if (watchdog_ != nullptr) watchdog_->close();
  stop_.store(true, std::memory_order_release);
  poke(wake_pipe_[1], 1);
  if (thread_.joinable()) thread_.join();
}

ProbeState Prober::state(int node) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return slots_.at(static_cast<std::size_t>(node))->state;
}

bool Prober::wait_probes(int count, std::int64_t timeout_ns) const {
  std::unique_lock<std::mutex> lock(mutex_);
  std::vector<std::uint64_t> target;
  for (const auto& s : slots_) target.push_back(s->completed + static_cast<std::uint64_t>(count));
  auto done = [&] {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i]->completed < target[i]) return false;
    }
    return true;
  };
  return probed_.wait_for(lock, std::chrono::nanoseconds(timeout_ns), done);
}

void Prober::run() {
  // Every iteration waits at most kMaxPollNs. After stop() only the watchdog runs, until the
  // last call in flight disarmed its deadline: each entry is disarmed by its call, and fires
  // (so that call returns) at its deadline at the latest.
  while (true) {
    const bool stopping = stop_.load(std::memory_order_acquire);
    if (stopping && (watchdog_ == nullptr || watchdog_->drained())) break;
    std::int64_t now = steady_now_ns();
    if (watchdog_ != nullptr) watchdog_->fire_expired(now);
    cut_deposed();
    if (stopping) {
      disconnect_all();
      const std::int64_t wake = std::min(now + kMaxPollNs, watchdog_->next_deadline_ns());
      pollfd pipe_fd{wake_pipe_[0], POLLIN, 0};
      if (::poll(&pipe_fd, 1, poll_timeout_ms(now, wake)) > 0) drain(wake_pipe_[0]);
      continue;
    }
    step(now);
    cut_deposed();  // step() may have adopted a primary promoted elsewhere
    std::vector<pollfd> fds;
    std::vector<Slot*> owners;
    fds.push_back({wake_pipe_[0], POLLIN, 0});
    owners.push_back(nullptr);
    std::int64_t wake = now + kMaxPollNs;
    if (watchdog_ != nullptr) wake = std::min(wake, watchdog_->next_deadline_ns());
    for (auto& sp : slots_) {
      Slot& s = *sp;
      switch (s.phase) {
        case Slot::Phase::Disconnected:
        case Slot::Phase::Idle:
          wake = std::min(wake, s.due_ns);
          break;
        case Slot::Phase::Connecting:
          wake = std::min(wake, s.deadline_ns);
          fds.push_back({PQsocket(s.conn),
                         static_cast<short>(s.connect_status == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0});
          owners.push_back(&s);
          break;
        case Slot::Phase::Querying:
          wake = std::min(wake, s.deadline_ns);
          fds.push_back({PQsocket(s.conn), POLLIN, 0});
          owners.push_back(&s);
          break;
      }
    }
    if (::poll(fds.data(), static_cast<nfds_t>(fds.size()), poll_timeout_ms(now, wake)) <= 0) continue;
    if (fds[0].revents != 0) drain(wake_pipe_[0]);
    now = steady_now_ns();
    for (std::size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents != 0) on_readable(*owners[i], now);
    }
  }
  disconnect_all();
}

void Prober::disconnect_all() {
  for (auto& s : slots_) {
    if (s->conn != nullptr) PQfinish(s->conn);
    s->conn = nullptr;
    s->phase = Slot::Phase::Disconnected;
  }
}

void Prober::step(std::int64_t now) {
  if (expedite_.exchange(false, std::memory_order_acq_rel)) {
    for (auto& sp : slots_) {
      Slot& s = *sp;
      if (s.phase == Slot::Phase::Idle && role_of(topology_->flags(s.node)) == Role::Replica) {
        s.due_ns = std::min(s.due_ns, std::max(now, s.sent_ns + kExpediteGapNs));
      }
    }
  }
  for (auto& sp : slots_) {
    Slot& s = *sp;
    switch (s.phase) {
      case Slot::Phase::Disconnected:
        if (now >= s.due_ns) start_connect(s, now);
        break;
      case Slot::Phase::Idle:
        if (now >= s.due_ns) send_probe(s, now);
        break;
      case Slot::Phase::Connecting:
        if (now >= s.deadline_ns) {
          fail(s, "no connection within " + std::to_string(config_.connect_timeout_ns / 1'000'000) + " ms", now);
        }
        break;
      case Slot::Phase::Querying:
        if (now >= s.deadline_ns) {
          fail(s, "no answer to the probe within " + std::to_string(config_.probe_timeout_ns / 1'000'000) + " ms",
               now);
        }
        break;
    }
  }
}

void Prober::start_connect(Slot& s, std::int64_t now) {
  s.conn = PQconnectStart(s.conninfo.c_str());
  if (s.conn == nullptr) {
    fail(s, "out of memory", now);
    return;
  }
  if (PQstatus(s.conn) == CONNECTION_BAD) {
    fail(s, trimmed(PQerrorMessage(s.conn)), now);
    return;
  }
  PQsetErrorVerbosity(s.conn, PQERRORS_VERBOSE);  // SQLSTATE in the message: see server_full()
  s.phase = Slot::Phase::Connecting;
  s.connect_status = PGRES_POLLING_WRITING;  // libpq: behave as if the last poll said WRITING
  s.deadline_ns = now + config_.connect_timeout_ns;
  s.started_ns = now;
}

void Prober::send_probe(Slot& s, std::int64_t now) {
  s.answer = ProbeAnswer();
  if (PQsendQuery(s.conn, kProbeSql) == 0) {
    lost(s, trimmed(PQerrorMessage(s.conn)), now);
    return;
  }
  s.phase = Slot::Phase::Querying;
  s.sent_ns = s.started_ns = now;
  s.deadline_ns = now + config_.probe_timeout_ns;
}

void Prober::on_readable(Slot& s, std::int64_t now) {
  if (s.phase == Slot::Phase::Connecting) {
    s.connect_status = PQconnectPoll(s.conn);
    if (s.connect_status == PGRES_POLLING_OK) {
      PQsetErrorVerbosity(s.conn, PQERRORS_DEFAULT);
      s.phase = Slot::Phase::Idle;
      send_probe(s, now);
    } else if (s.connect_status == PGRES_POLLING_FAILED) {
      fail(s, trimmed(PQerrorMessage(s.conn)), now);
    }
    return;
  }
  if (s.phase != Slot::Phase::Querying) return;
  if (PQconsumeInput(s.conn) == 0) {
    lost(s, trimmed(PQerrorMessage(s.conn)), now);
    return;
  }
  // Bounded: a simple query yields one result and then NULL.
  for (int guard = 0; guard < 8 && PQisBusy(s.conn) == 0; ++guard) {
    PGresult* r = PQgetResult(s.conn);
    if (r == nullptr) {
      if (s.answer.have_row && s.answer.error.empty()) {
        succeed(s, now);
      } else if (s.answer.session_ended || PQstatus(s.conn) != CONNECTION_OK) {
        lost(s, s.answer.error, now);
      } else {
        fail(s, s.answer.error.empty() ? std::string("the probe returned no row") : s.answer.error, now);
      }
      return;
    }
    read_probe_result(r, s.answer);
    PQclear(r);
  }
}

void Prober::lost(Slot& s, const std::string& message, std::int64_t now) {
  if (s.reconnecting) {  // lost again right after reconnecting: a failed probe
    fail(s, message, now);
    return;
  }
  PQfinish(s.conn);
  s.conn = nullptr;
  s.phase = Slot::Phase::Disconnected;
  s.due_ns = now;
  s.reconnecting = true;
  s.lost_error = message.empty() ? std::string("the connection was lost") : message;
}

void Prober::fail(Slot& s, const std::string& raw_message, std::int64_t now) {
  // A full server (53300) answered the connect: it is not down, and the pooled connections to
  // it still serve (dropping them would refuse every call until a slot frees). The failed
  // probe is counted and its error shown; the node's routing state stays as it was.
  const bool full = s.phase == Slot::Phase::Connecting && server_full(raw_message);
  std::string message = without_location(raw_message);
  if (s.reconnecting) message = s.lost_error + "; reconnecting: " + message;
  s.reconnecting = false;
  if (s.conn != nullptr) PQfinish(s.conn);
  s.conn = nullptr;
  s.phase = Slot::Phase::Disconnected;
  s.due_ns = now + config_.interval_ns;
  if (full) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      s.state.last_error = "the server is full, the probe could not connect: " + message;
      s.state.last_probe_ns = now;
      s.state.last_probe_sent_ns = s.started_ns;
      ++s.state.probes_failed;
    }
    finish(s, /*ok=*/true);  // "ok" to on_probe: the node answered, keep its pooled connections
    return;
  }
  // Published before routing drops the node: whoever sees it out of routing finds the event.
  events_.down(s.node, message);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    s.state.reachable = false;
    s.state.last_error = message;
    s.state.last_probe_ns = now;
    s.state.last_probe_sent_ns = s.started_ns;
    ++s.state.probes_failed;
  }
  finish(s, false);
}

void Prober::succeed(Slot& s, std::int64_t now) {
  s.reconnecting = false;
  s.phase = Slot::Phase::Idle;
  s.due_ns = std::max(now, s.sent_ns + config_.interval_ns);  // keep the cadence
  const ProbeAnswer& answer = s.answer;
  std::uint32_t seen = newest_timeline_.load();
  while (answer.timeline > seen && !newest_timeline_.compare_exchange_weak(seen, answer.timeline)) {
  }
  // NodeUp, the verdict, its role event and its routing change in one step (NodeEvents).
  const ProbeVerdict v = events_.good_probe(s.node, [&] { return judge(s, now); });
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ProbeState& st = s.state;
    st.reachable = true;
    st.in_recovery = answer.in_recovery;
    st.role_mismatch = v.mismatch;
    st.timeline = answer.timeline;
    st.current_lsn = answer.current_lsn;
    st.receive_lsn = answer.receive_lsn;
    st.replay_lsn = answer.replay_lsn;
    st.last_probe_ns = now;
    st.last_probe_sent_ns = s.sent_ns;
    st.rtt_ms = static_cast<double>(now - s.sent_ns) / 1e6;
    ++st.probes_ok;
    st.last_error = v.mismatch && v.error.empty() ? "role mismatch: " + v.message : v.error;
  }
  finish(s, true);
}

ProbeVerdict Prober::judge(const Slot& s, std::int64_t now) {
  const ProbeAnswer& answer = s.answer;
  const Role role = role_of(topology_->flags(s.node));
  ProbeVerdict v;
  try {
    if (role == Role::Primary && !answer.in_recovery && stale_primary(s)) {
      // A primary on a timeline older than one seen elsewhere was failed over: never write there.
      v.mismatch = true;
      v.routed = false;
      v.error = "stale primary: timeline " + std::to_string(answer.timeline) + " is older than timeline " +
                std::to_string(newest_timeline_.load()) + " seen on another node";
    } else if (role == Role::Replica && !answer.in_recovery && adopt(s)) {
      // Now the primary (epoch bumped, routed in); its next probe samples it as one.
    } else if (role == Role::Primary || topology_->primary() == s.node) {
      v.mismatch = answer.in_recovery;
      if (!answer.in_recovery && answer.current_lsn.valid()) sample_primary(s);
      // No failover here: a primary found in recovery stays routable and is flagged.
      v.routed = true;
    } else {
      v.mismatch = !answer.in_recovery;
      if (!v.mismatch) {
        tracker_->replica_sample(s.node, now, lsn_max(answer.receive_lsn, answer.replay_lsn), answer.replay_lsn);
      }
      // A "replica" that is not in recovery no longer follows the primary: keep reads off it.
      v.routed = !v.mismatch;
    }
  } catch (const std::exception& e) {
    v.routed.reset();
    v.error = std::string("probe sample rejected: ") + e.what();
  }
  v.message = !v.mismatch            ? std::string("the server's role matches the topology again")
              : !v.error.empty()     ? v.error
              : answer.in_recovery ? "the primary is in recovery"
                                   : "this replica is not in recovery";
  return v;
}

void Prober::sample_primary(const Slot& s) {
  // Stamped with the send time, not the arrival time: the primary reached this LSN at some
  // point in between, and the earlier stamp can only overstate a replica's lag (an LSN held
  // back by a slow or frozen primary must not look fresh).
  try {
    tracker_->primary_sample(s.sent_ns, s.answer.current_lsn);
  } catch (const InvalidArgument&) {
    // The primary's LSN went backwards: it is not the server it was (restored, or a different
    // one behind the same address). Start the history afresh.
    tracker_->reset();
    tracker_->primary_sample(s.sent_ns, s.answer.current_lsn);
  }
}

bool Prober::stale_primary(const Slot& s) {
  return s.answer.timeline != 0 && s.answer.timeline < newest_timeline_.load();
}

bool Prober::adopt(const Slot& s) {
  // A replica out of recovery on a newer timeline than the primary's was promoted (by a
  // failover manager here or elsewhere): follow it, so that every router sends writes there.
  const int primary = topology_->primary();
  std::uint32_t primary_timeline = 0;
  bool primary_failed = false;  // probed, and its last probe failed
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const ProbeState& p = slots_[primary]->state;
    primary_timeline = p.timeline;
    primary_failed = !p.reachable && p.probes_failed > 0;
  }
  // With the primary's timeline unknown, only a primary seen down lets a newer one take over
  // (not one merely not probed yet).
  const std::uint32_t timeline = s.answer.timeline;
  if (timeline == 0 || timeline <= primary_timeline || (primary_timeline == 0 && !primary_failed)) return false;
  // Promoted meanwhile by the manager of this process: promotion() only routes it in.
  const std::string why = "found out of recovery on timeline " + std::to_string(timeline) + ", newer than the primary's";
  return events_.promotion(s.node, why);
}

void Prober::cut_deposed() {
  // The epoch first: promote() stores the primary before it bumps the epoch.
  const std::uint64_t epoch = topology_->epoch();
  const int primary = topology_->primary();
  if (watchdog_ == nullptr || (epoch == seen_epoch_ && primary == seen_primary_)) return;
  seen_epoch_ = epoch;
  seen_primary_ = primary;
  watchdog_->fire_deposed(primary);
}

void Prober::finish(Slot& s, bool ok) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++s.completed;
  }
  probed_.notify_all();
  if (on_probe_) on_probe_(s.node, ok);
}

}  // namespace replikit::pg::detail
