#pragma once
/// \file router.hpp
/// Where each query goes: writes to the primary, reads to a replica that satisfies the
/// requested consistency, or to the primary with the reason no replica did.
///
/// The rules, stated once here; their executable specification is the routing tables,
/// tests/testdata/routing/*.txt (run by both the C++ and the Python tests):
/// 1. A write goes to the primary (Write), or to no node while it is down (PrimaryDown).
/// 2. A STRONG read goes to the primary (StrongRead).
/// 3. A READ_YOUR_WRITES or CAUSAL read of a session with a write of unknown commit LSN
///    (Session::untracked_write_ns) goes to the primary (RecentWrite), or to no node while it is
///    down, until that write is resolved into an LSN (resolve_untracked_write, lag.hpp: with a
///    primary LSN sampled at least time_window_ms after it; ReplicatedDatabase does it on every
///    read). No time makes a replica safe: the primary may have died before shipping the commit.
/// 4. Otherwise a replica qualifies when it is up, not LAGGING, has replayed the LSN the level
///    requires (READ_YOUR_WRITES: the session's write LSN; MONOTONIC: its read LSN; CAUSAL: the
///    larger; EVENTUAL and BOUNDED_STALENESS: none) and, for BOUNDED_STALENESS, is known to
///    be at most max_staleness_ms stale at now_ns: now_ns - Topology::fresh_as_of_ns (the last
///    instant the primary was sampled at or below its replay LSN) is within the bound. That is a
///    safe upper bound that grows between probes, not the interpolated lag of the last probe, so
///    a bound below the probe interval plus the replication delay finds no replica and sends the
///    read to the primary (NoReplicaFresh); MongoDB's maxStalenessSeconds is conservative the same
///    way (it refuses bounds under its heartbeat interval + 10 s). The Policy picks
///    one of those: ReplicaFresh (a staleness bound), ReplicaCaughtUp (an LSN was required) or
///    ReplicaAvailable.
/// 5. When no replica qualifies only because none is known to have replayed the LSN required
///    (the probes may be older than what the session saw), the replica that served the
///    session's last read at an observed LSN (Session::last_replica) serves it, reason
///    ReplicaCaughtUp, when it is still an up, not LAGGING replica, the topology epoch is the one
///    of that read and the LSN it was seen to have replayed covers the LSN required. A replica's
///    replay does not go back within an epoch, so this is sound, costs nothing, and keeps such
///    reads off the primary, which may not yet show a commit an async replica already shows.
/// 6. When none qualifies the read goes to the primary, or to no node while it is down, with
///    the first reason that holds of NoReplicaUp, AllReplicasLagging, NoReplicaCaughtUp,
///    NoReplicaFresh (judged over the up replicas, then the healthy ones, then those covering
///    the LSN).
/// 7. An EVENTUAL read with a consistency probability target (ReadOptions::p_consistent) made
///    within within_ms of the session's last write (Session::last_write_ns) needs a replica
///    likely to show that write: one known to have replayed the session's write LSN, or one
///    whose measured replay delays (LagTracker::consistent_probability) put the probability at
///    p_consistent or more, judged conservatively from the quantiles the LagTracker publishes
///    (the first of kDelayLevels at or above p_consistent). Such a replica serves it, reason
///    ReplicaLikelyConsistent; when none does, it goes to the primary (as in rule 6, with
///    NoReplicaLikelyConsistent after NoReplicaUp and AllReplicasLagging). Later reads are
///    plain EVENTUAL reads.
///
/// The read path takes no lock and allocates nothing. Per-thread state (round-robin cursor,
/// seeded generator, decision counters) lives in one of kRouterThreadSlots padded slots that a
/// thread owns while it lives; threads beyond that share one overflow slot.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "replikit/session.hpp"
#include "replikit/topology.hpp"

namespace replikit {

/// How reads are spread over the replicas that qualify.
enum class Policy : std::uint8_t {
  RoundRobin = 0,        ///< in turn
  Weighted = 1,          ///< smooth weighted round-robin by NodeSpec::weight
  LeastLag = 2,          ///< the replica with the smallest time lag
  LeastOutstanding = 3,  ///< power of two choices over in-flight counts (Router::begin / end)
  NearestRegion = 4,     ///< round-robin within the request's region, else anywhere
};

/// What a read must see.
enum class Consistency : std::uint8_t {
  Eventual = 0,          ///< no LSN required
  ReadYourWrites = 1,    ///< the session's write LSN
  Monotonic = 2,         ///< the session's read LSN
  Causal = 3,            ///< the larger of both (tokens merge into them)
  BoundedStaleness = 4,  ///< at most max_staleness_ms stale, on a safe upper bound (rule 4)
  Strong = 5,            ///< the primary only
};

/// The consistency of a read that does not say: read-your-writes, the weakest level that still
/// shows a user their own writes. Every door (Router.route_read, route_reads, the PostgreSQL
/// backend, the adapters) defaults to it.
inline constexpr Consistency kDefaultConsistency = Consistency::ReadYourWrites;

/// Why a request went where it went (rules 1-6 above).
enum class Reason : std::uint8_t {
  Write = 0,
  ReplicaAvailable = 1,
  ReplicaCaughtUp = 2,
  ReplicaFresh = 3,
  StrongRead = 4,
  RecentWrite = 5,
  AllReplicasLagging = 6,
  NoReplicaCaughtUp = 7,
  NoReplicaFresh = 8,
  NoReplicaUp = 9,
  PrimaryDown = 10,
  ReplicaLikelyConsistent = 11,
  NoReplicaLikelyConsistent = 12,
};
inline constexpr int kReasonCount = 13;

/// Per-thread router state slots.
inline constexpr int kRouterThreadSlots = 64;

/// The outcome of routing one request. `node` is kNoNode when nothing can serve it (the primary
/// is down and no replica qualifies); `reason` still says why no replica was chosen.
struct Decision {
  int node = kNoNode;
  Reason reason = Reason::NoReplicaUp;
  std::uint64_t epoch = 0;   ///< topology epoch the decision was made in
  Lsn required_lsn;          ///< the LSN the chosen node had to cover (0/0: none)
  /// True when the request goes to the primary.
  bool to_primary() const noexcept {
    return reason == Reason::Write || reason == Reason::StrongRead || reason == Reason::RecentWrite ||
           reason == Reason::AllReplicasLagging || reason == Reason::NoReplicaCaughtUp ||
           reason == Reason::NoReplicaFresh || reason == Reason::NoReplicaUp ||
           reason == Reason::NoReplicaLikelyConsistent;
  }
};

/// Per-read options.
struct ReadOptions {
  /// Required for BoundedStaleness (>= 0): the most a replica may be behind at routing time, on
  /// a safe upper bound (rule 4); below the probe interval plus the replication delay: the primary.
  double max_staleness_ms = -1;
  /// BoundedStaleness: now on the LagTracker's clock (the clock of Topology::fresh_as_of_ns) when
  /// it is not now_ns' (ReplicatedDatabase: the steady clock; now_ns is the wall clock); -1: now_ns.
  std::int64_t tracker_now_ns = -1;
  int region = kNoNode;          ///< Topology::region_id of the client (NearestRegion); kNoNode: router default
  /// EVENTUAL only: the probability, in (0, 1], that the replica chosen shows the session's last
  /// write, for reads within within_ms of it (rule 7); unset: no target.
  std::optional<double> p_consistent;
  double within_ms = 1000;       ///< how long after a write p_consistent applies, in [0, 1e10] (checked with it)
  /// false: the decision is not counted (a caller that may route again, e.g. while waiting
  /// for a replica, counts the decision it acts on once with Router::record).
  bool count = true;
};

/// Router settings.
struct RouterConfig {
  Policy policy = Policy::RoundRobin;
  /// Rule 3's clock margin: a write of unknown commit LSN is resolved by a primary LSN sampled
  /// at least this long after it (covers clock skew between hosts and clock steps)
  double time_window_ms = 2000;
  std::uint64_t seed = 0;        ///< seeds the per-thread generators (LeastOutstanding, Weighted fallback)
  std::string region;            ///< default client region for NearestRegion
  /// Consecutive reads of one thread that stay on the replica it last chose while that replica
  /// still qualifies (1: every read is balanced anew). Larger values keep a thread on one
  /// replica's warm connection, as connection-pooled applications do, and still spread the load
  /// over time; in [1, 1000000].
  std::uint32_t sticky_reads = 1;
};

/// Decision counts, summed over threads.
struct RouterCounters {
  std::vector<std::uint64_t> by_node;                    ///< indexed by node index
  std::array<std::uint64_t, kReasonCount> by_reason{};   ///< indexed by Reason
  std::uint64_t total = 0;
};

/// Routes reads and writes over a Topology. Thread-safe; share one per application.
class Router {
 public:
  /// A router over `topology`; throws InvalidArgument for a bad `config`.
  Router(std::shared_ptr<Topology> topology, RouterConfig config = {});
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  /// Where a write goes (rule 1).
  Decision route_write() noexcept;
  /// Where a read of `session` at `consistency` goes at time `now_ns` (rules 2-6): wall-clock
  /// nanoseconds since the Unix epoch, the clock of Session::record_write (checked, not used
  /// by the rules today).
  /// Throws InvalidArgument only for bad input (BoundedStaleness without a valid
  /// max_staleness_ms, negative now_ns, p_consistent outside (0, 1] or on a level other than
  /// Eventual, within_ms outside [0, 1e10]).
  Decision route_read(const Session& session, Consistency consistency, std::int64_t now_ns,
                      const ReadOptions& options = {});

  /// Counts a request starting on `node` (for LeastOutstanding).
  void begin(int node);
  /// Counts a request on `node` finishing; InvalidArgument when none was in flight.
  void end(int node);
  /// The same without the error (for destructors); false when none was in flight.
  bool end_noexcept(int node) noexcept;

  /// Counts `decision` as if it had just been made (for decisions routed with
  /// ReadOptions::count = false, or made by a caller that routes by itself).
  void record(const Decision& decision) noexcept;
  /// Decision counts so far.
  RouterCounters counters() const;
  /// Zeroes the decision counters.
  void reset_counters();
  /// Gives the calling thread the round-robin turn, generator and stickiness a router's first
  /// thread starts with, whichever slot it owns, so a single-threaded replay (the simulator)
  /// routes the same on any thread.
  void reset_thread_state() noexcept;

  /// The topology routed over.
  const std::shared_ptr<Topology>& topology() const noexcept { return topology_; }
  /// The settings in force.
  const RouterConfig& config() const noexcept { return config_; }

  /// Starts a request on `node` and ends it when destroyed.
  class InFlight {
   public:
    InFlight(Router& router, int node) : router_(&router), node_(node) { router.begin(node); }
    ~InFlight() {
      if (router_ != nullptr) router_->end_noexcept(node_);
    }
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
    InFlight(InFlight&& o) noexcept : router_(o.router_), node_(o.node_) { o.router_ = nullptr; }
    InFlight& operator=(InFlight&&) = delete;

   private:
    Router* router_;
    int node_;
  };

 private:
  struct ThreadState;
  ThreadState& thread_state() noexcept;
  void count(ThreadState& ts, int node, Reason reason) noexcept;
  int last_replica(const Session& session, std::uint64_t required_lsn) const noexcept;
  // route_read with ReadOptions::p_consistent (rule 7), off the common path: makes `*out` (a
  // default Decision) and returns true, or returns false when the target does not apply (no
  // write within within_ms) and the read is a plain one.
  bool route_read_target(const Session& session, Consistency consistency, std::int64_t now_ns,
                         const ReadOptions& options, Decision* out);
  int pick(ThreadState& ts, std::uint64_t required_lsn, std::int64_t min_fresh_ns, int region, Reason* why) noexcept;
  // The exhaustive pick over the replicas that pass rules 2-6 and `test` (router.cpp).
  template <typename Test>
  int pick_fair(ThreadState& ts, std::uint64_t required_lsn, std::int64_t min_fresh_ns, int region, Reason* why,
                const Test& test) noexcept;
  void refresh_schedule() noexcept;

  std::shared_ptr<Topology> topology_;
  RouterConfig config_;
  int default_region_;
  std::unique_ptr<ThreadState[]> states_;  // kRouterThreadSlots + 1 (overflow)
  // Smooth weighted round-robin schedule, rebuilt when Topology::weights_version changes.
  static constexpr int kScheduleMax = 4096;
  std::array<std::atomic<std::int16_t>, kScheduleMax> schedule_{};
  std::atomic<int> schedule_length_{0};
  std::atomic<std::uint64_t> schedule_version_{0};
  std::mutex schedule_mutex_;
};

/// Text names for enums, as used in messages and Python reprs.
const char* to_string(Policy policy) noexcept;
const char* to_string(Consistency consistency) noexcept;
const char* to_string(Reason reason) noexcept;

}  // namespace replikit
