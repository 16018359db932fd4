#include "replikit/quorum_store.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "replikit/errors.hpp"

namespace replikit {

ClockOrder compare_clocks(const VectorClock& a, const VectorClock& b) {
  bool a_less = false;  // some entry of a is below b's
  bool b_less = false;
  auto ia = a.begin();
  auto ib = b.begin();
  // Merge walk over the sorted keys; a missing entry counts as 0.
  while (ia != a.end() || ib != b.end()) {
    std::uint64_t va = 0, vb = 0;
    if (ib == b.end() || (ia != a.end() && ia->first < ib->first)) {
      va = (ia++)->second;
    } else if (ia == a.end() || ib->first < ia->first) {
      vb = (ib++)->second;
    } else {
      va = (ia++)->second;
      vb = (ib++)->second;
    }
    if (va < vb) a_less = true;
    if (vb < va) b_less = true;
  }
  if (a_less && b_less) return ClockOrder::Concurrent;
  if (a_less) return ClockOrder::Before;
  if (b_less) return ClockOrder::After;
  return ClockOrder::Equal;
}

VectorClock merge_clocks(const VectorClock& a, const VectorClock& b) {
  VectorClock out = a;
  for (const auto& [actor, count] : b) {
    auto& slot = out[actor];
    slot = std::max(slot, count);
  }
  return out;
}

QuorumStoreOptions QuorumStoreOptions::majority(int n) {
  require(n >= 1 && n <= 1024, "n", "must be in [1, 1024], got " + std::to_string(n));
  QuorumStoreOptions o;
  o.n = n;
  o.w = n / 2 + 1;
  o.r = n / 2 + 1;
  o.nodes = n;
  return o;
}

namespace {

// FNV-1a: a fixed, platform-independent hash so ring placement replays everywhere.
std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// Last-writer-wins order: timestamp, then writer, then value, so replicas agree on ties.
bool lww_newer(const StoredVersion& a, const StoredVersion& b) {
  if (a.timestamp != b.timestamp) return a.timestamp > b.timestamp;
  if (a.writer != b.writer) return a.writer > b.writer;
  return a.value > b.value;
}

bool same_version(const StoredVersion& a, const StoredVersion& b) {
  return a.timestamp == b.timestamp && a.writer == b.writer && a.value == b.value && a.clock == b.clock;
}

}  // namespace

QuorumStore::QuorumStore(QuorumStoreOptions options) : options_(std::move(options)) {
  auto& o = options_;
  require(o.n >= 1 && o.n <= 1024, "n", "must be in [1, 1024], got " + std::to_string(o.n));
  if (o.nodes == 0) o.nodes = o.n;
  require(o.nodes >= o.n && o.nodes <= 1024, "nodes",
          "must be in [n=" + std::to_string(o.n) + ", 1024], got " + std::to_string(o.nodes));
  require(o.w >= 1 && o.w <= o.n, "w", "must be in [1, n=" + std::to_string(o.n) + "], got " + std::to_string(o.w));
  require(o.r >= 1 && o.r <= o.n, "r", "must be in [1, n=" + std::to_string(o.n) + "], got " + std::to_string(o.r));
  require(o.versioning == Versioning::LastWriterWins || o.versioning == Versioning::VectorClocks, "versioning",
          "unknown versioning");
  require(o.max_hints >= 1, "max_hints", "must be at least 1");
  require(o.max_in_flight >= 1, "max_in_flight", "must be at least 1");
  require(o.max_keys >= 1, "max_keys", "must be at least 1");
  require(o.max_siblings >= 1, "max_siblings", "must be at least 1");
  const auto count = static_cast<std::size_t>(o.nodes);
  up_.assign(count, true);
  latency_ms_.assign(count, 1.0);
  data_.resize(count);
}

void QuorumStore::require_node(int node, const char* argument) const {
  require(node >= 0 && node < options_.nodes, argument,
          "must be a node in [0, " + std::to_string(options_.nodes) + "), got " + std::to_string(node));
}

std::vector<int> QuorumStore::preference_list(const std::string& key) const {
  const int count = options_.nodes;
  const int start = static_cast<int>(fnv1a(key) % static_cast<std::uint64_t>(count));
  std::vector<int> order(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) order[static_cast<std::size_t>(i)] = (start + i) % count;
  return order;
}

std::vector<int> QuorumStore::by_latency(std::vector<int> nodes) const {
  std::stable_sort(nodes.begin(), nodes.end(), [&](int a, int b) {
    const double la = latency_ms_[static_cast<std::size_t>(a)];
    const double lb = latency_ms_[static_cast<std::size_t>(b)];
    return la != lb ? la < lb : a < b;
  });
  return nodes;
}

bool QuorumStore::apply(int node, const std::string& key, const StoredVersion& v) {
  auto& store = data_[static_cast<std::size_t>(node)];
  auto it = store.find(key);
  if (it == store.end()) {
    if (store.size() >= options_.max_keys) {
      throw CapacityExceeded("quorum store: node " + std::to_string(node) + " holds max_keys=" +
                             std::to_string(options_.max_keys) + " keys");
    }
    store.emplace(key, Siblings{v});
    return true;
  }
  Siblings& siblings = it->second;
  if (options_.versioning == Versioning::LastWriterWins) {
    if (siblings.empty() || lww_newer(v, siblings.front())) {
      siblings.assign(1, v);
      return true;
    }
    return false;
  }
  // Vector clocks: drop what v supersedes, keep v unless something already covers it.
  for (const auto& s : siblings) {
    const ClockOrder order = compare_clocks(v.clock, s.clock);
    if (order == ClockOrder::Before || order == ClockOrder::Equal) return false;
  }
  siblings.erase(std::remove_if(siblings.begin(), siblings.end(),
                                [&](const StoredVersion& s) {
                                  return compare_clocks(s.clock, v.clock) == ClockOrder::Before;
                                }),
                 siblings.end());
  if (siblings.size() >= options_.max_siblings) {
    throw CapacityExceeded("quorum store: key '" + key + "' has max_siblings=" +
                           std::to_string(options_.max_siblings) + " concurrent versions");
  }
  siblings.push_back(v);
  return true;
}

void QuorumStore::remove_version(int node, const std::string& key, const StoredVersion& v) {
  auto& store = data_[static_cast<std::size_t>(node)];
  auto it = store.find(key);
  if (it == store.end()) return;
  auto& siblings = it->second;
  siblings.erase(std::remove_if(siblings.begin(), siblings.end(),
                                [&](const StoredVersion& s) { return same_version(s, v); }),
                 siblings.end());
  if (siblings.empty()) store.erase(it);
}

void QuorumStore::store_hint(int holder, int target, const std::string& key, const StoredVersion& v) {
  if (hints_.size() >= options_.max_hints) {
    ++stats_.hints_dropped;  // the bound: anti-entropy (read repair) must catch this replica up
    return;
  }
  hints_.push_back(Hint{holder, target, key, v});
  ++stats_.hints_stored;
}

QuorumStore::WriteTargets QuorumStore::write_targets(const std::string& key) const {
  const auto& o = options_;
  const std::vector<int> pref = preference_list(key);
  WriteTargets where;
  for (int i = 0; i < o.n; ++i) {
    const int node = pref[static_cast<std::size_t>(i)];
    (up_[static_cast<std::size_t>(node)] ? where.targets : where.down_home).push_back(node);
  }
  if (o.sloppy_quorum) {  // one live fallback per down home replica
    std::size_t next = static_cast<std::size_t>(o.n);
    for (int missing : where.down_home) {
      while (next < pref.size() && !up_[static_cast<std::size_t>(pref[next])]) ++next;
      if (next >= pref.size()) break;
      where.stand_ins.emplace_back(pref[next], missing);
      where.targets.push_back(pref[next]);
      ++next;
    }
  }
  return where;
}

StoredVersion QuorumStore::new_version(const std::string& key, const std::string& value, const std::string& client,
                                       const VectorClock& context, std::uint64_t timestamp,
                                       const std::vector<int>& targets) {
  StoredVersion v;
  v.value = value;
  v.writer = client;
  if (options_.versioning == Versioning::LastWriterWins) {
    v.timestamp = timestamp != 0 ? timestamp : clock_ + 1;
    clock_ = std::max(clock_, v.timestamp);
    return v;
  }
  // The client's actor entry must exceed both its context and anything the coordinator
  // already holds from it, so two writes never share a clock.
  const int coordinator = by_latency(targets).front();
  std::uint64_t seen = 0;
  if (auto it = context.find(client); it != context.end()) seen = it->second;
  const auto& store = data_[static_cast<std::size_t>(coordinator)];
  if (auto it = store.find(key); it != store.end()) {
    for (const auto& s : it->second) {
      if (auto c = s.clock.find(client); c != s.clock.end()) seen = std::max(seen, c->second);
    }
  }
  v.clock = context;
  v.clock[client] = seen + 1;
  v.timestamp = ++clock_;
  return v;
}

void QuorumStore::replicate(const std::string& key, const StoredVersion& v, const std::vector<int>& targets,
                            WriteResult& result) {
  const int w = options_.w;
  // Check the bound before touching any replica, so a refused write changes nothing.
  const std::size_t async_count = targets.size() - static_cast<std::size_t>(w);
  if (in_flight_.size() + async_count > options_.max_in_flight) {
    throw CapacityExceeded("quorum store: max_in_flight=" + std::to_string(options_.max_in_flight) +
                           " replication messages in flight; call advance_ms to deliver them");
  }
  const std::vector<int> ordered = by_latency(targets);
  for (std::size_t i = 0; i < ordered.size(); ++i) {
    const int node = ordered[i];
    if (static_cast<int>(i) < w) {
      apply(node, key, v);
      result.replicas.push_back(node);
      result.latency_ms = latency_ms_[static_cast<std::size_t>(node)];
    } else {
      // The rest receive it asynchronously, after their latency.
      in_flight_.push(Delivery{now_ms_ + latency_ms_[static_cast<std::size_t>(node)], next_sequence_++, node, key, v});
    }
  }
  result.acks = w;
}

void QuorumStore::hint_missing(const WriteTargets& where, const std::string& key, const StoredVersion& v,
                               WriteResult& result) {
  for (const auto& [fallback, missing] : where.stand_ins) {
    store_hint(fallback, missing, key, v);
    ++result.hinted;
  }
  if (!options_.sloppy_quorum && options_.hinted_handoff) {
    for (int missing : where.down_home) {
      store_hint(-1, missing, key, v);
      ++result.hinted;
    }
  }
}

WriteResult QuorumStore::put(const std::string& key, const std::string& value, const std::string& client,
                             const VectorClock& context, std::uint64_t timestamp) {
  require(!client.empty(), "client", "must not be empty");
  const WriteTargets where = write_targets(key);
  WriteResult result;
  if (static_cast<int>(where.targets.size()) < options_.w) {
    // The coordinator sees the failures and refuses before touching any replica.
    result.reason =
        "only " + std::to_string(where.targets.size()) + " replicas reachable, W=" + std::to_string(options_.w);
    ++stats_.writes_failed;
    return result;
  }
  const StoredVersion v = new_version(key, value, client, context, timestamp, where.targets);
  result.version = v;
  replicate(key, v, where.targets, result);
  hint_missing(where, key, v, result);
  result.outcome = QuorumOutcome::Ok;
  ++stats_.writes_ok;
  return result;
}

QuorumStore::Siblings QuorumStore::resolve(const std::vector<const Siblings*>& responses) const {
  Siblings out;
  for (const Siblings* siblings : responses) {
    if (siblings == nullptr) continue;
    for (const auto& v : *siblings) {
      if (options_.versioning == Versioning::LastWriterWins) {
        if (out.empty() || lww_newer(v, out.front())) out.assign(1, v);
        continue;
      }
      bool covered = false;
      for (const auto& s : out) {
        const ClockOrder order = compare_clocks(v.clock, s.clock);
        if (order == ClockOrder::Before || order == ClockOrder::Equal) covered = true;
      }
      if (covered) continue;
      out.erase(std::remove_if(out.begin(), out.end(),
                               [&](const StoredVersion& s) {
                                 return compare_clocks(s.clock, v.clock) == ClockOrder::Before;
                               }),
                out.end());
      out.push_back(v);
    }
  }
  return out;
}

ReadResult QuorumStore::get(const std::string& key) {
  const auto& o = options_;
  const std::vector<int> pref = preference_list(key);
  // Contacted: live home replicas; a sloppy read takes the first n live nodes of the ring.
  std::vector<int> contacted;
  for (std::size_t i = 0; i < pref.size() && static_cast<int>(contacted.size()) < o.n; ++i) {
    const int node = pref[i];
    const bool is_home = static_cast<int>(i) < o.n;
    if (!up_[static_cast<std::size_t>(node)]) continue;
    if (is_home || o.sloppy_quorum) contacted.push_back(node);
  }
  ReadResult result;
  if (static_cast<int>(contacted.size()) < o.r) {
    result.reason = "only " + std::to_string(contacted.size()) + " replicas reachable, R=" + std::to_string(o.r);
    ++stats_.reads_failed;
    return result;
  }
  contacted = by_latency(contacted);
  std::vector<const Siblings*> responses;
  for (int i = 0; i < o.r; ++i) {
    const int node = contacted[static_cast<std::size_t>(i)];
    const auto& store = data_[static_cast<std::size_t>(node)];
    auto it = store.find(key);
    responses.push_back(it == store.end() ? nullptr : &it->second);
    result.replicas.push_back(node);
    result.latency_ms = latency_ms_[static_cast<std::size_t>(node)];
  }
  result.siblings = resolve(responses);
  result.responses = o.r;
  for (const auto& v : result.siblings) result.context = merge_clocks(result.context, v.clock);
  if (o.read_repair) {
    // Every contacted replica answers eventually; the stale ones get the resolved versions.
    for (int node : contacted) {
      bool changed = false;
      for (const auto& v : result.siblings) changed = apply(node, key, v) || changed;
      if (changed) {
        ++result.repaired;
        ++stats_.read_repairs;
      }
    }
  }
  result.outcome = QuorumOutcome::Ok;
  ++stats_.reads_ok;
  return result;
}

void QuorumStore::fail_node(int node) {
  require_node(node);
  up_[static_cast<std::size_t>(node)] = false;
}

void QuorumStore::recover_node(int node) {
  require_node(node);
  up_[static_cast<std::size_t>(node)] = true;
  deliver_hints();
}

bool QuorumStore::is_up(int node) const {
  require_node(node);
  return up_[static_cast<std::size_t>(node)];
}

void QuorumStore::set_node_latency_ms(int node, double latency_ms) {
  require_node(node);
  require(std::isfinite(latency_ms), "latency_ms", "must be a finite number");
  require(latency_ms >= 0, "latency_ms", "a latency must not be negative");
  latency_ms_[static_cast<std::size_t>(node)] = latency_ms;
}

double QuorumStore::node_latency_ms(int node) const {
  require_node(node);
  return latency_ms_[static_cast<std::size_t>(node)];
}

void QuorumStore::advance_ms(double dt_ms) {
  require(std::isfinite(dt_ms), "dt_ms", "must be a finite number");
  require(dt_ms >= 0, "dt_ms", "time only moves forward");
  now_ms_ += dt_ms;
  // Bounded by the queue length, itself bounded by max_in_flight.
  while (!in_flight_.empty() && in_flight_.top().at_ms <= now_ms_) {
    const Delivery d = in_flight_.top();
    in_flight_.pop();
    if (up_[static_cast<std::size_t>(d.node)]) {
      apply(d.node, d.key, d.version);
      ++stats_.deliveries;
    } else {
      ++stats_.deliveries_lost;
    }
  }
  deliver_hints();
}

void QuorumStore::deliver_hints() {
  std::vector<Hint> waiting;
  for (auto& h : hints_) {
    const bool holder_up = h.holder < 0 || up_[static_cast<std::size_t>(h.holder)];
    if (!holder_up || !up_[static_cast<std::size_t>(h.target)]) {
      waiting.push_back(std::move(h));
      continue;
    }
    apply(h.target, h.key, h.version);
    ++stats_.hints_delivered;
    if (h.holder >= 0) {
      // A fallback only held the version on the home replica's behalf.
      const auto pref = preference_list(h.key);
      const bool holder_is_home =
          std::find(pref.begin(), pref.begin() + options_.n, h.holder) != pref.begin() + options_.n;
      if (!holder_is_home) remove_version(h.holder, h.key, h.version);
    }
  }
  hints_ = std::move(waiting);
}

std::vector<StoredVersion> QuorumStore::replica_versions(int node, const std::string& key) const {
  require_node(node);
  const auto& store = data_[static_cast<std::size_t>(node)];
  auto it = store.find(key);
  return it == store.end() ? std::vector<StoredVersion>{} : it->second;
}

}  // namespace replikit
