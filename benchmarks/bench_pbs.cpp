// PBS WARS Monte Carlo throughput (trials per second on one core) for the paper's models.
// Compare with benchmarks/pbs_vs_numpy.py, which runs this core and a numpy reference in one run.
#include <benchmark/benchmark.h>

#include "replikit/pbs.hpp"

namespace {

using namespace replikit;

WarsModel model_for(int index) {
  switch (index) {
    case 0:
      return WarsModel::lnkd_ssd();
    case 1:
      return WarsModel::lnkd_disk();
    default:
      return WarsModel::ymmr();
  }
}

// Args: model (0 SSD, 1 DISK, 2 YMMR), N, R (W = 1).
void BM_PbsConsistency(benchmark::State& state) {
  const WarsSimulation sim(static_cast<int>(state.range(1)), 1, static_cast<int>(state.range(2)),
                           model_for(static_cast<int>(state.range(0))));
  const std::uint64_t trials = 1'000'000;
  std::uint64_t seed = 1;
  for (auto _ : state) {
    auto p = sim.consistency_probability({0.0}, trials, seed++);
    benchmark::DoNotOptimize(p.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * trials));
  state.SetLabel("items = trials");
}
BENCHMARK(BM_PbsConsistency)
    ->ArgNames({"model", "N", "R"})
    ->Args({0, 3, 1})
    ->Args({1, 3, 1})
    ->Args({2, 3, 1})
    ->Args({1, 3, 2})
    ->Args({1, 5, 2})
    ->Unit(benchmark::kMillisecond);

void BM_PbsTVisibility(benchmark::State& state) {
  const WarsSimulation sim(3, 1, 1, WarsModel::lnkd_disk());
  const std::uint64_t trials = 1'000'000;
  std::uint64_t seed = 1;
  for (auto _ : state) benchmark::DoNotOptimize(sim.t_visibility_ms(0.999, trials, seed++));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * trials));
}
BENCHMARK(BM_PbsTVisibility)->Unit(benchmark::kMillisecond);

void BM_PbsCompile(benchmark::State& state) {
  const WarsModel model = WarsModel::ymmr();
  for (auto _ : state) {
    WarsSimulation sim(3, 1, 1, model);
    benchmark::DoNotOptimize(&sim);
  }
}
BENCHMARK(BM_PbsCompile)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
