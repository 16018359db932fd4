// End-to-end point selects (pgbench -S style) from N client threads for a fixed time.
//
//   pg_point_select direct   --clients 4 --seconds 10 --rows 100000 --dsn "<libpq dsn>"
//   pg_point_select replikit --clients 4 --seconds 10 --rows 100000 --consistency eventual
//                            --primary "<dsn>" --replica "r1=<dsn>" --replica "r2=<dsn>"
//
// `direct` is the baseline: one libpqxx connection per client to one server (a replica, or
// pgpool-II's port). `replikit` runs the same statement through ReplicatedDatabase::query,
// which routes every read over the replicas. Both send `SELECT abalance FROM pgbench_accounts
// WHERE aid = $1` with one text parameter in autocommit (no BEGIN/COMMIT), so the only
// difference is what the client library does around the query. Prints one JSON line:
// {"mode":..., "clients":..., "seconds":..., "queries":..., "qps":..., "errors":..., "per_node":{...}}.
//
// This program includes libpqxx directly for the baseline: that is the point of the baseline.
#include <pqxx/pqxx>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "replikit/pg/database.hpp"

namespace {

constexpr const char* kSql = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";

struct Args {
  std::string mode;
  int clients = 4;
  double seconds = 10;
  long rows = 100000;
  std::string dsn;
  std::string primary;
  std::vector<std::pair<std::string, std::string>> replicas;
  std::string consistency = "eventual";
  std::string policy = "round_robin";
  long sticky = 1;
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "pg_point_select: " << why << "\n"
            << "usage: pg_point_select direct|replikit [--clients N] [--seconds S] [--rows R]\n"
            << "       [--dsn DSN] [--primary DSN] [--replica NAME=DSN]... [--consistency eventual|read_your_writes|monotonic]\n"
            << "       [--policy round_robin|least_outstanding] [--sticky READS]\n";
  std::exit(2);
}

Args parse(int argc, char** argv) {
  if (argc < 2) usage("missing mode");
  Args a;
  a.mode = argv[1];
  if (a.mode != "direct" && a.mode != "replikit") usage("mode must be direct or replikit");
  for (int i = 2; i < argc; ++i) {
    std::string k = argv[i];
    if (i + 1 >= argc) usage("missing value after " + k);
    std::string v = argv[++i];
    if (k == "--clients") a.clients = std::atoi(v.c_str());
    else if (k == "--seconds") a.seconds = std::atof(v.c_str());
    else if (k == "--rows") a.rows = std::atol(v.c_str());
    else if (k == "--dsn") a.dsn = v;
    else if (k == "--primary") a.primary = v;
    else if (k == "--consistency") a.consistency = v;
    else if (k == "--policy") a.policy = v;
    else if (k == "--sticky") a.sticky = std::atol(v.c_str());
    else if (k == "--replica") {
      auto eq = v.find('=');
      if (eq == std::string::npos) usage("--replica takes NAME=DSN");
      a.replicas.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    } else usage("unknown option " + k);
  }
  if (a.clients < 1 || a.clients > 256) usage("--clients must be in [1, 256]");
  if (!(a.seconds > 0 && a.seconds <= 600)) usage("--seconds must be in (0, 600]");
  if (a.rows < 1) usage("--rows must be >= 1");
  if (a.sticky < 1 || a.sticky > 1000000) usage("--sticky must be in [1, 1000000]");
  if (a.mode == "direct" && a.dsn.empty()) usage("direct needs --dsn");
  if (a.mode == "replikit" && (a.primary.empty() || a.replicas.empty())) usage("replikit needs --primary and --replica");
  return a;
}

struct Totals {
  std::atomic<long> queries{0};
  std::atomic<long> errors{0};
  std::mutex mutex;
  std::map<std::string, long> per_node;
};

// Runs a.clients threads for a.seconds; thread c calls make_client(c) once (a per-thread setup
// returning `bool query(long aid)`, true when exactly one row came back) and then queries random
// aids until the time is up. Counts queries and errors into `totals`.
template <typename MakeClient>
void run_clients(const Args& a, Totals& totals, MakeClient make_client) {
  std::atomic<bool> go{false}, stop{false};
  std::vector<std::thread> threads;
  for (int c = 0; c < a.clients; ++c) {
    threads.emplace_back([&, c] {
      auto query = make_client(c);
      std::mt19937_64 rng(static_cast<std::uint64_t>(c) + 1);
      std::uniform_int_distribution<long> aid(1, a.rows);
      while (!go.load()) std::this_thread::yield();
      long n = 0, errors = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        try {
          if (!query(aid(rng))) ++errors;
          ++n;
        } catch (const std::exception&) {
          ++errors;
        }
      }
      totals.queries += n;
      totals.errors += errors;
    });
  }
  go.store(true);
  std::this_thread::sleep_for(std::chrono::duration<double>(a.seconds));
  stop.store(true);
  for (auto& t : threads) t.join();
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse(argc, argv);
  Totals totals;
  std::chrono::steady_clock::time_point start, end;
  if (a.mode == "direct") {
    // Connect every client before the clock starts, as for replikit (whose pool warms below).
    std::vector<std::unique_ptr<pqxx::connection>> conns;
    for (int c = 0; c < a.clients; ++c) conns.push_back(std::make_unique<pqxx::connection>(a.dsn));
    start = std::chrono::steady_clock::now();
    run_clients(a, totals, [&](int c) {
      return [&conn = *conns[c]](long aid) {
        pqxx::nontransaction tx(conn);
        return tx.exec_params(kSql, std::to_string(aid)).size() == 1;
      };
    });
    end = std::chrono::steady_clock::now();
    totals.per_node["direct"] = totals.queries.load();
  } else {
    replikit::pg::DatabaseOptions options;
    options.pool_size = a.clients;
    options.router.policy = a.policy == "least_outstanding" ? replikit::Policy::LeastOutstanding
                                                            : replikit::Policy::RoundRobin;
    options.router.sticky_reads = static_cast<std::uint32_t>(a.sticky);
    replikit::pg::QueryOptions qo;
    qo.consistency = a.consistency == "read_your_writes" ? replikit::Consistency::ReadYourWrites
                     : a.consistency == "monotonic"      ? replikit::Consistency::Monotonic
                                                         : replikit::Consistency::Eventual;
    std::vector<replikit::pg::NodeConfig> replicas;
    for (auto& [name, dsn] : a.replicas) replicas.push_back({name, dsn, "", 1.0, 0});
    replikit::pg::ReplicatedDatabase db({"primary", a.primary, "", 1.0, 0}, replicas, options);
    db.wait_probes(2, 5000);
    {
      // Warm the pools: every client's first connection is made before the clock starts.
      std::vector<std::thread> warm;
      for (int c = 0; c < a.clients; ++c) {
        warm.emplace_back([&] {
          replikit::Session s;
          for (int k = 0; k < 4; ++k) db.query(s, kSql, {std::string("1")}, qo);
        });
      }
      for (auto& t : warm) t.join();
    }
    db.router()->reset_counters();
    start = std::chrono::steady_clock::now();
    run_clients(a, totals, [&](int) {
      return [&db, &qo, session = replikit::Session()](long aid) mutable {
        return db.query(session, kSql, {std::to_string(aid)}, qo).rows.size() == 1;
      };
    });
    end = std::chrono::steady_clock::now();
    auto counters = db.router()->counters();
    for (std::size_t i = 0; i < counters.by_node.size(); ++i) {
      if (counters.by_node[i] != 0) totals.per_node[db.topology()->name(static_cast<int>(i))] = static_cast<long>(counters.by_node[i]);
    }
  }
  double elapsed = std::chrono::duration<double>(end - start).count();
  std::printf("{\"mode\": \"%s\", \"clients\": %d, \"seconds\": %.3f, \"queries\": %ld, \"qps\": %.1f, \"errors\": %ld, \"per_node\": {",
              a.mode.c_str(), a.clients, elapsed, totals.queries.load(), static_cast<double>(totals.queries.load()) / elapsed,
              totals.errors.load());
  bool first = true;
  for (auto& [name, n] : totals.per_node) {
    std::printf("%s\"%s\": %ld", first ? "" : ", ", name.c_str(), n);
    first = false;
  }
  std::printf("}}\n");
  return totals.errors.load() == 0 ? 0 : 1;
}
