#include "replikit/router.hpp"

#include <cmath>
#include <limits>

#include "replikit/errors.hpp"
#include "replikit/random.hpp"
#include "router_needs.hpp"

namespace replikit {

namespace {

// ---- thread slot registry: which of kRouterThreadSlots slots this thread owns ----
std::atomic<std::uint64_t> g_slots_in_use{0};

struct ThreadSlot {
  int id = -1;  // -1: not yet assigned
  ~ThreadSlot() {
    if (id >= 0 && id < kRouterThreadSlots) {
      g_slots_in_use.fetch_and(~(std::uint64_t{1} << id), std::memory_order_acq_rel);
    }
    // Routing from a later thread_local destructor of this thread must not use the slot just
    // freed (another thread may own it now): it goes to the shared overflow slot.
    id = kRouterThreadSlots;
  }
  int get() noexcept {
    if (id >= 0) return id;
    id = kRouterThreadSlots;  // overflow slot unless a free one is claimed below
    std::uint64_t bits = g_slots_in_use.load(std::memory_order_acquire);
    for (int attempt = 0; attempt < 256 && bits != ~std::uint64_t{0}; ++attempt) {
      int free_bit = __builtin_ctzll(~bits);
      if (g_slots_in_use.compare_exchange_weak(bits, bits | (std::uint64_t{1} << free_bit),
                                               std::memory_order_acq_rel)) {
        id = free_bit;
        break;
      }
    }
    return id;
  }
};

thread_local ThreadSlot t_slot;

constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ull;

}  // namespace

struct alignas(64) Router::ThreadState {
  bool shared = false;  // the overflow slot: several threads, so read-modify-writes must be atomic
  std::atomic<std::uint32_t> cursor{0};
  std::atomic<std::uint64_t> draws{0};
  std::uint64_t seed = 0;
  int sticky_node = kNoNode;    // RouterConfig::sticky_reads: the replica this thread stays on
  std::uint32_t sticky_left = 0;  // ... for this many more reads
  std::array<std::atomic<std::uint64_t>, kMaxNodes> by_node{};
  std::array<std::atomic<std::uint64_t>, kReasonCount> by_reason{};

  template <typename T>
  T bump(std::atomic<T>& v) noexcept {
    if (shared) return v.fetch_add(1, std::memory_order_relaxed);
    T old = v.load(std::memory_order_relaxed);
    v.store(old + 1, std::memory_order_relaxed);
    return old;
  }
  // The next position in [0, n) for round-robin.
  std::uint32_t next_position(std::uint32_t n) noexcept {
    if (shared) return cursor.fetch_add(1, std::memory_order_relaxed) % n;
    std::uint32_t c = cursor.load(std::memory_order_relaxed);
    if (c >= n) c %= n;  // only at the wrap, or when the replica count shrank
    cursor.store(c + 1, std::memory_order_relaxed);
    return c;
  }
  // After next_position(n) returned `pos`, moves the cursor `k` more turns (modulo n).
  void skip(std::uint32_t pos, std::uint32_t k, std::uint32_t n) noexcept {
    if (shared) {
      cursor.fetch_add(k, std::memory_order_relaxed);  // read modulo n anyway
    } else {
      cursor.store((pos + k + 1) % n, std::memory_order_relaxed);
    }
  }
  // A uniform integer in [0, n): counter-based, so the overflow slot needs no lock.
  std::uint32_t random_below(std::uint32_t n) noexcept {
    SplitMix64 mix(seed + bump(draws) * kGolden);
    return static_cast<std::uint32_t>(((mix.next() >> 32) * n) >> 32);
  }
  double random_unit() noexcept {
    SplitMix64 mix(seed + bump(draws) * kGolden);
    return static_cast<double>(mix.next() >> 11) * 0x1.0p-53;
  }
};

Router::Router(std::shared_ptr<Topology> topology, RouterConfig config)
    : topology_(std::move(topology)), config_(std::move(config)) {
  require(topology_ != nullptr, "topology", "must not be null");
  require(static_cast<int>(config_.policy) <= 4, "policy",
          "unknown policy");
  require(std::isfinite(config_.time_window_ms) && config_.time_window_ms >= 0, "time_window_ms",
          "must be a finite, non-negative number of milliseconds");
  require(config_.time_window_ms <= 1e10, "time_window_ms", "must be at most 1e10 ms");
  require(config_.sticky_reads >= 1 && config_.sticky_reads <= 1000000, "sticky_reads",
          "must be in [1, 1000000]");
  default_region_ = config_.region.empty() ? kNoNode : topology_->region_id(config_.region);
  require(config_.region.empty() || default_region_ != kNoNode, "region",
          "no node is in region '" + config_.region + "'");
  states_.reset(new ThreadState[kRouterThreadSlots + 1]);
  for (int i = 0; i <= kRouterThreadSlots; ++i) {
    states_[i].seed = SplitMix64(config_.seed ^ (static_cast<std::uint64_t>(i) * kGolden)).next();
    // Threads start their turns at different replicas (slot i at the i-th), so concurrent
    // threads do not move over the replicas in lockstep (and with sticky_reads they spread).
    states_[i].cursor.store(static_cast<std::uint32_t>(i), std::memory_order_relaxed);
  }
  states_[kRouterThreadSlots].shared = true;
  refresh_schedule();
}

Router::~Router() = default;

Router::ThreadState& Router::thread_state() noexcept { return states_[t_slot.get()]; }

void Router::count(ThreadState& ts, int node, Reason reason) noexcept {
  if (node >= 0) ts.bump(ts.by_node[node]);
  ts.bump(ts.by_reason[static_cast<int>(reason)]);
}

void Router::refresh_schedule() noexcept {
  std::unique_lock<std::mutex> lock(schedule_mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return;  // another thread is rebuilding; keep using the old one
  std::uint64_t version = topology_->weights_version();
  // Fixed-size scratch: this runs on the read path (when weights change), so it allocates nothing.
  std::array<int, kMaxNodes> nodes;
  std::array<double, kMaxNodes> weights;
  std::array<double, kMaxNodes> current;
  int count = 0;
  double total = 0;
  bool integral = true;
  const int slots = topology_->size();
  for (int i = 0; i < slots && count < kMaxNodes; ++i) {
    if (role_of(topology_->flags(i)) != Role::Replica) continue;
    double w = topology_->weight(i);
    nodes[count] = i;
    weights[count] = w;
    current[count] = 0.0;
    ++count;
    total += w;
    integral = integral && w == std::floor(w);
  }
  int length = 0;
  if (total > 0) {
    // Integer weights: one exact period; otherwise a long enough approximation.
    length = (integral && total <= kScheduleMax) ? static_cast<int>(total) : std::min<int>(kScheduleMax, 64 * count);
    for (int step = 0; step < length; ++step) {
      int best = 0;
      for (int k = 0; k < count; ++k) {
        current[k] += weights[k];
        if (current[k] > current[best]) best = k;
      }
      current[best] -= total;
      schedule_[step].store(static_cast<std::int16_t>(nodes[best]), std::memory_order_relaxed);
    }
  }
  schedule_length_.store(length, std::memory_order_release);
  schedule_version_.store(version, std::memory_order_release);
}

Decision Router::route_write() noexcept {
  ThreadState& ts = thread_state();
  Decision d;
  d.epoch = topology_->epoch();
  int p = topology_->primary();
  bool up = (topology_->flags(p) & detail::kUpBit) != 0;
  d.node = up ? p : kNoNode;
  d.reason = up ? Reason::Write : Reason::PrimaryDown;
  count(ts, d.node, d.reason);
  return d;
}

using router_detail::kAnyFreshness;

namespace {

// Can replica `i` serve a read needing `required_lsn`, known fresh as of `min_fresh_ns`
// (negative, kAnyFreshness: no bound)?
inline bool qualifies(const Topology& t, int i, std::uint64_t required_lsn, std::int64_t min_fresh_ns) noexcept {
  std::uint32_t f = t.flags(i);
  constexpr std::uint32_t mask = detail::kRoleMask | detail::kUpBit | detail::kLaggingBit;
  if ((f & mask) != (static_cast<std::uint32_t>(Role::Replica) | detail::kUpBit)) return false;
  if (required_lsn != 0 && t.replay_lsn(i) < required_lsn) return false;
  // The staleness bound is judged on an upper bound that holds now (an unknown one, kFreshUnknown,
  // is below every bound), never on the interpolated lag of the last probe.
  if (min_fresh_ns >= 0 && t.fresh_as_of_ns(i) < min_fresh_ns) return false;
  return true;
}

// Why no replica may serve a read: the first test that none of them passed, of those counted
// (up, not LAGGING, covering the LSN, likely consistent), or else the lag bound.
inline Reason why_none(int up, int healthy, int covering, int likely) noexcept {
  return up == 0         ? Reason::NoReplicaUp
         : healthy == 0  ? Reason::AllReplicasLagging
         : covering == 0 ? Reason::NoReplicaCaughtUp
         : likely == 0   ? Reason::NoReplicaLikelyConsistent
                         : Reason::NoReplicaFresh;
}

}  // namespace

using router_detail::check_read_arguments;
using router_detail::probability_target;
using router_detail::read_needs;
using router_detail::ReadNeeds;

int Router::last_replica(const Session& session, std::uint64_t required_lsn) const noexcept {
  const Topology& t = *topology_;
  const int i = session.last_replica;
  // Rule 5: the session saw that replica's replay at last_replica_lsn; within one epoch its
  // replay does not go back, so it covers any LSN up to that whatever its last probe said.
  if (i < 0 || i >= t.size() || session.last_replica_epoch != t.epoch() ||
      session.last_replica_lsn.value < required_lsn) {
    return kNoNode;
  }
  return qualifies(t, i, 0, kAnyFreshness) ? i : kNoNode;
}

int Router::pick(ThreadState& ts, std::uint64_t required_lsn, std::int64_t min_fresh_ns, int region,
                 Reason* why) noexcept {
  const Topology& t = *topology_;
  const int n = t.replica_count();
  if (n == 0) {
    *why = Reason::NoReplicaUp;
    return kNoNode;
  }
  const auto un = static_cast<std::uint32_t>(n);
  // Fast paths: one or two probes; anything unusual goes to the fair, exhaustive pick.
  switch (config_.policy) {
    case Policy::RoundRobin:
    case Policy::NearestRegion: {
      if (config_.policy == Policy::NearestRegion && region != kNoNode) break;
      // The replica whose turn it is, or else the next one after it that qualifies, and the
      // turn moves past the one chosen. (Falling back to the fair pick with this same cursor
      // taken modulo the eligible count locked into a short cycle: with r2 of r1..r3 down,
      // every read went to r1 and r3 got none.)
      const std::uint32_t pos = ts.next_position(un);
      for (std::uint32_t k = 0; k < un; ++k) {
        int i = t.replica_at(static_cast<int>(pos + k < un ? pos + k : pos + k - un));
        if (qualifies(t, i, required_lsn, min_fresh_ns)) {
          if (k > 0) ts.skip(pos, k, un);
          return i;
        }
      }
      break;  // none qualifies: the exhaustive pick below says why
    }
    case Policy::Weighted: {
      if (schedule_version_.load(std::memory_order_acquire) != t.weights_version()) refresh_schedule();
      int length = schedule_length_.load(std::memory_order_acquire);
      if (length > 0) {
        int i = schedule_[ts.next_position(static_cast<std::uint32_t>(length))].load(std::memory_order_relaxed);
        if (i >= 0 && i < t.size() && qualifies(t, i, required_lsn, min_fresh_ns)) return i;
      }
      break;
    }
    case Policy::LeastOutstanding: {
      if (n >= 2) {
        std::uint32_t a = ts.random_below(un);
        std::uint32_t b = ts.random_below(un - 1);
        if (b >= a) ++b;
        int ia = t.replica_at(static_cast<int>(a));
        int ib = t.replica_at(static_cast<int>(b));
        bool qa = qualifies(t, ia, required_lsn, min_fresh_ns);
        bool qb = qualifies(t, ib, required_lsn, min_fresh_ns);
        if (qa && qb) return t.outstanding(ib) < t.outstanding(ia) ? ib : ia;
      }
      break;
    }
    case Policy::LeastLag:
      break;
  }
  return pick_fair(ts, required_lsn, min_fresh_ns, region, why, router_detail::AnyReplica{});
}

// One instance per replica test: the common path's (router_detail::AnyReplica) compiles to the
// scan it had before rule 7, with no per-replica target check or extra counter.
template <typename Test>
int Router::pick_fair(ThreadState& ts, std::uint64_t required_lsn, std::int64_t min_fresh_ns, int region,
                      Reason* why, const Test& test) noexcept {
  const Topology& t = *topology_;
  const int n = t.replica_count();
  std::int16_t eligible[kMaxNodes];
  std::int16_t local[kMaxNodes];
  int m = 0, m_local = 0, up = 0, healthy = 0, covering = 0, likely = 0;
  for (int k = 0; k < n; ++k) {
    int i = t.replica_at(k);
    std::uint32_t f = t.flags(i);
    if (role_of(f) != Role::Replica || !(f & detail::kUpBit)) continue;
    ++up;
    if (f & detail::kLaggingBit) continue;
    ++healthy;
    if (required_lsn != 0 && t.replay_lsn(i) < required_lsn) continue;
    ++covering;
    if constexpr (Test::kActive) {
      if (!test(t, i)) continue;
      ++likely;
    }
    if (min_fresh_ns >= 0 && t.fresh_as_of_ns(i) < min_fresh_ns) continue;
    eligible[m++] = static_cast<std::int16_t>(i);
    if (region != kNoNode && region_of(f) == region) local[m_local++] = static_cast<std::int16_t>(i);
  }
  if (m == 0) {
    *why = why_none(up, healthy, covering, Test::kActive ? likely : covering);
    return kNoNode;
  }
  const auto um = static_cast<std::uint32_t>(m);
  switch (config_.policy) {
    case Policy::RoundRobin:
      return eligible[ts.next_position(um)];
    case Policy::NearestRegion:
      if (m_local > 0) return local[ts.next_position(static_cast<std::uint32_t>(m_local))];
      return eligible[ts.next_position(um)];
    case Policy::Weighted: {
      double total = 0;
      for (int k = 0; k < m; ++k) total += t.weight(eligible[k]);
      if (total <= 0) return eligible[ts.random_below(um)];
      double x = ts.random_unit() * total;
      for (int k = 0; k < m; ++k) {
        x -= t.weight(eligible[k]);
        if (x < 0) return eligible[k];
      }
      return eligible[m - 1];
    }
    case Policy::LeastLag: {
      // A replica that has not reported yet has lag_ns 0 but no known lag: rank it after every
      // known lag, or one silent replica would draw all the reads.
      auto lag_key = [&t](int i) {
        return (t.flags(i) & detail::kLagKnownBit) ? t.lag_ns(i) : std::numeric_limits<std::int64_t>::max();
      };
      // Rotate the starting point so equal lags share the load.
      std::uint32_t start = ts.next_position(um);
      int best = eligible[start];
      std::int64_t best_lag = lag_key(best);
      for (std::uint32_t k = start + 1; k < start + um; ++k) {
        int i = eligible[k < um ? k : k - um];
        std::int64_t lag = lag_key(i);
        if (lag < best_lag) {
          best = i;
          best_lag = lag;
        }
      }
      return best;
    }
    case Policy::LeastOutstanding: {
      if (m == 1) return eligible[0];
      std::uint32_t a = ts.random_below(um);
      std::uint32_t b = ts.random_below(um - 1);
      if (b >= a) ++b;
      int ia = eligible[a], ib = eligible[b];
      return t.outstanding(ib) < t.outstanding(ia) ? ib : ia;
    }
  }
  return eligible[0];
}

Decision Router::route_read(const Session& session, Consistency consistency, std::int64_t now_ns,
                            const ReadOptions& options) {
  check_read_arguments(now_ns, options);
  // Every return returns `d`, so it is built in the caller's result (named return value
  // optimisation). Another returned object, as `return route_read_target(...)` was, makes GCC
  // build `d` on the stack and copy it out: a wide load of narrow stores just made, which stalls.
  Decision d;
  if (options.p_consistent && route_read_target(session, consistency, now_ns, options, &d)) return d;
  d.epoch = topology_->epoch();
  const ReadNeeds needs = read_needs(session, consistency, now_ns, options);
  ThreadState& ts = thread_state();
  if (needs.replica_allowed) {
    const std::uint64_t required = needs.required_lsn;
    d.required_lsn = Lsn(required);
    int region = options.region != kNoNode ? options.region : default_region_;
    int node = kNoNode;
    if (config_.sticky_reads > 1 && !ts.shared) {
      if (ts.sticky_left > 0 && qualifies(*topology_, ts.sticky_node, required, needs.min_fresh_ns) &&
          (region == kNoNode || config_.policy != Policy::NearestRegion ||
           region_of(topology_->flags(ts.sticky_node)) == region)) {
        --ts.sticky_left;
        node = ts.sticky_node;
      } else {
        node = pick(ts, required, needs.min_fresh_ns, region, &d.reason);
        ts.sticky_node = node;
        ts.sticky_left = node == kNoNode ? 0 : config_.sticky_reads - 1;
      }
    } else {
      node = pick(ts, required, needs.min_fresh_ns, region, &d.reason);
    }
    if (node == kNoNode && d.reason == Reason::NoReplicaCaughtUp) node = last_replica(session, required);
    if (node != kNoNode) {
      d.node = node;
      d.reason = needs.served;
      if (options.count) count(ts, node, needs.served);
      return d;
    }
  } else {
    d.reason = needs.primary_reason;
  }
  int p = topology_->primary();
  d.node = (topology_->flags(p) & detail::kUpBit) ? p : kNoNode;
  if (options.count) count(ts, d.node, d.reason);
  return d;
}

// Kept out of route_read's body (cold, not inlined): the common path stays as it was.
[[gnu::cold, gnu::noinline]] bool Router::route_read_target(const Session& session, Consistency consistency,
                                                          std::int64_t now_ns, const ReadOptions& options,
                                                          Decision* out) {
  detail::ProbabilityTarget target;
  // No recent write: route_read goes on with a plain EVENTUAL read (it ignores p_consistent).
  if (!probability_target(session, consistency, now_ns, options, &target)) return false;
  Decision& d = *out;
  d.epoch = topology_->epoch();
  ThreadState& ts = thread_state();
  // Judged per replica: the exhaustive pick, with no stickiness to honour.
  const int region = options.region != kNoNode ? options.region : default_region_;
  d.node = pick_fair(ts, 0, kAnyFreshness, region, &d.reason, router_detail::LikelyConsistent{target});
  if (d.node != kNoNode) {
    d.reason = Reason::ReplicaLikelyConsistent;
  } else {
    const int p = topology_->primary();
    d.node = (topology_->flags(p) & detail::kUpBit) ? p : kNoNode;
  }
  if (options.count) count(ts, d.node, d.reason);
  return true;
}

void Router::record(const Decision& decision) noexcept {
  if (decision.node >= topology_->size()) return;
  count(thread_state(), decision.node, decision.reason);
}

void Router::begin(int node) {
  topology_->check_index(node, "node");
  topology_->add_outstanding(node);
}

bool Router::end_noexcept(int node) noexcept {
  return node >= 0 && node < topology_->size() && topology_->release_outstanding(node);
}

void Router::end(int node) {
  topology_->check_index(node, "node");
  if (!topology_->release_outstanding(node)) {
    throw InvalidArgument("node", "end() without a matching begin() on node " + topology_->name(node));
  }
}

RouterCounters Router::counters() const {
  RouterCounters out;
  out.by_node.assign(static_cast<std::size_t>(topology_->size()), 0);
  for (int s = 0; s <= kRouterThreadSlots; ++s) {
    const ThreadState& ts = states_[s];
    for (std::size_t i = 0; i < out.by_node.size(); ++i) out.by_node[i] += ts.by_node[i].load(std::memory_order_relaxed);
    for (int r = 0; r < kReasonCount; ++r) out.by_reason[r] += ts.by_reason[r].load(std::memory_order_relaxed);
  }
  for (auto c : out.by_reason) out.total += c;
  return out;
}

void Router::reset_counters() {
  for (int s = 0; s <= kRouterThreadSlots; ++s) {
    for (auto& c : states_[s].by_node) c.store(0, std::memory_order_relaxed);
    for (auto& c : states_[s].by_reason) c.store(0, std::memory_order_relaxed);
  }
}

void Router::reset_thread_state() noexcept {
  ThreadState& ts = thread_state();
  if (ts.shared) return;  // the overflow slot is shared: nothing to make deterministic
  ts.cursor.store(0, std::memory_order_relaxed);
  ts.draws.store(0, std::memory_order_relaxed);
  ts.seed = SplitMix64(config_.seed).next();
  ts.sticky_node = kNoNode;
  ts.sticky_left = 0;
}

}  // namespace replikit
