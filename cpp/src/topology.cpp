#include "replikit/topology.hpp"

#include <cmath>

#include "replikit/errors.hpp"

namespace replikit {

namespace {

void check_name(const std::string& name, const char* argument) {
  require(!name.empty(), argument, "node name must not be empty");
  require(name.size() <= 63, argument, "node name must be at most 63 characters");
  for (char c : name) {
    require(c > 0x20 && c < 0x7F, argument, "node name must be printable ASCII without spaces");
  }
}

void check_weight(double weight, const char* argument) {
  require(std::isfinite(weight), argument, "weight must be a finite number");
  require(weight >= 0, argument, "weight must not be negative");
}

std::uint32_t with_bit(std::uint32_t flags, std::uint32_t bit, bool on) {
  return on ? (flags | bit) : (flags & ~bit);
}

}  // namespace

const char* to_string(Role role) noexcept {
  switch (role) {
    case Role::Primary: return "primary";
    case Role::Replica: return "replica";
    case Role::Removed: return "removed";
  }
  return "?";
}

const char* to_string(LagState state) noexcept {
  return state == LagState::Ok ? "ok" : "lagging";
}

Topology::Topology(NodeSpec primary, std::vector<NodeSpec> replicas) {
  require(replicas.size() < static_cast<std::size_t>(kMaxNodes), "replicas",
          "at most " + std::to_string(kMaxNodes - 1) + " replicas");
  std::lock_guard<std::mutex> lock(write_mutex_);
  int p = add_locked(primary, Role::Primary, "primary");
  primary_.store(p, std::memory_order_release);
  publish_epoch_primary_locked();
  for (const auto& spec : replicas) add_locked(spec, Role::Replica, "replicas");
  rebuild_replica_list_locked();
}

int Topology::region_locked(const std::string& region) {
  if (region.empty()) return kNoNode;
  int n = region_count_.load(std::memory_order_relaxed);
  for (int i = 0; i < n; ++i) {
    if (regions_[i] == region) return i;
  }
  if (n >= kMaxRegions) {
    throw CapacityExceeded("region: at most " + std::to_string(kMaxRegions) + " distinct regions");
  }
  regions_[n] = region;
  region_count_.store(n + 1, std::memory_order_release);
  return n;
}

int Topology::add_locked(const NodeSpec& spec, Role role, const char* argument) {
  check_name(spec.name, argument);
  check_weight(spec.weight, argument);
  require(spec.region.size() <= 63, argument, "region must be at most 63 characters");
  int n = count_.load(std::memory_order_relaxed);
  for (int i = 0; i < n; ++i) {
    require(slots_[i].name != spec.name, argument, "duplicate node name '" + spec.name + "'");
  }
  if (n >= kMaxNodes) {
    throw CapacityExceeded("topology holds at most " + std::to_string(kMaxNodes) +
                           " nodes over its lifetime");
  }
  int region = region_locked(spec.region);
  auto& slot = slots_[n];
  slot.name = spec.name;
  slot.region = spec.region;
  slot.weight.store(spec.weight, std::memory_order_relaxed);
  slot.priority.store(spec.priority, std::memory_order_relaxed);
  slot.replay_lsn.store(0, std::memory_order_relaxed);
  slot.receive_lsn.store(0, std::memory_order_relaxed);
  slot.lag_ns.store(0, std::memory_order_relaxed);
  slot.lag_bytes.store(0, std::memory_order_relaxed);
  slot.fresh_as_of_ns.store(kFreshUnknown, std::memory_order_relaxed);
  std::uint32_t flags = static_cast<std::uint32_t>(role) | (spec.up ? detail::kUpBit : 0u) |
                        (static_cast<std::uint32_t>(region + 1) << detail::kRegionShift);
  slot.flags.store(flags, std::memory_order_relaxed);
  count_.store(n + 1, std::memory_order_release);  // publishes the slot
  return n;
}

void Topology::rebuild_replica_list_locked() {
  int n = count_.load(std::memory_order_relaxed);
  int k = 0;
  for (int i = 0; i < n; ++i) {
    if (role_of(slots_[i].flags.load(std::memory_order_relaxed)) == Role::Replica) {
      replica_list_[k++].store(static_cast<std::int16_t>(i), std::memory_order_relaxed);
    }
  }
  replica_count_.store(k, std::memory_order_release);
  weights_version_.fetch_add(1, std::memory_order_acq_rel);
}

int Topology::index_locked(std::string_view name, const char* argument) const {
  int i = find(name);
  if (i == kNoNode) throw NotFound(argument, "no node named '" + std::string(name) + "'");
  return i;
}

int Topology::find(std::string_view name) const noexcept {
  int n = size();
  for (int i = 0; i < n; ++i) {
    if (slots_[i].name == name && role_of(flags(i)) != Role::Removed) return i;
  }
  return kNoNode;
}

int Topology::index_of(std::string_view name, const char* argument) const {
  return index_locked(name, argument);
}

void Topology::check_index(int index, const char* argument) const {
  if (index < 0 || index >= size()) {
    throw InvalidArgument(argument, "node index " + std::to_string(index) + " is out of range [0, " +
                                        std::to_string(size()) + ")");
  }
}

const std::string& Topology::name(int index) const {
  check_index(index, "index");
  return slots_[index].name;
}

int Topology::region_id(std::string_view region) const noexcept {
  int n = region_count_.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) {
    if (regions_[i] == region) return i;
  }
  return kNoNode;
}

int Topology::add_replica(NodeSpec spec) {
  std::lock_guard<std::mutex> lock(write_mutex_);
  int i = add_locked(spec, Role::Replica, "spec");
  rebuild_replica_list_locked();
  return i;
}

void Topology::remove_replica(std::string_view name) {
  std::lock_guard<std::mutex> lock(write_mutex_);
  int i = index_locked(name, "name");
  auto& slot = slots_[i];
  std::uint32_t flags = slot.flags.load(std::memory_order_relaxed);
  require(role_of(flags) == Role::Replica, "name", "'" + std::string(name) + "' is the primary; promote another node first");
  slot.flags.store((flags & ~detail::kRoleMask & ~detail::kUpBit) | static_cast<std::uint32_t>(Role::Removed),
                   std::memory_order_release);
  rebuild_replica_list_locked();
}

void Topology::set_up(std::string_view name, bool up) {
  std::lock_guard<std::mutex> lock(write_mutex_);
  auto& slot = slots_[index_locked(name, "name")];
  slot.flags.store(with_bit(slot.flags.load(std::memory_order_relaxed), detail::kUpBit, up),
                   std::memory_order_release);
}

void Topology::set_weight(std::string_view name, double weight) {
  check_weight(weight, "weight");
  std::lock_guard<std::mutex> lock(write_mutex_);
  slots_[index_locked(name, "name")].weight.store(weight, std::memory_order_relaxed);
  weights_version_.fetch_add(1, std::memory_order_acq_rel);
}

void Topology::set_priority(std::string_view name, int priority) {
  std::lock_guard<std::mutex> lock(write_mutex_);
  slots_[index_locked(name, "name")].priority.store(priority, std::memory_order_relaxed);
}

std::uint64_t Topology::promote(std::string_view name) {
  std::lock_guard<std::mutex> lock(write_mutex_);
  const int next = index_locked(name, "name");
  require(next != primary_.load(std::memory_order_relaxed), "name", "'" + std::string(name) + "' is already the primary");
  return promote_locked(next);
}

std::uint64_t Topology::make_primary(std::string_view name, const std::function<void(int)>& announce) {
  std::lock_guard<std::mutex> lock(write_mutex_);
  const int next = index_locked(name, "name");
  // Checked under the write mutex: a prober may have promoted it since the caller last looked.
  const int old = primary_.load(std::memory_order_relaxed);
  if (next == old) return epoch_.load(std::memory_order_relaxed);
  if (announce) announce(old);  // a throw leaves the topology as it was
  return promote_locked(next);
}

std::uint64_t Topology::promote_locked(int next) {
  const int old = primary_.load(std::memory_order_relaxed);
  auto& new_slot = slots_[next];
  auto& old_slot = slots_[old];
  std::uint32_t nf = new_slot.flags.load(std::memory_order_relaxed);
  nf = (nf & ~detail::kRoleMask & ~detail::kLaggingBit) | static_cast<std::uint32_t>(Role::Primary);
  std::uint32_t of = old_slot.flags.load(std::memory_order_relaxed);
  // The old primary may hold writes the new timeline lacks: it serves nothing until rejoined.
  of = (of & ~detail::kRoleMask & ~detail::kUpBit & ~detail::kLagKnownBit) |
       static_cast<std::uint32_t>(Role::Replica);
  old_slot.fresh_as_of_ns.store(kFreshUnknown, std::memory_order_relaxed);
  old_slot.flags.store(of, std::memory_order_release);
  new_slot.flags.store(nf, std::memory_order_release);
  primary_.store(next, std::memory_order_release);
  rebuild_replica_list_locked();
  const std::uint64_t epoch = epoch_.fetch_add(1, std::memory_order_acq_rel) + 1;
  publish_epoch_primary_locked();
  return epoch;
}

void Topology::publish_epoch_primary_locked() noexcept {
  // Epochs beyond 2^48 (one promote per nanosecond for three days) would wrap the word's epoch.
  const auto primary = static_cast<std::uint64_t>(primary_.load(std::memory_order_relaxed));
  epoch_primary_.store((epoch_.load(std::memory_order_relaxed) << kEpochShift) | (primary & kPrimaryMask),
                       std::memory_order_release);
}

std::vector<int> Topology::replicas() const {
  std::vector<int> out;
  int n = size();
  for (int i = 0; i < n; ++i) {
    if (role_of(flags(i)) == Role::Replica) out.push_back(i);
  }
  return out;
}

NodeInfo Topology::info(int index) const {
  check_index(index, "index");
  const auto& slot = slots_[index];
  std::uint32_t f = slot.flags.load(std::memory_order_acquire);
  NodeInfo out;
  out.index = index;
  out.name = slot.name;
  out.region = slot.region;
  out.role = role_of(f);
  out.up = (f & detail::kUpBit) != 0;
  out.weight = slot.weight.load(std::memory_order_relaxed);
  out.priority = slot.priority.load(std::memory_order_relaxed);
  out.receive_lsn = Lsn(slot.receive_lsn.load(std::memory_order_relaxed));
  out.replay_lsn = Lsn(slot.replay_lsn.load(std::memory_order_relaxed));
  out.lag_bytes = slot.lag_bytes.load(std::memory_order_relaxed);
  out.lag_ns = slot.lag_ns.load(std::memory_order_relaxed);
  out.lag_known = (f & detail::kLagKnownBit) != 0;
  out.lag_state = (f & detail::kLaggingBit) ? LagState::Lagging : LagState::Ok;
  out.outstanding = outstanding(index);
  // A promoted replica's slot keeps its last instant until the next clear_lag: not the primary's.
  if (out.role == Role::Replica) out.fresh_as_of_ns = slot.fresh_as_of_ns.load(std::memory_order_relaxed);
  return out;
}

std::vector<NodeInfo> Topology::nodes() const {
  std::vector<NodeInfo> out;
  int n = size();
  for (int i = 0; i < n; ++i) {
    if (role_of(flags(i)) != Role::Removed) out.push_back(info(i));
  }
  return out;
}

void Topology::publish_lag(int index, Lsn receive_lsn, Lsn replay_lsn, std::int64_t lag_bytes,
                           std::int64_t lag_ns, bool lagging, bool lag_known,
                           std::int64_t fresh_as_of_ns) noexcept {
  std::lock_guard<std::mutex> lock(write_mutex_);
  auto& slot = slots_[index];
  slot.receive_lsn.store(receive_lsn.value, std::memory_order_relaxed);
  slot.lag_bytes.store(lag_bytes, std::memory_order_relaxed);
  slot.lag_ns.store(lag_ns, std::memory_order_relaxed);
  slot.fresh_as_of_ns.store(fresh_as_of_ns, std::memory_order_relaxed);
  slot.replay_lsn.store(replay_lsn.value, std::memory_order_release);
  std::uint32_t f = slot.flags.load(std::memory_order_relaxed);
  f = with_bit(with_bit(f, detail::kLaggingBit, lagging), detail::kLagKnownBit, lag_known);
  slot.flags.store(f, std::memory_order_release);
}

void Topology::publish_delays(int index, std::uint32_t samples,
                              const std::array<std::int64_t, kDelayLevelCount>& quantile_ns) noexcept {
  auto& slot = delays_[index];
  for (int k = 0; k < kDelayLevelCount; ++k) slot.quantile_ns[k].store(quantile_ns[k], std::memory_order_relaxed);
  slot.samples.store(samples, std::memory_order_release);
}

void Topology::publish_primary_lsn(int index, Lsn current_lsn) noexcept {
  auto& slot = slots_[index];
  slot.receive_lsn.store(current_lsn.value, std::memory_order_relaxed);
  slot.replay_lsn.store(current_lsn.value, std::memory_order_release);
}

void Topology::clear_lag() noexcept {
  std::lock_guard<std::mutex> lock(write_mutex_);
  int n = size();
  for (int i = 0; i < n; ++i) {
    auto& slot = slots_[i];
    std::uint32_t f = slot.flags.load(std::memory_order_relaxed);
    slot.lag_ns.store(0, std::memory_order_relaxed);
    slot.lag_bytes.store(0, std::memory_order_relaxed);
    slot.fresh_as_of_ns.store(kFreshUnknown, std::memory_order_relaxed);
    slot.flags.store(f & ~detail::kLaggingBit & ~detail::kLagKnownBit, std::memory_order_release);
    delays_[i].samples.store(0, std::memory_order_release);
  }
}

}  // namespace replikit
