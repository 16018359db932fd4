#include "replikit/multileader.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "replikit/errors.hpp"
#include "replikit/random.hpp"

namespace replikit {

namespace {

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

// Estimates of heap use, for the bound on queued replication.
constexpr std::size_t kControlBlockBytes = 32;  // shared_ptr's control block, allocated with the snapshot

std::size_t element_bytes(const std::string& value) { return sizeof(std::string) + value.size(); }

}  // namespace

MultiLeaderCluster::MultiLeaderCluster(MultiLeaderOptions options) : options_(std::move(options)) {
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
  require(o.max_in_flight_bytes >= 1, "max_in_flight_bytes", "must be at least 1");
  require(o.max_keys >= 1, "max_keys", "must be at least 1");
  require(o.max_siblings >= 1, "max_siblings", "must be at least 1");
  data_.resize(n);
  conflicts_.assign(n, std::vector<std::uint64_t>(n, 0));
}

void MultiLeaderCluster::require_leader(int leader) const {
  require(leader >= 0 && leader < options_.leaders, "leader",
          "must be in [0, " + std::to_string(options_.leaders) + "), got " + std::to_string(leader));
}

MultiLeaderCluster::State& MultiLeaderCluster::state(int leader, const std::string& key) {
  auto& store = data_[static_cast<std::size_t>(leader)];
  auto it = store.find(key);
  if (it != store.end()) return it->second;
  if (store.size() >= options_.max_keys) {
    throw CapacityExceeded("multi-leader: leader " + std::to_string(leader) + " holds max_keys=" +
                           std::to_string(options_.max_keys) + " keys");
  }
  const auto n = static_cast<std::size_t>(options_.leaders);
  State s;
  s.version.clock.assign(n, 0);
  s.version.increments.assign(n, 0);
  s.version.decrements.assign(n, 0);
  return store.emplace(key, std::move(s)).first->second;
}

std::uint64_t MultiLeaderCluster::own_writes(int leader, const std::string& key) const {
  const auto& store = data_[static_cast<std::size_t>(leader)];
  auto it = store.find(key);
  return it == store.end() ? 0 : it->second.version.clock[static_cast<std::size_t>(leader)];
}

void MultiLeaderCluster::count_conflicts(int leader, const std::string& key, const Clock& seen) {
  // Exact: leader j's writes to the key are its sequences 1..own_writes(j); those past what
  // this leader has seen of j are concurrent with this write (j cannot have seen it either).
  const auto me = static_cast<std::size_t>(leader);
  for (int other = 0; other < options_.leaders; ++other) {
    const auto j = static_cast<std::size_t>(other);
    if (j == me) continue;
    const std::uint64_t unseen = own_writes(other, key) - seen[j];
    conflicts_[j][me] += unseen;
    conflicts_[me][j] += unseen;
  }
}

void MultiLeaderCluster::apply_local(Version& v, int leader, const std::string& value, double at_ms,
                                     std::int64_t delta) const {
  const auto me = static_cast<std::size_t>(leader);
  const bool had_value = v.has_value;
  v.clock[me] += 1;
  v.has_value = true;
  switch (options_.resolution) {
    case ConflictResolution::LastWriterWins: {
      // Pure (timestamp, leader, sequence) order, also for local writes: that total order is
      // what makes every leader converge whatever the delivery order. A write stamped
      // earlier than the value held (clock skew) is lost, as in real LWW stores.
      const double ts = at_ms + options_.clock_skew_ms[me];
      if (!had_value || lww_after(ts, leader, v.clock[me], v.timestamp_ms, v.origin, v.origin_sequence)) {
        v.value = value;
        v.timestamp_ms = ts;
        v.origin = leader;
        v.origin_sequence = v.clock[me];
      }
      break;
    }
    case ConflictResolution::Siblings:
      // The local write has seen every local sibling, so it supersedes them all.
      v.siblings.assign(1, Sibling{v.clock, value});
      break;
    case ConflictResolution::CounterMerge:
      if (delta >= 0) {
        v.increments[me] += delta;
      } else {
        v.decrements[me] += -delta;
      }
      break;
    case ConflictResolution::SetMerge:
      break;  // the element goes to the state and the log, not into the version
  }
}

void MultiLeaderCluster::write(int leader, const std::string& key, const std::string& value, double at_ms,
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
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->key = key;
  snapshot->version = s.version;
  apply_local(snapshot->version, leader, value, at_ms, delta);
  const Version& v = snapshot->version;
  std::size_t bytes = sizeof(Snapshot) + kControlBlockBytes + key.size() + v.value.size() +
                      (v.clock.size() + v.increments.size() + v.decrements.size()) * sizeof(std::uint64_t);
  for (const auto& sib : v.siblings) bytes += sizeof(Sibling) + sib.value.size() + sib.clock.size() * sizeof(std::uint64_t);
  snapshot->bytes = bytes;
  const bool set_merge = options_.resolution == ConflictResolution::SetMerge;
  const std::size_t total = bytes + (n - 1) * sizeof(Message) + (set_merge ? element_bytes(value) : 0);
  // Deliveries only free memory, so the check after run_until is the one that can pass.
  if (stats_.bytes_in_flight + total > options_.max_in_flight_bytes) {
    throw CapacityExceeded("multi-leader: max_in_flight_bytes=" + std::to_string(options_.max_in_flight_bytes) +
                           " bytes of replication queued; run_until or settle first");
  }
  count_conflicts(leader, key, s.version.clock);
  s.version = v;
  if (set_merge) {
    s.elements.insert(value);
    log_element(leader, key, value);
  }
  ++writes_;
  enqueue(leader, std::move(snapshot), at_ms, total);
}

void MultiLeaderCluster::log_element(int leader, const std::string& key, const std::string& value) {
  auto it = element_log_.find(key);
  if (it == element_log_.end()) {
    // Every earlier element was seen by every leader and dropped: the log starts after them.
    ElementLog log;
    log.values.resize(static_cast<std::size_t>(options_.leaders));
    for (int l = 0; l < options_.leaders; ++l) log.first.push_back(own_writes(l, key) + (l == leader ? 0 : 1));
    it = element_log_.emplace(key, std::move(log)).first;
  }
  it->second.values[static_cast<std::size_t>(leader)].push_back(value);
}

void MultiLeaderCluster::enqueue(int from, std::shared_ptr<const Snapshot> snapshot, double at_ms, std::size_t bytes) {
  const auto me = static_cast<std::size_t>(from);
  for (std::size_t to = 0; to < options_.replication_delay_ms.size(); ++to) {
    if (to == me) continue;
    in_flight_.push(Message{at_ms + options_.replication_delay_ms[me][to], next_sequence_++, static_cast<int>(to), snapshot});
    ++stats_.messages_sent;
  }
  stats_.bytes_in_flight += bytes;
  stats_.bytes_sent += bytes;
  stats_.peak_bytes_in_flight = std::max(stats_.peak_bytes_in_flight, stats_.bytes_in_flight);
  stats_.peak_messages_in_flight = std::max(stats_.peak_messages_in_flight, in_flight_.size());
}

void MultiLeaderCluster::merge_siblings(Version& local, const Version& in, const std::string& key) const {
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
    throw CapacityExceeded("multi-leader: key '" + key + "' has more than max_siblings=" +
                           std::to_string(options_.max_siblings) + " siblings");
  }
  local.siblings = std::move(kept);
}

void MultiLeaderCluster::pull_elements(State& local, const std::string& key, const Clock& in) {
  const ElementLog& log = element_log_.at(key);
  for (std::size_t l = 0; l < in.size(); ++l) {
    // Entries before first[l] were seen by every leader, this one included.
    for (std::uint64_t seq = local.version.clock[l] + 1; seq <= in[l]; ++seq) {
      local.elements.insert(log.values[l][static_cast<std::size_t>(seq - log.first[l])]);
    }
  }
}

void MultiLeaderCluster::trim_log(const std::string& key) {
  auto it = element_log_.find(key);
  if (it == element_log_.end()) return;
  ElementLog& log = it->second;
  bool empty = true;
  for (int l = 0; l < options_.leaders; ++l) {
    std::uint64_t seen_by_all = std::numeric_limits<std::uint64_t>::max();
    for (const auto& store : data_) {
      auto s = store.find(key);
      seen_by_all = std::min(seen_by_all, s == store.end() ? 0 : s->second.version.clock[static_cast<std::size_t>(l)]);
    }
    auto& values = log.values[static_cast<std::size_t>(l)];
    auto& first = log.first[static_cast<std::size_t>(l)];
    for (; !values.empty() && first <= seen_by_all; ++first) {
      stats_.bytes_in_flight -= element_bytes(values.front());
      values.pop_front();
    }
    empty = empty && values.empty();
  }
  if (empty) element_log_.erase(it);
}

void MultiLeaderCluster::receive(const Message& m) {
  const Snapshot& snapshot = *m.snapshot;
  State& local = state(m.to, snapshot.key);
  Version& mine = local.version;
  const Version& in = snapshot.version;
  const Order order = compare(in.clock, mine.clock);
  if (order == Order::Before || order == Order::Equal) return;  // nothing new
  switch (options_.resolution) {
    case ConflictResolution::LastWriterWins:
      if (in.has_value && (!mine.has_value || lww_after(in.timestamp_ms, in.origin, in.origin_sequence,
                                                        mine.timestamp_ms, mine.origin, mine.origin_sequence))) {
        mine.value = in.value;
        mine.timestamp_ms = in.timestamp_ms;
        mine.origin = in.origin;
        mine.origin_sequence = in.origin_sequence;
      }
      break;
    case ConflictResolution::Siblings:
      merge_siblings(mine, in, snapshot.key);
      break;
    case ConflictResolution::CounterMerge:
      for (std::size_t i = 0; i < mine.increments.size(); ++i) {
        mine.increments[i] = std::max(mine.increments[i], in.increments[i]);
        mine.decrements[i] = std::max(mine.decrements[i], in.decrements[i]);
      }
      break;
    case ConflictResolution::SetMerge:
      pull_elements(local, snapshot.key, in.clock);
      break;
  }
  mine.has_value = mine.has_value || in.has_value;
  merge_into(mine.clock, in.clock);
  if (options_.resolution == ConflictResolution::SetMerge) trim_log(snapshot.key);
}

void MultiLeaderCluster::deliver_next() {
  const Message m = in_flight_.top();
  in_flight_.pop();
  now_ms_ = std::max(now_ms_, m.at_ms);
  // The snapshot's memory is freed with its last message.
  stats_.bytes_in_flight -= sizeof(Message) + (m.snapshot.use_count() == 1 ? m.snapshot->bytes : 0);
  receive(m);
}

void MultiLeaderCluster::run_until(double at_ms) {
  require(std::isfinite(at_ms), "at_ms", "must be a finite number");
  require(at_ms >= now_ms_, "at_ms", "logical time must not go backwards");
  // Bounded: each message is delivered once and no delivery sends new messages.
  while (!in_flight_.empty() && in_flight_.top().at_ms <= at_ms) deliver_next();
  now_ms_ = at_ms;
}

void MultiLeaderCluster::settle() {
  // Deliveries are strictly ordered by time; the largest is at most max delay after now.
  while (!in_flight_.empty()) deliver_next();
}

MultiLeaderStats MultiLeaderCluster::stats() const {
  MultiLeaderStats s = stats_;
  s.messages_in_flight = in_flight_.size();
  return s;
}

MultiLeaderValue MultiLeaderCluster::value_of(const State& state) const {
  MultiLeaderValue v;
  const Version& s = state.version;
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
      v.values.assign(state.elements.begin(), state.elements.end());
      break;
  }
  return v;
}

MultiLeaderValue MultiLeaderCluster::read(int leader, const std::string& key) const {
  require_leader(leader);
  const auto& store = data_[static_cast<std::size_t>(leader)];
  auto it = store.find(key);
  return it == store.end() ? MultiLeaderValue{} : value_of(it->second);
}

std::uint64_t MultiLeaderCluster::total_conflicts() const {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < conflicts_.size(); ++i) {
    for (std::size_t j = i + 1; j < conflicts_.size(); ++j) total += conflicts_[i][j];
  }
  return total;
}

bool MultiLeaderCluster::converged() const {
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

std::size_t MultiLeaderCluster::keys_with_siblings() const {
  std::set<std::string> keys;
  for (const auto& store : data_) {
    for (const auto& [key, s] : store) {
      if (s.version.siblings.size() > 1) keys.insert(key);
    }
  }
  return keys.size();
}

MultiLeaderReport run_multileader_workload(const MultiLeaderOptions& options, const MultiLeaderWorkload& workload) {
  MultiLeaderCluster cluster(options);
  require(workload.writes_per_s.size() == static_cast<std::size_t>(options.leaders), "writes_per_s",
          "needs one rate per leader (" + std::to_string(options.leaders) + ")");
  double total_rate = 0;
  for (double r : workload.writes_per_s) {
    require(std::isfinite(r) && r >= 0, "writes_per_s", "rates must be finite and not negative");
    total_rate += r;
  }
  require(workload.keys >= 1, "keys", "must be at least 1");
  require(std::isfinite(workload.duration_ms) && workload.duration_ms >= 0, "duration_ms",
          "must be finite and not negative");
  require(workload.max_writes >= 1, "max_writes", "must be at least 1");
  const double expected = total_rate * workload.duration_ms / 1000.0;
  require(expected <= static_cast<double>(workload.max_writes), "writes_per_s",
          "the mix expects about " + std::to_string(static_cast<long long>(expected)) +
              " writes, more than max_writes=" + std::to_string(workload.max_writes));

  // Independent Poisson streams per leader, merged in time order; one generator per
  // leader so changing one rate does not reshuffle the others.
  const auto n = static_cast<std::size_t>(options.leaders);
  std::vector<Xoshiro256> rngs;
  SplitMix64 seeder(workload.seed);
  for (std::size_t i = 0; i < n; ++i) rngs.emplace_back(seeder.next());
  Xoshiro256 keys_rng(seeder.next());
  const double inf = std::numeric_limits<double>::infinity();
  auto next_gap_ms = [&](std::size_t i) {
    const double rate_per_ms = workload.writes_per_s[i] / 1000.0;
    if (rate_per_ms <= 0) return inf;
    return -std::log1p(-rngs[i].uniform()) / rate_per_ms;
  };
  std::vector<double> next(n);
  for (std::size_t i = 0; i < n; ++i) next[i] = next_gap_ms(i);
  std::vector<std::uint64_t> counts(n, 0);
  std::uint64_t writes = 0;
  while (writes < workload.max_writes) {
    const auto i = static_cast<std::size_t>(std::min_element(next.begin(), next.end()) - next.begin());
    if (!(next[i] <= workload.duration_ms)) break;
    const std::string key = "k" + std::to_string(keys_rng.below(static_cast<std::uint32_t>(workload.keys)));
    const std::string value = "L" + std::to_string(i) + "#" + std::to_string(++counts[i]);
    try {
      cluster.write(static_cast<int>(i), key, value, next[i], 1);
    } catch (const CapacityExceeded& e) {
      // The caller cannot drain a workload's queue: say which knobs bound it.
      throw CapacityExceeded(std::string(e.what()) + " (in this workload: raise the bound, shorten the delays or "
                                                     "lower writes_per_s)");
    }
    ++writes;
    next[i] += next_gap_ms(i);
  }
  cluster.settle();
  MultiLeaderReport report;
  report.writes = cluster.writes();
  report.conflicts = cluster.conflicts();
  report.total_conflicts = cluster.total_conflicts();
  report.keys_with_siblings = cluster.keys_with_siblings();
  report.converged = cluster.converged();
  report.stats = cluster.stats();
  return report;
}

}  // namespace replikit
