#pragma once
/// \file database.hpp
/// The PostgreSQL backend: a primary and its streaming replicas behind one object that runs
/// SQL where the routing core says, keeps each Session's consistency promises, and watches
/// every node from a background prober.
///
/// No libpq type appears here (pimpl), so the bindings never see libpq.
///
/// How the pieces fit:
/// - Prober: one background thread, its own connection per node (libpq's asynchronous API,
///   so every connect and probe has a client-side deadline and the nodes are probed in
///   parallel). Every `probe_interval_ms` it reads `pg_is_in_recovery()`, the timeline, the
///   primary's flushed LSN and a replica's receive/replay LSNs, feeds the LagTracker (which
///   publishes lag into the Topology the Router reads), marks a node down after a failed
///   probe and up after a good one, and flags a node whose role differs from the topology
///   (a "replica" that is not in recovery is also taken out of routing; no failover here).
///   A probe whose connection broke (the server ended it, or it was reset) reconnects at once
///   and counts as failed only when that fails too, so losing just the prober's connection
///   marks nothing down; a probe that times out fails at once.
///   A probe connect the server refuses because it is full (SQLSTATE 53300: max_connections
///   reached, or only reserved slots left) is not the node being down: the node keeps its
///   routing state and its pooled connections, and NodeStatus shows the refusal in last_error
///   (counted in probes_failed).
///   The same thread is the watchdog of user queries: a query that outlives
///   `statement_timeout_ms` + `query_grace_ms` has its socket shut down, so even a server
///   that stopped answering cannot hang a call; a call sent to the primary is also cut as
///   soon as the topology names another primary (a failover deposed it), within one poll
///   round of that thread (20 ms), and ends with CommitUnknown for a write whose commit is in
///   doubt. (The watchdog holds a dup() of each pooled
///   connection's socket, taken at its first query and closed when the connection is
///   discarded, so it never shuts down a descriptor number libpq closed and the process
///   reused; each open pooled connection thus uses two descriptors. If dup() fails, the call
///   throws ConnectionError before sending anything.)
/// - Pools: one per node, at most `pool_size` connections; acquire waits at most
///   `acquire_timeout_ms` (TimeoutError). A connection that broke is discarded, never pooled;
///   an idle one whose socket turned readable (the server closed it) is discarded on acquire:
///   always on the primary (one poll(); a write sent on it would end in CommitUnknown), and on
///   a replica when it was idle for 1 s or more. A replica read on a connection that died less
///   than 1 s after its last use is handled like any lost connection (the replica is marked
///   down until its next good probe and the read is retried elsewhere, see below): this saves
///   a system call per replica read.
///   A connection goes back to the pool only when libpq reports it idle (PQtransactionStatus
///   is PQTRANS_IDLE, a local check): one left inside a transaction block, aborted or not, is
///   closed, which rolls the transaction back on the server.
/// - Pooled connections are shared by every caller: session-level state is not supported.
///   A `SET` (or `SET SESSION`, a temporary table, a prepared statement, an advisory lock...)
///   run through execute() or query() stays on that connection and leaks to whichever call
///   uses it next (resetting each connection would cost a round trip per call). Use `SET LOCAL`
///   inside transaction() instead, or settings in the DSN (`options='-c name=value'`).
/// - Connecting: replikit sets libpq's `connect_timeout` (whole seconds, from
///   `connect_timeout_ms`) unless the DSN sets a positive one; a DSN's `connect_timeout=0`
///   (libpq: wait forever) is replaced, so a pool connect is always bounded. One caveat that
///   no libpq setting bounds: resolving a host *name* is synchronous inside libpq (getaddrinfo),
///   in callers that connect and in the prober thread, which is also the watchdog; a resolver
///   that hangs stalls both. Give nodes by address (`hostaddr=10.0.0.5`, optionally with `host`
///   for TLS and Kerberos) where the resolver cannot be trusted to answer quickly.
/// - One query path: every statement (reads, writes, BEGIN/COMMIT, the LSN queries) runs with
///   libpq's synchronous calls on the pooled connection (PQexec without parameters, so several
///   statements are allowed; PQexecParams with parameters otherwise), and every failure is
///   classified once, by what happened to the connection (PQstatus after the call) rather than
///   by the SQLSTATE class alone: the connection is gone (Lost: the node is marked down, a read
///   may retry elsewhere), it was lost while a write or COMMIT was in flight (InDoubt:
///   CommitUnknown), the server answered with an error on a live connection (QueryError with
///   its SQLSTATE, e.g. a 08P01 protocol violation such as a parameter count mismatch), or the
///   call cannot be served as asked (InvalidArgument). A server error of severity FATAL or
///   PANIC ends the session and counts as a lost connection.
/// - libpq takes SQL text and text parameters as C strings: SQL or a text parameter holding a
///   NUL byte is refused with InvalidArgument ("sql", "params", or "statements" for
///   transaction()) before anything is sent, rather than cut at the NUL. Binary data goes as a
///   binary-format parameter (the Python bindings send bytes that way, typed bytea). COPY ... FROM STDIN / TO STDOUT
///   is not supported: InvalidArgument, and the connection is closed (aborting the COPY;
///   nothing of it commits).
/// - Writes go to the primary in autocommit mode; afterwards `pg_current_wal_insert_lsn()`
///   is read on the same connection (>= the end of the commit record, also under
///   synchronous_commit = off; as the end of the last WAL record, end_lsn_of_insert, with the
///   WAL sizes read in the same statement) and recorded with Session::record_write. That is a second
///   round trip (folding both into one simple-query string would read the LSN before the
///   implicit transaction commits); on loopback it costs about 50 microseconds. A write that
///   leaves a transaction block open (a `BEGIN` without its `COMMIT`) has committed nothing:
///   execute() throws InvalidArgument ("sql") and closes the connection, rolling it back; the
///   session records nothing. The same holds for query(). Multi-statement transactions go
///   through transaction() (BEGIN, the statements, COMMIT), which also refuses a statement
///   that ends its transaction block itself (COMMIT/ROLLBACK among the statements).
/// - Reads are routed by the Router with the call's consistency level. Monotonic and Causal
///   reads record what they saw with one more round trip on the same connection after the
///   query: `pg_last_wal_replay_lsn()` on a replica (an upper bound of the snapshot the query
///   used) or `pg_current_wal_insert_lsn()` on the primary (as the end of the last record),
///   and, in the same statement,
///   `pg_current_snapshot()`. On a replica the session then remembers that replica
///   (Session::observe_replica: router rule 5 sends its next reads back there while no
///   probe shows another replica covering them) and the transactions its snapshot had
///   completed (Session::xid_floor). Eventual, ReadYourWrites and BoundedStaleness reads skip
///   all of it, so monotonic guarantees hold among the reads that ask for them.
/// - A commit can be visible on an async replica before it is on the primary (the primary
///   shows it when the committing backend leaves the proc array, after the flush and the
///   synchronous standbys' confirmation; a replica as soon as it replays the record), so a
///   Monotonic/Causal read that falls back to the primary first polls the primary's
///   `pg_current_snapshot()` until it has completed every transaction the session's replica
///   reads saw completed (xmax at least the floor's, and no xid below it in progress that the
///   floor has completed), then reads: one round trip more, usually no wait (a few polls
///   under load). The floor keeps at most kMaxFloorXids in-progress xids; keeping fewer only
///   asks more of the primary (with none: the primary's xmin must reach the floor's xmax,
///   which may wait for a long transaction). After statement_timeout_ms / 2 without it the
///   read throws TimeoutError rather than risk going back. The floor is cleared once the
///   primary has shown it. It is host-local: a token does not carry it, so a session resumed
///   from a token on another host has the LSN guarantees of the token, but a read of it that
///   falls back to the primary may miss, for that short window, a commit the other host saw
///   on a replica.
/// - A write whose commit LSN is unknown (the LSN query after the commit failed) keeps the
///   session's ReadYourWrites and Causal reads on the primary (router rule 3), or failing with
///   ConnectionError while it is down, until query() and route_read() resolve it with the
///   first primary LSN the prober sampled RouterConfig::time_window_ms after the write
///   (resolve_untracked_write); a read waits up to a fixed `wait_for_replica_ms` for that probe (auto does not wait for it).
/// - A connect refused with SQLSTATE 53300 (a full server) marks nothing down and drops no
///   pooled connection: the call waits (acquire_timeout_ms) for one of the pool's, else throws
///   QueryError with that SQLSTATE; a read tries another node first.
/// - When no replica has caught up with the session (Reason::NoReplicaCaughtUp) a read may
///   wait up to `wait_for_replica_ms` before going to the primary. In CatchUpMode::Auto it
///   waits (up to that bound) only when LagTracker::plan_catch_up expects a healthy replica to
///   replay the commit within it (its replay-delay quantile), and goes to the primary at once
///   otherwise; QueryResult::wait_reason says which. The waiting reader asks
///   the prober to probe the replicas at once (at most one probe per replica per 0.25 ms while
///   readers wait) and re-routes after every probe, so a replica that is a few milliseconds
///   behind serves the read after a millisecond or two, not after a whole probe interval.
///   An EVENTUAL read with QueryOptions::p_consistent that no replica meets yet
///   (Reason::NoReplicaLikelyConsistent, router rule 7) waits the same way: each probe may
///   show a replica past the session's write, and the time elapsed since it grows.
/// - Under a steady write load each Monotonic read records an upper bound of what it saw,
///   which the replicas' last probed positions trail; rule 5 keeps such a session on the
///   replica it read from, and a `wait_for_replica_ms` of one probe interval lets it move to
///   another replica when that one goes down or LAGGING.
/// - A connection error on a read marks the node down (NodeStatus then reports it unreachable
///   with the read's error until its next probe) and retries elsewhere, at most
///   `read_retries` times. Writes are never retried. query() is for reads only: its statement
///   may run twice (on a replica, then elsewhere). Anything that writes goes through execute()
///   or transaction(). As a safeguard for a SELECT that calls a writing function, a read whose
///   connection to the primary was lost is not retried on the primary (replicas are read-only,
///   so a retry there cannot repeat an effect).
/// - Counting: stats() and Router::counters() count each read once, by the decision it acted
///   on (the re-routes of a wait for a replica and of failed attempts are not counted in the
///   router). route_read() counts nothing: an adapter that runs the read itself reports it
///   with record_read(), and its writes with record_write().
/// - close() refuses new calls at once and returns when the calls in flight have returned:
///   the watchdog keeps running until then, so close() takes at most statement_timeout_ms +
///   query_grace_ms (plus a connect in progress, bounded by connect_timeout). Concurrent
///   close() calls are safe: one closes, the others wait for it.
///
/// Errors (replikit/errors.hpp): ConnectionError (refused, bad DSN with libpq's message,
/// broken connection, no node can serve), QueryError (the server's message and SQLSTATE),
/// CommitUnknown (the connection broke while a write or COMMIT was in flight),
/// TimeoutError (pool acquire, client-side query deadline, the primary not showing a monotonic
/// read's floor in time), InvalidArgument (bad options).
///
/// Time: two clocks.
/// - Session time is wall-clock: std::chrono::system_clock nanoseconds since the Unix epoch
///   (Python's time.time_ns()), passed to Router::route_read and Session::record_write.
///   Session tokens carry the time of a write whose LSN is unknown between processes and
///   hosts, and only a wall clock means the same on both ends (see wall_clock_ns()).
/// - Everything else is std::chrono::steady_clock nanoseconds (CLOCK_MONOTONIC, Python's
///   time.monotonic_ns()): lag samples, probe times (NodeStatus::last_probe_ns), deadlines,
///   timeouts and waits, which must not jump with the wall clock (see now_ns()).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "replikit/acked_writes.hpp"
#include "replikit/lag.hpp"
#include "replikit/lsn.hpp"
#include "replikit/pg/events.hpp"
#include "replikit/router.hpp"
#include "replikit/session.hpp"
#include "replikit/lease.hpp"
#include "replikit/timeline.hpp"
#include "replikit/topology.hpp"

namespace replikit::pg {

/// One node: its name in the topology and its libpq connection string (key=value or URI,
/// passed through to libpq; replikit adds connect_timeout, tcp_user_timeout, keepalives,
/// statement_timeout and application_name only when the DSN does not set them).
struct NodeConfig {
  std::string name;
  std::string dsn;
  std::string region;
  double weight = 1.0;
  int priority = 0;
};

/// Settings of a ReplicatedDatabase (each validated by check_options; InvalidArgument names
/// the field). The defaults here are the only ones: the bindings read them from this struct.
struct DatabaseOptions {
  double probe_interval_ms = 100;       ///< prober period, in [1, 60000]
  double probe_timeout_ms = 1000;       ///< client-side bound of one probe, in [1, 60000]
  int pool_size = 8;                    ///< connections per node, in [1, 1024]
  double acquire_timeout_ms = 5000;     ///< wait for a free pooled connection, in [0, 3600000]
  double connect_timeout_ms = 2000;     ///< libpq connect_timeout (whole seconds, at least 2 s)
  double tcp_user_timeout_ms = 5000;    ///< libpq tcp_user_timeout (unacknowledged data), 0: off
  double statement_timeout_ms = 30000;  ///< server-side statement_timeout of user queries, in [1, 86400000]
  double query_grace_ms = 1000;         ///< client-side deadline = statement_timeout_ms + this
  /// Default wait for a replica to catch up: Fixed (max_wait_ms, in [0, 60000]) or Auto, the
  /// default (wait up to max_wait_ms, 50 ms, only when the replay-delay distribution says a
  /// replica will make it; else go to the primary at once).
  CatchUpWait wait_for_replica = CatchUpWait::automatic();
  int read_retries = 2;                 ///< other nodes tried after a connection error, in [0, 16]
  int event_capacity = 1024;            ///< events kept for readers (events()), in [1, 1048576]
  LagConfig lag;                        ///< thresholds of the LagTracker (its stale_sample_ms at least
                                        ///< 2 x probe_interval_ms: probed_lag_config)
  RouterConfig router;                  ///< policy, time window, seed, region of the Router
};

/// Throws InvalidArgument naming the first field of `options` out of its range.
void check_options(const DatabaseOptions& options);

/// Per-read options.
struct QueryOptions {
  Consistency consistency = kDefaultConsistency;
  double max_staleness_ms = -1;     ///< for BoundedStaleness (>= 0); below the probe interval plus the replication delay: the primary (router.hpp rule 4)
  std::string region;               ///< client region for NearestRegion ("" = router default)
  std::optional<CatchUpWait> wait_for_replica;  ///< unset: the database default
  /// EVENTUAL only: the probability target of reads within within_ms of the session's last write
  /// (ReadOptions::p_consistent; unset: none).
  std::optional<double> p_consistent;
  double within_ms = ReadOptions{}.within_ms;  ///< how long after a write p_consistent applies
};

/// A statement parameter: a value in text format (no NUL byte) or binary format (any bytes),
/// or SQL NULL; with the type OID to send (0: the server infers the type from the statement).
struct Param {
  std::optional<std::string> value;  ///< nullopt = SQL NULL
  std::uint32_t type_oid = 0;        ///< PostgreSQL type OID; 0 lets the server infer it
  bool binary = false;               ///< `value` is in PostgreSQL's binary format (e.g. bytea's raw bytes)

  Param() = default;
  /// SQL NULL of an inferred type.
  Param(std::nullopt_t) noexcept {}  // NOLINT(google-explicit-constructor): {"1", std::nullopt}
  /// A text value (nullopt: NULL) of an inferred type.
  Param(std::optional<std::string> text) : value(std::move(text)) {}  // NOLINT(google-explicit-constructor)
  /// A text value of an inferred type.
  Param(std::string text) : value(std::move(text)) {}  // NOLINT(google-explicit-constructor)
  /// A text value of an inferred type.
  Param(const char* text) : value(std::string(text)) {}  // NOLINT(google-explicit-constructor)
  /// A value (nullopt: NULL) with its type OID and format.
  Param(std::optional<std::string> v, std::uint32_t oid, bool is_binary)
      : value(std::move(v)), type_oid(oid), binary(is_binary) {}
};
/// The parameters of one statement ($1, $2, ...).
using Params = std::vector<Param>;

/// One statement of a transaction.
struct Statement {
  std::string sql;
  Params params;
};

/// What a statement returned, and where it ran.
struct QueryResult {
  std::vector<std::string> columns;        ///< column names
  std::vector<std::uint32_t> type_oids;    ///< PostgreSQL type OID of each column
  std::vector<std::vector<std::optional<std::string>>> rows;  ///< text values; nullopt = NULL
  std::int64_t affected_rows = 0;          ///< the command tag's row count: rows inserted/updated/deleted, or returned by SELECT
  std::string node;                        ///< the node that served the statement
  Reason reason = Reason::Write;           ///< why it went there
  int attempts = 1;                        ///< nodes tried (reads retry after connection errors)
  double waited_ms = 0;                    ///< time spent waiting for a replica to catch up
  CatchUpReason wait_reason = CatchUpReason::FixedWait;  ///< why the read waited (or not) when no replica had caught up
  /// Writes: the LSN recorded into the session (0/0 if it could not be read after the
  /// commit). Monotonic/Causal reads: the LSN observed. Otherwise 0/0.
  Lsn lsn;
};

/// What the current primary says about a session's acknowledged writes (see
/// replikit/acked_writes.hpp for the rule, and replikit/pg/failover.hpp for the failover record
/// that gives the promoted node's next transaction id at promotion).
struct LossReport {
  std::vector<AckedWrite> lost;     ///< acknowledged on an older timeline and not on the current one
  std::vector<AckedWrite> unknown;  ///< fate unknown: xid unknown, no failover record, or too old
  std::size_t survived = 0;         ///< acknowledged on an older timeline, committed on the current one
  std::size_t current = 0;          ///< acknowledged on the current timeline (nothing to check)
  std::uint64_t dropped = 0;        ///< dropped from the session's bounded list, never checked
  std::uint32_t timeline = 0;       ///< the current primary's timeline
  std::string primary;              ///< the node asked
};

/// Where a read would go now (for adapters that run the SQL themselves).
struct Route {
  std::string node;  ///< the node's name; "" when no node can serve
  Reason reason = Reason::NoReplicaUp;
  Lsn required_lsn;  ///< the LSN the node had to cover (0/0: none)
  double waited_ms = 0;
  CatchUpReason wait_reason = CatchUpReason::FixedWait;  ///< why it waited (or not) when no replica had caught up
  Consistency consistency = Consistency::ReadYourWrites;  ///< the level it was routed for
};

/// One node as the prober sees it.
struct NodeStatus {
  std::string name;
  Role role = Role::Replica;       ///< role in the topology
  bool up = false;                 ///< routable (topology)
  bool reachable = false;          ///< the last probe succeeded and no call lost the node since
  bool in_recovery = false;        ///< pg_is_in_recovery() of the last good probe
  bool role_mismatch = false;      ///< the server's role differs from the topology's (or a promotion
                                   ///< deposed it, until it rejoins as a replica): its last role event
  std::uint32_t timeline = 0;      ///< 0: unknown
  Lsn current_lsn;                 ///< primary: pg_current_wal_flush_lsn()
  Lsn receive_lsn;                 ///< replica: pg_last_wal_receive_lsn()
  Lsn replay_lsn;                  ///< replica: pg_last_wal_replay_lsn()
  std::int64_t lag_ns = 0;         ///< replica: time lag (LagTracker)
  std::int64_t lag_bytes = 0;      ///< replica: byte lag (LagTracker)
  LagState lag_state = LagState::Ok;
  bool lag_known = false;
  /// Replica: the steady-clock instant as of which it holds every commit of the primary (what
  /// bounded-staleness reads compare with max_staleness_ms); kFreshUnknown when not known.
  std::int64_t fresh_as_of_ns = kFreshUnknown;
  std::int64_t last_probe_ns = 0;  ///< steady-clock time of the last completed probe (0: none)
  std::int64_t last_probe_sent_ns = 0;  ///< when that probe (or its connect) began (0: none)
  double probe_rtt_ms = 0;         ///< round trip of the last good probe
  std::uint64_t probes_ok = 0;
  std::uint64_t probes_failed = 0;
  std::string last_error;          ///< of the last failed probe ("" when the last one was good), or of
                                   ///< the call that marked the node down since the last probe
  int pool_open = 0;               ///< user connections open to this node
  int pool_idle = 0;               ///< ... of which idle in the pool
};

/// Counters since construction.
struct DatabaseStats {
  std::uint64_t writes = 0;
  std::uint64_t reads = 0;
  std::uint64_t reads_on_replicas = 0;
  std::uint64_t reads_on_primary = 0;
  std::uint64_t read_retries = 0;       ///< extra attempts after connection errors
  std::uint64_t read_failures = 0;      ///< reads that failed after all attempts
  std::uint64_t waits = 0;              ///< reads that waited for a replica to catch up
  std::uint64_t waits_served_by_replica = 0;
  std::uint64_t nodes_marked_down = 0;  ///< by query errors (the prober's are in NodeStatus)
  std::uint64_t watchdog_fired = 0;     ///< queries cut off at the client-side deadline
};

/// Calls to one node as the primary, read at one instant (ReplicatedDatabase::primary_calls).
struct PrimaryCalls {
  std::uint64_t ended = 0;  ///< calls that ran and ended since construction, modulo 2^39
  std::int32_t in_flight = 0;  ///< calls admitted and not ended yet
};

/// A primary and its replicas, with routing, consistency tokens, pools and a prober.
/// Thread-safe: call from any number of threads (a Session itself is not synchronised:
/// one per user request chain).
class ReplicatedDatabase {
 public:
  /// Builds the topology, lag tracker and router, checks every DSN with libpq (a malformed
  /// one throws ConnectionError with libpq's message) and starts the prober. Connects lazily.
  ReplicatedDatabase(NodeConfig primary, std::vector<NodeConfig> replicas, DatabaseOptions options = {});
  /// close(): must not run while calls are in flight on other threads (they use this object).
  ~ReplicatedDatabase();
  ReplicatedDatabase(const ReplicatedDatabase&) = delete;
  ReplicatedDatabase& operator=(const ReplicatedDatabase&) = delete;

  /// Runs a write on the primary (autocommit) and records its commit LSN into `session`.
  /// InvalidArgument ("sql") when the statement left a transaction block open (rolled back).
  QueryResult execute(Session& session, const std::string& sql, const Params& params = {});
  /// Runs `statements` in one transaction on the primary, commits, records the commit LSN.
  std::vector<QueryResult> transaction(Session& session, const std::vector<Statement>& statements);
  /// Runs a read where the router sends it for `options.consistency`; retries elsewhere
  /// after a connection error (at most read_retries times), so reads only: writes go through
  /// execute() or transaction().
  QueryResult query(Session& session, const std::string& sql, const Params& params = {},
                    const QueryOptions& options = {});

  /// Asks the current primary which of `session`'s acknowledged writes survived the failovers
  /// since they were acknowledged (one round trip per call, plus one to read the failover
  /// records when the session wrote on an older timeline). ConnectionError when no primary.
  LossReport lost_writes(const Session& session);
  /// The same for every write this database acknowledged (the last 65536, all sessions).
  LossReport lost_writes();

  /// Routes a read (waiting for a replica like query() does) without running or counting
  /// anything.
  Route route_read(const Session& session, const QueryOptions& options = {});
  /// Counts a read that the caller ran itself on `node` (e.g. after route_read()) for `reason`
  /// in stats() and the router's counters. InvalidArgument for an unknown node.
  void record_read(const std::string& node, Reason reason) const;
  /// Records a write of the caller's own at `commit_lsn` (0/0: unknown) into `session` at
  /// wall_clock_ns(), and counts it in stats() and the router's counters.
  void record_write(Session& session, Lsn commit_lsn) const;
  /// Marks node `name` down (e.g. an adapter's connection to it broke); the prober marks it
  /// up again after its next good probe.
  void mark_down(const std::string& name);

  /// The timeline history this database reconciles sessions against (set after a failover by
  /// the FailoverManager; TimelineHistory{} before): each call first reconciles its session
  /// when the session's timeline is older (Session::reconcile), and a read-your-writes or causal
  /// read then raises LostWrites once for writes the failover lost.
  TimelineHistory timeline_history() const;
  /// Sets it (see timeline_history()).
  void set_timeline_history(TimelineHistory history);

  /// Applies a topology published by the coordinating leader: a newer one (TopologyView's rule:
  /// a newer revision from a leader not older than the current one's) makes its primary this
  /// database's primary (the epoch changes, writes go there) and adopts its timeline's history;
  /// an older or repeated one is ignored. NotFound ("topology") when its primary is not a node.
  TopologyVerdict apply_topology(const PublishedTopology& topology);
  /// The last topology applied (none before the first).
  std::optional<PublishedTopology> published_topology() const;

  /// Makes node `name` the primary unless it is (Topology::make_primary) and routes it in (not
  /// while it is down: its next good probe does), its events first: Failover for it (`why` as
  /// the message), RoleMismatch for the primary it deposes (out of routing until it rejoins as a
  /// replica), RoleRestored for it when it was flagged; its lag is forgotten
  /// (LagTracker::forget_replica), and once it is the primary the lag tracker starts afresh
  /// (LagTracker::reset: history and every replica's lag), as when the prober adopts a promoted
  /// node. Returns the epoch. For a failover manager (C++ only).
  std::uint64_t make_primary(const std::string& name, const std::string& why);

  /// While `hold` is true new writes, and new reads routed to the primary, wait (each at most
  /// acquire_timeout_ms) for the release, then go to whatever is the primary by then: a planned
  /// switchover in progress drains the old primary. A call to the primary is admitted (counted
  /// in flight, primary_calls()) or held in one atomic step, so a call routed just before the
  /// hold is either counted in flight by the time this returns, or backs out and waits for the
  /// release. Returns the primary's counts at the instant it was held (or released).
  PrimaryCalls hold_primary(bool hold);
  /// Calls to node `node` (an index) as the primary that have ended since construction (modulo
  /// 2^39): a drain counts the calls that ended during it, however short (C++ only).
  std::uint64_t primary_calls_ended(int node) const;
  /// Calls to node `node` (an index) as the primary, both counts read at one instant: each call
  /// admitted is in flight or ended, never both (C++ only).
  PrimaryCalls primary_calls(int node) const;
  /// Testing: `hook` runs on the calling thread between routing a call to the primary and counting
  /// it in flight, the window a hold_primary() races with. Set it before any call (C++ only).
  void set_primary_route_hook(std::function<void()> hook);
  /// Testing: `hook` runs on the calling thread as a call admitted to the primary ends, once its
  /// end is counted (primary_calls()) and before it leaves the router's in-flight count. Set it
  /// before any call (C++ only).
  void set_call_end_hook(std::function<void()> hook);
  /// Testing: `hook` runs on the calling thread in a call's marking of a node down, before the
  /// node leaves routing (a good probe may complete meanwhile). Set it before any call (C++ only).
  void set_mark_down_hook(std::function<void()> hook);
  /// Testing: `hook` runs on the publishing thread (the prober's, a caller's, the failover
  /// manager's) just before each event this database publishes goes into the log, while routing
  /// still shows what it showed before the change the event announces. It must not call into
  /// this database (C++ only).
  void set_event_hook(std::function<void(const Event&)> hook);

  /// Every node as the prober and the lag tracker see it.
  std::vector<NodeStatus> nodes() const;
  /// One node's status.
  NodeStatus node(const std::string& name) const;
  /// Counters since construction.
  DatabaseStats stats() const;
  /// Waits until every node has completed `count` more probes (good or failed) or
  /// `timeout_ms` passed; true when they have.
  bool wait_probes(int count, double timeout_ms) const;
  /// The DSN of node `name` as given.
  std::string dsn(const std::string& name) const;

  /// Refuses new calls (they throw ConnectionError), waits for the calls in flight (each
  /// bounded by its deadline, which the watchdog still enforces), stops the prober and closes
  /// every connection. Idempotent; concurrent callers wait for the one that closes.
  void close();
  /// False after close().
  bool is_open() const noexcept;

  /// What happened to the nodes (down/up, LAGGING/RECOVERED, role mismatches, read retries),
  /// once per transition; a failover manager publishes its failovers here too. Closed by close().
  const std::shared_ptr<EventLog>& events() const noexcept;

  /// The topology, lag tracker and router this database drives.
  const std::shared_ptr<Topology>& topology() const noexcept;
  const std::shared_ptr<LagTracker>& lag_tracker() const noexcept;
  const std::shared_ptr<Router>& router() const noexcept;
  /// The settings in force.
  const DatabaseOptions& options() const noexcept;

  /// The clock of lag samples, probes, deadlines and waits (NodeStatus::last_probe_ns, the
  /// lag tracker's events): steady_clock nanoseconds (CLOCK_MONOTONIC, time.monotonic_ns()).
  static std::int64_t now_ns() noexcept;
  /// The clock of session time (route_read, record_write, token times): system_clock
  /// nanoseconds since the Unix epoch (time.time_ns()).
  static std::int64_t wall_clock_ns() noexcept;

  /// The state shared by the read path, the write path and the orchestration (internal).
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace replikit::pg
