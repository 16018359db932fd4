// Simulated events per second of the discrete-event simulator on one core (target: >= 5M/s).
// Each iteration runs one whole simulation; items_per_second is events processed per second.
// Run: build/ci/bench_sim --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include "replikit/sim/simulator.hpp"

namespace {

using namespace replikit;
using namespace replikit::sim;

// The brief's exercise shape scaled to one simulated second: 5K writes/s, 50K reads/s, read-your-
// writes reads with a read-back pattern, the real router and lag tracker.
SimConfig exercise(int replicas, ReplicationMode mode) {
  SimConfig c;
  c.duration_ms = 1000;
  c.write_rate_per_s = 5000;
  c.read_rate_per_s = 50000;
  c.replicas = replicas;
  c.servers_per_node = 16;
  c.consistency_mix = {1, 3, 1, 0, 1, 0};
  c.read_back_share = 0.3;
  c.read_back_delay_ms = 5;
  c.mode = mode;
  c.sync_count = 1;
  return c;
}

void run(benchmark::State& state, const SimConfig& c) {
  std::uint64_t events = 0, seed = 1;
  for (auto _ : state) {
    const SimResult r = simulate(c, seed++);
    events += r.events;
    benchmark::DoNotOptimize(r.reads_answered);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(events));
}

void BM_SimAsync(benchmark::State& state) { run(state, exercise(static_cast<int>(state.range(0)), ReplicationMode::Async)); }
void BM_SimSemiSync(benchmark::State& state) {
  run(state, exercise(static_cast<int>(state.range(0)), ReplicationMode::SemiSync));
}
void BM_SimCrash(benchmark::State& state) {
  SimConfig c = exercise(static_cast<int>(state.range(0)), ReplicationMode::Async);
  c.crash_primary_at_ms = 500;
  c.pauses = {ReplicaPause{1, 100, 300}};
  run(state, c);
}

BENCHMARK(BM_SimAsync)->Arg(2)->Arg(5)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SimSemiSync)->Arg(2)->Arg(5)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SimCrash)->Arg(3)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
