// Failover core: plan_failover by candidate count, and FailureDetector::record + suspected per
// probe for both detector kinds.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "replikit/detector.hpp"
#include "replikit/failover.hpp"
#include "replikit/random.hpp"

namespace {

using namespace replikit;

std::vector<CandidateState> candidates(int n, std::uint64_t seed) {
  Xoshiro256 rng(seed);
  std::vector<CandidateState> out;
  for (int i = 0; i < n; ++i) {
    CandidateState c;
    c.name = "replica-" + std::to_string(i);
    c.receive_lsn = Lsn(1000000 + rng.below(100000));
    c.replay_lsn = Lsn(c.receive_lsn.value - rng.below(1000));
    c.timeline = 1;
    c.reachable = rng.below(10) != 0;
    c.priority = static_cast<int>(rng.below(3));
    out.push_back(c);
  }
  return out;
}

void BM_PlanFailover(benchmark::State& state) {
  const auto cs = candidates(static_cast<int>(state.range(0)), 42);
  PrimaryState p;
  p.last_known_lsn = Lsn(1100000);
  FailoverConfig config;
  config.max_lag_bytes = 50000;
  for (auto _ : state) {
    FailoverPlan plan = plan_failover(cs, p, config);
    benchmark::DoNotOptimize(plan.promote);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetLabel("items = plans");
}
BENCHMARK(BM_PlanFailover)->ArgName("candidates")->Arg(2)->Arg(5)->Arg(16)->Arg(64)->Arg(256)->Unit(benchmark::kMicrosecond);

void BM_DetectorRecord(benchmark::State& state) {
  DetectorConfig c = state.range(0) ? DetectorConfig::phi_accrual(100.0) : DetectorConfig::fast();
  FailureDetector d(c);
  Xoshiro256 rng(7);
  std::int64_t now = 0;
  for (auto _ : state) {
    now += 100000000 + static_cast<std::int64_t>(rng.below(1000000));
    d.record(now, ProbeOutcome::Ok);
    benchmark::DoNotOptimize(d.suspected(now + 50000000));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetLabel("items = record + suspected");
}
BENCHMARK(BM_DetectorRecord)->ArgName("phi")->Arg(0)->Arg(1);

}  // namespace

BENCHMARK_MAIN();
