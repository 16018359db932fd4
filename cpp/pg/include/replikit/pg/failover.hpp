#pragma once
/// \file failover.hpp
/// The PostgreSQL side of a failover: the actions (fence, promote, slots, repoint, the
/// failover record) and the values they return. No libpq type appears here.
///
/// Every action is idempotent: run twice, the second run changes nothing and says so
/// (`changed` false), so a manager that stopped half-way and starts again converges.
/// Every action connects afresh with a client-side deadline of `timeout_ms` (connect and
/// statement), so a frozen node costs at most that.
///
/// Fencing: the old primary, when reachable, gets `default_transaction_read_only = on` and
/// `synchronous_standby_names` naming a standby that never connects, through ALTER SYSTEM and
/// pg_reload_conf(), and then every client backend but the fencer's is terminated (its open
/// transactions roll back; a commit in flight there ends in doubt for its client). A session
/// can override either setting for itself (SET default_transaction_read_only = off, or
/// BEGIN READ WRITE), so neither alone stops a client that insists; together, a write is
/// acknowledged there only by a session that overrides both (read-only, and
/// synchronous_commit = local/off), which replikit never does. The strong fence is the
/// instance stopped; the client-side fence is the timeline: replikit's routers never send a
/// write to a node that claims to be primary on a timeline older than the newest one seen.
///
/// The failover record: a table `replikit_failover_history (timeline, promoted, next_xid,
/// at)` on the new primary (in the database of its DSN), one row per promotion keyed by the new
/// timeline. It tells every process, not only the manager's, the promoted node's next
/// transaction id at promotion, which loss accounting needs (see replikit/acked_writes.hpp).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "replikit/lsn.hpp"

namespace replikit::pg {

/// What one failover action did.
struct ActionResult {
  std::string action;     ///< "fence", "synchronous", "promote", "create_slot", "repoint", "record"
  std::string node;       ///< the node it acted on
  bool ok = false;        ///< done (or found already done)
  bool changed = false;   ///< this call changed something (false: it was already so)
  std::string detail;     ///< what was found or done, or why it could not be done
  double elapsed_ms = 0;  ///< wall time of the action
};

/// Connection settings of the actions.
struct ActionOptions {
  double timeout_ms = 2000;  ///< client-side deadline of the connect and of each statement, in [1, 600000]
};

/// One node as a failover sees it, read fresh.
struct NodeState {
  bool reachable = false;
  bool in_recovery = false;
  Lsn lsn;                    ///< primary: pg_current_wal_lsn(); standby: receive LSN (or replay when larger)
  Lsn replay_lsn;             ///< standby: pg_last_wal_replay_lsn()
  std::uint32_t timeline = 0; ///< primary: of its WAL; standby: streamed, else of its last restartpoint
  bool synchronous_mode = false;              ///< primary: synchronous_standby_names is set
  std::vector<std::string> synchronous_now;   ///< primary: standbys with sync_state sync or quorum
  std::vector<std::string> streaming_now;     ///< primary: application_name of each standby streaming
  std::string synchronous_standby_names;      ///< primary: the setting's text
  bool read_only = false;                     ///< default_transaction_read_only
  std::string error;                          ///< why it is not reachable
};

/// Reads `node`'s state (one connection, one or two statements).
NodeState read_node_state(const std::string& node, const std::string& dsn, const ActionOptions& options = {});

/// The synchronous_standby_names of a fenced node (SHOW's text): a standby that never connects.
inline constexpr const char* kFencedStandby = "\"replikit fenced\"";

/// Makes `node` refuse writes (see the file comment); ok false when it cannot be reached.
ActionResult fence_node(const std::string& node, const std::string& dsn, const ActionOptions& options = {});

/// Undoes fence_node: default_transaction_read_only back to `read_only`, and
/// synchronous_standby_names back to `synchronous_standby_names` (a switchover that could not
/// finish).
ActionResult unfence_node(const std::string& node, const std::string& dsn, bool read_only,
                          const std::string& synchronous_standby_names, const ActionOptions& options = {});

/// The synchronous setting a failover carries from the old primary to the new one.
struct SynchronousCarry {
  std::string from;          ///< the old primary's synchronous_standby_names
  std::string to;            ///< the new primary's (empty: no standby left, asynchronous)
  bool parsed = false;       ///< `from` was understood (false: nothing is carried)
  int wanted = 0;            ///< the old count of synchronous standbys
  int count = 0;             ///< the new count (< wanted: fewer survivors than the count)
  std::string note;          ///< what was carried, or why not, readable
};

/// Rewrites `setting` (synchronous_standby_names: "FIRST n (a, b)", "ANY n (a, b)", "n (a, b)",
/// "a, b", "*") for a new primary: the same method and count, the list without `old_primary`
/// and `promoted` (names compare case-insensitively, as PostgreSQL matches application_name);
/// "*" stands for `survivors`. A count above the standbys left drops to their number; none left
/// gives an empty setting. Read as PostgreSQL's grammar reads it, in one linear pass; a setting
/// it would refuse (or a count over 9 digits) is not carried: `parsed` false, `note` says why.
SynchronousCarry carry_synchronous(const std::string& setting, const std::string& old_primary,
                                   const std::string& promoted, const std::vector<std::string>& survivors);

/// The new primary's synchronous_standby_names once `deposed` (the old primary) streams from it
/// again: the old primary's `setting` without `promoted`, with `deposed` listed (last, unless the
/// setting named it), the same method and count (at most the names listed). `to` empty when there
/// is nothing to restore: a '*' that lists it already, an asynchronous or unreadable setting.
SynchronousCarry restore_synchronous(const std::string& setting, const std::string& promoted,
                                     const std::string& deposed);

/// Whether a synchronous_standby_names entry `a` names the standby `b`: case-insensitively, as
/// PostgreSQL matches application_name against the list.
bool same_standby_name(const std::string& a, const std::string& b);

/// Sets synchronous_standby_names = `names` on `node` (ALTER SYSTEM, pg_reload_conf()); works on
/// a standby too (the setting takes effect at its promotion); unchanged when it is so already.
ActionResult set_synchronous(const std::string& node, const std::string& dsn, const std::string& names,
                             const ActionOptions& options = {});

/// The next-xid bound of a standby about to be promoted: the xmax of its snapshot, read after
/// its replay caught up with what it received (waits at most timeout_ms for that). nullopt when
/// it is not in recovery any more (already promoted) or cannot be reached.
std::optional<std::uint64_t> next_xid_bound(const std::string& node, const std::string& dsn,
                                            const ActionOptions& options = {});

/// pg_promote(wait => true); a node not in recovery is already promoted (ok, not changed).
/// `timeline` receives the node's timeline afterwards (0: unknown).
ActionResult promote_node(const std::string& node, const std::string& dsn, const ActionOptions& options = {},
                          std::uint32_t* timeline = nullptr);

/// Creates physical replication slot `slot` (reserving WAL at once) on `node` unless it exists.
ActionResult create_slot(const std::string& node, const std::string& dsn, const std::string& slot,
                         const ActionOptions& options = {});

/// Points standby `node` at `primary_conninfo` with `slot` (ALTER SYSTEM SET primary_conninfo,
/// primary_slot_name; pg_reload_conf()); unchanged when both are already so.
ActionResult repoint_node(const std::string& node, const std::string& dsn, const std::string& primary_conninfo,
                          const std::string& slot, const ActionOptions& options = {});

/// Records the promotion of `node` to `timeline` with `next_xid` (0: unknown) in
/// replikit_failover_history on `node` (kept when a row for that timeline exists). Committed
/// with synchronous_commit = local: the standbys may not stream from `node` yet.
ActionResult record_failover(const std::string& node, const std::string& dsn, std::uint32_t timeline,
                             std::uint64_t next_xid, const ActionOptions& options = {});

/// The text of `node`'s timeline history file for `timeline` (pg_read_file: needs superuser
/// or pg_read_server_files); nullopt when it cannot be read.
std::optional<std::string> read_timeline_history(const std::string& node, const std::string& dsn,
                                                 std::uint32_t timeline, const ActionOptions& options = {});

/// The primary_conninfo a standby uses to stream from a primary reached with `primary_dsn`:
/// libpq parses the DSN and every value is quoted (key='value', backslash-escaped), with
/// `application_name` set to the standby's name (synchronous_standby_names matches it).
/// InvalidArgument ("primary_dsn") for a DSN libpq cannot parse.
std::string standby_conninfo(const std::string& primary_dsn, const std::string& application_name);

/// The replication slot name replikit uses for standby `node`: lower-case letters, digits and
/// underscores (others become '_'), at most 63 characters.
std::string slot_name(const std::string& node);

}  // namespace replikit::pg
