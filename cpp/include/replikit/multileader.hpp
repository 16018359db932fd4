#pragma once
/// \file multileader.hpp
/// Multi-leader replication of the same keys between 2 to 8 leaders (regions) with
/// asynchronous, delayed replication; exact counting of conflicting (concurrent) writes per
/// leader pair; and resolution by last-writer-wins, vector-clock siblings, or a merge
/// function (counter or set). Logical time; the workload generator is seeded.

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <queue>
#include <set>
#include <string>
#include <vector>

namespace replikit {

/// How leaders resolve concurrent writes to one key.
enum class ConflictResolution {
  LastWriterWins,  ///< highest (time + leader's clock skew, leader, sequence) wins; others are lost
  Siblings,        ///< keep every concurrent value; a later local write supersedes them
  CounterMerge,    ///< values are counter increments; merged per leader, nothing lost
  SetMerge,        ///< values are set elements; merged by union, nothing lost
};

/// Largest number of leaders.
inline constexpr int kMultiLeaderMaxLeaders = 8;

/// Configuration of a MultiLeaderCluster.
struct MultiLeaderOptions {
  int leaders = 2;
  ConflictResolution resolution = ConflictResolution::LastWriterWins;
  double default_delay_ms = 50;                         ///< replication delay between any two leaders
  std::vector<std::vector<double>> replication_delay_ms; ///< leaders x leaders overrides (empty: default)
  std::vector<double> clock_skew_ms;                    ///< per leader, added to LWW timestamps (empty: 0)
  std::size_t max_in_flight = 1000000;                  ///< bound on replication messages queued
  /// Bound on the memory held by queued replication (messages, the versions they carry, and
  /// set elements not yet seen by every leader); a write that would pass it is refused.
  std::size_t max_in_flight_bytes = std::size_t{256} << 20;
  std::size_t max_keys = 1000000;
  std::size_t max_siblings = 64;
};

/// What one leader holds for one key.
struct MultiLeaderValue {
  std::vector<std::string> values;  ///< LWW: the value; Siblings: sorted siblings; SetMerge: sorted elements
  std::int64_t counter = 0;         ///< CounterMerge: the total
};

/// Replication queue figures of a MultiLeaderCluster (bytes are estimates of heap use).
struct MultiLeaderStats {
  std::size_t messages_in_flight = 0;       ///< replication messages queued now
  std::size_t bytes_in_flight = 0;          ///< memory held by queued replication now
  std::size_t peak_messages_in_flight = 0;  ///< most messages queued at once
  std::size_t peak_bytes_in_flight = 0;     ///< most bytes held at once
  std::uint64_t messages_sent = 0;          ///< messages queued since construction
  std::uint64_t bytes_sent = 0;             ///< bytes queued since construction
};

/// Two to eight leaders accepting writes to the same keys. Each write queues, for each peer,
/// a message sharing one small version of the key's state (the vector clock and the bounded
/// per-mode part); a set element travels once, through a per-key log the receiver reads
/// the elements it lacks from. Time and memory are linear in writes.
class MultiLeaderCluster {
 public:
  /// Validates the options (delays finite and >= 0, skews finite, bounds >= 1).
  explicit MultiLeaderCluster(MultiLeaderOptions options);

  /// A local write at `leader` at logical time `at_ms` (>= now): sets `value` (LWW,
  /// Siblings), inserts `value` (SetMerge) or adds `delta` (CounterMerge). Throws
  /// CapacityExceeded, changing nothing but delivering what is due by `at_ms`, when the
  /// write would pass max_in_flight or max_in_flight_bytes.
  void write(int leader, const std::string& key, const std::string& value, double at_ms, std::int64_t delta = 1);
  /// Delivers replication due by `at_ms` (>= now) and moves time there.
  void run_until(double at_ms);
  /// Delivers everything in flight.
  void settle();
  /// Logical time.
  double now_ms() const { return now_ms_; }
  /// What `leader` holds for `key` (empty when it has seen no write).
  MultiLeaderValue read(int leader, const std::string& key) const;
  /// Concurrent write pairs between leaders i and j (symmetric, zero diagonal).
  const std::vector<std::vector<std::uint64_t>>& conflicts() const { return conflicts_; }
  /// Total concurrent write pairs.
  std::uint64_t total_conflicts() const;
  /// Writes accepted.
  std::uint64_t writes() const { return writes_; }
  /// Replication messages in flight.
  std::size_t in_flight() const { return in_flight_.size(); }
  /// Replication queue figures (current, peak and total messages and bytes).
  MultiLeaderStats stats() const;
  /// True when every leader holds the same value for every key.
  bool converged() const;
  /// Keys currently holding more than one sibling at some leader.
  std::size_t keys_with_siblings() const;
  /// The options in force.
  const MultiLeaderOptions& options() const { return options_; }

 private:
  using Clock = std::vector<std::uint64_t>;
  struct Sibling {
    Clock clock;
    std::string value;
  };
  // The replicated, bounded part of one leader's state for a key (everything but set elements).
  struct Version {
    Clock clock;
    bool has_value = false;
    std::string value;  // LWW
    double timestamp_ms = 0;
    int origin = -1;
    std::uint64_t origin_sequence = 0;
    std::vector<Sibling> siblings;
    std::vector<std::int64_t> increments, decrements;
  };
  struct State {
    Version version;
    std::set<std::string> elements;  // SetMerge
  };
  // One per write, shared by the messages to every peer.
  struct Snapshot {
    std::string key;
    Version version;
    std::size_t bytes = 0;
  };
  struct Message {
    double at_ms;
    std::uint64_t sequence;
    int to;
    std::shared_ptr<const Snapshot> snapshot;
    bool operator>(const Message& o) const { return at_ms != o.at_ms ? at_ms > o.at_ms : sequence > o.sequence; }
  };
  // SetMerge: the elements written by each leader to one key, from sequence first[l] on;
  // entries every leader has seen are dropped. A version's clock names the elements it holds.
  struct ElementLog {
    std::vector<std::deque<std::string>> values;
    std::vector<std::uint64_t> first;
  };

  void require_leader(int leader) const;
  State& state(int leader, const std::string& key);
  std::uint64_t own_writes(int leader, const std::string& key) const;
  void count_conflicts(int leader, const std::string& key, const Clock& seen);
  void apply_local(Version& v, int leader, const std::string& value, double at_ms, std::int64_t delta) const;
  void enqueue(int from, std::shared_ptr<const Snapshot> snapshot, double at_ms, std::size_t bytes);
  void log_element(int leader, const std::string& key, const std::string& value);
  void deliver_next();
  void receive(const Message& m);
  void merge_siblings(Version& local, const Version& in, const std::string& key) const;
  void pull_elements(State& local, const std::string& key, const Clock& in);
  void trim_log(const std::string& key);
  MultiLeaderValue value_of(const State& s) const;

  MultiLeaderOptions options_;
  std::vector<std::map<std::string, State>> data_;
  std::map<std::string, ElementLog> element_log_;
  std::priority_queue<Message, std::vector<Message>, std::greater<Message>> in_flight_;
  std::vector<std::vector<std::uint64_t>> conflicts_;
  std::uint64_t next_sequence_ = 0;
  std::uint64_t writes_ = 0;
  double now_ms_ = 0;
  MultiLeaderStats stats_;
};

/// A seeded write mix for run_multileader_workload.
struct MultiLeaderWorkload {
  std::vector<double> writes_per_s;  ///< Poisson write rate at each leader (>= 0)
  int keys = 100;                    ///< keys chosen uniformly
  double duration_ms = 1000;
  std::uint64_t seed = 0;
  std::uint64_t max_writes = 10000000;  ///< bound; more expected writes is an error
};

/// Outcome of a workload run.
struct MultiLeaderReport {
  std::uint64_t writes = 0;
  std::vector<std::vector<std::uint64_t>> conflicts;  ///< concurrent write pairs per leader pair
  std::uint64_t total_conflicts = 0;
  std::size_t keys_with_siblings = 0;  ///< after settling
  bool converged = false;              ///< after settling
  MultiLeaderStats stats;              ///< replication queue figures after settling
};

/// Runs `workload` against a fresh cluster with `options`, settles it and reports. Memory is
/// linear in max_writes (a few hundred bytes queued per write in flight, bounded by
/// options.max_in_flight_bytes, plus each leader's state); CapacityExceeded past the bound.
MultiLeaderReport run_multileader_workload(const MultiLeaderOptions& options, const MultiLeaderWorkload& workload);

}  // namespace replikit
