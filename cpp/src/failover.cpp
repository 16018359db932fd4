#include "replikit/failover.hpp"

#include <algorithm>
#include <set>

#include "replikit/errors.hpp"

namespace replikit {

namespace {

std::string lsn_text(Lsn lsn) { return lsn.to_string(); }

void check_input(const std::vector<CandidateState>& candidates, const FailoverConfig& config) {
  require(static_cast<int>(candidates.size()) <= kMaxCandidates, "candidates",
          "more than " + std::to_string(kMaxCandidates) + " candidates");
  std::set<std::string> names;
  for (const auto& c : candidates) {
    require(!c.name.empty(), "candidates", "a candidate has an empty name");
    require(names.insert(c.name).second, "candidates", "duplicate candidate name '" + c.name + "'");
  }
  require(!config.max_lag_bytes || *config.max_lag_bytes >= 0, "config", "max_lag_bytes must not be negative");
}

bool listed_synchronous(const CandidateState& c, const PrimaryState& p) {
  if (c.was_synchronous) return true;
  return std::any_of(p.synchronous_standbys.begin(), p.synchronous_standbys.end(),
                     [&](const std::string& s) { return s == "*" || s == c.name; });
}

// The first rule (unreachable, tags, timeline, lag, synchronous mode) that excludes `c`, if any.
std::optional<Exclusion> hard_exclusion(const CandidateState& c, const PrimaryState& p, const FailoverConfig& config,
                                        std::uint32_t newest, Lsn reference) {
  auto out = [&](ExclusionReason r, std::string detail) { return Exclusion{c.name, r, std::move(detail)}; };
  if (!c.reachable) return out(ExclusionReason::Unreachable, "did not answer its last probe");
  if (c.no_failover) return out(ExclusionReason::NoFailoverTag, "tagged no-failover");
  if (c.timeline == 0) return out(ExclusionReason::TimelineBehind, "timeline unknown");
  if (c.timeline < newest) {
    return out(ExclusionReason::TimelineBehind,
               "on timeline " + std::to_string(c.timeline) + ", the newest is " + std::to_string(newest));
  }
  const std::int64_t behind = std::max<std::int64_t>(0, lsn_diff_bytes(reference, c.position()));
  if (config.max_lag_bytes && behind > *config.max_lag_bytes) {
    return out(ExclusionReason::TooFarBehind, "at " + lsn_text(c.position()) + ", " + std::to_string(behind) +
                                                  " bytes behind " + lsn_text(reference) + " (max_lag_bytes " +
                                                  std::to_string(*config.max_lag_bytes) + ")");
  }
  if (p.synchronous_mode && !listed_synchronous(c, p)) {
    return out(ExclusionReason::NotSynchronous, "not a synchronous standby of the primary");
  }
  if (p.synchronous_mode && c.position() < p.last_acknowledged_commit_lsn) {
    return out(ExclusionReason::NotFlushedAllAcknowledged,
               "at " + lsn_text(c.position()) + ", commits were acknowledged up to " +
                   lsn_text(p.last_acknowledged_commit_lsn));
  }
  return std::nullopt;
}

bool in_region(const CandidateState& c, const FailoverConfig& config) {
  return !config.preferred_region.empty() && c.region == config.preferred_region;
}

// True when `a` is preferred to `b` (both eligible): the selection order of the file comment.
bool better(const CandidateState& a, const CandidateState& b, const FailoverConfig& config) {
  if (a.position() != b.position()) return a.position() > b.position();
  if (a.priority != b.priority) return a.priority > b.priority;
  if (in_region(a, config) != in_region(b, config)) return in_region(a, config);
  if (a.replay_lsn != b.replay_lsn) return a.replay_lsn > b.replay_lsn;
  return a.name < b.name;
}

// Why eligible `c` lost to `chosen`: the first rule of `better` that separates them.
Exclusion passed_over(const CandidateState& c, const CandidateState& chosen, const FailoverConfig& config) {
  auto out = [&](ExclusionReason r, std::string detail) { return Exclusion{c.name, r, std::move(detail)}; };
  if (c.position() != chosen.position()) {
    return out(ExclusionReason::LessUpToDate, "at " + lsn_text(c.position()) + ", " +
                                                  std::to_string(lsn_diff_bytes(chosen.position(), c.position())) +
                                                  " bytes behind " + chosen.name);
  }
  if (c.priority != chosen.priority) {
    return out(ExclusionReason::LowerPriority, "priority " + std::to_string(c.priority) + " < " +
                                                   std::to_string(chosen.priority) + " of " + chosen.name);
  }
  if (in_region(c, config) != in_region(chosen, config)) {
    return out(ExclusionReason::OtherRegion, "region '" + c.region + "' is not the preferred '" +
                                                 config.preferred_region + "'");
  }
  if (c.replay_lsn != chosen.replay_lsn) {
    return out(ExclusionReason::LessReplayed, "replayed " + lsn_text(c.replay_lsn) + " < " +
                                                  lsn_text(chosen.replay_lsn) + " of " + chosen.name);
  }
  return out(ExclusionReason::NameOrder, "full tie with " + chosen.name + ", broken by name");
}

std::string no_one_reason(const std::vector<CandidateState>& candidates, const std::vector<Exclusion>& excluded,
                          const PrimaryState& p) {
  if (excluded.empty()) return "no candidates";
  if (!p.synchronous_mode) return "no eligible candidate: every candidate is excluded";
  // Say what became of each synchronous standby: that is what blocks the promotion.
  std::string standbys;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    if (!listed_synchronous(candidates[i], p)) continue;
    standbys += (standbys.empty() ? "" : ", ") + candidates[i].name + " " + to_string(excluded[i].reason);
  }
  for (const auto& s : p.synchronous_standbys) {
    const bool known = std::any_of(candidates.begin(), candidates.end(), [&](const auto& c) { return c.name == s; });
    if (!known && s != "*") standbys += (standbys.empty() ? "" : ", ") + s + " not among the candidates";
  }
  if (standbys.empty()) standbys = "none known";
  return "synchronous mode: no synchronous standby can be promoted (" + standbys +
         "); the primary and its synchronous standbys are gone, and promoting another replica could lose "
         "acknowledged commits";
}

// The newest timeline and the reference LSN, from the reachable replicas and the primary.
void set_reference(FailoverPlan& plan, const std::vector<CandidateState>& candidates, const PrimaryState& primary) {
  std::uint32_t newest = primary.timeline;
  for (const auto& c : candidates) {
    if (c.reachable) newest = std::max(newest, c.timeline);
  }
  Lsn reference = primary.last_known_lsn;
  for (const auto& c : candidates) {
    if (c.reachable && c.timeline == newest && newest != 0) reference = lsn_max(reference, c.position());
  }
  plan.reference_lsn = reference;
  plan.timeline = newest;
}

}  // namespace

FailoverPlan plan_failover(const std::vector<CandidateState>& candidates, const PrimaryState& primary,
                           const FailoverConfig& config) {
  check_input(candidates, config);
  FailoverPlan plan;
  set_reference(plan, candidates, primary);
  const std::uint32_t newest = plan.timeline;
  const Lsn reference = plan.reference_lsn;

  std::vector<std::optional<Exclusion>> hard(candidates.size());
  const CandidateState* chosen = nullptr;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    hard[i] = hard_exclusion(candidates[i], primary, config, newest, reference);
    if (!hard[i] && (chosen == nullptr || better(candidates[i], *chosen, config))) chosen = &candidates[i];
  }
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const CandidateState& c = candidates[i];
    if (&c == chosen) continue;
    plan.excluded.push_back(hard[i] ? *hard[i] : passed_over(c, *chosen, config));
    if (chosen != nullptr && c.reachable) plan.repoint.push_back(c.name);
  }
  if (chosen == nullptr) {
    plan.reason = no_one_reason(candidates, plan.excluded, primary);
    return plan;
  }
  plan.promote = chosen->name;
  plan.promote_lsn = chosen->position();
  plan.expected_loss_bytes = std::max<std::int64_t>(0, lsn_diff_bytes(reference, chosen->position()));
  plan.reason = chosen->name + " is the most up-to-date eligible candidate (at " + lsn_text(chosen->position()) +
                " on timeline " + std::to_string(newest) + ", priority " + std::to_string(chosen->priority) +
                "); expected loss " + std::to_string(plan.expected_loss_bytes) + " bytes";
  return plan;
}

const char* to_string(ExclusionReason reason) noexcept {
  switch (reason) {
    case ExclusionReason::Unreachable: return "unreachable";
    case ExclusionReason::NoFailoverTag: return "no_failover_tag";
    case ExclusionReason::TimelineBehind: return "timeline_behind";
    case ExclusionReason::TooFarBehind: return "too_far_behind";
    case ExclusionReason::NotSynchronous: return "not_synchronous";
    case ExclusionReason::NotFlushedAllAcknowledged: return "not_flushed_all_acknowledged";
    case ExclusionReason::LessUpToDate: return "less_up_to_date";
    case ExclusionReason::LowerPriority: return "lower_priority";
    case ExclusionReason::OtherRegion: return "other_region";
    case ExclusionReason::LessReplayed: return "less_replayed";
    case ExclusionReason::NameOrder: return "name_order";
  }
  return "unknown";
}

std::string describe(const FailoverPlan& plan) {
  std::string out = plan.promote ? "promote " + *plan.promote : std::string("promote no one");
  out += ": " + plan.reason + "\n";
  out += "reference " + lsn_text(plan.reference_lsn) + " on timeline " + std::to_string(plan.timeline) +
         ", expected loss " + std::to_string(plan.expected_loss_bytes) + " bytes\n";
  for (const auto& e : plan.excluded) {
    out += "  " + e.name + ": " + to_string(e.reason) + " (" + e.detail + ")\n";
  }
  if (!plan.repoint.empty()) {
    out += "repoint:";
    for (const auto& r : plan.repoint) out += " " + r;
    out += "\n";
  }
  return out;
}

}  // namespace replikit
