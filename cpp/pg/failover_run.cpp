// The failover and switchover procedures of FailoverManager, and its reconciliation
// (see failover_manager.hpp for the order of the steps and why).
#include <algorithm>
#include <chrono>
#include <future>
#include <thread>

#include "failover_manager_impl.hpp"
#include "replikit/errors.hpp"

namespace replikit::pg {

namespace {

// A replica's candidate state from a fresh read, with the last timeline known for it when
// the read cannot tell (a standby whose primary died streams nothing: no received_tli).
CandidateState candidate_of(const std::string& name, const NodeState& st, std::uint32_t known_timeline,
                            const NodeInfo& info) {
  CandidateState c;
  c.name = name;
  c.reachable = st.reachable && st.in_recovery;
  c.receive_lsn = st.lsn;
  c.replay_lsn = st.replay_lsn;
  c.timeline = std::max(st.timeline, known_timeline);
  c.priority = info.priority;
  c.region = info.region;
  return c;
}

}  // namespace

FailoverPlan FailoverManager::Impl::plan(FailoverReport& report) {
  const auto& topo = *db.topology();
  const std::vector<int> replicas = topo.replicas();
  std::vector<std::future<NodeState>> reads;
  for (int i : replicas) {
    const std::string name = topo.name(i), dsn = db.dsn(name);
    reads.push_back(std::async(std::launch::async, [=, o = actions] { return read_node_state(name, dsn, o); }));
  }
  std::vector<CandidateState> candidates;
  PrimaryState primary;
  {
    std::lock_guard<std::mutex> lock(state_mutex);
    primary = primary_state;
    for (std::size_t k = 0; k < replicas.size(); ++k) {
      const std::string name = topo.name(replicas[k]);
      const NodeState st = reads[k].get();
      if (st.reachable && !st.in_recovery && st.timeline > primary.timeline) {
        report.promoted = name;  // promoted already (by a manager that stopped half-way): adopt it
        report.timeline = st.timeline;
      }
      if (st.reachable && st.timeline != 0) timelines[name] = std::max(timelines[name], st.timeline);
      const NodeStatus probed = db.node(name);
      const std::uint32_t known = std::max(timelines[name], probed.timeline);
      candidates.push_back(candidate_of(name, st, known, topo.info(replicas[k])));
    }
  }
  FailoverPlan p = plan_failover(candidates, primary, options.failover);
  report.plan = p;
  report.reason = p.reason;
  return p;
}

void FailoverManager::Impl::adopt_history(const std::string& node, const std::string& dsn, std::uint32_t timeline) {
  if (timeline <= db.timeline_history().current()) return;
  // Sessions reconcile against it: writes above the switch point were lost with the old timeline.
  const std::optional<std::string> text = read_timeline_history(node, dsn, timeline, actions);
  if (!text) return;
  try {
    db.set_timeline_history(TimelineHistory::parse(*text, timeline));
  } catch (const InvalidArgument&) {
    // Not a history file we can read: sessions keep their tokens' LSNs (over-asking, sound).
  }
}

std::string FailoverManager::Impl::carry_synchronous(FailoverReport& report, const std::string& candidate,
                                                     const std::string& setting) {
  if (!options.keep_synchronous || setting == kFencedStandby) return "";
  const auto& topo = *db.topology();
  std::vector<std::string> survivors;
  for (int i : topo.replicas()) {
    if (topo.name(i) != candidate && topo.name(i) != report.old_primary) survivors.push_back(topo.name(i));
  }
  const SynchronousCarry c = pg::carry_synchronous(setting, report.old_primary, candidate, survivors);
  if (!c.parsed || c.from.empty()) return "";  // unreadable, or an asynchronous primary: leave the candidate's own
  ActionResult r = set_synchronous(candidate, db.dsn(candidate), c.to, permitted("synchronous"));
  r.detail = c.note + "; " + r.detail;
  if (r.ok) {
    report.synchronous_standby_names = c.to;
    carried = Carried{setting, c.to, report.old_primary, candidate};
  }
  std::string said = !r.ok || c.count < c.wanted ? "; " + r.detail : "";
  report.actions.push_back(std::move(r));
  return said;
}

void FailoverManager::Impl::finish_switch(FailoverReport& report, const std::string& promoted) {
  const std::string dsn = db.dsn(promoted);
  report.actions.push_back(record_failover(promoted, dsn, report.timeline, report.next_xid, permitted("record")));
  if (report.actions.back().ok) recorded_timeline = report.timeline;
  // The epoch: from here every router of this process writes to the new primary (the
  // probers of other processes adopt it by its newer timeline).
  permitted("epoch bump");
  // Its events before routing changes; the prober may have adopted its new timeline already.
  report.epoch = db.make_primary(promoted, report.kind + " from '" + report.old_primary + "'");
  adopt_history(report.promoted.value_or(promoted), dsn, report.timeline);
  db.hold_primary(false);
  report.writable_ns = detail::steady_now_ns();
  {
    std::lock_guard<std::mutex> lock(state_mutex);
    timelines[promoted] = report.timeline;
    primary_state = PrimaryState{};
    primary_state.timeline = report.timeline;
    primary_synchronous = report.synchronous_standby_names;  // until it is read from the new primary
  }
  for (const std::string& other : report.plan.repoint) {
    if (other == promoted) continue;
    const std::string slot = slot_name(other);
    report.actions.push_back(create_slot(promoted, dsn, slot, permitted("create_slot")));
    ActionResult r = repoint_node(other, db.dsn(other), standby_conninfo(dsn, other), slot, permitted("repoint"));
    if (r.ok) report.repointed.push_back(other);
    report.actions.push_back(std::move(r));
  }
  report.finished_ns = detail::steady_now_ns();
  try {
    report.lost_writes = db.lost_writes();
  } catch (const Error&) {
    // The new primary went away again: the next failover reports them.
  }
}

void FailoverManager::Impl::stopped_without_permit(FailoverReport& report, const std::string& step) {
  db.hold_primary(false);
  const std::string done = report.actions.empty() ? "nothing done" : "the actions before it done";
  report.reason = "no valid lease permit before '" + step + "' (not the leader, or its lease's local deadline " +
                  "passed): stopped, " + done + (report.reason.empty() ? "" : "; the plan: " + report.reason);
  report.finished_ns = detail::steady_now_ns();
}

FailoverReport FailoverManager::Impl::fail_over(const char* kind) {
  auto& topo = *db.topology();
  FailoverReport report;
  report.kind = kind;
  report.old_primary = topo.name(topo.primary());
  report.detected_ns = detail::steady_now_ns();
  report.last_alive_ns = detector.last_alive_ns();
  report.permit_revision = permit_revision();
  try {
    permitted("plan");
    fail_over_steps(report);
  } catch (const NoPermit& e) {
    stopped_without_permit(report, e.step);
  }
  return report;
}

void FailoverManager::Impl::fail_over_steps(FailoverReport& report) {
  auto& topo = *db.topology();
  const FailoverPlan p = plan(report);
  if (report.promoted) {
    // Converge instead of promoting a second node: finish what the earlier run started.
    report.reason = "'" + *report.promoted + "' is already out of recovery on timeline " +
                    std::to_string(report.timeline) + ": adopted, not promoted again";
    report.plan.repoint.clear();
    for (int i : topo.replicas()) {
      const std::string& name = topo.name(i);
      if (name != *report.promoted && name != report.old_primary) report.plan.repoint.push_back(name);
    }
    report.promoted_ns = detail::steady_now_ns();
    finish_switch(report, *report.promoted);
    return;
  }
  if (!p.promote) {
    retry_after_ns = report.detected_ns + detail::ms_to_ns(options.retry_interval_ms);
    report.finished_ns = detail::steady_now_ns();
    return;
  }
  const std::string& chosen = *p.promote;
  // Fencing a frozen primary would cost a whole connect timeout: one detection window at most.
  ActionOptions fence_options = permitted("fence");
  fence_options.timeout_ms = std::min(fence_options.timeout_ms, std::max(50.0, options.detector.window_ms()));
  report.actions.push_back(fence_node(report.old_primary, db.dsn(report.old_primary), fence_options));
  report.reason += carry_synchronous(report, chosen, synchronous_setting());
  report.next_xid = next_xid_bound(chosen, db.dsn(chosen), permitted("next_xid")).value_or(0);
  ActionResult promoted = promote_node(chosen, db.dsn(chosen), permitted("promote"), &report.timeline);
  const bool ok = promoted.ok;
  report.actions.push_back(std::move(promoted));
  report.promoted_ns = detail::steady_now_ns();
  if (!ok) {
    report.reason = "promoting '" + chosen + "' failed: " + report.actions.back().detail;
    retry_after_ns = report.promoted_ns + detail::ms_to_ns(options.retry_interval_ms);
    report.finished_ns = report.promoted_ns;
    return;
  }
  report.promoted = chosen;
  finish_switch(report, chosen);
}

void FailoverManager::Impl::reconcile() {
  try {
    reconcile_steps();
  } catch (const NoPermit&) {
    // The permit ended mid-round: the next leader reconciles.
  }
}

void FailoverManager::Impl::reconcile_steps() {
  auto& topo = *db.topology();
  const int p = topo.primary();
  const std::string primary = topo.name(p);
  const NodeStatus pst = db.node(primary);
  if (!pst.reachable || pst.in_recovery || pst.role_mismatch) return;
  const std::string pdsn = db.dsn(primary);
  if (pst.timeline > 1 && pst.timeline != recorded_timeline) {
    // A primary promoted by a manager that stopped before recording it: record it now (its
    // next xid at promotion is unknown, so the fate of older writes stays unknown, never
    // guessed; an existing record is kept) and give the sessions its timeline history.
    if (record_failover(primary, pdsn, pst.timeline, 0, permitted("record")).ok) recorded_timeline = pst.timeline;
    adopt_history(primary, pdsn, pst.timeline);
  }
  for (int i : topo.replicas()) {
    const std::string name = topo.name(i);
    const NodeStatus st = db.node(name);
    if (!st.reachable) continue;
    if (!st.in_recovery) {
      // A node out of recovery that is not the primary (an old primary back): fence it once
      // per return (it is fenced again only after it was unreachable in between).
      auto it = fenced.find(name);
      if (it != fenced.end() && it->second == st.probes_failed) continue;
      if (fence_node(name, db.dsn(name), permitted("fence")).ok) fenced[name] = st.probes_failed;
      continue;
    }
    // Not streaming on the primary's timeline for a few rounds in a row (a walreceiver that is
    // just reconnecting is left alone): point it at the primary.
    if (st.timeline == pst.timeline) {
      astray.erase(name);
      relist_deposed(name, primary, pdsn);
      continue;
    }
    if (++astray[name] < kAstrayRounds) continue;
    astray.erase(name);
    const std::string slot = slot_name(name);
    create_slot(primary, pdsn, slot, permitted("create_slot"));
    repoint_node(name, db.dsn(name), standby_conninfo(pdsn, name), slot, permitted("repoint"));
  }
}

void FailoverManager::Impl::relist_deposed(const std::string& node, const std::string& primary,
                                           const std::string& pdsn) {
  if (!carried || carried->deposed != node || carried->promoted != primary) return;
  const NodeState now = read_node_state(primary, pdsn, actions);
  if (!now.reachable) return;  // the next round tries again
  const SynchronousCarry c = pg::restore_synchronous(carried->from, carried->promoted, carried->deposed);
  // A setting changed since the carry is someone else's choice now; '*' lists the node already.
  if (now.synchronous_standby_names != carried->to || c.to.empty()) {
    carried.reset();
    return;
  }
  // PostgreSQL counts a synchronous standby by its application_name, and only while it streams:
  // listed before (or under a name it does not stream as), it would hold commits with the count
  // restored. Until then the next rounds look again.
  const auto streams = [&](const std::string& name) { return same_standby_name(name, node); };
  if (std::none_of(now.streaming_now.begin(), now.streaming_now.end(), streams)) return;
  if (set_synchronous(primary, pdsn, c.to, permitted("synchronous")).ok) carried.reset();
}

void FailoverManager::Impl::drain(FailoverReport& report, int old, const PrimaryCalls& at_hold) {
  const std::int64_t start = detail::steady_now_ns();
  // The calls the hold keeps wait at most acquire_timeout_ms, then go on to the old primary, and
  // the fence, the catch-up and the promotion follow the drain: it takes at most half of that, so a
  // short acquire_timeout_ms shortens the drain instead of sending held calls to a fenced primary.
  const double bound_ms = std::min(options.max_drain_ms, db.options().acquire_timeout_ms / 2);
  const std::int64_t deadline = start + detail::ms_to_ns(bound_ms);
  // No call is admitted after the hold: the in-flight count only falls. Both counts come from
  // one read, so each call in flight at the hold is drained or cut, never both nor neither
  // (a call that was never sent, its connection not acquired, is neither).
  PrimaryCalls now = db.primary_calls(old);
  // Bounded by the deadline; polled, since the count is a lock-free counter with no waiters.
  while (now.in_flight > 0 && detail::steady_now_ns() < deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(500));
    now = db.primary_calls(old);
  }
  // Modulo 2^39, as the count is.
  report.drained_in_flight = static_cast<std::int32_t>((now.ended - at_hold.ended) & ((std::uint64_t{1} << 39) - 1));
  report.cut_in_flight = now.in_flight;
  report.drain_ms = static_cast<double>(detail::steady_now_ns() - start) / 1e6;
}

FailoverReport FailoverManager::Impl::switch_over(const std::string& candidate) {
  auto& topo = *db.topology();
  FailoverReport report;
  report.kind = "switchover";
  report.old_primary = topo.name(topo.primary());
  report.detected_ns = detail::steady_now_ns();
  report.permit_revision = permit_revision();
  // Whatever leaves the steps (an error included), writes are not held past them; a second
  // release only wakes the waiters once more.
  struct Release {
    ReplicatedDatabase& db;
    ~Release() { db.hold_primary(false); }
  } release{db};
  try {
    permitted("plan");
    switch_over_steps(report, candidate);
  } catch (const NoPermit& e) {
    // Writes are released; a fenced old primary stays fenced (the next leader decides).
    stopped_without_permit(report, e.step);
  }
  return report;
}

void FailoverManager::Impl::switch_over_steps(FailoverReport& report, const std::string& candidate) {
  auto& topo = *db.topology();
  refresh_primary_state();
  const std::string odsn = db.dsn(report.old_primary);
  const NodeState before = read_node_state(report.old_primary, odsn, actions);
  if (!before.reachable || before.in_recovery) {
    report.reason = "the primary '" + report.old_primary + "' is not a reachable primary: " + before.error;
    return;
  }
  FailoverPlan p = plan(report);
  const std::string chosen = candidate.empty() ? p.promote.value_or("") : candidate;
  if (chosen.empty() || topo.find(chosen) == kNoNode || chosen == report.old_primary) {
    report.reason = chosen.empty() ? "no candidate: " + p.reason : "'" + chosen + "' is not a replica";
    return;
  }
  if (p.promote != chosen) {
    p.repoint.erase(std::remove(p.repoint.begin(), p.repoint.end(), chosen), p.repoint.end());
    if (p.promote) p.repoint.push_back(*p.promote);
    p.promote = chosen;
    report.plan = p;
  }
  // Hold new calls for the primary, let those in flight finish, then fence: nothing more
  // commits there, and the fence ends only what outran the drain.
  const int old = topo.index_of(report.old_primary);
  const PrimaryCalls at_hold = db.hold_primary(true);
  const std::int64_t held = detail::steady_now_ns();
  drain(report, old, old == topo.primary() ? at_hold : db.primary_calls(old));
  report.actions.push_back(fence_node(report.old_primary, odsn, permitted("fence")));
  const NodeState fenced_state = read_node_state(report.old_primary, odsn, actions);
  const std::int64_t deadline = detail::steady_now_ns() + detail::ms_to_ns(options.max_switchover_ms);
  // Zero loss: the candidate must have replayed everything the fenced primary wrote.
  bool caught_up = false;
  while (fenced_state.reachable && detail::steady_now_ns() < deadline) {
    const NodeState c = read_node_state(chosen, db.dsn(chosen), actions);
    if (c.reachable && c.in_recovery && c.replay_lsn >= fenced_state.lsn) {
      caught_up = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!caught_up) {
    report.actions.push_back(
        unfence_node(report.old_primary, odsn, before.read_only, before.synchronous_standby_names, permitted("unfence")));
    db.hold_primary(false);
    report.reason = "'" + chosen + "' did not replay the primary's WAL within max_switchover_ms; switchover abandoned";
    report.finished_ns = detail::steady_now_ns();
    return;
  }
  const std::string synchronous = carry_synchronous(report, chosen, before.synchronous_standby_names);
  report.next_xid = next_xid_bound(chosen, db.dsn(chosen), permitted("next_xid")).value_or(0);
  ActionResult promoted = promote_node(chosen, db.dsn(chosen), permitted("promote"), &report.timeline);
  report.promoted_ns = detail::steady_now_ns();
  const bool ok = promoted.ok;
  report.actions.push_back(std::move(promoted));
  if (!ok) {
    db.hold_primary(false);
    report.reason = "promoting '" + chosen + "' failed: " + report.actions.back().detail;
    return;
  }
  report.promoted = chosen;
  report.reason = "switchover to '" + chosen + "': it had replayed up to the fenced primary's " +
                  fenced_state.lsn.to_string() + synchronous;
  finish_switch(report, chosen);
  report.write_pause_ms = static_cast<double>(report.writable_ns - held) / 1e6;
}

}  // namespace replikit::pg
