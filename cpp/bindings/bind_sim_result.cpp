// Python bindings of the simulator's outputs and runs: SimResult, simulate() and sweep().
// Series come out as numpy arrays, breakdowns as dicts keyed by names; runs release the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <exception>
#include <thread>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/sim/simulator.hpp"
#include "sim_fields.hpp"

namespace replikit::bindings {

namespace {

using sim::SimResult;

py::array_t<double> array_of(const std::vector<double>& v) {
  py::array_t<double> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

std::string level_name(std::size_t level) { return to_string(static_cast<Consistency>(level)); }

py::dict failed_by(const std::array<std::uint64_t, sim::kFailReasons>& counts) {
  py::dict out;
  for (std::size_t i = 0; i < counts.size(); ++i) out[to_string(static_cast<sim::FailReason>(i))] = counts[i];
  return out;
}


py::dict level_stats(const std::array<sim::LevelStats, sim::kLevels>& levels) {
  py::dict out;
  for (std::size_t i = 0; i < levels.size(); ++i) {
    const auto& l = levels[i];
    py::dict d;
    d["submitted"] = l.submitted;
    d["answered"] = l.answered;
    d["stale"] = l.stale;
    d["failed"] = l.failed;
    d["served_by_primary"] = l.served_by_primary;
    d["stale_rate"] = l.stale_rate();
    out[py::str(level_name(i))] = d;
  }
  return out;
}

py::dict levels_dict(const SimResult& r) { return level_stats(r.levels); }

py::dict stale_rates_of(const std::array<sim::LevelStats, sim::kLevels>& levels) {
  py::dict out;
  for (std::size_t i = 0; i < levels.size(); ++i) {
    if (levels[i].submitted > 0) out[py::str(level_name(i))] = levels[i].stale_rate();
  }
  return out;
}

py::dict stale_rates(const SimResult& r) { return stale_rates_of(r.levels); }

py::dict window_dict(const sim::WindowStats& w) {
  py::dict d;
  d["name"] = w.name;
  d["from_ms"] = w.from_ms;
  d["to_ms"] = w.to_ms;
  d["reads_submitted"] = w.reads_submitted;
  d["reads_answered"] = w.reads_answered;
  d["reads_failed"] = w.reads_failed;
  d["levels"] = level_stats(w.levels);
  d["stale_read_rate"] = stale_rates_of(w.levels);
  d["lag_samples"] = w.lag_samples;
  d["mean_lag_ms"] = w.mean_lag_ms;
  d["max_lag_ms"] = w.max_lag_ms;
  d["tracked_lag_samples"] = w.tracked_lag_samples;
  d["mean_tracked_lag_ms"] = w.mean_tracked_lag_ms;
  d["max_tracked_lag_ms"] = w.max_tracked_lag_ms;
  return d;
}

py::list windows_list(const SimResult& r) {
  py::list out;
  for (const auto& w : r.windows) out.append(window_dict(w));
  return out;
}

py::dict failover_windows_dict(const SimResult& r) {
  py::dict out;
  for (const auto& w : r.failover_windows) out[py::str(w.name)] = window_dict(w);
  return out;
}

py::dict reasons(const std::array<std::uint64_t, kReasonCount>& counts) {
  py::dict out;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] != 0) out[to_string(static_cast<Reason>(i))] = counts[i];
  }
  return out;
}

py::dict nodes_dict(const SimResult& r) {
  py::dict out;
  for (const auto& n : r.nodes) {
    py::dict d;
    d["utilisation"] = n.utilisation;
    d["reads_served"] = n.reads_served;
    d["writes_served"] = n.writes_served;
    d["max_queue_length"] = n.max_queue_length;
    d["apply_utilisation"] = n.apply_utilisation;
    out[py::str(n.name)] = d;
  }
  return out;
}

py::dict replicas_dict(const SimResult& r) {
  py::dict out;
  for (const auto& n : r.replicas) {
    py::dict d;
    d["writes_applied"] = n.writes_applied;
    d["mean_apply_delay_ms"] = n.mean_apply_delay_ms;
    d["max_lag_ms"] = n.max_lag_ms;
    out[py::str(n.name)] = d;
  }
  return out;
}

py::dict series(const SimResult& r, const std::vector<std::vector<double>>& values) {
  py::dict out;
  for (std::size_t i = 0; i < values.size() && i < r.replicas.size(); ++i) out[py::str(r.replicas[i].name)] = array_of(values[i]);
  return out;
}

py::dict probe_samples_dict(const SimResult& r) {
  const std::size_t n = r.probe_samples.size();
  py::array_t<double> stamp(static_cast<py::ssize_t>(n)), lag(static_cast<py::ssize_t>(n));
  py::array_t<std::uint64_t> lsn(static_cast<py::ssize_t>(n));
  py::array_t<bool> primary(static_cast<py::ssize_t>(n));
  py::list node;
  for (std::size_t i = 0; i < n; ++i) {
    const sim::ProbeSample& s = r.probe_samples[i];
    stamp.mutable_data()[i] = s.stamp_ms;
    lag.mutable_data()[i] = s.primary ? std::nan("") : s.tracked_lag_ms;
    lsn.mutable_data()[i] = s.lsn;
    primary.mutable_data()[i] = s.primary;
    node.append(r.nodes.size() > static_cast<std::size_t>(s.node) ? py::str(r.nodes[static_cast<std::size_t>(s.node)].name)
                                                                  : py::str(std::to_string(s.node)));
  }
  py::dict d;
  d["node"] = node;
  d["primary"] = primary;
  d["stamp_ms"] = stamp;
  d["lsn"] = lsn;
  d["tracked_lag_ms"] = lag;
  return d;
}

py::dict failover_dict(const SimResult& r) {
  const auto& f = r.failover;
  py::dict d;
  d["crashed"] = f.crashed;
  d["promoted"] = f.promoted ? py::object(py::str(*f.promoted)) : py::object(py::none());
  d["detection_ms"] = f.detection_ms < 0 ? py::object(py::none()) : py::object(py::float_(f.detection_ms));
  d["recovery_ms"] = f.recovery_ms < 0 ? py::object(py::none()) : py::object(py::float_(f.recovery_ms));
  d["writes_lost_acknowledged"] = f.writes_lost_acknowledged;
  d["writes_lost"] = f.writes_lost;
  d["background_writes_lost_acknowledged"] = f.background_writes_lost_acknowledged;
  d["diverged"] = f.diverged;
  d["model"] = f.model;
  return d;
}

std::string result_repr(const SimResult& r) {
  std::vector<std::pair<const char*, py::object>> fields = {
      {"events", py::int_(r.events)},
      {"writes_acknowledged", py::int_(r.writes_acknowledged)},
      {"writes_failed", py::int_(r.writes_failed)},
      {"reads_answered", py::int_(r.reads_answered)},
      {"reads_failed", py::int_(r.reads_failed)},
      {"primary_read_share", py::float_(std::round(r.primary_read_share() * 1e4) / 1e4)},
      {"stale_read_rate", stale_rates(r)},
  };
  if (r.failover.crashed) {
    fields.emplace_back("recovery_ms", failover_dict(r)["recovery_ms"]);
    fields.emplace_back("writes_lost_acknowledged", py::int_(r.failover.writes_lost_acknowledged));
  }
  if (r.background_writes_submitted > 0) {
    fields.emplace_back("background_writes_acknowledged", py::int_(r.background_writes_acknowledged));
  }
  if (r.truncated) fields.emplace_back("truncated", py::bool_(true));
  std::string out = "SimResult(";
  for (std::size_t i = 0; i < fields.size(); ++i) {
    out += (i ? ", " : "") + std::string(fields[i].first) + "=" + std::string(py::repr(fields[i].second));
  }
  return out + ")";
}

const sim::SimConfig& to_sim_config(const py::handle& v, const char* argument) {
  if (!py::isinstance<sim::SimConfig>(v)) wrong_type(argument, "a replikit.SimConfig", v);
  return v.cast<const sim::SimConfig&>();
}

// Runs configs[i] into out[i], thread k taking i = k, k + threads, ...; rethrows the first
// error (in config order) after every thread has finished.
void run_sweep(const std::vector<sim::SimConfig>& configs, std::uint64_t seed, int threads, std::vector<SimResult>& out) {
  for (const auto& c : configs) c.validate();  // bad input fails before any run
  std::vector<std::exception_ptr> errors(configs.size());
  const auto work = [&](std::size_t first) {
    for (std::size_t i = first; i < configs.size(); i += static_cast<std::size_t>(threads)) {
      try {
        out[i] = sim::simulate(configs[i], seed);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int k = 1; k < threads; ++k) pool.emplace_back(work, static_cast<std::size_t>(k));
  work(0);
  for (auto& t : pool) t.join();
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace

py::dict sim_result_dict(const SimResult& r);

void bind_sim_result(py::module_& m) {
  py::class_<SimResult> c(m, "SimResult", "What one simulated run measured (a value). Conservation: every write is "
                                          "acknowledged, failed or pending at the end; every read likewise.");
  c.def_readonly("seed", &SimResult::seed)
      .def_readonly("events", &SimResult::events, "Events processed.")
      .def_readonly("truncated", &SimResult::truncated, "True when the run stopped at max_events.")
      .def_readonly("simulated_ms", &SimResult::simulated_ms, "Time of the last event processed.")
      .def_readonly("writes_submitted", &SimResult::writes_submitted)
      .def_readonly("writes_acknowledged", &SimResult::writes_acknowledged)
      .def_readonly("writes_failed", &SimResult::writes_failed)
      .def_readonly("writes_pending", &SimResult::writes_pending, "Writes still in flight when the run ended.")
      .def_readonly("reads_submitted", &SimResult::reads_submitted)
      .def_readonly("reads_answered", &SimResult::reads_answered)
      .def_readonly("reads_failed", &SimResult::reads_failed)
      .def_readonly("reads_pending", &SimResult::reads_pending, "Reads still in flight when the run ended.")
      .def_readonly("background_writes_submitted", &SimResult::background_writes_submitted,
                    "Background writes (SimConfig.background_write_rate_per_s): not in writes_*.")
      .def_readonly("background_writes_acknowledged", &SimResult::background_writes_acknowledged)
      .def_readonly("background_writes_failed", &SimResult::background_writes_failed)
      .def_readonly("background_writes_pending", &SimResult::background_writes_pending)
      .def_readonly("mean_write_latency_ms", &SimResult::mean_write_latency_ms)
      .def_readonly("mean_read_latency_ms", &SimResult::mean_read_latency_ms)
      .def_readonly("reads_routed_to_primary", &SimResult::reads_routed_to_primary)
      .def_property_readonly("writes_failed_by", [](const SimResult& r) { return failed_by(r.writes_failed_by); },
                             "Failed writes by reason.")
      .def_property_readonly("reads_failed_by", [](const SimResult& r) { return failed_by(r.reads_failed_by); },
                             "Failed reads by reason.")
      .def_property_readonly("levels", &levels_dict, "Per consistency level: submitted, answered, stale, failed, ...")
      .def_property_readonly("stale_read_rate", &stale_rates, "Stale answered reads / answered reads, per level read.")
      .def_property_readonly("primary_read_share", &SimResult::primary_read_share,
                             "Share of answered reads the primary served.")
      .def_property_readonly("read_reasons", [](const SimResult& r) { return reasons(r.read_reasons); },
                             "Routing decisions of reads by reason (non-zero ones; with no node, the read failed).")
      .def_property_readonly("primary_read_reasons", [](const SimResult& r) { return reasons(r.primary_read_reasons); },
                             "Why reads were sent to the primary: reads_routed_to_primary by reason.")
      .def_property_readonly("nodes", &nodes_dict, "Per node: utilisation, requests served, longest queue, apply load.")
      .def_property_readonly("replicas", &replicas_dict, "Per replica: writes replayed, mean commit -> replay delay, max lag.")
      .def_property_readonly("sample_times_ms", [](const SimResult& r) { return array_of(r.sample_times_ms); },
                             "Times of the lag samples (numpy array).")
      .def_property_readonly("lag_ms", [](const SimResult& r) { return series(r, r.lag_ms); },
                             "Per replica: time lag at each sample (numpy arrays; NaN once taken out).")
      .def_property_readonly("lag_bytes", [](const SimResult& r) { return series(r, r.lag_bytes); },
                             "Per replica: bytes behind the primary at each sample (numpy arrays).")
      .def_property_readonly("tracked_lag_ms", [](const SimResult& r) { return series(r, r.tracked_lag_ms); },
                             "Per replica: the time lag the LagTracker reported at each sample, what the router "
                             "went by (numpy arrays; NaN until known).")
      .def_property_readonly("probe_samples", &probe_samples_dict,
                             "The first SimConfig.max_probe_samples samples the lag tracker was fed, in order, as "
                             "numpy arrays (node: names): node, primary (else a replica's replay), stamp_ms (the "
                             "query's send for the primary, its answer for a replica), lsn, tracked_lag_ms (the "
                             "replica's lag as then computed; NaN for the primary).")
      .def_property_readonly("failover", &failover_dict, "The failover after a primary crash.")
      .def_property_readonly("windows", &windows_list,
                             "SimConfig.window_edges_ms's windows, in order: per window its name, from_ms, to_ms, "
                             "reads (submitted in it) per level with stale_read_rate, and replica lag (true and "
                             "tracked: samples, mean, max).")
      .def_property_readonly("failover_windows", &failover_windows_dict,
                             "With a crash configured: the same per window 'before_crash', 'outage' (crash -> "
                             "recovery) and 'after_recovery'; else empty.")
      .def_property_readonly("conserved", &SimResult::conserved, "Every request acknowledged/answered, failed or pending.")
      .def("to_dict", &sim_result_dict, "Every output as a dict.")
      .def("__repr__", &result_repr);
}

py::dict sim_result_dict(const SimResult& r) {
  const py::object o = py::cast(r, py::return_value_policy::copy);
  py::dict out;
  for (const char* name : {"seed", "events", "truncated", "simulated_ms", "writes_submitted", "writes_acknowledged",
                           "writes_failed", "writes_pending", "reads_submitted", "reads_answered", "reads_failed",
                           "reads_pending", "background_writes_submitted", "background_writes_acknowledged",
                           "background_writes_failed", "background_writes_pending", "mean_write_latency_ms", "mean_read_latency_ms", "reads_routed_to_primary",
                           "writes_failed_by", "reads_failed_by", "levels", "stale_read_rate", "primary_read_share",
                           "read_reasons", "primary_read_reasons", "nodes", "replicas", "sample_times_ms", "lag_ms",
                           "lag_bytes", "tracked_lag_ms", "probe_samples", "failover", "windows", "failover_windows", "conserved"}) {
    out[name] = o.attr(name);
  }
  return out;
}

void bind_sim_functions(py::module_& m) {
  m.def("simulate",
        [](const py::object& config, const py::object& seed) {
          const sim::SimConfig& c = to_sim_config(config, "config");
          const std::uint64_t s = to_uint64(seed, "seed");
          py::gil_scoped_release release;
          return sim::simulate(c, s);
        },
        py::arg("config"), py::arg("seed"),
        "Runs one simulation of config (a SimConfig) seeded with seed; the same seed gives the same result.");
  m.def("sweep",
        [](const py::object& configs, const py::object& seed, const py::object& threads) {
          std::vector<sim::SimConfig> cs;
          for (const auto& c : to_items(configs, "configs", "a sequence of SimConfig")) cs.push_back(to_sim_config(c, "configs"));
          const std::uint64_t s = to_uint64(seed, "seed");
          const int t = to_int(threads, "threads", 1, 64);
          std::vector<SimResult> out(cs.size());
          {
            py::gil_scoped_release release;
            run_sweep(cs, s, t, out);
          }
          return out;
        },
        py::arg("configs"), py::arg("seed") = 0, py::arg("threads") = 1,
        "Runs every config with the same seed (common random numbers: differences come from the configs), "
        "on `threads` threads without the GIL; results in the order of configs, the same on any thread count.");
}

}  // namespace replikit::bindings
