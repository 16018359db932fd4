#pragma once
// The state behind ReplicatedDatabase, shared by its three parts: database.cpp (construction,
// routing and the wait for a replica, node status, close), read_path.cpp (query) and
// write_path.cpp (execute, transaction). Internal: includes libpq through the pool.
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "replikit/lease.hpp"
#include <string>
#include <vector>

#include "classify.hpp"
#include "clock.hpp"
#include "pool.hpp"
#include "prober.hpp"
#include "replikit/errors.hpp"
#include "replikit/pg/database.hpp"
#include "watchdog.hpp"

namespace replikit::pg {

/// The SQLSTATE of a connect refused by a full server (too many connections).
inline constexpr const char* kServerFullSqlstate = "53300";

/// Acknowledged writes a database keeps for ReplicatedDatabase::lost_writes() (all sessions).
inline constexpr std::size_t kMaxDatabaseAckedWrites = 65536;

struct ReplicatedDatabase::Impl {
  DatabaseOptions options;
  std::int64_t acquire_timeout_ns = 0;  // options.acquire_timeout_ms
  std::int64_t query_timeout_ns = 0;    // options.statement_timeout_ms + query_grace_ms
  std::vector<NodeConfig> configs;      // by topology index
  std::shared_ptr<Topology> topology;
  std::shared_ptr<LagTracker> tracker;
  std::shared_ptr<Router> router;
  // Declared before the pools: destroyed after them, as every pooled connection detaches its
  // watchdog entry when it is closed.
  detail::Watchdog watchdog;
  std::vector<std::unique_ptr<detail::Pool>> pools;  // by topology index
  std::shared_ptr<EventLog> events;
  std::unique_ptr<detail::NodeEvents> node_events;
  std::unique_ptr<detail::Prober> prober;
  std::atomic<bool> open{true};
  // The newest topology published by a coordinator's leader (apply_topology).
  mutable std::mutex published_mutex;
  TopologyView published;
  // The timeline history sessions are reconciled against (set_timeline_history).
  mutable std::mutex history_mutex;
  TimelineHistory history;
  std::atomic<std::uint32_t> history_current{1};
  std::atomic<bool> primary_held{false};  // hold_primary(): new primary calls wait for the release (probe_cv)
  // By node, the calls to it as the primary in one word, so that a drain reads both counts at
  // one instant and a call is admitted or held in one step: bit 0 is kHeldBit (hold_primary: no
  // call is admitted), bits 1-24 count the calls admitted and in flight, bits 25-63 those that
  // ended (modulo 2^39: the count's carry falls off the top of the word, never into the others).
  static constexpr std::uint64_t kHeldBit = 1;
  static constexpr std::uint64_t kInFlightOne = 2;
  static constexpr int kEndedShift = 25;
  static constexpr std::uint64_t kEndedOne = std::uint64_t{1} << kEndedShift;
  std::array<std::atomic<std::uint64_t>, kMaxNodes> primary_calls{};
  /// `word`'s counts.
  static PrimaryCalls calls_of(std::uint64_t word) noexcept {
    return PrimaryCalls{word >> kEndedShift, static_cast<std::int32_t>((word >> 1) & ((kEndedOne >> 1) - 1))};
  }
  /// Counts a call to `node` as the primary in flight unless the primary is held; true when it did.
  bool admit_primary_call(int node) noexcept;
  std::function<void()> primary_route_hook;  // set_primary_route_hook (testing)
  std::function<void()> mark_down_hook;      // set_mark_down_hook (testing)
  std::function<void()> call_end_hook;       // set_call_end_hook (testing)
  // Every write this database acknowledged (bounded), for the failover report's lost writes.
  std::mutex acked_mutex;
  AckedWrites acked{kMaxDatabaseAckedWrites};
  std::mutex close_mutex;  // serialises close()
  bool closed = false;     // guarded by close_mutex: close() has finished

  // Readers waiting for a replica to catch up sleep here; every probe wakes them.
  std::mutex probe_mutex;
  std::condition_variable probe_cv;
  std::uint64_t probe_generation = 0;

  // Why a node was last marked down by a call (not by the prober), and how many probes of it
  // had completed then: until its next probe completes, NodeStatus reports that error.
  struct CallError {
    std::string message;
    std::uint64_t probes_seen = 0;
    bool set = false;
  };
  mutable std::mutex call_error_mutex;
  std::vector<CallError> call_errors;  // by topology index

  struct Counters {
    std::atomic<std::uint64_t> writes{0}, reads{0}, replica_reads{0}, primary_reads{0}, retries{0},
        read_failures{0}, waits{0}, waits_served{0}, marked_down{0}, watchdog_fired{0};
  } counters;

  void check_open() const {
    if (!open.load(std::memory_order_acquire)) throw ConnectionError("the database was closed");
  }

  /// A query's client-side deadline, armed while the call blocks in libpq.
  /// With `primary` (the node a call sent to as the primary), the connection is also cut as
  /// soon as that node is deposed (a failover names another primary).
  class Deadline {
   public:
    Deadline(Impl& impl, detail::Lease& conn, int primary = kNoNode);
    ~Deadline() { disarm(); }
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;
    /// True when the watchdog cut the connection (its deadline passed, or its node was deposed).
    bool disarm();
    /// After a cut: true when it came from the node's deposition rather than the deadline.
    bool deposed() const noexcept { return deposed_; }
    /// Disarms after the server answered (with an error, too): the connection may be reused
    /// unless the watchdog cut it or it is not idle (a failed statement inside a transaction
    /// block leaves it in an aborted transaction: closing it rolls that back).
    void answered(detail::Lease& conn) {
      if (!disarm()) conn.healthy();  // Pool::give_back pools it only when libpq reports it idle
    }

   private:
    Impl& impl_;
    detail::Watchdog::Entry* entry_;  // armed; nullptr once disarmed
    bool fired_ = false;
    bool deposed_ = false;
  };

  /// "primary 'p' is down (last probe: <libpq's message>)".
  std::string primary_down_message() const;
  /// Takes `node` out of routing (counted when it was up), drops its idle connections and
  /// keeps `error` as its last error until its next probe.
  void mark_down(int node, const std::string& error);
  /// A pooled connection to `node`; a node that cannot be connected to is marked down (not one
  /// that refused as full: QueryError with SQLSTATE 53300, nothing marked down or dropped).
  detail::Lease acquire(int node, bool write);
  /// After a lost connection: disarms `deadline` and marks `node` down with `error`, unless the
  /// watchdog cut the connection (a slow query says nothing about the node). True when cut.
  bool lost(Deadline& deadline, int node, const std::string& error);
  /// "no answer within statement_timeout_ms + query_grace_ms (N ms)".
  std::string deadline_message() const;
  /// Why `deadline` cut its connection: deadline_message(), or the deposition of its node.
  std::string cut_message(const Deadline& deadline) const;
  /// Resolves `session`'s write of unknown commit LSN with the prober's primary samples
  /// (resolve_untracked_write, margin RouterConfig::time_window_ms); true when none is left.
  bool resolve(Session& session) const;
  /// Routes a read without counting it; with NoReplicaCaughtUp waits (bounded) for a probe
  /// showing a replica that covers the session, and with a write of unknown commit LSN and the
  /// primary down, for a probe that resolves it. The caller counts the final decision once
  /// (Router::record).
  Decision route(const Session& session, const QueryOptions& q, double* waited_ms, bool may_wait = true,
                 CatchUpReason* wait_reason = nullptr);
  /// Reconciles `session` with the timeline history when it was written on an older timeline.
  void reconcile(Session& session) const {
    if (session.timeline == 0 || session.timeline >= history_current.load(std::memory_order_acquire)) return;
    std::lock_guard<std::mutex> lock(history_mutex);
    session.reconcile(history);
  }
  /// A call counted in flight on its node (Router::begin) until it is destroyed; a call to the
  /// primary is also counted in primary_calls when admitted (not held). Not counted for a
  /// decision without a node.
  class Call {
   public:
    Call(Impl& m, const Decision& d);
    ~Call() { end(true); }
    Call(Call&& o) noexcept : m_(o.m_), decision_(o.decision_), admitted_(o.admitted_) { o.m_ = nullptr; }
    Call(const Call&) = delete;
    Call& operator=(const Call&) = delete;
    Call& operator=(Call&&) = delete;
    const Decision& decision() const noexcept { return decision_; }
    /// A call to the primary counted in primary_calls (the primary was not held).
    bool admitted() const noexcept { return admitted_; }
    /// Uncounts a call that never ran (its end is not counted).
    void back_out() noexcept { end(false); }

   private:
    void end(bool ran) noexcept;
    Impl* m_;
    Decision decision_;
    bool admitted_ = false;
  };
  /// Counts the call routed by `d` in flight. A call to the primary that was not admitted (the
  /// primary is held: hold_primary) or whose node is no longer the primary backs out, waits for
  /// the release (bounded) and is routed again by `reroute`, once (a call held past
  /// acquire_timeout_ms goes on).
  template <typename Reroute>
  Call begin_call(const Decision& d, Reroute&& reroute) {
    if (d.to_primary() && primary_route_hook) primary_route_hook();
    Call call(*this, d);
    // Also routed again: a decision for a primary that a switchover deposed while this call was
    // descheduled (held, drained and released meanwhile).
    if (!d.to_primary() || (call.admitted() && topology->primary() == d.node)) return call;
    call.back_out();
    wait_primary_release();
    return Call(*this, reroute());
  }
  /// The primary for a write (begin_call holds it while the primary is held).
  Decision route_write() { return router->route_write(); }
  /// While the primary is held (hold_primary), waits for the release, at most acquire_timeout_ms;
  /// true when it was held.
  bool wait_primary_release();
  /// The loss report of `acked` from the current primary.
  LossReport lost_writes(const AckedWrites& acked);
  /// Wakes the readers waiting for a replica after each probe.
  void on_probe(int node, bool ok);
};

}  // namespace replikit::pg
