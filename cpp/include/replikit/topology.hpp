#pragma once
/// \file topology.hpp
/// The nodes of a replicated cluster: one primary, any number of replicas.
///
/// Concurrency: writers (up/down, weight, promote, lag updates) serialise on a mutex; the
/// read path used by the router takes no lock. Every node lives in a fixed slot for the life
/// of the topology (at most kMaxNodes slots); the fields the router reads are atomics, and a
/// slot's name and region never change once published, so a reader never sees a torn value.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "replikit/lsn.hpp"

namespace replikit {

/// Node slots over a topology's lifetime (removed nodes keep their slot).
inline constexpr int kMaxNodes = 256;
/// Distinct region names per topology.
inline constexpr int kMaxRegions = 64;
/// The replay-delay quantile levels a LagTracker publishes per replica (nearest rank over its
/// recent delays) for reads with a consistency probability target (ReadOptions::p_consistent).
inline constexpr int kDelayLevelCount = 8;
inline constexpr std::array<double, kDelayLevelCount> kDelayLevels = {0.5, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0};
/// "No node": returned when nothing can serve a request.
inline constexpr int kNoNode = -1;
/// Topology::fresh_as_of_ns of a replica with no known instant (never sampled, no primary
/// sample, or older than the LagTracker's history): it never serves a bounded-staleness read.
inline constexpr std::int64_t kFreshUnknown = INT64_MIN;

/// What a node is now.
enum class Role : std::uint8_t { Primary = 0, Replica = 1, Removed = 2 };

/// A replica's lag state, with hysteresis (see LagTracker).
enum class LagState : std::uint8_t { Ok = 0, Lagging = 1 };

/// How to declare a node.
struct NodeSpec {
  std::string name;     ///< unique, 1..63 printable characters
  std::string region;   ///< may be empty
  double weight = 1.0;  ///< for weighted routing; >= 0 and finite
  int priority = 0;     ///< for failover selection; higher is preferred
  bool up = true;
};

/// A copy of one node's state, for monitoring and tests.
struct NodeInfo {
  int index = kNoNode;
  std::string name;
  std::string region;
  Role role = Role::Replica;
  bool up = true;
  double weight = 1.0;
  int priority = 0;
  Lsn receive_lsn;           ///< replicas: last reported receive LSN; primary: current LSN
  Lsn replay_lsn;            ///< replicas: last reported replay LSN; primary: current LSN
  std::int64_t lag_bytes = 0;
  std::int64_t lag_ns = 0;
  bool lag_known = false;    ///< a replica sample has been seen since the last reset, and the replica
                             ///< is not older than the lag history (its time lag is known)
  LagState lag_state = LagState::Ok;
  std::int32_t outstanding = 0;  ///< requests in flight (Router::begin / end)
  /// Replicas: the instant (LagTracker clock) as of which it holds every commit the primary made,
  /// as bounded-staleness routing reads it; kFreshUnknown when not known, and for the primary.
  std::int64_t fresh_as_of_ns = kFreshUnknown;
};

namespace detail {

// Flag bits of NodeSlot::flags.
inline constexpr std::uint32_t kRoleMask = 0x3;
inline constexpr std::uint32_t kUpBit = 1u << 2;
inline constexpr std::uint32_t kLaggingBit = 1u << 3;
inline constexpr std::uint32_t kLagKnownBit = 1u << 4;
inline constexpr int kRegionShift = 8;  // region id + 1 in bits 8..15 (0 = no region)

// One node: the hot atomics share a cache line; outstanding lives elsewhere because it is
// written on every request under least-outstanding routing.
struct alignas(64) NodeSlot {
  std::atomic<std::uint32_t> flags{0};
  std::atomic<double> weight{1.0};
  std::atomic<int> priority{0};
  std::atomic<std::uint64_t> replay_lsn{0};
  std::atomic<std::uint64_t> receive_lsn{0};
  std::atomic<std::int64_t> lag_ns{0};
  std::atomic<std::int64_t> lag_bytes{0};
  std::atomic<std::int64_t> fresh_as_of_ns{kFreshUnknown};  // after the fields above: they keep their offsets
  // Immutable once the slot is published (count_ stored with release).
  std::string name;
  std::string region;
};

// A replica's published replay-delay quantiles (kDelayLevels), apart from the hot slot so
// that ordinary routing reads one cache line per node as before.
struct alignas(64) DelaySlot {
  std::atomic<std::uint32_t> samples{0};  // 0: none published
  std::array<std::atomic<std::int64_t>, kDelayLevelCount> quantile_ns{};
};

struct alignas(64) PaddedCounter {
  std::atomic<std::int32_t> value{0};
};

}  // namespace detail

/// An epoch and the index of its primary, read together (Topology::epoch_and_primary).
struct EpochPrimary {
  std::uint64_t epoch = 1;
  int primary = kNoNode;
};

/// One primary and its replicas. Share it (std::shared_ptr) between a LagTracker and Routers.
class Topology {
 public:
  /// A topology with `primary` and `replicas` (names unique; at most kMaxNodes in all).
  Topology(NodeSpec primary, std::vector<NodeSpec> replicas);
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  /// Adds a replica and returns its index.
  int add_replica(NodeSpec spec);
  /// Removes a replica for good (its slot is retired, its name may not be reused).
  void remove_replica(std::string_view name);
  /// Marks a node up or down.
  void set_up(std::string_view name, bool up);
  /// Sets a replica's routing weight (>= 0, finite).
  void set_weight(std::string_view name, double weight);
  /// Sets a node's failover priority.
  void set_priority(std::string_view name, int priority);
  /// Makes replica `name` the primary; the old primary becomes a replica marked down (it must
  /// be rewound before it serves again). Returns the new epoch.
  std::uint64_t promote(std::string_view name);
  /// Makes `name` the primary unless it already is (checked and done under one lock); returns the epoch.
  /// `announce(old_primary)`, when given, runs under that lock after the checks and just before the
  /// change (not when `name` is the primary already): what it publishes precedes every view of the
  /// change and follows only a change that happens. It must not call this topology's writers.
  std::uint64_t make_primary(std::string_view name, const std::function<void(int)>& announce = {});

  /// The index of `name`; throws NotFound naming `argument`.
  int index_of(std::string_view name, const char* argument = "name") const;
  /// The index of `name`, or kNoNode.
  int find(std::string_view name) const noexcept;
  /// The name of node `index`; throws InvalidArgument for an index out of range.
  const std::string& name(int index) const;
  /// The id of `region` for routing requests (kNoNode when no node is in that region).
  int region_id(std::string_view region) const noexcept;
  /// Node slots in use (including removed ones); indexes run from 0 to size() - 1.
  int size() const noexcept { return count_.load(std::memory_order_acquire); }
  /// The primary's index.
  int primary() const noexcept { return primary_.load(std::memory_order_acquire); }
  /// Changes whenever the primary changes (starts at 1).
  std::uint64_t epoch() const noexcept { return epoch_.load(std::memory_order_acquire); }
  /// The epoch and its primary's index, read together (epoch() and primary() read apart may
  /// pair one epoch with the next one's primary while a promote runs).
  EpochPrimary epoch_and_primary() const noexcept {
    const std::uint64_t word = epoch_primary_.load(std::memory_order_acquire);
    return EpochPrimary{word >> kEpochShift, static_cast<int>(word & kPrimaryMask)};
  }
  /// Indexes of the current replicas (not removed), in slot order.
  std::vector<int> replicas() const;
  /// A copy of node `index`'s state.
  NodeInfo info(int index) const;
  /// Copies of every node's state (removed nodes excluded).
  std::vector<NodeInfo> nodes() const;

  // ---- hot path, used by Router (no lock, no allocation) ----
  /// Number of entries in the replica list.
  int replica_count() const noexcept { return replica_count_.load(std::memory_order_acquire); }
  /// The i-th replica index (0 <= i < replica_count()); may be transiently stale during an
  /// update, so callers re-check the node's role.
  int replica_at(int i) const noexcept { return replica_list_[i].load(std::memory_order_relaxed); }
  /// Raw flag word of node `index` (role, up, lagging, lag known, region).
  std::uint32_t flags(int index) const noexcept {
    return slots_[index].flags.load(std::memory_order_acquire);
  }
  /// The node's last known replay LSN (primary: its current LSN).
  std::uint64_t replay_lsn(int index) const noexcept {
    return slots_[index].replay_lsn.load(std::memory_order_acquire);
  }
  /// The node's last computed time lag in nanoseconds.
  std::int64_t lag_ns(int index) const noexcept {
    return slots_[index].lag_ns.load(std::memory_order_relaxed);
  }
  /// The instant as of which replica `index` is known to hold every commit the primary made
  /// (kFreshUnknown when not known): its staleness at `now_ns` is at most now_ns - this.
  std::int64_t fresh_as_of_ns(int index) const noexcept {
    return slots_[index].fresh_as_of_ns.load(std::memory_order_relaxed);
  }
  /// The node's routing weight.
  double weight(int index) const noexcept { return slots_[index].weight.load(std::memory_order_relaxed); }
  /// Requests in flight on node `index`.
  std::int32_t outstanding(int index) const noexcept {
    return outstanding_[index].value.load(std::memory_order_relaxed);
  }
  /// Changes whenever weights or the replica set change (for Router's weighted schedule).
  std::uint64_t weights_version() const noexcept { return weights_version_.load(std::memory_order_acquire); }

  // ---- used by LagTracker and Router ----
  /// Publishes a replica's progress and lag, `lag_known` false for an unknown time lag, and
  /// the instant it is known fresh as of (fresh_as_of_ns; LagTracker only).
  void publish_lag(int index, Lsn receive_lsn, Lsn replay_lsn, std::int64_t lag_bytes,
                   std::int64_t lag_ns, bool lagging, bool lag_known = true,
                   std::int64_t fresh_as_of_ns = kFreshUnknown) noexcept;
  /// Publishes a replica's replay-delay quantiles at kDelayLevels from `samples` delays
  /// (LagTracker only).
  void publish_delays(int index, std::uint32_t samples,
                      const std::array<std::int64_t, kDelayLevelCount>& quantile_ns) noexcept;
  /// Replay delays behind node `index`'s published quantiles (0: none).
  std::uint32_t delay_samples(int index) const noexcept {
    return delays_[index].samples.load(std::memory_order_acquire);
  }
  /// Node `index`'s published replay-delay quantile at kDelayLevels[level], in nanoseconds.
  std::int64_t delay_quantile_ns(int index, int level) const noexcept {
    return delays_[index].quantile_ns[level].load(std::memory_order_relaxed);
  }
  /// Publishes the primary's current LSN (LagTracker only).
  void publish_primary_lsn(int index, Lsn current_lsn) noexcept;
  /// Forgets every replica's lag (after a primary change).
  void clear_lag() noexcept;
  /// Adds one to node `index`'s in-flight count (Router::begin).
  void add_outstanding(int index) noexcept { outstanding_[index].value.fetch_add(1, std::memory_order_relaxed); }
  /// Takes one from node `index`'s in-flight count unless it is zero (Router::end); false when
  /// it was zero. Never makes the count negative, even with racing callers.
  bool release_outstanding(int index) noexcept {
    auto& v = outstanding_[index].value;
    std::int32_t current = v.load(std::memory_order_relaxed);
    // Lock-free: each failed exchange means another thread changed the count, and retries are
    // bounded for safety (a count that changes 4096 times in one call is treated as busy).
    for (int attempt = 0; attempt < 4096 && current > 0; ++attempt) {
      if (v.compare_exchange_weak(current, current - 1, std::memory_order_relaxed)) return true;
    }
    return false;
  }
  /// The index-checked form of name lookups used by bindings.
  void check_index(int index, const char* argument) const;

 private:
  int add_locked(const NodeSpec& spec, Role role, const char* argument);
  int region_locked(const std::string& region);
  void rebuild_replica_list_locked();
  int index_locked(std::string_view name, const char* argument) const;

  mutable std::mutex write_mutex_;
  std::array<detail::NodeSlot, kMaxNodes> slots_;
  std::array<detail::PaddedCounter, kMaxNodes> outstanding_;
  std::array<std::atomic<std::int16_t>, kMaxNodes> replica_list_{};
  std::array<std::string, kMaxRegions> regions_;
  std::atomic<int> region_count_{0};
  std::atomic<int> replica_count_{0};
  std::atomic<int> count_{0};
  std::atomic<int> primary_{kNoNode};
  std::atomic<std::uint64_t> epoch_{1};
  // (epoch << kEpochShift) | primary, stored once per promote: what epoch_and_primary() reads.
  static constexpr int kEpochShift = 16;
  static constexpr std::uint64_t kPrimaryMask = (std::uint64_t{1} << kEpochShift) - 1;
  static_assert(kMaxNodes <= (1 << kEpochShift), "a primary index must fit below the epoch");
  std::atomic<std::uint64_t> epoch_primary_{0};
  void publish_epoch_primary_locked() noexcept;
  // promote() after its checks, under write_mutex_: `next` is a valid index, not the primary.
  std::uint64_t promote_locked(int next);
  std::atomic<std::uint64_t> weights_version_{1};
  // Last: rule 7's cold quantiles (32 KB) do not move the fields above, which every read uses.
  std::array<detail::DelaySlot, kMaxNodes> delays_;
};

/// Decodes the role from a flag word.
inline Role role_of(std::uint32_t flags) noexcept { return static_cast<Role>(flags & detail::kRoleMask); }
/// Decodes the region id from a flag word (kNoNode when none).
inline int region_of(std::uint32_t flags) noexcept {
  return static_cast<int>((flags >> detail::kRegionShift) & 0xFF) - 1;
}

/// Text names for enums, as used in messages and Python reprs.
const char* to_string(Role role) noexcept;
const char* to_string(LagState state) noexcept;

}  // namespace replikit
