// Quorum table time by N (all N*N (W, R) rows with exact availability), and quorum store ops.
#include <benchmark/benchmark.h>

#include <string>

#include "replikit/quorum.hpp"
#include "replikit/quorum_store.hpp"

namespace {

using namespace replikit;

void BM_QuorumTable(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  for (auto _ : state) {
    auto rows = quorum_table(n, 0.99);
    benchmark::DoNotOptimize(rows.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * n * n);
  state.SetLabel("items = rows");
}
BENCHMARK(BM_QuorumTable)->ArgName("N")->Arg(3)->Arg(5)->Arg(9)->Arg(16)->Arg(32)->Arg(64)->Unit(benchmark::kMicrosecond);

void BM_QuorumStorePutGet(benchmark::State& state) {
  QuorumStoreOptions o;
  o.n = 3;
  o.w = 2;
  o.r = 2;
  o.versioning = state.range(0) ? Versioning::VectorClocks : Versioning::LastWriterWins;
  QuorumStore store(o);
  std::uint64_t i = 0;
  for (auto _ : state) {
    const std::string key = "k" + std::to_string(i++ % 1000);
    benchmark::DoNotOptimize(store.put(key, "v", "c"));
    benchmark::DoNotOptimize(store.get(key));
    if (i % 1000 == 0) store.advance_ms(10);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 2);
}
BENCHMARK(BM_QuorumStorePutGet)->ArgName("vector_clocks")->Arg(0)->Arg(1);

}  // namespace

BENCHMARK_MAIN();
