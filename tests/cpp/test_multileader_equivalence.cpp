// The delta-shipping multi-leader model against the model it replaced, in which every
// replication message carried a full copy of the key's state (quadratic for SET_MERGE). That
// old algorithm is kept below, only here, as the slow reference: on seeded random workloads
// (every resolution, 2-4 leaders, random delay matrices and skews, interleaved deliveries)
// both must hold the same values at every leader at every step and count the same conflicts
// per leader pair. Then the queue-size regression: queued bytes per write must not grow
// with the number of earlier writes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include "replikit/errors.hpp"
#include "replikit/multileader.hpp"
#include "replikit/random.hpp"

namespace {

namespace reference {

using namespace replikit;

class ReferenceCluster {
 public:
  explicit ReferenceCluster(MultiLeaderOptions options);

  void write(int leader, const std::string& key, const std::string& value, double at_ms, std::int64_t delta = 1);
  void run_until(double at_ms);
  void settle();
  double now_ms() const { return now_ms_; }
  MultiLeaderValue read(int leader, const std::string& key) const;
  const std::vector<std::vector<std::uint64_t>>& conflicts() const { return conflicts_; }
  std::uint64_t total_conflicts() const;
  std::uint64_t writes() const { return writes_; }
  std::size_t in_flight() const { return in_flight_.size(); }
  bool converged() const;
  std::size_t keys_with_siblings() const;
  const MultiLeaderOptions& options() const { return options_; }

 private:
  using Clock = std::vector<std::uint64_t>;
  struct Sibling {
    Clock clock;
    std::string value;
  };
  struct State {
    Clock clock;
    bool has_value = false;
    std::string value;  // LWW
    double timestamp_ms = 0;
    int origin = -1;
    std::uint64_t origin_sequence = 0;
    std::vector<Sibling> siblings;
    std::vector<std::int64_t> increments, decrements;
    std::set<std::string> elements;
  };
  struct Message {
    double at_ms;
    std::uint64_t sequence;
    int to;
    std::string key;
    State state;
    bool operator>(const Message& o) const { return at_ms != o.at_ms ? at_ms > o.at_ms : sequence > o.sequence; }
  };
  struct WriteRecord {
    int leader;
    std::uint64_t sequence;  // the leader's write count for the key after this write
  };

  void require_leader(int leader) const;
  State& state(int leader, const std::string& key);
  void receive(const Message& m);
  MultiLeaderValue value_of(const State& s) const;

  MultiLeaderOptions options_;
  std::vector<std::map<std::string, State>> data_;
  std::map<std::string, std::vector<WriteRecord>> unsettled_;  // writes not yet seen by every leader
  std::priority_queue<Message, std::vector<Message>, std::greater<Message>> in_flight_;
  std::vector<std::vector<std::uint64_t>> conflicts_;
  std::uint64_t next_sequence_ = 0;
  std::uint64_t writes_ = 0;
  double now_ms_ = 0;
};


namespace detail {

enum class Order { Equal, Before, After, Concurrent };

Order compare(const std::vector<std::uint64_t>& a, const std::vector<std::uint64_t>& b) {
  bool a_less = false, b_less = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] < b[i]) a_less = true;
    if (b[i] < a[i]) b_less = true;
  }
  if (a_less && b_less) return Order::Concurrent;
  if (a_less) return Order::Before;
  if (b_less) return Order::After;
  return Order::Equal;
}

bool lww_after(double ts_a, int origin_a, std::uint64_t seq_a, double ts_b, int origin_b, std::uint64_t seq_b) {
  if (ts_a != ts_b) return ts_a > ts_b;
  if (origin_a != origin_b) return origin_a > origin_b;
  return seq_a > seq_b;
}

void merge_into(std::vector<std::uint64_t>& into, const std::vector<std::uint64_t>& from) {
  for (std::size_t i = 0; i < into.size(); ++i) into[i] = std::max(into[i], from[i]);
}

}  // namespace detail
using detail::Order;
using detail::compare;
using detail::lww_after;
using detail::merge_into;

ReferenceCluster::ReferenceCluster(MultiLeaderOptions options) : options_(std::move(options)) {
  auto& o = options_;
  require(o.leaders >= 2 && o.leaders <= kMultiLeaderMaxLeaders, "leaders",
          "must be in [2, " + std::to_string(kMultiLeaderMaxLeaders) + "], got " + std::to_string(o.leaders));
  require(o.resolution == ConflictResolution::LastWriterWins || o.resolution == ConflictResolution::Siblings ||
              o.resolution == ConflictResolution::CounterMerge || o.resolution == ConflictResolution::SetMerge,
          "resolution", "unknown resolution");
  require(std::isfinite(o.default_delay_ms) && o.default_delay_ms >= 0, "default_delay_ms",
          "must be finite and not negative");
  const auto n = static_cast<std::size_t>(o.leaders);
  if (o.replication_delay_ms.empty()) {
    o.replication_delay_ms.assign(n, std::vector<double>(n, o.default_delay_ms));
  }
  require(o.replication_delay_ms.size() == n, "replication_delay_ms", "must be a leaders x leaders matrix");
  for (const auto& row : o.replication_delay_ms) {
    require(row.size() == n, "replication_delay_ms", "must be a leaders x leaders matrix");
    for (double d : row) {
      require(std::isfinite(d) && d >= 0, "replication_delay_ms", "delays must be finite and not negative");
    }
  }
  if (o.clock_skew_ms.empty()) o.clock_skew_ms.assign(n, 0.0);
  require(o.clock_skew_ms.size() == n, "clock_skew_ms", "needs one skew per leader");
  for (double s : o.clock_skew_ms) require(std::isfinite(s), "clock_skew_ms", "must be finite");
  require(o.max_in_flight >= 1, "max_in_flight", "must be at least 1");
  require(o.max_keys >= 1, "max_keys", "must be at least 1");
  require(o.max_siblings >= 1, "max_siblings", "must be at least 1");
  data_.resize(n);
  conflicts_.assign(n, std::vector<std::uint64_t>(n, 0));
}

void ReferenceCluster::require_leader(int leader) const {
  require(leader >= 0 && leader < options_.leaders, "leader",
          "must be in [0, " + std::to_string(options_.leaders) + "), got " + std::to_string(leader));
}

ReferenceCluster::State& ReferenceCluster::state(int leader, const std::string& key) {
  auto& store = data_[static_cast<std::size_t>(leader)];
  auto it = store.find(key);
  if (it != store.end()) return it->second;
  if (store.size() >= options_.max_keys) {
    throw CapacityExceeded("multi-leader: leader " + std::to_string(leader) + " holds max_keys=" +
                           std::to_string(options_.max_keys) + " keys");
  }
  const auto n = static_cast<std::size_t>(options_.leaders);
  State s;
  s.clock.assign(n, 0);
  s.increments.assign(n, 0);
  s.decrements.assign(n, 0);
  return store.emplace(key, std::move(s)).first->second;
}

void ReferenceCluster::write(int leader, const std::string& key, const std::string& value, double at_ms,
                               std::int64_t delta) {
  require_leader(leader);
  require(std::isfinite(at_ms), "at_ms", "must be a finite number");
  require(at_ms >= now_ms_, "at_ms", "logical time must not go backwards");
  require(delta != std::numeric_limits<std::int64_t>::min(), "delta", "out of range");
  const auto n = static_cast<std::size_t>(options_.leaders);
  // Check the bound first so that a refused write changes nothing.
  if (in_flight_.size() + (n - 1) > options_.max_in_flight) {
    throw CapacityExceeded("multi-leader: max_in_flight=" + std::to_string(options_.max_in_flight) +
                           " messages in flight; run_until or settle first");
  }
  run_until(at_ms);
  State& s = state(leader, key);
  const auto me = static_cast<std::size_t>(leader);

  // Exact conflict count: every unsettled write by another leader that this leader has not
  // yet received is concurrent with this one (it cannot have seen this write either).
  auto& unsettled = unsettled_[key];
  for (const auto& w : unsettled) {
    if (w.leader != leader && s.clock[static_cast<std::size_t>(w.leader)] < w.sequence) {
      ++conflicts_[static_cast<std::size_t>(w.leader)][me];
      ++conflicts_[me][static_cast<std::size_t>(w.leader)];
    }
  }

  s.clock[me] += 1;
  switch (options_.resolution) {
    case ConflictResolution::LastWriterWins: {
      // Pure (timestamp, leader, sequence) order, also for local writes: that total order is
      // what makes every leader converge whatever the delivery order. A write stamped
      // earlier than the value held (clock skew) is lost, as in real LWW stores.
      const double ts = at_ms + options_.clock_skew_ms[me];
      if (!s.has_value || lww_after(ts, leader, s.clock[me], s.timestamp_ms, s.origin, s.origin_sequence)) {
        s.has_value = true;
        s.value = value;
        s.timestamp_ms = ts;
        s.origin = leader;
        s.origin_sequence = s.clock[me];
      }
      break;
    }
    case ConflictResolution::Siblings:
      // The local write has seen every local sibling, so it supersedes them all.
      s.has_value = true;
      s.siblings.assign(1, Sibling{s.clock, value});
      break;
    case ConflictResolution::CounterMerge:
      s.has_value = true;
      if (delta >= 0) {
        s.increments[me] += delta;
      } else {
        s.decrements[me] += -delta;
      }
      break;
    case ConflictResolution::SetMerge:
      s.has_value = true;
      s.elements.insert(value);
      break;
  }
  unsettled.push_back(WriteRecord{leader, s.clock[me]});
  ++writes_;
  for (std::size_t to = 0; to < n; ++to) {
    if (to == me) continue;
    in_flight_.push(Message{at_ms + options_.replication_delay_ms[me][to], next_sequence_++, static_cast<int>(to), key, s});
  }
}

void ReferenceCluster::receive(const Message& m) {
  State& local = state(m.to, m.key);
  const State& in = m.state;
  const Order order = compare(in.clock, local.clock);
  if (order == Order::Before || order == Order::Equal) return;  // nothing new
  switch (options_.resolution) {
    case ConflictResolution::LastWriterWins: {
      const bool take = in.has_value && (!local.has_value || lww_after(in.timestamp_ms, in.origin, in.origin_sequence,
                                                                        local.timestamp_ms, local.origin,
                                                                        local.origin_sequence));
      if (take) {
        local.has_value = true;
        local.value = in.value;
        local.timestamp_ms = in.timestamp_ms;
        local.origin = in.origin;
        local.origin_sequence = in.origin_sequence;
      }
      break;
    }
    case ConflictResolution::Siblings: {
      std::vector<Sibling> all = local.siblings;
      all.insert(all.end(), in.siblings.begin(), in.siblings.end());
      std::vector<Sibling> kept;
      for (std::size_t i = 0; i < all.size(); ++i) {
        bool covered = false;
        for (std::size_t j = 0; j < all.size() && !covered; ++j) {
          if (i == j) continue;
          const Order o = compare(all[i].clock, all[j].clock);
          covered = o == Order::Before || (o == Order::Equal && j < i);
        }
        if (!covered) kept.push_back(all[i]);
      }
      if (kept.size() > options_.max_siblings) {
        throw CapacityExceeded("multi-leader: key '" + m.key + "' has more than max_siblings=" +
                               std::to_string(options_.max_siblings) + " siblings");
      }
      local.siblings = std::move(kept);
      local.has_value = local.has_value || in.has_value;
      break;
    }
    case ConflictResolution::CounterMerge:
      for (std::size_t i = 0; i < local.increments.size(); ++i) {
        local.increments[i] = std::max(local.increments[i], in.increments[i]);
        local.decrements[i] = std::max(local.decrements[i], in.decrements[i]);
      }
      local.has_value = local.has_value || in.has_value;
      break;
    case ConflictResolution::SetMerge:
      local.elements.insert(in.elements.begin(), in.elements.end());
      local.has_value = local.has_value || in.has_value;
      break;
  }
  merge_into(local.clock, in.clock);

  // Forget writes every leader has now seen: later writes are causally after them.
  auto it = unsettled_.find(m.key);
  if (it == unsettled_.end()) return;
  auto& records = it->second;
  records.erase(std::remove_if(records.begin(), records.end(),
                               [&](const WriteRecord& w) {
                                 for (const auto& store : data_) {
                                   auto s = store.find(m.key);
                                   if (s == store.end() ||
                                       s->second.clock[static_cast<std::size_t>(w.leader)] < w.sequence) {
                                     return false;
                                   }
                                 }
                                 return true;
                               }),
                records.end());
  if (records.empty()) unsettled_.erase(it);
}

void ReferenceCluster::run_until(double at_ms) {
  require(std::isfinite(at_ms), "at_ms", "must be a finite number");
  require(at_ms >= now_ms_, "at_ms", "logical time must not go backwards");
  // Bounded: each message is delivered once and no delivery sends new messages.
  while (!in_flight_.empty() && in_flight_.top().at_ms <= at_ms) {
    const Message m = in_flight_.top();
    in_flight_.pop();
    now_ms_ = std::max(now_ms_, m.at_ms);
    receive(m);
  }
  now_ms_ = at_ms;
}

void ReferenceCluster::settle() {
  double last = now_ms_;
  // Deliveries are strictly ordered by time; the largest is at most max delay after now.
  while (!in_flight_.empty()) {
    const Message m = in_flight_.top();
    in_flight_.pop();
    last = std::max(last, m.at_ms);
    now_ms_ = last;
    receive(m);
  }
}

MultiLeaderValue ReferenceCluster::value_of(const State& s) const {
  MultiLeaderValue v;
  if (!s.has_value) return v;
  switch (options_.resolution) {
    case ConflictResolution::LastWriterWins:
      v.values.push_back(s.value);
      break;
    case ConflictResolution::Siblings:
      for (const auto& sib : s.siblings) v.values.push_back(sib.value);
      std::sort(v.values.begin(), v.values.end());
      break;
    case ConflictResolution::CounterMerge:
      for (std::size_t i = 0; i < s.increments.size(); ++i) v.counter += s.increments[i] - s.decrements[i];
      break;
    case ConflictResolution::SetMerge:
      v.values.assign(s.elements.begin(), s.elements.end());
      break;
  }
  return v;
}

MultiLeaderValue ReferenceCluster::read(int leader, const std::string& key) const {
  require_leader(leader);
  const auto& store = data_[static_cast<std::size_t>(leader)];
  auto it = store.find(key);
  return it == store.end() ? MultiLeaderValue{} : value_of(it->second);
}

std::uint64_t ReferenceCluster::total_conflicts() const {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < conflicts_.size(); ++i) {
    for (std::size_t j = i + 1; j < conflicts_.size(); ++j) total += conflicts_[i][j];
  }
  return total;
}

bool ReferenceCluster::converged() const {
  std::set<std::string> keys;
  for (const auto& store : data_) {
    for (const auto& [key, s] : store) keys.insert(key);
  }
  for (const auto& key : keys) {
    const MultiLeaderValue first = read(0, key);
    for (int l = 1; l < options_.leaders; ++l) {
      const MultiLeaderValue other = read(l, key);
      if (other.values != first.values || other.counter != first.counter) return false;
    }
  }
  return true;
}

std::size_t ReferenceCluster::keys_with_siblings() const {
  std::set<std::string> keys;
  for (const auto& store : data_) {
    for (const auto& [key, s] : store) {
      if (s.siblings.size() > 1) keys.insert(key);
    }
  }
  return keys.size();
}


}  // namespace reference

using namespace replikit;

struct Scenario {
  MultiLeaderOptions options;
  int keys;
  int writes;
};

Scenario random_scenario(Xoshiro256& rng, ConflictResolution resolution) {
  Scenario sc;
  auto& o = sc.options;
  o.leaders = 2 + static_cast<int>(rng.below(3));
  o.resolution = resolution;
  o.max_siblings = 1000;
  const auto n = static_cast<std::size_t>(o.leaders);
  o.replication_delay_ms.assign(n, std::vector<double>(n, 0.0));
  for (auto& row : o.replication_delay_ms) {
    for (double& d : row) d = std::floor(rng.uniform() * 80.0);  // whole ms: ties happen
  }
  o.clock_skew_ms.assign(n, 0.0);
  for (double& s : o.clock_skew_ms) s = std::floor(rng.uniform() * 40.0) - 20.0;
  sc.keys = 1 + static_cast<int>(rng.below(4));
  sc.writes = 50 + static_cast<int>(rng.below(250));
  return sc;
}

template <typename A, typename B>
void expect_same(const A& fast, const B& slow, int leaders, int keys, const std::string& where) {
  for (int l = 0; l < leaders; ++l) {
    for (int k = 0; k < keys; ++k) {
      const std::string key = "k" + std::to_string(k);
      const MultiLeaderValue a = fast.read(l, key), b = slow.read(l, key);
      ASSERT_EQ(a.values, b.values) << where << " leader " << l << " key " << key;
      ASSERT_EQ(a.counter, b.counter) << where << " leader " << l << " key " << key;
    }
  }
  ASSERT_EQ(fast.conflicts(), slow.conflicts()) << where;
  ASSERT_EQ(fast.in_flight(), slow.in_flight()) << where;
  ASSERT_EQ(fast.now_ms(), slow.now_ms()) << where;
}

void compare_on_seed(ConflictResolution resolution, std::uint64_t seed) {
  Xoshiro256 rng(seed);
  const Scenario sc = random_scenario(rng, resolution);
  MultiLeaderCluster fast(sc.options);
  reference::ReferenceCluster slow(sc.options);
  double t = 0;
  for (int i = 0; i < sc.writes; ++i) {
    t += std::floor(rng.uniform() * 12.0);  // often the same instant
    const int leader = static_cast<int>(rng.below(static_cast<std::uint32_t>(sc.options.leaders)));
    const std::string key = "k" + std::to_string(rng.below(static_cast<std::uint32_t>(sc.keys)));
    // Repeated values too, so that set union and sibling dedup are exercised.
    const std::string value = "v" + std::to_string(rng.below(40));
    const auto delta = static_cast<std::int64_t>(rng.below(7)) - 3;
    fast.write(leader, key, value, t, delta);
    slow.write(leader, key, value, t, delta);
    if (rng.below(8) == 0) {
      t += std::floor(rng.uniform() * 60.0);
      fast.run_until(t);
      slow.run_until(t);
    }
    expect_same(fast, slow, sc.options.leaders, sc.keys, "seed " + std::to_string(seed) + " step " + std::to_string(i));
    if (::testing::Test::HasFatalFailure()) return;
  }
  fast.settle();
  slow.settle();
  expect_same(fast, slow, sc.options.leaders, sc.keys, "seed " + std::to_string(seed) + " settled");
  EXPECT_EQ(fast.converged(), slow.converged());
  EXPECT_EQ(fast.keys_with_siblings(), slow.keys_with_siblings());
  EXPECT_EQ(fast.total_conflicts(), slow.total_conflicts());
  EXPECT_EQ(fast.stats().bytes_in_flight, 0u) << "everything delivered: nothing may stay queued";
}

class MultiLeaderEquivalence : public ::testing::TestWithParam<ConflictResolution> {};

TEST_P(MultiLeaderEquivalence, SameStatesAndConflictsAsTheFullCopyModel) {
  for (std::uint64_t seed = 1; seed <= 60; ++seed) {
    compare_on_seed(GetParam(), seed);
    if (HasFatalFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(AllResolutions, MultiLeaderEquivalence,
                         ::testing::Values(ConflictResolution::LastWriterWins, ConflictResolution::Siblings,
                                           ConflictResolution::CounterMerge, ConflictResolution::SetMerge));

// Regression for the quadratic queue: with every write still in flight (long delay), each
// SET_MERGE write used to queue a copy of all earlier elements per peer. Now the bytes queued
// per write are a constant: doubling the writes at most doubles the bytes.
MultiLeaderStats set_merge_queue(int writes) {
  MultiLeaderOptions o;
  o.leaders = 2;
  o.resolution = ConflictResolution::SetMerge;
  o.default_delay_ms = 1e9;
  MultiLeaderCluster c(o);
  for (int i = 0; i < writes; ++i) c.write(i % 2, "k", "element-" + std::to_string(i), i * 1.0);
  return c.stats();
}

TEST(MultiLeaderQueue, BytesQueuedPerWriteDoNotGrowWithEarlierWrites) {
  const MultiLeaderStats small = set_merge_queue(1000), large = set_merge_queue(4000);
  EXPECT_EQ(small.messages_in_flight, 1000u);
  EXPECT_EQ(large.messages_in_flight, 4000u);
  // The full-copy model queued ~ writes^2 / 2 elements: 16x the bytes for 4x the writes.
  // (5% slack: the later elements' names are a digit longer.)
  EXPECT_LE(static_cast<double>(large.bytes_in_flight), 4.2 * static_cast<double>(small.bytes_in_flight));
  EXPECT_LE(large.bytes_in_flight, 4000u * 512u) << "a write's message is small and fixed-size";
  EXPECT_EQ(large.peak_bytes_in_flight, large.bytes_in_flight);
  EXPECT_EQ(large.bytes_sent, large.bytes_in_flight);
}

TEST(MultiLeaderQueue, EveryResolutionFreesTheQueueWhenSettled) {
  for (auto res : {ConflictResolution::LastWriterWins, ConflictResolution::Siblings, ConflictResolution::CounterMerge,
                   ConflictResolution::SetMerge}) {
    MultiLeaderOptions o;
    o.leaders = 3;
    o.resolution = res;
    MultiLeaderCluster c(o);
    for (int i = 0; i < 300; ++i) c.write(i % 3, "k" + std::to_string(i % 5), "v" + std::to_string(i), i * 3.0);
    const MultiLeaderStats busy = c.stats();
    EXPECT_GT(busy.bytes_in_flight, 0u);
    EXPECT_EQ(busy.messages_sent, 600u);
    c.settle();
    const MultiLeaderStats idle = c.stats();
    EXPECT_EQ(idle.messages_in_flight, 0u);
    EXPECT_EQ(idle.bytes_in_flight, 0u);
    EXPECT_EQ(idle.peak_messages_in_flight, busy.peak_messages_in_flight);
    EXPECT_TRUE(c.converged());
  }
}

TEST(MultiLeaderQueue, ByteBoundRefusesAWriteAndChangesNothing) {
  MultiLeaderOptions o;
  o.leaders = 2;
  o.resolution = ConflictResolution::SetMerge;
  o.default_delay_ms = 1000;
  o.max_in_flight_bytes = 4096;
  MultiLeaderCluster c(o);
  int accepted = 0;
  try {
    for (; accepted < 1000; ++accepted) c.write(0, "k", "e" + std::to_string(accepted), 0);
    FAIL() << "the byte bound never refused a write";
  } catch (const CapacityExceeded& e) {
    EXPECT_NE(std::string(e.what()).find("max_in_flight_bytes=4096"), std::string::npos) << e.what();
  }
  EXPECT_GT(accepted, 0);
  EXPECT_LE(c.stats().peak_bytes_in_flight, 4096u);
  EXPECT_EQ(c.writes(), static_cast<std::uint64_t>(accepted));
  EXPECT_EQ(c.read(0, "k").values.size(), static_cast<std::size_t>(accepted));
  c.run_until(1000);  // deliveries free the queue: writes are accepted again
  EXPECT_EQ(c.stats().bytes_in_flight, 0u);
  c.write(0, "k", "later", 1000);
  c.settle();
  EXPECT_EQ(c.read(1, "k").values.size(), static_cast<std::size_t>(accepted) + 1);
}

TEST(MultiLeaderQueue, WorkloadPastTheByteBoundSaysWhichKnobsBoundIt) {
  MultiLeaderOptions o;
  o.resolution = ConflictResolution::SetMerge;
  o.default_delay_ms = 1e9;
  o.max_in_flight_bytes = 100000;
  MultiLeaderWorkload w;
  w.writes_per_s = {1000.0, 1000.0};
  w.keys = 1;
  w.duration_ms = 1000;
  try {
    run_multileader_workload(o, w);
    FAIL() << "2000 writes queued within 100000 bytes";
  } catch (const CapacityExceeded& e) {
    EXPECT_NE(std::string(e.what()).find("max_in_flight_bytes=100000"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("writes_per_s"), std::string::npos) << e.what();
  }
  o.max_in_flight_bytes = 2000 * 512;
  EXPECT_TRUE(run_multileader_workload(o, w).converged);
}

TEST(MultiLeaderQueue, ZeroByteBoundIsInvalid) {
  MultiLeaderOptions o;
  o.max_in_flight_bytes = 0;
  try {
    MultiLeaderCluster c(o);
    FAIL() << "accepted max_in_flight_bytes=0";
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(e.argument(), "max_in_flight_bytes");
  }
}

}  // namespace
