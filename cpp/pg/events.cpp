// The event ring (events.hpp) and the per-node transition tracking that feeds it (node_events.hpp).
#include "replikit/pg/events.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

#include "clock.hpp"
#include "node_events.hpp"
#include "replikit/errors.hpp"

namespace replikit::pg {

const char* to_string(EventKind kind) noexcept {
  switch (kind) {
    case EventKind::NodeDown: return "node_down";
    case EventKind::NodeUp: return "node_up";
    case EventKind::Lagging: return "lagging";
    case EventKind::Recovered: return "recovered";
    case EventKind::RoleMismatch: return "role_mismatch";
    case EventKind::RoleRestored: return "role_restored";
    case EventKind::ReadRetry: return "read_retry";
    case EventKind::Failover: return "failover";
  }
  return "unknown";
}

EventLog::EventLog(std::size_t capacity) : capacity_(capacity) {
  require(capacity >= 1 && capacity <= (std::size_t{1} << 20), "event_capacity", "must be in [1, 1048576]");
}

std::uint64_t EventLog::publish(Event event) {
  if (event.time_ns == 0) event.time_ns = detail::steady_now_ns();
  std::uint64_t sequence;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (events_.size() >= capacity_) {
      events_.pop_front();
      ++dropped_;
    }
    sequence = next_sequence_++;
    event.sequence = sequence;
    events_.push_back(std::move(event));
  }
  published_.notify_all();
  return sequence;
}

EventBatch EventLog::read_locked(std::uint64_t after_sequence, std::size_t max_events) const {
  EventBatch out;
  out.last_sequence = after_sequence;
  out.closed = closed_;
  if (events_.empty()) return out;
  const std::uint64_t first = events_.front().sequence;
  if (after_sequence + 1 < first) {  // overwritten before this reader saw them
    out.missed = first - after_sequence - 1;
    out.last_sequence = first - 1;
  }
  // Sequences are contiguous in the ring: index = sequence - first.
  std::size_t begin = static_cast<std::size_t>(std::max(out.last_sequence + 1, first) - first);
  for (std::size_t i = begin; i < events_.size() && out.events.size() < max_events; ++i) {
    out.events.push_back(events_[i]);
  }
  if (!out.events.empty()) out.last_sequence = out.events.back().sequence;
  out.closed = closed_ && out.last_sequence + 1 >= next_sequence_;
  return out;
}

EventBatch EventLog::read(std::uint64_t after_sequence, std::size_t max_events) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return read_locked(after_sequence, max_events);
}

EventBatch EventLog::wait(std::uint64_t after_sequence, std::size_t max_events, std::int64_t timeout_ns) const {
  std::unique_lock<std::mutex> lock(mutex_);
  const std::uint64_t wakes = wakes_;
  published_.wait_for(lock, std::chrono::nanoseconds(std::max<std::int64_t>(0, timeout_ns)), [&] {
    return closed_ || wakes_ != wakes || next_sequence_ - 1 > after_sequence;
  });
  return read_locked(after_sequence, max_events);
}

void EventLog::wake() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++wakes_;
  }
  published_.notify_all();
}

void EventLog::close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  published_.notify_all();
}

bool EventLog::closed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closed_;
}

std::uint64_t EventLog::last_sequence() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return next_sequence_ - 1;
}

std::uint64_t EventLog::dropped() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return dropped_;
}

namespace detail {

NodeEvents::NodeEvents(std::shared_ptr<EventLog> log, std::shared_ptr<Topology> topology,
                       std::shared_ptr<LagTracker> tracker)
    : log_(std::move(log)), topology_(std::move(topology)), tracker_(std::move(tracker)) {
  tracker_->set_transition_listener([this](const LagEvent& l) { lag_transition(l); });
}

// The tracker may outlive this (a binding holds it): it must not call a listener that is gone.
NodeEvents::~NodeEvents() { tracker_->set_transition_listener({}); }

void NodeEvents::publish(EventKind kind, int node, std::string message) {
  Event e;
  e.kind = kind;
  e.node = topology_->name(node);
  e.message = std::move(message);
  append(std::move(e));
}

void NodeEvents::append(Event e) {
  std::function<void(const Event&)> hook;
  {
    std::lock_guard<std::mutex> lock(hook_mutex_);
    hook = hook_;
  }
  if (hook) hook(e);
  log_->publish(std::move(e));
}

void NodeEvents::set_hook(std::function<void(const Event&)> hook) {
  std::lock_guard<std::mutex> lock(hook_mutex_);
  hook_ = std::move(hook);
}

bool NodeEvents::route(int node, bool up) {
  if (((topology_->flags(node) & ::replikit::detail::kUpBit) != 0) == up) return false;
  try {
    topology_->set_up(topology_->name(node), up);
  } catch (const std::exception&) {
    return false;  // a removed node: nothing to route around
  }
  return true;
}

bool NodeEvents::down(int node, const std::string& error) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  const auto i = static_cast<std::size_t>(node);
  if (!down_[i]) publish(EventKind::NodeDown, node, error);
  down_[i] = true;
  return route(node, false);
}

ProbeVerdict NodeEvents::good_probe(int node, const std::function<ProbeVerdict()>& judge) {
  // One step: a promotion between the judging and the routing would make the verdict stale (a
  // deposed primary judged as the primary routed back in), and a call's NodeDown between the
  // NodeUp and the routing would be contradicted.
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  const auto i = static_cast<std::size_t>(node);
  if (down_[i]) publish(EventKind::NodeUp, node, "reachable again");
  down_[i] = false;
  ProbeVerdict v = judge();
  if (mismatch_[i] != v.mismatch) {
    publish(v.mismatch ? EventKind::RoleMismatch : EventKind::RoleRestored, node, v.message);
  }
  mismatch_[i] = v.mismatch;
  if (v.routed) route(node, *v.routed);
  return v;
}

bool NodeEvents::promotion(int next, const std::string& why) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  const auto n = static_cast<std::size_t>(next);
  if (topology_->primary() != next) {
    // Validated first: a node removed (by a direct Topology call) publishes and forgets nothing.
    if (role_of(topology_->flags(next)) != Role::Replica) return false;
    // Its Recovered (when LAGGING) before routing promotes it; outside the topology's lock,
    // which the tracker takes itself.
    tracker_->forget_replica(next);
    bool made = false;
    try {
      // The events under the topology's lock, after its checks and before the change: they
      // precede every view of the promotion and follow only one that happens (a direct
      // Topology call may remove or promote `next` between the check above and here).
      topology_->make_primary(topology_->name(next), [&](int old) {
        announce_promotion(old, next, why);
        made = true;
      });
    } catch (const Error&) {
      return false;  // removed meanwhile: nothing was published
    }
    if (made) tracker_->reset();
  }
  // One found down stays out until a good probe publishes its NodeUp and routes it back.
  if (!down_[n]) route(next, true);
  return true;
}

void NodeEvents::announce_promotion(int old, int next, const std::string& why) {
  const auto n = static_cast<std::size_t>(next);
  const auto o = static_cast<std::size_t>(old);
  publish(EventKind::Failover, next, why);
  if (!mismatch_[o]) {
    publish(EventKind::RoleMismatch, old,
            "deposed: '" + topology_->name(next) + "' is the primary now; this node serves nothing until it "
            "rejoins as a replica");
  }
  mismatch_[o] = true;
  // A replica kept out of routing for being out of recovery: the primary's role is its own now.
  if (mismatch_[n]) publish(EventKind::RoleRestored, next, "made the primary");
  mismatch_[n] = false;
}

bool NodeEvents::mismatched(int node) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  return mismatch_[static_cast<std::size_t>(node)];
}

void NodeEvents::read_retry(int node, int next, int attempt, const std::string& error) {
  if (node < 0 || next < 0) return;
  Event e;
  e.kind = EventKind::ReadRetry;
  e.node = topology_->name(node);
  e.attempt = attempt;
  e.message = "retried on '" + topology_->name(next) + "' after: " + error;
  append(std::move(e));
}

void NodeEvents::lag_transition(const LagEvent& l) {
  Event e;
  e.kind = l.kind == LagEventKind::BecameLagging ? EventKind::Lagging : EventKind::Recovered;
  e.node = topology_->name(l.node);
  e.time_ns = l.time_ns;
  e.lag_ms = static_cast<double>(l.lag_ns) / 1e6;
  e.lag_bytes = l.lag_bytes;
  e.message = l.kind == LagEventKind::BecameLagging ? "LAGGING" : "RECOVERED";
  append(std::move(e));
}

}  // namespace detail

}  // namespace replikit::pg
