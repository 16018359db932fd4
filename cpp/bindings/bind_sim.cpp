// Python bindings of the simulator's configuration: ReplicationMode and SimConfig. Every field
// is a property whose setter converts (a wrong type names the field) and validates the whole
// value (a wrong value names the field); the defaults are C++ SimConfig{}'s.
#include <pybind11/native_enum.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <functional>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/sim/config.hpp"
#include "sim_fields.hpp"

namespace replikit::bindings {

namespace {

using sim::SimConfig;

// A latency or service time: a LatencyDistribution, or a number of ms (a constant).
LatencyDistribution to_latency(const py::handle& v, const char* argument) {
  if (py::isinstance<LatencyDistribution>(v)) return v.cast<LatencyDistribution>();
  if (py::isinstance<py::bool_>(v) || !PyNumber_Check(v.ptr()) || py::isinstance<py::str>(v)) {
    wrong_type(argument, "a LatencyDistribution or a number of ms", v);
  }
  const double ms = to_double(v, argument);
  if (!std::isfinite(ms) || ms < 0) throw InvalidArgument(argument, "must be a finite number of ms >= 0");
  return LatencyDistribution::constant(ms);
}

// Per node, lists of ms (SimConfig::probe_run_lags_ms and its after-crash twin).
SimField run_lags_field(const char* name, std::vector<std::vector<double>> SimConfig::*member, const char* doc) {
  return SimField{name, doc, 1, [member](const SimConfig& c) { return py::cast(c.*member); },
                  [name, member](SimConfig& c, const py::handle& v) {
                    std::vector<std::vector<double>> lags;
                    for (const auto& node : to_items(v, name, "a sequence of lists of ms")) lags.push_back(to_doubles(node, name));
                    c.*member = std::move(lags);
                  }};
}

std::string level_name(int level) { return to_string(static_cast<Consistency>(level)); }

// consistency_mix: a dict {level: weight} (levels as Consistency or names; missing: 0) or six weights.
std::array<double, sim::kLevels> to_mix(const py::handle& v) {
  const char* arg = "consistency_mix";
  std::array<double, sim::kLevels> mix{};
  if (py::isinstance<py::dict>(v)) {
    for (const auto& [key, weight] : py::reinterpret_borrow<py::dict>(v)) {
      mix[static_cast<std::size_t>(to_enum<Consistency>(key, arg))] = to_double(weight, arg);
    }
    return mix;
  }
  const auto weights = to_doubles(v, arg);
  if (weights.size() != mix.size()) throw InvalidArgument(arg, "expected a dict {level: weight} or 6 weights");
  std::copy(weights.begin(), weights.end(), mix.begin());
  return mix;
}

py::dict mix_dict(const SimConfig& c) {
  py::dict out;
  for (int i = 0; i < sim::kLevels; ++i) out[py::str(level_name(i))] = c.consistency_mix[static_cast<std::size_t>(i)];
  return out;
}

// A replica of `c` by name or node index (1..replicas).
int to_replica(const SimConfig& c, const py::handle& v, const char* argument) {
  if (py::isinstance<py::str>(v)) {
    const std::string name = to_str(v, argument);
    for (int i = 1; i <= c.replicas; ++i) {
      if (c.node_name(i) == name) return i;
    }
    throw InvalidArgument(argument, "no replica is named '" + name + "'");
  }
  return to_int(v, argument, 1, c.replicas);
}

std::vector<sim::ReplicaPause> to_pauses(const SimConfig& c, const py::handle& v) {
  const char* arg = "pauses";
  std::vector<sim::ReplicaPause> out;
  for (const auto& item : to_items(v, arg, "a sequence of (replica, from_ms, to_ms)")) {
    const auto t = to_items(item, arg, "a (replica, from_ms, to_ms) tuple");
    if (t.size() != 3) throw InvalidArgument(arg, "each pause is (replica, from_ms, to_ms)");
    out.push_back(sim::ReplicaPause{to_replica(c, t[0], arg), to_double(t[1], arg), to_double(t[2], arg)});
  }
  return out;
}

std::vector<sim::SlowReplica> to_slow(const SimConfig& c, const py::handle& v) {
  const char* arg = "slow_replicas";
  if (!py::isinstance<py::dict>(v)) wrong_type(arg, "a dict {replica: factor}", v);
  std::vector<sim::SlowReplica> out;
  for (const auto& [key, factor] : py::reinterpret_borrow<py::dict>(v)) {
    out.push_back(sim::SlowReplica{to_replica(c, key, arg), to_double(factor, arg)});
  }
  return out;
}

std::vector<sim::ApplyDelay> to_apply_delays(const SimConfig& c, const py::handle& v) {
  const char* arg = "apply_delays";
  if (!py::isinstance<py::dict>(v)) wrong_type(arg, "a dict {replica: delay_ms}", v);
  std::vector<sim::ApplyDelay> out;
  for (const auto& [key, delay] : py::reinterpret_borrow<py::dict>(v)) {
    out.push_back(sim::ApplyDelay{to_replica(c, key, arg), to_double(delay, arg)});
  }
  return out;
}

template <typename T>
SimField number_field(const char* name, T SimConfig::*member, const char* doc, int phase = 0) {
  SimField f{name, doc, phase, nullptr, nullptr};
  f.get = [member](const SimConfig& c) { return py::cast(c.*member); };
  f.set = [member, name](SimConfig& c, const py::handle& v) {
    if constexpr (std::is_same_v<T, double>) {
      c.*member = to_double(v, name);
    } else if constexpr (std::is_same_v<T, std::uint64_t>) {
      c.*member = to_uint64(v, name);
    } else {
      c.*member = static_cast<T>(to_int64(v, name, std::numeric_limits<T>::min(), std::numeric_limits<T>::max()));
    }
  };
  return f;
}

SimField latency_field(const char* name, LatencyDistribution SimConfig::*member, const char* doc) {
  SimField f{name, doc, 0, nullptr, nullptr};
  f.get = [member](const SimConfig& c) { return py::cast(c.*member); };
  f.set = [member, name](SimConfig& c, const py::handle& v) { c.*member = to_latency(v, name); };
  return f;
}

std::vector<SimField> workload_fields() {
  std::vector<SimField> f;
  f.push_back(number_field("duration_ms", &SimConfig::duration_ms, "Requests arrive during [0, duration_ms)."));
  f.push_back(number_field("write_rate_per_s", &SimConfig::write_rate_per_s, "Poisson write arrivals per second."));
  f.push_back(number_field("read_rate_per_s", &SimConfig::read_rate_per_s, "Poisson read arrivals per second."));
  f.push_back(number_field("sessions", &SimConfig::sessions, "Sessions the requests are drawn from (uniformly)."));
  f.push_back(SimField{"consistency_mix", "Weights of the read levels: {level: weight} (missing: 0) or 6 weights.", 0,
                       mix_dict, [](SimConfig& c, const py::handle& v) { c.consistency_mix = to_mix(v); }});
  f.push_back(number_field("max_staleness_ms", &SimConfig::max_staleness_ms, "The bound of BOUNDED_STALENESS reads."));
  f.push_back(number_field("read_back_share", &SimConfig::read_back_share,
                           "Share of acknowledged writes read back by their session, in [0, 1] (on top of read_rate_per_s)."));
  f.push_back(number_field("read_back_delay_ms", &SimConfig::read_back_delay_ms, "Acknowledgement -> read-back delay."));
  f.push_back(SimField{"read_back_consistency", "The level of read-backs (a Consistency or its name).", 0,
                       [](const SimConfig& c) { return py::cast(c.read_back_consistency); },
                       [](SimConfig& c, const py::handle& v) {
                         c.read_back_consistency = to_enum<Consistency>(v, "read_back_consistency");
                       }});
  f.push_back(SimField{"session_reads_wait_for_writes",
                       "True: a session's read-your-writes and causal reads wait while it has a write in flight (one "
                       "request of a session at a time); False: every read leaves when it arrives.",
                       0, [](const SimConfig& c) { return py::cast(c.session_reads_wait_for_writes); },
                       [](SimConfig& c, const py::handle& v) {
                         c.session_reads_wait_for_writes = to_bool(v, "session_reads_wait_for_writes");
                       }});
  f.push_back(number_field("write_size_bytes", &SimConfig::write_size_bytes, "WAL bytes per write, its commit record included."));
  f.push_back(number_field("commit_record_bytes", &SimConfig::commit_record_bytes,
                           "Of which the commit record (in [1, write_size_bytes]): where an apply delay holds replay."));
  return f;
}

std::vector<SimField> background_fields() {
  std::vector<SimField> f;
  f.push_back(number_field("background_write_rate_per_s", &SimConfig::background_write_rate_per_s,
                           "Poisson writes of no session: WAL replicated and acknowledged like any write, judged by no "
                           "read, counted in SimResult.background_writes_* (0: none)."));
  f.push_back(number_field("background_write_rate_after_crash_per_s", &SimConfig::background_write_rate_after_crash_per_s,
                           "Their rate from the primary's crash on (< 0: background_write_rate_per_s)."));
  f.push_back(SimField{"reset_tracker_on_promotion",
                       "True: the lag tracker starts afresh at a promotion, as replikit's does; False: it keeps the "
                       "old primary's history (as replikit's FailoverManager did until 2026-11-30 when it promoted "
                       "before the prober adopted the node).",
                       0, [](const SimConfig& c) { return py::cast(c.reset_tracker_on_promotion); },
                       [](SimConfig& c, const py::handle& v) {
                         c.reset_tracker_on_promotion = to_bool(v, "reset_tracker_on_promotion");
                       }});
  f.push_back(SimField{"probe_at_promotion",
                       "True: the lag prober probes every node at the promotion and keeps its cadence from there (a "
                       "prober that adopts the promoted primary at a probe); False: its ticks from the run's start.",
                       0, [](const SimConfig& c) { return py::cast(c.probe_at_promotion); },
                       [](SimConfig& c, const py::handle& v) { c.probe_at_promotion = to_bool(v, "probe_at_promotion"); }});
  f.push_back(SimField{"tracked_lag_lower_bounds",
                       "True: a tracked lag that is only a lower bound (the primary's last sample older than "
                       "stale_sample_ms) counts in tracked_lag_ms and the windows, as NodeStatus shows it; False: "
                       "unknown (NaN), as a recorder of measured lags only keeps it.",
                       0, [](const SimConfig& c) { return py::cast(c.tracked_lag_lower_bounds); },
                       [](SimConfig& c, const py::handle& v) { c.tracked_lag_lower_bounds = to_bool(v, "tracked_lag_lower_bounds"); }});
  f.push_back(SimField{"probe_latency",
                       "One-way latency of the lag prober's queries (ms; a number is a constant); None: client_latency.",
                       0,
                       [](const SimConfig& c) { return c.probe_latency ? py::cast(*c.probe_latency) : py::object(py::none()); },
                       [](SimConfig& c, const py::handle& v) {
                         if (v.is_none()) {
                           c.probe_latency.reset();
                         } else {
                           c.probe_latency = to_latency(v, "probe_latency");
                         }
                       }});
  f.push_back(SimField{"probe_offsets_ms",
                       "Per node, primary first: ms after each probe tick its query is sent, in [0, "
                       "probe_interval_ms) (empty: all at the tick).",
                       1, [](const SimConfig& c) { return py::cast(c.probe_offsets_ms); },
                       [](SimConfig& c, const py::handle& v) { c.probe_offsets_ms = to_doubles(v, "probe_offsets_ms"); }});
  f.push_back(number_field("probe_commit_lag_ms", &SimConfig::probe_commit_lag_ms,
                           "The lag prober finds a write in the primary's position this long after its commit "
                           "(a COMMIT one round trip after the statement the delays are measured from; 0: at once)."));
  f.push_back(number_field("repoint_catch_up_ms", &SimConfig::repoint_catch_up_ms,
                           "Once a repointed standby streams again, the WAL it lacks arrives spread over this span (0: at once)."));
  return f;
}

std::vector<SimField> capacity_fields() {
  std::vector<SimField> f;
  f.push_back(number_field("replicas", &SimConfig::replicas, "Replicas (nodes 1..replicas; node 0 is the primary)."));
  f.push_back(number_field("servers_per_node", &SimConfig::servers_per_node, "Requests a node serves at once."));
  f.push_back(number_field("max_queue_length", &SimConfig::max_queue_length, "Requests waiting per node; beyond, one fails."));
  f.push_back(latency_field("read_service", &SimConfig::read_service, "Service time of a read (ms; a number is a constant)."));
  f.push_back(latency_field("write_service", &SimConfig::write_service, "Service time of a write (ms)."));
  f.push_back(number_field("apply_rate_per_s", &SimConfig::apply_rate_per_s, "Writes a replica replays per second (exponential)."));
  f.push_back(latency_field("client_latency", &SimConfig::client_latency, "One-way client <-> node latency (ms)."));
  f.push_back(latency_field("replica_latency", &SimConfig::replica_latency, "One-way primary <-> replica latency (ms)."));
  f.push_back(SimField{"replica_latency_after_crash",
                       "One-way primary <-> replica latency (ms) of what is sent from the primary's crash on; None: "
                       "replica_latency throughout.",
                       0,
                       [](const SimConfig& c) {
                         return c.replica_latency_after_crash ? py::cast(*c.replica_latency_after_crash)
                                                              : py::object(py::none());
                       },
                       [](SimConfig& c, const py::handle& v) {
                         if (v.is_none()) {
                           c.replica_latency_after_crash.reset();
                         } else {
                           c.replica_latency_after_crash = to_latency(v, "replica_latency_after_crash");
                         }
                       }});
  f.push_back(SimField{"mode", "When a write is acknowledged (a ReplicationMode or its name).", 0,
                       [](const SimConfig& c) { return py::cast(c.mode); },
                       [](SimConfig& c, const py::handle& v) { c.mode = to_enum<sim::ReplicationMode>(v, "mode"); }});
  f.push_back(number_field("sync_count", &SimConfig::sync_count, "SEMI_SYNC / REMOTE_APPLY: standbys that must confirm."));
  f.push_back(SimField{"mode_after_promotion",
                       "When a promoted primary acknowledges a write, from its promotion on (a ReplicationMode or "
                       "its name; a promoted standby has no synchronous standbys unless set); None: mode throughout.",
                       0,
                       [](const SimConfig& c) {
                         return c.mode_after_promotion ? py::cast(*c.mode_after_promotion) : py::object(py::none());
                       },
                       [](SimConfig& c, const py::handle& v) {
                         if (v.is_none()) {
                           c.mode_after_promotion.reset();
                         } else {
                           c.mode_after_promotion = to_enum<sim::ReplicationMode>(v, "mode_after_promotion");
                         }
                       }});
  f.push_back(SimField{"router", "The Router's settings (a RouterConfig; its seed is derived from the run's).", 0,
                       [](const SimConfig& c) { return py::cast(c.router); },
                       [](SimConfig& c, const py::handle& v) {
                         if (!py::isinstance<RouterConfig>(v)) wrong_type("router", "a replikit.RouterConfig", v);
                         c.router = v.cast<RouterConfig>();
                       }});
  f.push_back(SimField{"lag", "The LagTracker's thresholds (a LagConfig).", 0,
                       [](const SimConfig& c) { return py::cast(c.lag); },
                       [](SimConfig& c, const py::handle& v) {
                         if (!py::isinstance<LagConfig>(v)) wrong_type("lag", "a replikit.LagConfig", v);
                         c.lag = v.cast<LagConfig>();
                       }});
  f.push_back(number_field("probe_interval_ms", &SimConfig::probe_interval_ms, "How often the lag tracker samples."));
  return f;
}

py::list pauses_list(const SimConfig& c) {
  py::list out;
  for (const auto& p : c.pauses) out.append(py::make_tuple(c.node_name(p.replica), p.from_ms, p.to_ms));
  return out;
}

py::dict slow_dict(const SimConfig& c) {
  py::dict out;
  for (const auto& s : c.slow_replicas) out[py::str(c.node_name(s.replica))] = s.factor;
  return out;
}

py::dict apply_delay_dict(const SimConfig& c) {
  py::dict out;
  for (const auto& d : c.apply_delays) out[py::str(c.node_name(d.replica))] = d.delay_ms;
  return out;
}

// Replayed arrivals: (at_ms, session) per write, (at_ms, session, level) per read.
std::vector<sim::Arrival> to_arrivals(const py::handle& v, const char* arg, bool reads) {
  const char* shape = reads ? "a sequence of (at_ms, session, level)" : "a sequence of (at_ms, session)";
  std::vector<sim::Arrival> out;
  for (const auto& item : to_items(v, arg, shape)) {
    const auto t = to_items(item, arg, shape);
    if (t.size() != (reads ? 3u : 2u)) throw InvalidArgument(arg, std::string("expected ") + shape);
    sim::Arrival a;
    a.at_ms = to_double(t[0], arg);
    a.session = to_int(t[1], arg, 0, sim::kMaxSessions - 1);
    if (reads) a.level = to_enum<Consistency>(t[2], arg);
    out.push_back(a);
  }
  return out;
}

py::list arrivals_list(const std::vector<sim::Arrival>& arrivals, bool reads) {
  py::list out;
  for (const auto& a : arrivals) {
    if (reads) {
      out.append(py::make_tuple(a.at_ms, a.session, a.level));
    } else {
      out.append(py::make_tuple(a.at_ms, a.session));
    }
  }
  return out;
}

std::vector<SimField> fault_fields() {
  std::vector<SimField> f;
  f.push_back(number_field("crash_primary_at_ms", &SimConfig::crash_primary_at_ms, "The primary crashes then (< 0: never)."));
  // Phase 2: replicas are named by the names and replica count set in phases 0 and 1.
  f.push_back(SimField{"pauses", "Replay pauses: [(replica, from_ms, to_ms)], replica by name or index.", 2, pauses_list,
                       [](SimConfig& c, const py::handle& v) { c.pauses = to_pauses(c, v); }});
  f.push_back(SimField{"slow_replicas", "Slow replicas: {replica: factor}, apply times multiplied by factor.", 2, slow_dict,
                       [](SimConfig& c, const py::handle& v) { c.slow_replicas = to_slow(c, v); }});
  f.push_back(SimField{"apply_delays",
                       "Delayed replay (recovery_min_apply_delay): {replica: delay_ms}, each write replayed no "
                       "earlier than delay_ms after its commit.",
                       2, apply_delay_dict, [](SimConfig& c, const py::handle& v) { c.apply_delays = to_apply_delays(c, v); }});
  f.push_back(number_field("heartbeat_interval_ms", &SimConfig::heartbeat_interval_ms, "Heartbeats of the primary."));
  f.push_back(number_field("missed_heartbeats", &SimConfig::missed_heartbeats, "Missed in a row before the primary is suspected."));
  f.push_back(number_field("promote_ms", &SimConfig::promote_ms, "Detection -> new primary accepting writes (at least)."));
  f.push_back(number_field("repoint_ms", &SimConfig::repoint_ms,
                           "Promotion -> a surviving standby streams from the new primary (it reads stale meanwhile)."));
  f.push_back(number_field("heartbeat_late_ms", &SimConfig::heartbeat_late_ms,
                           "Each heartbeat this much later than heartbeat_interval_ms after the one before (a prober's "
                           "wake-up lateness; the detector keeps heartbeat_interval_ms)."));
  f.push_back(number_field("check_interval_ms", &SimConfig::check_interval_ms,
                           "How often the failover manager looks at its detector: a suspicion is acted upon after a "
                           "uniform delay in [0, this) (0: at once)."));
  f.push_back(SimField{"failover_model", "Detection and selection: SIMPLE, or CORE (the core's detector and plan_failover).", 0,
                       [](const SimConfig& c) { return py::cast(c.failover_model); },
                       [](SimConfig& c, const py::handle& v) {
                         c.failover_model = to_enum<sim::FailoverModelKind>(v, "failover_model");
                       }});
  f.push_back(number_field("sample_interval_ms", &SimConfig::sample_interval_ms, "Lag series resolution."));
  f.push_back(number_field("max_samples", &SimConfig::max_samples, "Points per lag series (the interval widens to fit)."));
  f.push_back(number_field("max_probe_samples", &SimConfig::max_probe_samples,
                           "The first this many samples the lag tracker is fed, kept in SimResult.probe_samples (0: none)."));
  f.push_back(number_field("drain_ms", &SimConfig::drain_ms, "After duration_ms, time allowed for requests in flight."));
  f.push_back(number_field("max_in_flight", &SimConfig::max_in_flight, "Requests in flight at once; beyond, one fails."));
  f.push_back(number_field("max_events", &SimConfig::max_events, "Events one run may process (then it stops, truncated)."));
  f.push_back(SimField{"window_edges_ms",
                       "Edges of fixed time windows for SimResult.windows: window i is [edges[i], edges[i + 1]) "
                       "(strictly increasing; empty: none).",
                       0, [](const SimConfig& c) { return py::cast(c.window_edges_ms); },
                       [](SimConfig& c, const py::handle& v) { c.window_edges_ms = to_doubles(v, "window_edges_ms"); }});
  f.push_back(SimField{"names", "Node names, primary first (empty: 'primary', 'replica1', ...).", 1,
                       [](const SimConfig& c) { return py::cast(c.names); },
                       [](SimConfig& c, const py::handle& v) {
                         std::vector<std::string> names;
                         for (const auto& n : to_items(v, "names", "a sequence of str")) names.push_back(to_str(n, "names"));
                         c.names = std::move(names);
                       }});
  f.push_back(run_lags_field("probe_run_lags_ms", &SimConfig::probe_run_lags_ms,
                              "Per node, primary first: measured lags (ms) from a lag probe's send to its read of the "
                              "node; each probe reads after one drawn from its node's list (empty: probe_latency)."));
  f.push_back(number_field("promotion_wal_bytes", &SimConfig::promotion_wal_bytes,
                           "WAL bytes (full-page images) the new primary adds to its first write after the lag "
                           "prober's first look at it (0: none)."));
  f.push_back(run_lags_field("probe_run_lags_after_crash_ms", &SimConfig::probe_run_lags_after_crash_ms,
                              "As probe_run_lags_ms, for the probes sent from the primary's crash on (empty: "
                              "probe_run_lags_ms throughout)."));
  f.push_back(SimField{"write_arrivals",
                       "Session writes replayed instead of Poisson ones: [(at_ms, session)] in time order (empty: "
                       "Poisson at write_rate_per_s).",
                       1, [](const SimConfig& c) { return arrivals_list(c.write_arrivals, false); },
                       [](SimConfig& c, const py::handle& v) { c.write_arrivals = to_arrivals(v, "write_arrivals", false); }});
  f.push_back(SimField{"read_arrivals",
                       "Reads replayed instead of Poisson ones: [(at_ms, session, level)] in time order, level a "
                       "Consistency or its name (empty: Poisson at read_rate_per_s, consistency_mix's levels).",
                       1, [](const SimConfig& c) { return arrivals_list(c.read_arrivals, true); },
                       [](SimConfig& c, const py::handle& v) { c.read_arrivals = to_arrivals(v, "read_arrivals", true); }});
  f.push_back(SimField{"probe_offsets_after_crash_ms",
                       "As probe_offsets_ms, for the probe ticks from the primary's crash on (empty: "
                       "probe_offsets_ms throughout).",
                       1, [](const SimConfig& c) { return py::cast(c.probe_offsets_after_crash_ms); },
                       [](SimConfig& c, const py::handle& v) {
                         c.probe_offsets_after_crash_ms = to_doubles(v, "probe_offsets_after_crash_ms");
                       }});
  return f;
}

// How a lag probe round's reads meet the host's replication work.
std::vector<SimField> probe_gap_fields() {
  std::vector<SimField> f;
  f.push_back(run_lags_field("probe_round_lags_ms", &SimConfig::probe_round_lags_ms,
                              "Measured probe rounds sent together: per round each node's run lag (ms, primary first; "
                              "< 0: not in it). The nodes probed at a tick read after one drawn round's lags, drawn "
                              "among rounds whose reads lie probe_parallel_gap_ms apart while replication is in "
                              "flight (empty: independent run lags; needs probe_run_lags_ms)."));
  f.push_back(run_lags_field("probe_round_lags_after_crash_ms", &SimConfig::probe_round_lags_after_crash_ms,
                              "As probe_round_lags_ms, for the rounds from the primary's crash on (empty: "
                              "probe_round_lags_ms throughout)."));
  f.push_back(number_field("probe_parallel_gap_ms", &SimConfig::probe_parallel_gap_ms,
                           "The gap (ms) below which two of a probe round's reads ran at once, on free cores."));
  return f;
}

}  // namespace

const std::vector<SimField>& sim_fields() {
  static const std::vector<SimField> fields = [] {
    std::vector<SimField> all = workload_fields();
    for (auto* part : {background_fields, capacity_fields, fault_fields, probe_gap_fields, client_fields}) {
      auto more = part();
      all.insert(all.end(), more.begin(), more.end());
    }
    return all;
  }();
  return fields;
}

SimConfig sim_config_from(const py::kwargs& kwargs) {
  SimConfig c;
  for (const auto& [key, value] : kwargs) {
    const std::string name = py::str(key);
    bool known = false;
    for (const auto& f : sim_fields()) known = known || name == f.name;
    if (!known) throw ArgumentTypeError(name, "unexpected keyword argument");
  }
  for (int phase = 0; phase <= 2; ++phase) {
    for (const auto& f : sim_fields()) {
      if (f.phase == phase && kwargs.contains(f.name)) f.set(c, kwargs[f.name]);
    }
  }
  c.validate();
  return c;
}

std::string sim_config_repr(const SimConfig& c) {
  // The fields that differ from the defaults, after the workload's shape.
  static const SimConfig defaults{};
  std::string out = "SimConfig(";
  bool first = true;
  for (const auto& f : sim_fields()) {
    // A replayed workload is shown by its size (thousands of arrivals).
    const auto* listed = f.name == std::string("write_arrivals")  ? &c.write_arrivals
                         : f.name == std::string("read_arrivals") ? &c.read_arrivals
                                                                   : nullptr;
    const std::string value = listed ? "<" + std::to_string(listed->size()) + " arrivals>" : std::string(py::repr(f.get(c)));
    const bool key = f.name == std::string("write_rate_per_s") || f.name == std::string("read_rate_per_s") ||
                     f.name == std::string("replicas") || f.name == std::string("mode");
    if (!key && (listed ? listed->empty() : value == std::string(py::repr(f.get(defaults))))) continue;
    out += (first ? "" : ", ") + std::string(f.name) + "=" + value;
    first = false;
  }
  return out + ")";
}

void bind_sim_config(py::module_& m) {
  py::native_enum<sim::ReplicationMode>(m, "ReplicationMode", "enum.Enum",
                                        "When the simulated primary acknowledges a write.")
      .value("ASYNC", sim::ReplicationMode::Async, "When the primary has committed it.")
      .value("SEMI_SYNC", sim::ReplicationMode::SemiSync, "When sync_count standbys (ANY k) have flushed it.")
      .value("SYNC", sim::ReplicationMode::Sync, "When every attached standby has flushed it.")
      .value("REMOTE_APPLY", sim::ReplicationMode::RemoteApply, "When sync_count standbys have replayed it.")
      .finalize();
  py::native_enum<sim::FailoverModelKind>(m, "FailoverModelKind", "enum.Enum",
                                          "Which failure detection and candidate selection a simulation uses.")
      .value("SIMPLE", sim::FailoverModelKind::Simple, "Heartbeat interval x missed threshold; the most advanced replica.")
      .value("CORE", sim::FailoverModelKind::Core, "The core's FailureDetector and plan_failover (when built).")
      .finalize();
  py::class_<SimConfig> c(m, "SimConfig",
                          "One simulated single-leader cluster (a value): workload, capacity, replication, faults, "
                          "bounds. Keywords name the fields; defaults are C++ SimConfig{}'s.");
  c.def(py::init(&sim_config_from), "A configuration; unknown keywords and bad values raise errors naming them.");
  for (const auto& f : sim_fields()) {
    const SimField* field = &f;
    c.def_property(
        f.name, [field](const SimConfig& s) { return field->get(s); },
        [field](SimConfig& s, const py::object& v) {
          SimConfig copy = s;
          field->set(copy, v);
          copy.validate();
          s = std::move(copy);
        },
        f.doc);
  }
  c.def("to_dict", [](const SimConfig& s) {
    py::dict out;
    for (const auto& f : sim_fields()) out[f.name] = f.get(s);
    return out;
  }, "Every field as a dict (for tables of sweeps).");
  c.def("__repr__", &sim_config_repr);
  c.def("__copy__", [](const SimConfig& s) { return s; });
  c.def("__deepcopy__", [](const SimConfig& s, const py::object&) { return s; }, py::arg("memo"));
}

}  // namespace replikit::bindings
