#pragma once
/// \file sim/config.hpp
/// What one simulated single-leader cluster looks like: arrival processes, service capacity,
/// replication mode, apply rate, network latency, faults, and the bounds of a run. A value:
/// every default is defined here once.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "replikit/lag.hpp"
#include "replikit/pbs.hpp"
#include "replikit/router.hpp"

namespace replikit::sim {

/// Most replicas one simulated cluster has.
inline constexpr int kMaxReplicas = 64;
/// Most sessions one run keeps.
inline constexpr int kMaxSessions = 100'000;
/// Largest arrival rate (writes or reads) one run accepts, per second.
inline constexpr double kMaxRatePerSecond = 1e8;
/// Longest simulated span, in milliseconds (about 11.6 simulated days).
inline constexpr double kMaxDurationMs = 1e9;
/// Number of consistency levels (indexes of Consistency).
inline constexpr int kLevels = 6;
/// Most edges SimConfig::window_edges_ms may list.
inline constexpr int kMaxWindowEdges = 10'001;

/// When a write is acknowledged to its client (PostgreSQL's synchronous_commit and
/// synchronous_standby_names).
enum class ReplicationMode : std::uint8_t {
  Async = 0,        ///< when the primary has committed it
  SemiSync = 1,     ///< when sync_count standbys (ANY k) have flushed it
  Sync = 2,         ///< when every attached standby has flushed it
  RemoteApply = 3,  ///< when sync_count standbys have applied (replayed) it
};

/// Which failure detection and candidate selection a run uses.
enum class FailoverModelKind : std::uint8_t {
  Simple = 0,  ///< heartbeat_interval_ms x missed_heartbeats; the most advanced replica
  Core = 1,    ///< the core's FailureDetector and plan_failover (when part of the build)
};

/// A replica whose replay is paused between two instants (pg_wal_replay_pause); it still
/// receives WAL.
struct ReplicaPause {
  int replica = 1;       ///< node index of the replica (1..replicas)
  double from_ms = 0;    ///< pause starts
  double to_ms = 0;      ///< replay resumes (> from_ms)
};

/// A replica that applies WAL `factor` times slower than apply_rate_per_s says.
struct SlowReplica {
  int replica = 1;      ///< node index of the replica (1..replicas)
  double factor = 1.0;  ///< >= 1 slows it down
};

/// A replica whose replay of each write waits until `delay_ms` after the write's commit on the
/// primary (PostgreSQL's recovery_min_apply_delay): WAL is received and flushed at once, only
/// its replay is held back, and only at the commit record: the write's other WAL (its rows) is
/// replayed on arrival, so the replay LSN stands commit_record_bytes short of the write's end
/// while it waits. A promotion ends the wait, as in PostgreSQL.
struct ApplyDelay {
  int replica = 1;       ///< node index of the replica (1..replicas)
  double delay_ms = 0;   ///< >= 0
};

/// One request of a replayed workload (SimConfig::write_arrivals, read_arrivals): when it arrives,
/// its session, and (a read's) consistency level.
struct Arrival {
  double at_ms = 0;  ///< in [0, duration_ms), in time order within its list
  int session = 0;   ///< in [0, sessions)
  Consistency level = Consistency::Eventual;  ///< a read's level (ignored for a write)
};

/// Most reader threads SimConfig::read_arrival_readers may name.
inline constexpr int kMaxReaders = 1'000;
/// Most arrivals SimConfig::write_arrivals or read_arrivals may list.
inline constexpr std::size_t kMaxArrivals = 10'000'000;

/// One run's configuration. Node 0 is the primary, nodes 1..replicas the replicas, named
/// "primary", "replica1", ... unless `names` says otherwise.
struct SimConfig {
  // ---- workload ----
  double duration_ms = 10'000;       ///< requests arrive during [0, duration_ms)
  double write_rate_per_s = 1'000;   ///< Poisson write arrivals
  double read_rate_per_s = 10'000;   ///< Poisson read arrivals
  int sessions = 1'000;              ///< each request belongs to a uniformly drawn session
  /// Weights of the consistency levels of Poisson reads, indexed by Consistency (eventual,
  /// read_your_writes, monotonic, causal, bounded_staleness, strong); sum > 0.
  std::array<double, kLevels> consistency_mix{0, 1, 0, 0, 0, 0};
  double max_staleness_ms = 1'000;   ///< the bound of BoundedStaleness reads
  /// Share of acknowledged writes that their session reads back (write-then-read-back), at
  /// read_back_consistency, read_back_delay_ms after the acknowledgement; in [0, 1]. These
  /// reads come on top of read_rate_per_s.
  double read_back_share = 0;
  double read_back_delay_ms = 0;
  Consistency read_back_consistency = Consistency::ReadYourWrites;
  /// Whether a session's read-your-writes and causal reads wait while that session has a write
  /// in flight, and are sent once it is acknowledged or failed (a client that runs one session's
  /// requests one at a time, as a session lock does; they then carry the new write's token):
  /// false, every read leaves when it arrives.
  bool session_reads_wait_for_writes = false;
  /// WAL bytes per write, its commit record included (> 0). Default measured on PostgreSQL 15:
  /// a one-row INSERT into a table with a bigint primary key (heap 72 + btree 64 + commit 40).
  std::int64_t write_size_bytes = 176;
  /// Of which the commit record, the write's last record (in [1, write_size_bytes]): the one an
  /// apply delay holds (PostgreSQL delays commit records only); equal to write_size_bytes, the
  /// whole write is held and the replay LSN waits at its start.
  std::int64_t commit_record_bytes = 40;

  // ---- background writes: WAL that no read is judged against ----
  /// Poisson arrivals of writes that belong to no session (other clients' writes, a
  /// monitoring table's rows): each is routed to the primary, served, committed, replicated,
  /// replayed and acknowledged per the mode like any write (write_size_bytes of WAL), so it
  /// moves the replicas' replay LSN and the lag tracker's samples of the primary; but no read
  /// is judged against it (an eventual read lacking only background writes is not stale, a
  /// strong read does not require it) and it is counted apart (SimResult::background_writes_*,
  /// not in writes_* or the write latency). 0: none (the run is then what it is without them).
  double background_write_rate_per_s = 0;
  /// The rate from the primary's crash on (the writers follow the new primary); < 0: the same
  /// as background_write_rate_per_s.
  double background_write_rate_after_crash_per_s = -1;
  /// Whether the lag tracker starts afresh when the failover promotes a replica, as replikit's
  /// does (true: its prober adopting a promoted node and its FailoverManager's promotion both
  /// reset it), or keeps its history of the old primary (false: as the FailoverManager did until
  /// 2026-11-30 when it promoted before the prober adopted the node; kept to replay runs of then):
  /// a surviving standby that has not yet streamed from the new primary then reads as far behind
  /// as the time since the old primary's last sample. Either way the history restarts when the
  /// new primary's position is below the last one sampled (writes lost), as the real prober does.
  bool reset_tracker_on_promotion = true;
  /// Whether the lag prober probes every node at the promotion and keeps its cadence from there,
  /// as a client does whose prober learns of the new primary by probing it (replikit's prober
  /// adopts a promoted node at the probe that finds it out of recovery: the client switches at a
  /// probe, and the next probe of the survivor comes a whole interval later), instead of keeping
  /// its ticks from the run's start, at whatever phase the promotion falls.
  bool probe_at_promotion = false;
  /// Whether a replica's tracked lag that is only a lower bound (ReplicaLag::lag_is_lower_bound:
  /// the primary's last sample older than the tracker's stale_sample_ms, as through an outage
  /// longer than that) counts in SimResult::tracked_lag_ms and the windows' tracked lag, as a
  /// client's NodeStatus shows it (true), or as unknown (NaN; false), as a recorder that keeps
  /// measured lags only does (benchmarks/fidelity's kill runs).
  bool tracked_lag_lower_bounds = true;
  /// One-way latency of the lag prober's queries (each way), when it differs from the
  /// application's client_latency (a prober in its own thread, without the application's
  /// pool and interpreter); empty: client_latency.
  std::optional<LatencyDistribution> probe_latency;
  /// Per node (index 0 = the first primary): how long after each probe tick the prober sends
  /// that node its query, in [0, probe_interval_ms) (a real prober's per-node cadences drift
  /// apart: a replica read a few ms after the primary has replayed what the primary showed).
  /// Empty: every node at the tick.
  std::vector<double> probe_offsets_ms;
  /// How long after a write's commit (its service end) the lag prober finds it in the primary's
  /// position: replication delays measured from a statement whose COMMIT a client sends one round
  /// trip later carry that round trip, while the primary's flush LSN passes the write only at its
  /// COMMIT; the prober then reads the primary as of this long ago (the replicas as they are).
  /// Only what the lag tracker is fed changes. 0: at once.
  double probe_commit_lag_ms = 0;
  /// Once a repointed standby streams again (repoint_ms after the promotion), the WAL it lacks
  /// arrives spread evenly over this span instead of at once (its walreceiver restarting on the
  /// new timeline and catching up): meanwhile it reads behind by up to the backlog. 0: at once.
  double repoint_catch_up_ms = 0;

  // ---- capacity ----
  int replicas = 2;                  ///< in [0, kMaxReplicas]
  int servers_per_node = 8;          ///< requests a node serves at once (worker processes)
  int max_queue_length = 10'000;     ///< requests waiting per node; beyond, a request fails
  LatencyDistribution read_service = LatencyDistribution::exponential(10.0);   ///< ms per read (mean 0.1)
  LatencyDistribution write_service = LatencyDistribution::exponential(5.0);   ///< ms per write (mean 0.2)
  double apply_rate_per_s = 20'000;  ///< writes a replica replays per second (exponential apply times)

  // ---- network (one-way latencies) ----
  LatencyDistribution client_latency = LatencyDistribution::constant(0.25);   ///< client <-> node
  LatencyDistribution replica_latency = LatencyDistribution::constant(0.25);  ///< primary <-> replica
  /// The primary <-> replica latency of what is sent from the primary's crash on (the new
  /// primary's WAL and its standbys' confirmations: another host, fewer standbys, so other
  /// delays than before the crash); empty: replica_latency throughout.
  std::optional<LatencyDistribution> replica_latency_after_crash;

  // ---- replication ----
  ReplicationMode mode = ReplicationMode::Async;
  int sync_count = 1;  ///< SemiSync / RemoteApply: standbys that must confirm (1..replicas)
  /// The acknowledgement rule of a primary a failover promoted, from its promotion on (with
  /// sync_count): a promoted PostgreSQL standby keeps its own synchronous_standby_names, empty
  /// unless someone sets it (replikit's FailoverManager and LocalCluster set none), so it
  /// acknowledges at once where the old primary waited for its standbys. Empty: `mode` throughout.
  std::optional<ReplicationMode> mode_after_promotion;

  // ---- routing and lag tracking inside the cluster ----
  RouterConfig router;
  LagConfig lag;  ///< the tracker's (its stale_sample_ms at least 2 x probe_interval_ms: probed_lag_config)
  double probe_interval_ms = 100;  ///< how often the lag tracker probes every node (over client_latency)

  // ---- faults ----
  double crash_primary_at_ms = -1;  ///< the primary crashes then (< 0: never)
  std::vector<ReplicaPause> pauses;
  std::vector<SlowReplica> slow_replicas;
  std::vector<ApplyDelay> apply_delays;  ///< at most one per replica

  // ---- failover (the simple detection model: heartbeat interval x missed threshold) ----
  double heartbeat_interval_ms = 100;
  int missed_heartbeats = 3;
  double promote_ms = 200;  ///< from detection to the new primary accepting writes (at least)
  /// From the promotion until a surviving standby streams from the new primary (repointed and
  /// its walreceiver reconnected); meanwhile it receives nothing new but stays readable.
  double repoint_ms = 0;
  FailoverModelKind failover_model = FailoverModelKind::Simple;
  // The detector's timing as a real failover manager sees it (0, the defaults: heartbeats
  // exactly heartbeat_interval_ms apart, a suspicion acted upon at the heartbeat that raised it).
  /// Each heartbeat comes this much later than heartbeat_interval_ms after the one before (a real
  /// prober's next probe is due an interval after the previous was sent, and its thread wakes
  /// late); the detector keeps heartbeat_interval_ms. In [0, duration bound].
  double heartbeat_late_ms = 0;
  /// How often the failover manager looks at its detector (FailoverManagerOptions'
  /// check_interval_ms): a suspicion is acted upon after a delay uniform in [0, this), drawn from
  /// a stream of its own (the seed's other draws are unchanged). In [0, duration bound].
  double check_interval_ms = 0;

  // ---- outputs and bounds ----
  double sample_interval_ms = 10;     ///< lag series resolution (widened to keep <= max_samples)
  int max_samples = 10'000;           ///< points per lag series
  /// The first this many samples the lag tracker is fed by its prober, kept in
  /// SimResult::probe_samples (a trace to compare with a real prober's; 0: none kept).
  int max_probe_samples = 0;
  /// Edges of fixed time windows reported in SimResult::windows: window i is
  /// [window_edges_ms[i], window_edges_ms[i + 1]); strictly increasing; empty: no windows.
  std::vector<double> window_edges_ms;
  double drain_ms = 10'000;           ///< after duration_ms, time allowed for requests in flight
  int max_in_flight = 1'000'000;      ///< requests in flight at once; beyond, a request fails
  std::uint64_t max_events = 2'000'000'000;  ///< events one run may process (then it stops, truncated)
  std::vector<std::string> names;     ///< node names (empty: the default names)
  /// Per node (index 0 = the first primary): measured lags from the send of a lag probe's query
  /// to the instant it read that node's positions (ms, each >= 0; a non-empty list per node). A
  /// probe then reads its node after a value drawn uniformly from that node's list (a stream of
  /// its own: the seed's other draws are unchanged) instead of after a probe_latency draw; its
  /// answer still takes a probe_latency draw back. The prober sends every node's query at once,
  /// but on a machine with fewer free cores than queries one of them runs a few hundred
  /// microseconds after the others, and a replica read that much after the primary has replayed
  /// more of what the primary showed. Empty: probe_latency throughout.
  std::vector<std::vector<double>> probe_run_lags_ms;
  /// WAL bytes the new primary writes on top of its writes' own soon after a promotion (full-page
  /// images: the promotion's checkpoint moves the redo point, and the first change of every page
  /// after it logs the whole page; PostgreSQL 15 on loopback: ~180 kB within ~100 ms, against
  /// ~4 kB of rows). The twin's new primary adds them to its first write after the lag prober's
  /// first look at it (measured: between the prober's first two samples of the new primary).
  /// Only positions move (what the lag tracker interpolates on, and byte lags); 0: none.
  std::int64_t promotion_wal_bytes = 0;
  /// As probe_run_lags_ms, for the probes sent from the primary's crash on (fewer servers busy on
  /// the machine: other lags); empty: probe_run_lags_ms throughout.
  std::vector<std::vector<double>> probe_run_lags_after_crash_ms;

  // ---- a replayed workload ----
  /// The session writes as listed instead of Poisson arrivals at write_rate_per_s with uniform
  /// sessions: a real run's seeded schedule, so that a model and a measurement see the same
  /// arrivals (which reads fall into a short stale window is then not a sampling difference).
  /// Empty: Poisson.
  std::vector<Arrival> write_arrivals;
  /// The reads as listed (instant, session, level) instead of Poisson arrivals at read_rate_per_s
  /// with uniform sessions and consistency_mix's levels. Empty: Poisson.
  std::vector<Arrival> read_arrivals;

  /// As probe_offsets_ms, for the probe ticks from the primary's crash on (the real prober's
  /// per-node cadences after the outage: a stall on the dead primary sends every overdue query
  /// at once and so often brings them back together). Empty: probe_offsets_ms throughout.
  std::vector<double> probe_offsets_after_crash_ms;

  /// Measured lag-probe rounds whose queries left together: per round, each node's run lag (ms,
  /// one per node: the current primary's first, then the others' in node order; < 0: that node's
  /// query was not in the round). With them (and
  /// probe_run_lags_ms) the nodes probed at one tick read after the lags of one drawn round, not
  /// after independent draws (a round's lags move together with the machine's load), and the draw
  /// depends on the host's replication work: on a machine with few cores a write's replication
  /// (WAL sender, receiver, startup process) holds a core, so a round whose first read may run
  /// while a replica still lacks a committed write is drawn among those whose reads all lie at
  /// least probe_parallel_gap_ms apart (no two queries ran at once), otherwise among all. A node
  /// that has no lag in the drawn round takes its own (probe_run_lags_ms). Empty: independent.
  std::vector<std::vector<double>> probe_round_lags_ms;
  /// As probe_round_lags_ms, for the rounds from the primary's crash on; empty: probe_round_lags_ms.
  std::vector<std::vector<double>> probe_round_lags_after_crash_ms;
  /// The gap below which two of a round's reads ran at once, on two free cores (ms).
  double probe_parallel_gap_ms = 0.01;

  /// How long after the promotion the failover's outage window (SimResult::failover_windows) ends
  /// and after_recovery begins, for a measurement that ends its outage at the new primary's first
  /// acknowledged write while its clients wrote to it from the promotion on (a synchronous new
  /// primary commits them at once but acknowledges only once its standby streams). Only the
  /// windows move (failover.recovery_ms stays the promotion's). 0: at the promotion.
  double outage_after_promotion_ms = 0;

  /// Whether the session writes leave one at a time, as from one writer thread that waits for each
  /// write's answer: a write arriving while the last one is in flight leaves once that one is
  /// acknowledged or failed (a synchronous new primary that holds one write holds those behind it
  /// too). false: each leaves when it arrives.
  bool sequential_writes = false;
  /// Per read_arrivals entry: the reader (a client thread, in [0, kMaxReaders)) that sends it. A
  /// reader sends its reads one at a time: a read arriving while its last one is in flight, or
  /// held for its session's write (session_reads_wait_for_writes), leaves once that one is
  /// answered or failed. Empty: each read leaves when it arrives.
  std::vector<int> read_arrival_readers;

  /// Throws InvalidArgument naming the first bad field.
  void validate() const;
  /// The name of node `index` (0: the primary).
  std::string node_name(int index) const;
};

/// Text names for enums.
const char* to_string(ReplicationMode mode) noexcept;
const char* to_string(FailoverModelKind kind) noexcept;

}  // namespace replikit::sim
