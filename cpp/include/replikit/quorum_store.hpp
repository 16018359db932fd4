#pragma once
/// \file quorum_store.hpp
/// An in-process leaderless (Dynamo-style) quorum store for learning, tests and simulation:
/// N replicas per key on a ring of nodes, injectable node failures, per-node latency,
/// last-writer-wins timestamps or vector clocks with siblings, read repair, bounded hinted
/// handoff and an optional sloppy quorum. Time is logical (advance_ms); nothing is random.

#include <cstdint>
#include <map>
#include <queue>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace replikit {

/// A vector clock: actor name -> count of that actor's writes.
using VectorClock = std::map<std::string, std::uint64_t>;

/// How two vector clocks relate.
enum class ClockOrder { Equal, Before, After, Concurrent };

/// How `a` relates to `b` (Before: a happened before b).
ClockOrder compare_clocks(const VectorClock& a, const VectorClock& b);

/// The entry-wise maximum of two clocks.
VectorClock merge_clocks(const VectorClock& a, const VectorClock& b);

/// How versions of one key are ordered.
enum class Versioning {
  LastWriterWins,  ///< the highest (timestamp, writer) wins; concurrent writes are lost silently
  VectorClocks,    ///< concurrent writes are kept as siblings and returned together
};

/// Why an operation did or did not reach its quorum.
enum class QuorumOutcome { Ok, NotEnoughReplicas };

/// The configuration of a QuorumStore.
struct QuorumStoreOptions {
  int n = 3;          ///< replicas per key
  int w = 2;          ///< acknowledgements a write waits for
  int r = 2;          ///< responses a read waits for
  int nodes = 0;      ///< nodes on the ring (>= n); 0 means n
  Versioning versioning = Versioning::LastWriterWins;
  bool read_repair = true;          ///< push the resolved version to stale contacted replicas
  bool hinted_handoff = false;      ///< keep writes for down home replicas and deliver on recovery
  bool sloppy_quorum = false;       ///< let live fallback nodes stand in for down home replicas
  std::size_t max_hints = 1024;     ///< bound on stored hints; more are dropped and counted
  std::size_t max_in_flight = 100000;  ///< bound on replication messages in flight
  std::size_t max_keys = 1000000;   ///< bound on keys per node
  std::size_t max_siblings = 64;    ///< bound on concurrent siblings per key

  /// Majority writes and reads, newest version wins: the original QuorumDatabase.
  static QuorumStoreOptions majority(int n);
};

/// One stored version of a value.
struct StoredVersion {
  std::string value;
  std::uint64_t timestamp = 0;  ///< logical write time (orders versions under LastWriterWins)
  std::string writer;           ///< client that wrote it (tie-break; vector-clock actor)
  VectorClock clock;            ///< causal history (Versioning::VectorClocks)
};

/// The result of a quorum write.
struct WriteResult {
  QuorumOutcome outcome = QuorumOutcome::NotEnoughReplicas;
  int acks = 0;              ///< replicas that acknowledged synchronously
  int hinted = 0;            ///< hints stored for down home replicas
  double latency_ms = 0;     ///< the W-th fastest acknowledgement
  StoredVersion version;     ///< what was written
  std::vector<int> replicas; ///< nodes that acknowledged, fastest first
  std::string reason;        ///< why not, when outcome != Ok
  bool ok() const { return outcome == QuorumOutcome::Ok; }
};

/// The result of a quorum read.
struct ReadResult {
  QuorumOutcome outcome = QuorumOutcome::NotEnoughReplicas;
  int responses = 0;
  std::vector<StoredVersion> siblings;  ///< empty: not found; one: resolved; more: concurrent
  VectorClock context;                  ///< merged clock to pass to the next put
  double latency_ms = 0;                ///< the R-th fastest response
  int repaired = 0;                     ///< replicas changed by read repair
  std::vector<int> replicas;            ///< nodes whose responses were used, fastest first
  std::string reason;
  bool ok() const { return outcome == QuorumOutcome::Ok; }
  bool found() const { return !siblings.empty(); }
  bool conflict() const { return siblings.size() > 1; }
};

/// Counters of what the store did.
struct QuorumStoreStats {
  std::uint64_t writes_ok = 0, writes_failed = 0, reads_ok = 0, reads_failed = 0;
  std::uint64_t read_repairs = 0;       ///< replica updates made by read repair
  std::uint64_t hints_stored = 0, hints_delivered = 0, hints_dropped = 0;
  std::uint64_t deliveries = 0;         ///< asynchronous replications applied
  std::uint64_t deliveries_lost = 0;    ///< asynchronous replications to a node that was down
};

/// A leaderless quorum store. Not thread-safe: one simulation, one thread.
class QuorumStore {
 public:
  /// Validates the options (1 <= w, r <= n <= nodes <= 1024, bounds >= 1).
  explicit QuorumStore(QuorumStoreOptions options);
  virtual ~QuorumStore() = default;

  /// The options in force.
  const QuorumStoreOptions& options() const { return options_; }

  /// Writes `value` under `key` as `client`. Vector clocks: `context` is the clock of the
  /// client's last read of the key (what this write supersedes). Last-writer-wins:
  /// `timestamp` 0 takes the store's next logical time; another value simulates a client clock.
  WriteResult put(const std::string& key, const std::string& value, const std::string& client = "client",
                  const VectorClock& context = {}, std::uint64_t timestamp = 0);
  /// Reads `key` from the R fastest live replicas: the newest version, or every concurrent sibling.
  ReadResult get(const std::string& key);

  /// Marks `node` as down (it keeps its data; it answers nothing).
  void fail_node(int node);
  /// Marks `node` as up and delivers the hints waiting for it.
  void recover_node(int node);
  /// Whether `node` is up.
  bool is_up(int node) const;
  /// Sets the round-trip latency of `node` (finite, >= 0): decides which replicas answer first.
  void set_node_latency_ms(int node, double latency_ms);
  /// The round-trip latency of `node`.
  double node_latency_ms(int node) const;
  /// Moves logical time forward by `dt_ms` (finite, >= 0), delivering replication that is due.
  void advance_ms(double dt_ms);
  /// Logical time.
  double now_ms() const { return now_ms_; }

  /// The ring order of nodes for `key`: the first n are its home replicas, the rest fallbacks.
  std::vector<int> preference_list(const std::string& key) const;
  /// What `node` stores for `key` (inspection; ignores liveness).
  std::vector<StoredVersion> replica_versions(int node, const std::string& key) const;
  /// Hints waiting for delivery.
  std::size_t hints_pending() const { return hints_.size(); }
  /// Replication messages in flight.
  std::size_t in_flight() const { return in_flight_.size(); }
  /// Counters.
  const QuorumStoreStats& stats() const { return stats_; }

 private:
  struct Hint {
    int holder;  // node holding the hint, or -1 for the coordinator
    int target;
    std::string key;
    StoredVersion version;
  };
  struct Delivery {
    double at_ms;
    std::uint64_t sequence;  // FIFO among equal times, for determinism
    int node;
    std::string key;
    StoredVersion version;
    bool operator>(const Delivery& o) const {
      return at_ms != o.at_ms ? at_ms > o.at_ms : sequence > o.sequence;
    }
  };
  using Siblings = std::vector<StoredVersion>;
  // Where a write goes: live home replicas plus, with a sloppy quorum, live fallbacks.
  struct WriteTargets {
    std::vector<int> targets;
    std::vector<int> down_home;
    std::vector<std::pair<int, int>> stand_ins;  // (fallback, home it stands in for)
  };

  void require_node(int node, const char* argument = "node") const;
  bool apply(int node, const std::string& key, const StoredVersion& v);  // true if state changed
  void remove_version(int node, const std::string& key, const StoredVersion& v);
  std::vector<int> by_latency(std::vector<int> nodes) const;
  void store_hint(int holder, int target, const std::string& key, const StoredVersion& v);
  WriteTargets write_targets(const std::string& key) const;
  StoredVersion new_version(const std::string& key, const std::string& value, const std::string& client,
                            const VectorClock& context, std::uint64_t timestamp, const std::vector<int>& targets);
  void replicate(const std::string& key, const StoredVersion& v, const std::vector<int>& targets, WriteResult& result);
  void hint_missing(const WriteTargets& where, const std::string& key, const StoredVersion& v, WriteResult& result);
  void deliver_hints();
  Siblings resolve(const std::vector<const Siblings*>& responses) const;

  QuorumStoreOptions options_;
  std::vector<bool> up_;
  std::vector<double> latency_ms_;
  std::vector<std::unordered_map<std::string, Siblings>> data_;
  std::vector<Hint> hints_;
  std::priority_queue<Delivery, std::vector<Delivery>, std::greater<Delivery>> in_flight_;
  std::uint64_t next_sequence_ = 0;
  std::uint64_t clock_ = 0;  // logical time source for last-writer-wins timestamps
  double now_ms_ = 0;
  QuorumStoreStats stats_;
};

/// The original design's QuorumDatabase: N replicas, majority W and R, newest version wins.
class QuorumDatabase : public QuorumStore {
 public:
  /// N replicas with W = R = floor(N/2) + 1 and last-writer-wins.
  explicit QuorumDatabase(int n) : QuorumStore(QuorumStoreOptions::majority(n)) {}
};

}  // namespace replikit
