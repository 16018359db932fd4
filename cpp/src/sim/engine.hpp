#pragma once
// The simulator's engine (private to the core): events, jobs, nodes and the handlers that
// move them. The model is described in replikit/sim/simulator.hpp.

#include <cstdint>
#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "../pbs_sampler.hpp"
#include "replikit/lag.hpp"
#include "replikit/random.hpp"
#include "replikit/router.hpp"
#include "replikit/session.hpp"
#include "replikit/sim/simulator.hpp"

namespace replikit::sim::detail {

enum class Ev : std::uint8_t {
  WriteArrival, ReadArrival, ReadBack, AtNode, ServiceDone, WalArrive, ApplyDone, AckArrive,
  WriteAcked, ReadDone, Probe, ProbeAt, ProbeAnswer, Sample, Heartbeat, Crash, PauseStart, PauseEnd, Promote, Repoint,
  Detect,
  BackgroundArrival, ProbeSend, SessionFree, ProbeRound, WriterFree, ReaderFree,
};

struct Event {
  std::int64_t t;
  std::uint64_t order;  // ties broken by scheduling order: deterministic
  std::uint32_t id;     // job id, session id, or unused
  std::uint32_t gen;    // job or link generation the event belongs to
  std::int16_t node;
  Ev kind;
};

// A binary min-heap of events on (t, order).
class EventQueue {
 public:
  void push(std::int64_t t, Ev kind, int node, std::uint32_t id = 0, std::uint32_t gen = 0);
  Event pop();
  bool empty() const { return heap_.empty(); }
  std::size_t size() const { return heap_.size(); }

 private:
  std::vector<Event> heap_;
  std::uint64_t next_order_ = 0;
};

enum class JobState : std::uint8_t { Free, ToNode, Queued, InService, WaitSync, ToClient };

struct Job {
  std::int64_t submit_ns = 0;
  std::int64_t start_ns = 0;
  std::uint64_t required_seq = 0;  // reads: what the level requires (eventual/bounded: at service start)
  std::uint64_t seq = 0;           // writes: commit sequence; reads: sequence the node showed
  std::uint64_t epoch = 0;         // reads: topology epoch of the routing decision
  std::uint32_t gen = 0;
  std::int32_t session = 0;
  std::int16_t node = 0;
  std::uint8_t level = 0;
  std::uint8_t timeline = 1;
  std::int16_t reader = -1;  // reads: the client thread that sent it (read_arrival_readers; -1: none)
  bool write = false;
  bool background = false;  // a background write: no session, judged by no read
  bool to_primary = false;
  bool stale = false;
  JobState state = JobState::Free;
};

// WAL (or confirmations) in order over one connection: (arrival time, sequence up to).
struct Link {
  std::deque<std::pair<std::int64_t, std::uint64_t>> fifo;
  std::int64_t last_arrival = 0;
};

struct Node {
  bool alive = true;
  bool diverged = false;
  bool detached = false;  // repointing to a new primary: receives nothing until it reconnects
  int busy = 0;
  std::deque<std::uint32_t> queue;  // waiting job ids (bounded by max_queue_length)
  std::int64_t busy_ns = 0;
  std::uint64_t reads_served = 0, writes_served = 0;
  int max_queue = 0;
  // Replication: sequences received (flushed), replayed, and confirmed to the primary.
  std::uint64_t received = 0, applied = 0, confirmed = 0;
  bool applying = false;
  // Waiting at the commit record of write applied + 1 (an apply delay) with the rest of its WAL
  // replayed: the replay LSN stands commit_record_bytes short of that write's end.
  bool holding = false;
  int paused = 0;  // overlapping pauses count
  double slow = 1.0;
  std::int64_t apply_delay_ns = 0;  // recovery_min_apply_delay
  std::uint32_t apply_gen = 0;      // bumped when a delayed replay is cut short (promotion)
  std::int64_t apply_busy_ns = 0;
  std::int64_t apply_start_ns = 0;
  double apply_delay_sum_ms = 0;
  std::uint64_t apply_delay_count = 0;
  double max_lag_ms = 0;
  std::uint32_t link_gen = 0;  // bumped when the node's connections to the primary are reset
  std::uint8_t timeline = 1;   // the timeline whose WAL it follows (a detached standby: the old one)
  Link wal, acks;
  // The lag prober's query to this node, as the real prober runs it: sent at probe_sent_ns, the
  // node's positions read when it arrives there, stamped when its answer is back; one at a time.
  bool probing = false;
  bool probed_primary = false;  // the answer is the primary's (else a replica's)
  std::int64_t probe_sent_ns = 0;
  std::int64_t probe_back_ns = 0;  // with measured run lags: the answer's way back, drawn at the send
  Lsn probe_receive{}, probe_replay{};
  // In a measured round (probe_round_lags_ms): its two candidate run lags (any round's; one
  // whose reads ran apart), chosen when the round's first read may run.
  bool probe_in_round = false;
  double probe_lag_any_ms = 0, probe_lag_apart_ms = 0;
};

// A committed write, by sequence (a ring: the last kCommitRing commits).
struct Commit {
  std::int64_t commit_ns = 0;
  std::uint64_t seq = 0;
  std::uint8_t timeline = 0;
  bool acked = false;
  bool background = false;
  std::uint32_t back = 0;  // seq - the last judged (non-background) write at or before it
};
inline constexpr std::uint64_t kCommitRing = 1u << 16;

// What a read's window count records.
enum class ReadCount : std::uint8_t { Submitted, Answered, Failed };

class Simulation {
 public:
  Simulation(const SimConfig& config, std::uint64_t seed, std::unique_ptr<FailoverModel> failover);
  SimResult run();

 private:
  // engine.cpp: loop, service, completion (the clients' arrivals: clients.cpp)
  void schedule_start();
  void dispatch(const Event& e);
  void on_write_arrival();
  void on_read_arrival();
  // The index of the replayed arrival due now; schedules the next one of `trace`.
  std::size_t next_traced(const std::vector<Arrival>& trace, std::size_t& next, Ev kind);
  void on_background_arrival(std::uint32_t gen);
  void schedule_background(std::int64_t from, double gap_ns);
  void issue_read(int session, Consistency level, int reader = -1);
  // clients.cpp: session_reads_wait_for_writes: whether a read of `level` waits for its session's
  // write in flight (then held), and the held reads sent once the session has none.
  bool hold_read(int session, Consistency level, int reader = -1);
  void on_session_free(int session);
  // sequential_writes and read_arrival_readers: one writer thread, reader threads.
  void issue_write(int session);
  void on_writer_free();
  void client_read(int reader, int session, Consistency level);
  void on_reader_free(int reader);
  void on_at_node(std::uint32_t id);
  void start_service(int node, std::uint32_t id);
  void on_service_done(std::uint32_t id);
  void on_write_acked(std::uint32_t id);
  void on_background_acked(std::uint32_t id);
  void on_read_done(std::uint32_t id);
  std::uint32_t new_job(bool write, int session, bool background = false);
  void fail(std::uint32_t id, FailReason reason);
  void free_job(std::uint32_t id);
  Job* live(std::uint32_t id, std::uint32_t gen);
  // replication.cpp
  void commit(std::uint32_t id);
  void send(Link& link, int node, Ev kind, std::uint64_t seq, std::int64_t after_ns = 0);
  void on_wal_arrive(int node, std::uint32_t gen);
  void start_apply(int node);
  void on_apply_done(int node, std::uint32_t gen);
  void on_ack_arrive(int node, std::uint32_t gen);
  void release_synced();
  std::uint64_t synced_seq() const;
  std::uint64_t committed_before(std::int64_t t) const;
  std::int64_t commit_time(std::uint64_t seq) const;
  std::uint64_t latest_seq() const;
  /// The last write at or before `seq` that reads are judged against (background writes skipped).
  std::uint64_t judged_seq(std::uint64_t seq) const {
    const Commit& cm = commits_[seq & (kCommitRing - 1)];
    return cm.seq == seq && seq != 0 ? seq - cm.back : seq;
  }
  // failover.cpp: faults, failover, probes, samples, results
  void on_crash();
  void on_heartbeat();
  void on_detect();
  void on_promote(int node);
  void complete_promotion(int node);
  void on_repoint(int node);
  void take_out(int node);
  void on_probe();
  void send_probe(int node);
  void on_probe_at(int node);
  void on_probe_round();
  static std::vector<std::uint32_t> rounds_apart(const std::vector<std::vector<double>>& rounds, double parallel_ms);
  void open_probe_round();
  bool join_probe_round(Node& r, int n);
  void on_probe_answer(int node);
  void trace_probe(int node, bool primary, std::int64_t stamp_ns, Lsn lsn);
  void on_sample();
  void finish(SimResult& r) const;
  // windows.cpp: reads and lag per time window
  void init_windows();
  int phase_of(std::int64_t t) const;
  WindowStats* fixed_window(std::int64_t t);
  void count_read(std::int64_t submit_ns, std::size_t level, ReadCount what, bool stale = false, bool to_primary = false);
  void count_lag(double lag_ms, double tracked_ms);
  void finish_windows(SimResult& r) const;

  std::int64_t ns(double ms) const { return static_cast<std::int64_t>(ms * 1e6); }
  std::int64_t draw_ns(const WarsSimulation::Sampler& s) { return static_cast<std::int64_t>(s.sample(rng_) * 1e6); }
  std::int64_t exp_ns(double mean_ns);
  // A write's end; from burst_seq_ on, past the new primary's full-page images (promotion_wal_bytes).
  Lsn lsn(std::uint64_t seq) const {
    return Lsn(kBaseLsn + seq * bytes_ + (burst_seq_ != 0 && seq >= burst_seq_ ? burst_bytes_ : 0));
  }
  /// What pg_last_wal_replay_lsn() shows on node `n`: the end of its last replayed write, or
  /// further inside the next one while an apply delay holds it at that write's commit record.
  Lsn replay_lsn(const Node& n) const { return Lsn(lsn(n.applied).value + (n.holding ? row_bytes_ : 0)); }
  // A position as the lag tracker reads it: a promotion writes an end-of-recovery record, so the
  // new timeline's positions lie past the old one's (by 1 byte, less than a write, so a session's
  // token still compares by writes; 1-byte writes leave no room for it).
  Lsn on_timeline(const Node& n, Lsn l) const { return Lsn(l.value + (n.timeline > 1 && bytes_ > 1 ? 1 : 0)); }
  std::uint64_t seq_of(Lsn l) const {
    if (l.value <= kBaseLsn) return 0;
    const std::uint64_t v = l.value - kBaseLsn;
    if (burst_seq_ == 0 || v < burst_seq_ * bytes_) return v / bytes_;
    return v < burst_seq_ * bytes_ + burst_bytes_ ? burst_seq_ - 1 : (v - burst_bytes_) / bytes_;
  }
  // `after` from the primary's crash on when it is set (not empty), else `before`.
  template <typename T>
  const T& from_crash(const T& before, const T& after) const {
    return crash_ns_ >= 0 && !after.empty() ? after : before;
  }
  bool after_crash_rounds() const { return crash_ns_ >= 0 && !c_.probe_round_lags_after_crash_ms.empty(); }
  bool replication_in_flight() const;
  bool measured_run_lags() const { return !c_.probe_run_lags_ms.empty() || !c_.probe_run_lags_after_crash_ms.empty(); }
  bool is_replica(int n) const { return n != primary_ && nodes_[n].alive && !nodes_[n].diverged; }

  static constexpr std::uint64_t kBaseLsn = 0x1000000;  // 0/1000000, where a fresh cluster starts

  const SimConfig& c_;
  SimResult res_;
  Xoshiro256 rng_;
  Xoshiro256 check_rng_;  // the failover manager's check phase: its own stream
  Xoshiro256 probe_rng_;  // the lag probes' measured run lags (probe_run_lags_ms): their own stream
  std::unique_ptr<FailoverModel> failover_;
  std::shared_ptr<Topology> topology_;
  std::unique_ptr<LagTracker> tracker_;
  std::unique_ptr<Router> router_;
  WarsSimulation::Sampler read_service_, write_service_, client_latency_, replica_latency_, probe_latency_;
  WarsSimulation::Sampler replica_latency_after_crash_;  // replica_latency_ unless the config sets it
  EventQueue events_;
  std::vector<Node> nodes_;
  std::vector<Session> sessions_;
  std::vector<std::uint32_t> session_writes_;            // per session: its writes in flight
  struct HeldRead {
    Consistency level;
    int reader;
  };
  std::vector<std::vector<HeldRead>> held_reads_;        // per session: reads waiting for them
  bool writer_busy_ = false;                              // sequential_writes: a session write in flight
  std::deque<int> pending_writes_;                        // ... and the sessions of those waiting for it
  std::vector<char> reader_busy_;                         // per reader: a read in flight (or held)
  std::vector<std::deque<std::pair<int, Consistency>>> reader_queue_;  // per reader: reads waiting
  std::vector<Job> jobs_;
  std::vector<std::uint32_t> free_jobs_;
  std::deque<std::pair<std::uint64_t, std::uint32_t>> wait_sync_;  // (seq, job) on the primary
  std::vector<Commit> commits_;
  std::vector<double> level_cdf_;
  std::uint64_t bytes_;
  std::uint64_t row_bytes_;  // a write's WAL before its commit record
  // The new primary's full-page-image burst: armed at the promotion, placed at the first write
  // after its first lag probe (burst_seq_; 0: none yet).
  bool burst_armed_ = false;
  std::uint64_t burst_seq_ = 0;
  std::uint64_t burst_bytes_ = 0;
  std::int64_t now_ = 0, duration_ns_, end_ns_;
  double write_gap_ns_, read_gap_ns_, apply_mean_ns_;
  double background_gap_ns_ = 0, background_gap_after_ns_ = 0;  // 0: no background writes
  // The measured rounds whose reads all lie probe_parallel_gap_ms apart (indices; before the
  // crash, after it); the round being sent (its candidates, its first read) while round_open_.
  std::vector<std::uint32_t> rounds_apart_, rounds_apart_after_;
  bool round_open_ = false;
  std::uint32_t round_any_ = 0, round_apart_ = 0;
  double round_first_ms_ = 0;
  std::uint32_t probe_gen_ = 0;  // bumped when the lag prober's cadence restarts (probe_at_promotion)
  std::uint32_t background_gen_ = 0;  // bumped when the background rate changes (the crash)
  std::size_t next_write_ = 0, next_read_ = 0;  // the next replayed arrivals (write_arrivals, read_arrivals)
  std::uint64_t in_flight_background_ = 0;
  std::uint64_t last_judged_seq_ = 0;  // the current primary's last non-background commit
  int primary_ = 0;
  ReplicationMode mode_ = ReplicationMode::Async;  // the current primary's acknowledgement rule (mode_after_promotion once promoted)
  std::uint64_t last_seq_ = 0;    // the current primary's last commit
  std::uint64_t acked_high_ = 0;  // highest sequence acknowledged on the current timeline
  std::uint8_t timeline_ = 1;
  std::uint64_t in_flight_writes_ = 0, in_flight_reads_ = 0;
  double write_latency_sum_ms_ = 0, read_latency_sum_ms_ = 0;
  // failover
  std::int64_t crash_ns_ = -1;
  std::int64_t recovery_ns_ = -1;  // the new primary accepted writes
  bool windowed_ = false;          // SimResult::windows or failover_windows are kept
  bool detected_ = false;
  int promoting_ = -1;     // replica being promoted
  bool promote_due_ = false;  // promote_ms has passed: promote once its replay caught up
  std::uint64_t lost_cutoff_ = 0;  // sequences above this on lost_timeline_ were lost
  std::uint8_t lost_timeline_ = 0;
  std::uint64_t crashed_last_seq_ = 0;
  std::int64_t sample_step_ns_ = 0, probe_step_ns_ = 0, heartbeat_step_ns_ = 0;
};

}  // namespace replikit::sim::detail
