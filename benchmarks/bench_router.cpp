// Routing decisions per second, by policy, consistency level and replica count; single-threaded
// and with two routing threads while another thread keeps updating lag.
//
// Each benchmark reports items_per_second (decisions/s) and `allocs_per_decision` (heap
// allocations counted by the global operator new below; the read path must make none).
// benchmarks/run_router_bench.py runs this with repetitions and prints medians, the ratio to the
// 50K reads/s target the project started from, and the two-thread speed-up.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <new>
#include <thread>

#include "replikit/lag.hpp"
#include "replikit/router.hpp"

// ---- allocation counter ----
// GCC flags free() in a replaced operator delete as mismatched once inlined; it is not.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
static std::atomic<std::uint64_t> g_allocations{0};
void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using namespace replikit;

struct Cluster {
  std::shared_ptr<Topology> topology;
  std::shared_ptr<LagTracker> lag;
  std::unique_ptr<Router> router;
  Session session;
  std::int64_t now_ns = 1'000'000'000;
  std::uint64_t lsn = 0x1000000;
};

std::unique_ptr<Cluster> make_cluster(int replicas, Policy policy) {
  auto c = std::make_unique<Cluster>();
  std::vector<NodeSpec> specs;
  for (int i = 0; i < replicas; ++i) {
    NodeSpec s;
    s.name = "r" + std::to_string(i + 1);
    s.region = i % 2 == 0 ? "eu" : "us";
    s.weight = 1.0 + (i % 3);
    specs.push_back(s);
  }
  NodeSpec primary;
  primary.name = "primary";
  primary.region = "eu";
  c->topology = std::make_shared<Topology>(primary, specs);
  c->lag = std::make_shared<LagTracker>(c->topology);
  RouterConfig rc;
  rc.policy = policy;
  rc.seed = 42;
  rc.region = "eu";
  c->router = std::make_unique<Router>(c->topology, rc);
  // Every replica has replayed everything so far, with a little lag in time.
  c->lag->primary_sample(c->now_ns - 1'000'000, Lsn(c->lsn - 0x100));
  c->lag->primary_sample(c->now_ns, Lsn(c->lsn));
  for (int i : c->topology->replicas()) {
    c->lag->replica_sample(i, c->now_ns, Lsn(c->lsn), Lsn(c->lsn - static_cast<std::uint64_t>(i)));
  }
  c->session.write_lsn = Lsn(c->lsn - 0x200);
  c->session.read_lsn = Lsn(c->lsn - 0x300);
  return c;
}

void report(benchmark::State& state, std::uint64_t allocations) {
  state.SetItemsProcessed(state.iterations());
  state.counters["allocs_per_decision"] =
      static_cast<double>(allocations) / static_cast<double>(std::max<benchmark::IterationCount>(1, state.iterations()));
}

template <Policy P, Consistency C>
void BM_RouteRead(benchmark::State& state) {
  auto c = make_cluster(static_cast<int>(state.range(0)), P);
  ReadOptions options;
  options.max_staleness_ms = 1000;
  Router& router = *c->router;
  const Session& session = c->session;
  std::uint64_t before = g_allocations.load();
  for (auto _ : state) {
    Decision d = router.route_read(session, C, c->now_ns, options);
    benchmark::DoNotOptimize(d);
  }
  report(state, g_allocations.load() - before);
}

// EVENTUAL reads with a consistency probability target (p_consistent 0.999), 20 ms after the
// session's write, which no replica is known to have replayed: each replica is judged on its
// published replay-delay quantiles (every replica replays within 11 ms of the primary's
// previous sample).
void BM_RouteReadLikelyConsistent(benchmark::State& state) {
  auto c = make_cluster(static_cast<int>(state.range(0)), Policy::RoundRobin);
  for (int k = 1; k <= 16; ++k) {
    c->now_ns += 10'000'000;
    c->lsn += 0x100;
    c->lag->primary_sample(c->now_ns, Lsn(c->lsn));
    for (int i : c->topology->replicas()) {
      c->lag->replica_sample(i, c->now_ns + 1'000'000, Lsn(c->lsn), Lsn(c->lsn));
    }
  }
  Session session;
  session.record_write(Lsn(c->lsn + 0x100), c->now_ns);
  ReadOptions options;
  options.p_consistent = 0.999;
  Router& router = *c->router;
  const std::int64_t now = c->now_ns + 20'000'000;
  std::uint64_t before = g_allocations.load();
  for (auto _ : state) {
    Decision d = router.route_read(session, Consistency::Eventual, now, options);
    benchmark::DoNotOptimize(d);
  }
  if (router.route_read(session, Consistency::Eventual, now, options).reason != Reason::ReplicaLikelyConsistent) {
    state.SkipWithError("the setup did not make the replicas likely consistent");
  }
  report(state, g_allocations.load() - before);
}

void BM_RouteWrite(benchmark::State& state) {
  auto c = make_cluster(static_cast<int>(state.range(0)), Policy::RoundRobin);
  std::uint64_t before = g_allocations.load();
  for (auto _ : state) {
    Decision d = c->router->route_write();
    benchmark::DoNotOptimize(d);
  }
  report(state, g_allocations.load() - before);
}

// Two routing threads share one router while an updater thread feeds lag samples every
// `update_interval_us` (and flips a replica down/up now and then), as a prober would, only faster.
struct Shared {
  std::unique_ptr<Cluster> cluster;
  std::atomic<bool> stop{false};
  std::thread updater;
  std::atomic<std::uint64_t> updates{0};
};
Shared* g_shared = nullptr;
constexpr int kUpdateIntervalUs = 1000;

template <Consistency C>
void BM_RouteReadContended(benchmark::State& state) {

  if (state.thread_index() == 0) {
    g_shared = new Shared;
    g_shared->cluster = make_cluster(static_cast<int>(state.range(0)), Policy::RoundRobin);
    g_shared->updater = std::thread([s = g_shared] {
      Cluster& c = *s->cluster;
      std::int64_t now = c.now_ns;
      std::uint64_t lsn = c.lsn;
      std::uint64_t n = 0;
      auto replicas = c.topology->replicas();
      while (!s->stop.load(std::memory_order_relaxed)) {
        now += kUpdateIntervalUs * 1000;
        lsn += 0x100;
        c.lag->primary_sample(now, Lsn(lsn));
        for (int i : replicas) c.lag->replica_sample(i, now, Lsn(lsn), Lsn(lsn - 0x80));
        if (++n % 64 == 0) {
          const std::string& name = c.topology->name(replicas[n / 64 % replicas.size()]);
          c.topology->set_up(name, (n / 64) % 2 == 0);
        }
        s->updates.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::sleep_for(std::chrono::microseconds(kUpdateIntervalUs));
      }
    });
  }
  // Google Benchmark starts all threads' loops together, after thread 0's setup above.
  Session session;
  session.write_lsn = Lsn(0x1000000 - 0x200);
  std::uint64_t before = g_allocations.load();
  for (auto _ : state) {
    Decision d = g_shared->cluster->router->route_read(session, C, 2'000'000'000);
    benchmark::DoNotOptimize(d);
  }
  std::uint64_t allocations = g_allocations.load() - before;
  if (state.thread_index() == 0) {
    g_shared->stop.store(true);
    g_shared->updater.join();
    state.counters["lag_updates"] = static_cast<double>(g_shared->updates.load());
    delete g_shared;
    g_shared = nullptr;
    (void)allocations;  // the updater allocates (vector of replicas); decisions do not
  }
  state.SetItemsProcessed(state.iterations());
}

void ReplicaCounts(benchmark::internal::Benchmark* b) {
  for (int n : {1, 3, 8, 16, 64}) b->Arg(n);
  b->ArgName("replicas");
}

}  // namespace

BENCHMARK(BM_RouteWrite)->Arg(8)->ArgName("replicas");

#define ROUTE_BENCH(P, C) BENCHMARK_TEMPLATE(BM_RouteRead, P, C)->Apply(ReplicaCounts)
ROUTE_BENCH(Policy::RoundRobin, Consistency::Eventual);
ROUTE_BENCH(Policy::RoundRobin, Consistency::ReadYourWrites);
ROUTE_BENCH(Policy::RoundRobin, Consistency::Monotonic);
ROUTE_BENCH(Policy::RoundRobin, Consistency::Causal);
ROUTE_BENCH(Policy::RoundRobin, Consistency::BoundedStaleness);
ROUTE_BENCH(Policy::RoundRobin, Consistency::Strong);
ROUTE_BENCH(Policy::Weighted, Consistency::Eventual);
ROUTE_BENCH(Policy::Weighted, Consistency::ReadYourWrites);
ROUTE_BENCH(Policy::LeastLag, Consistency::Eventual);
ROUTE_BENCH(Policy::LeastLag, Consistency::ReadYourWrites);
ROUTE_BENCH(Policy::LeastOutstanding, Consistency::Eventual);
ROUTE_BENCH(Policy::LeastOutstanding, Consistency::ReadYourWrites);
ROUTE_BENCH(Policy::NearestRegion, Consistency::Eventual);
ROUTE_BENCH(Policy::NearestRegion, Consistency::ReadYourWrites);
BENCHMARK(BM_RouteReadLikelyConsistent)->Apply(ReplicaCounts);

BENCHMARK_TEMPLATE(BM_RouteReadContended, Consistency::Eventual)->Arg(8)->ArgName("replicas")->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK_TEMPLATE(BM_RouteReadContended, Consistency::ReadYourWrites)->Arg(8)->ArgName("replicas")->Threads(1)->Threads(2)->UseRealTime();

BENCHMARK_MAIN();
