#include "replikit/lease.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "replikit/errors.hpp"

namespace replikit {

namespace {

constexpr double kNsPerMs = 1e6;

std::int64_t ms_to_ns(double ms) { return static_cast<std::int64_t>(std::floor(ms * kNsPerMs)); }

}  // namespace

const char* to_string(LeaseState state) noexcept {
  switch (state) {
    case LeaseState::Campaigning: return "campaigning";
    case LeaseState::Leading: return "leading";
    case LeaseState::Lost: return "lost";
    case LeaseState::SteppingDown: return "stepping_down";
  }
  return "unknown";
}

const char* to_string(TopologyVerdict verdict) noexcept {
  switch (verdict) {
    case TopologyVerdict::Applied: return "applied";
    case TopologyVerdict::Duplicate: return "duplicate";
    case TopologyVerdict::Stale: return "stale";
  }
  return "unknown";
}

void LeaseConfig::validate() const {
  require(std::isfinite(ttl_ms) && ttl_ms >= 10 && ttl_ms <= 3600000, "ttl_ms", "must be in [10, 3600000]");
  require(std::isfinite(margin_ms) && margin_ms > 0 && margin_ms < ttl_ms, "margin_ms", "must be in (0, ttl_ms)");
  require(std::isfinite(renew_interval_ms) && renew_interval_ms > 0 && renew_interval_ms < ttl_ms - margin_ms,
          "renew_interval_ms", "must be in (0, ttl_ms - margin_ms): a renewal must be tried before the deadline");
}

LeaderLease::LeaderLease(LeaseConfig config) : config_(config) { config_.validate(); }

void LeaderLease::check_time(std::int64_t now_ns) {
  require(now_ns >= 0, "now_ns", "must be >= 0");
  require(now_ns >= last_now_ns_, "now_ns", "must not be earlier than the previous event's");
  last_now_ns_ = now_ns;
}

void LeaderLease::move(std::int64_t now_ns, LeaseState to, std::string reason) {
  if (transitions_.size() >= kMaxTransitions) transitions_.erase(transitions_.begin());
  transitions_.push_back(LeaseTransition{now_ns, state_, to, reason});
  state_ = to;
  reason_ = std::move(reason);
}

void LeaderLease::settle(std::int64_t now_ns) {
  if (state_ == LeaseState::Leading && now_ns >= deadline_ns_) {
    move(deadline_ns_, LeaseState::Lost, "the local deadline passed without a confirmed renewal");
  }
}

void LeaderLease::campaign(std::int64_t now_ns) {
  check_time(now_ns);
  settle(now_ns);
  if (state_ == LeaseState::Lost) move(now_ns, LeaseState::Campaigning, "campaigning");
}

void LeaderLease::acquired(std::int64_t lease_sent_ns, std::int64_t now_ns, std::int64_t revision) {
  check_time(now_ns);
  require(lease_sent_ns >= 0 && lease_sent_ns <= now_ns, "lease_sent_ns", "must be in [0, now_ns]");
  require(revision > 0, "revision", "must be > 0");
  settle(now_ns);
  // Only a campaign may win: a late answer after a step-down or a loss is not leadership.
  if (state_ != LeaseState::Campaigning) return;
  revision_ = revision;
  last_sent_ns_ = lease_sent_ns;
  last_renew_ns_ = lease_sent_ns;
  failed_renewals_ = 0;
  deadline_ns_ = lease_sent_ns + ms_to_ns(config_.hold_ms());
  if (now_ns >= deadline_ns_) {
    move(now_ns, LeaseState::Lost, "won the key after the local deadline of its lease");
    return;
  }
  move(now_ns, LeaseState::Leading, "holds the leader key at revision " + std::to_string(revision));
}

void LeaderLease::renewed(std::int64_t sent_ns, std::int64_t now_ns, double granted_ttl_ms) {
  check_time(now_ns);
  require(sent_ns >= 0 && sent_ns <= now_ns, "sent_ns", "must be in [0, now_ns]");
  require(std::isfinite(granted_ttl_ms) && granted_ttl_ms >= 0, "granted_ttl_ms", "must be a finite number >= 0");
  settle(now_ns);
  if (state_ != LeaseState::Leading) return;  // too late: the holder already stopped
  if (granted_ttl_ms <= 0) {
    move(now_ns, LeaseState::Lost, "the service says the lease expired");
    return;
  }
  failed_renewals_ = 0;
  last_renew_ns_ = std::max(last_renew_ns_, sent_ns);
  if (sent_ns < last_sent_ns_) return;  // an answer overtaken by a newer one
  last_sent_ns_ = sent_ns;
  const double hold = std::min(config_.ttl_ms, granted_ttl_ms) - config_.margin_ms;
  deadline_ns_ = std::max(deadline_ns_, sent_ns + ms_to_ns(std::max(0.0, hold)));
}

void LeaderLease::renew_failed(std::int64_t now_ns, const std::string& reason) {
  check_time(now_ns);
  settle(now_ns);
  if (state_ != LeaseState::Leading) return;
  ++failed_renewals_;
  last_renew_ns_ = now_ns;
  reason_ = "renewal failed (" + reason + "); leading until the local deadline";
}

void LeaderLease::lost(std::int64_t now_ns, const std::string& reason) {
  check_time(now_ns);
  settle(now_ns);
  if (state_ == LeaseState::Leading || state_ == LeaseState::SteppingDown) {
    move(now_ns, LeaseState::Lost, reason);
  } else {
    reason_ = reason;
  }
}

void LeaderLease::step_down(std::int64_t now_ns) {
  check_time(now_ns);
  settle(now_ns);
  if (state_ == LeaseState::Leading) move(now_ns, LeaseState::SteppingDown, "stepping down");
  else if (state_ == LeaseState::Campaigning) move(now_ns, LeaseState::Lost, "stopped campaigning");
}

void LeaderLease::stepped_down(std::int64_t now_ns) {
  check_time(now_ns);
  settle(now_ns);
  if (state_ == LeaseState::SteppingDown) move(now_ns, LeaseState::Lost, "stepped down");
}

LeaseState LeaderLease::state(std::int64_t now_ns) const noexcept {
  if (state_ == LeaseState::Leading && now_ns >= deadline_ns_) return LeaseState::Lost;
  return state_;
}

std::optional<LeasePermit> LeaderLease::permit(std::int64_t now_ns) const noexcept {
  // An instant earlier than an event already fed is not trusted either.
  if (state_ != LeaseState::Leading || now_ns >= deadline_ns_ || now_ns < last_now_ns_) return std::nullopt;
  return LeasePermit{revision_, deadline_ns_};
}

bool LeaderLease::renew_due(std::int64_t now_ns) const noexcept {
  return state(now_ns) == LeaseState::Leading && now_ns >= last_renew_ns_ + ms_to_ns(config_.renew_interval_ms);
}

void PublishedTopology::validate() const {
  require(!primary.empty(), "primary", "must not be empty");
  require(revision > 0, "revision", "must be > 0");
  require(leader_revision > 0, "leader_revision", "must be > 0");
  std::set<std::string> names{primary};
  for (const PublishedReplica& r : replicas) {
    require(!r.name.empty(), "replicas", "a replica has an empty name");
    require(names.insert(r.name).second, "replicas", "'" + r.name + "' appears twice (or is the primary)");
  }
}

TopologyVerdict TopologyView::offer(const PublishedTopology& topology) {
  topology.validate();
  if (current_) {
    if (topology.revision == current_->revision) return TopologyVerdict::Duplicate;
    if (topology.revision < current_->revision || topology.leader_revision < current_->leader_revision) {
      ++stale_;
      return TopologyVerdict::Stale;
    }
  }
  current_ = topology;
  return TopologyVerdict::Applied;
}

}  // namespace replikit
