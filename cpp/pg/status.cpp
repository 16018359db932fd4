// ReplicatedDatabase's reports: node status (the prober's view, overridden by a call's error
// until the next probe), counters, and the writes adapters record.
#include "database_impl.hpp"

namespace replikit::pg {

NodeStatus ReplicatedDatabase::node(const std::string& name) const {
  const Impl& m = *impl_;
  const int i = m.topology->index_of(name, "name");
  NodeInfo info = m.topology->info(i);
  detail::ProbeState p = m.prober->state(i);
  NodeStatus s;
  s.name = info.name;
  s.role = info.role;
  s.up = info.up;
  s.reachable = p.reachable;
  s.in_recovery = p.in_recovery;
  s.role_mismatch = m.node_events->mismatched(i);  // as its last role event says
  s.timeline = p.timeline;
  s.current_lsn = p.current_lsn;
  s.receive_lsn = p.receive_lsn;
  s.replay_lsn = p.replay_lsn;
  if (info.role == Role::Replica) {
    ReplicaLag lag = m.tracker->replica(i);
    s.lag_ns = lag.lag_ns;
    s.lag_bytes = lag.lag_bytes;
    s.lag_state = lag.state;
    s.lag_known = lag.known;
    s.fresh_as_of_ns = info.fresh_as_of_ns;
  }
  s.last_probe_ns = p.last_probe_ns;
  s.last_probe_sent_ns = p.last_probe_sent_ns;
  s.probe_rtt_ms = p.rtt_ms;
  s.probes_ok = p.probes_ok;
  s.probes_failed = p.probes_failed;
  s.last_error = p.last_error;
  {
    // A call that marked the node down speaks for it until the prober has probed it again.
    std::lock_guard<std::mutex> lock(m.call_error_mutex);
    const Impl::CallError& e = m.call_errors[static_cast<std::size_t>(i)];
    if (e.set && e.probes_seen == p.probes_ok + p.probes_failed) {
      s.reachable = false;
      s.last_error = e.message;
    }
  }
  s.pool_open = m.pools[static_cast<std::size_t>(i)]->open_count();
  s.pool_idle = m.pools[static_cast<std::size_t>(i)]->idle_count();
  return s;
}

std::vector<NodeStatus> ReplicatedDatabase::nodes() const {
  std::vector<NodeStatus> out;
  for (const NodeInfo& info : impl_->topology->nodes()) out.push_back(node(info.name));
  return out;
}

DatabaseStats ReplicatedDatabase::stats() const {
  const auto& c = impl_->counters;
  DatabaseStats s;
  s.writes = c.writes.load();
  s.reads = c.reads.load();
  s.reads_on_replicas = c.replica_reads.load();
  s.reads_on_primary = c.primary_reads.load();
  s.read_retries = c.retries.load();
  s.read_failures = c.read_failures.load();
  s.waits = c.waits.load();
  s.waits_served_by_replica = c.waits_served.load();
  s.nodes_marked_down = c.marked_down.load();
  s.watchdog_fired = c.watchdog_fired.load();
  return s;
}

void ReplicatedDatabase::record_write(Session& session, Lsn commit_lsn) const {
  Impl& m = *impl_;
  Decision d;
  d.node = m.topology->primary();
  d.reason = Reason::Write;
  m.router->record(d);
  m.counters.writes.fetch_add(1, std::memory_order_relaxed);
  session.record_write(commit_lsn, detail::wall_now_ns());
}

}  // namespace replikit::pg
