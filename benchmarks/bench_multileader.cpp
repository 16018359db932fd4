// Multi-leader SET_MERGE on one key (every write conflicts with the peer's in-flight writes):
// time per write must stay flat as the writes grow (it grew linearly with the set's size when
// each replication message carried a full copy of the key's state). The counters report the
// queue's peak bytes per write, which must stay flat too.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>

#include "replikit/multileader.hpp"

namespace {

using namespace replikit;

void run(benchmark::State& state, double delay_ms) {
  const auto writes = static_cast<double>(state.range(0));
  MultiLeaderOptions options;
  options.leaders = 2;
  options.resolution = ConflictResolution::SetMerge;
  options.default_delay_ms = delay_ms;
  MultiLeaderWorkload workload;
  workload.writes_per_s = {1000.0, 1000.0};
  workload.keys = 1;
  workload.duration_ms = writes / 2.0;  // 2 leaders x 1000 writes/s
  workload.seed = 1;
  MultiLeaderReport report;
  for (auto _ : state) {
    report = run_multileader_workload(options, workload);
    benchmark::DoNotOptimize(report.total_conflicts);
  }
  const auto done = static_cast<double>(report.writes);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(report.writes));
  state.counters["writes"] = done;
  state.counters["peak_bytes_per_write"] =
      static_cast<double>(report.stats.peak_bytes_in_flight) / std::max(1.0, static_cast<double>(report.stats.peak_messages_in_flight));
  state.counters["peak_MB"] = static_cast<double>(report.stats.peak_bytes_in_flight) / 1e6;
  state.SetLabel("items = writes");
}

// 50 ms replication delay: about 100 writes in flight at any time.
void BM_SetMergeOneKey(benchmark::State& state) { run(state, 50.0); }
// Delay longer than the run: every write stays queued until the end (peak memory case).
void BM_SetMergeOneKeyAllInFlight(benchmark::State& state) { run(state, 1e9); }

BENCHMARK(BM_SetMergeOneKey)->ArgName("writes")->Arg(5000)->Arg(10000)->Arg(20000)->Arg(40000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SetMergeOneKeyAllInFlight)
    ->ArgName("writes")
    ->Arg(5000)
    ->Arg(10000)
    ->Arg(20000)
    ->Arg(40000)
    ->Unit(benchmark::kMillisecond);

}  // namespace
BENCHMARK_MAIN();
