// Tests of the PostgreSQL backend through its public API. The first group needs no server
// (bad DSNs, refused connections, option validation). The second runs only when
// REPLIKIT_PG_PRIMARY_DSN (and optionally REPLIKIT_PG_REPLICA_DSN) point at a running cluster,
// e.g. one from `replikit cluster up`; the full real-cluster suite is
// tests/python/test_pg_backend_*.py.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "replikit/errors.hpp"
#include "pg_testing.hpp"
#include "replikit/pg/database.hpp"

namespace {

using replikit::pg::DatabaseOptions;
using replikit::pg::NodeConfig;
using replikit::pg::ReplicatedDatabase;

using replikit::pg::testing::node;

// A loopback port nothing listens on (bound, then released).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

template <typename E, typename F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return {};
}

TEST(PgDatabase, MalformedDsnIsAConnectionErrorWithLibpqsMessage) {
  std::string m = message_of<replikit::ConnectionError>([] { ReplicatedDatabase db(node("primary", "host=x bogus"), {}); });
  EXPECT_NE(m.find("node 'primary'"), std::string::npos) << m;
  EXPECT_NE(m.find("missing \"=\" after \"bogus\""), std::string::npos) << m;
  m = message_of<replikit::ConnectionError>(
      [] { ReplicatedDatabase db(node("primary", "host=127.0.0.1"), {node("r1", "postgresql://x/db?nosuchparam=1")}); });
  EXPECT_NE(m.find("node 'r1'"), std::string::npos) << m;
  EXPECT_NE(m.find("nosuchparam"), std::string::npos) << m;
}

TEST(PgDatabase, OptionsAreValidatedByName) {
  auto bad = [](auto change, const char* argument) {
    DatabaseOptions o;
    change(o);
    try {
      ReplicatedDatabase db(node("primary", "host=127.0.0.1"), {}, o);
      ADD_FAILURE() << argument << " accepted";
    } catch (const replikit::InvalidArgument& e) {
      EXPECT_EQ(e.argument(), argument);
    }
  };
  bad([](DatabaseOptions& o) { o.probe_interval_ms = 0; }, "probe_interval_ms");
  bad([](DatabaseOptions& o) { o.probe_interval_ms = std::nan(""); }, "probe_interval_ms");
  bad([](DatabaseOptions& o) { o.pool_size = 0; }, "pool_size");
  bad([](DatabaseOptions& o) { o.read_retries = -1; }, "read_retries");
  bad([](DatabaseOptions& o) { o.wait_for_replica.max_wait_ms = 1e9; }, "wait_for_replica_ms");
  bad([](DatabaseOptions& o) { o.lag.recover_lag_ms = 5000; }, "recover_lag_ms");
}

TEST(PgDatabase, RefusedConnectionIsTypedBoundedAndMarksTheNodeDown) {
  const std::string dsn = "host=127.0.0.1 user=postgres port=" + std::to_string(free_port());
  ReplicatedDatabase db(node("primary", dsn), {node("r1", dsn)});
  replikit::Session s;
  auto start = std::chrono::steady_clock::now();
  std::string m = message_of<replikit::ConnectionError>([&] { db.execute(s, "SELECT 1"); });
  EXPECT_NE(m.find("refused"), std::string::npos) << m;
  replikit::pg::QueryOptions eventual;
  eventual.consistency = replikit::Consistency::Eventual;
  EXPECT_THROW(db.query(s, "SELECT 1", {}, eventual), replikit::ConnectionError);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  ASSERT_TRUE(db.wait_probes(1, 3000));
  for (const auto& n : db.nodes()) {
    EXPECT_FALSE(n.up) << n.name;
    EXPECT_FALSE(n.reachable) << n.name;
    EXPECT_NE(n.last_error.find("refused"), std::string::npos) << n.last_error;
  }
  db.close();
  EXPECT_THROW(db.execute(s, "SELECT 1"), replikit::ConnectionError);
}

TEST(PgDatabase, DestructorStopsTheProberPromptly) {
  auto start = std::chrono::steady_clock::now();
  {
    DatabaseOptions o;
    o.probe_interval_ms = 60000;  // the prober sleeps long; stop must still be prompt
    ReplicatedDatabase db(node("primary", "host=127.0.0.1 port=" + std::to_string(free_port())), {}, o);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
}

// ---- against a running cluster (skipped unless REPLIKIT_PG_PRIMARY_DSN is set) ----

TEST(PgDatabaseCluster, WriteThenReadYourWrite) {
  const char* primary = std::getenv("REPLIKIT_PG_PRIMARY_DSN");
  if (primary == nullptr) GTEST_SKIP() << "REPLIKIT_PG_PRIMARY_DSN not set";
  std::vector<replikit::pg::NodeConfig> replicas;
  if (const char* r = std::getenv("REPLIKIT_PG_REPLICA_DSN")) replicas.push_back(node("r1", r));
  DatabaseOptions o;
  o.wait_for_replica.max_wait_ms = 500;
  ReplicatedDatabase db(node("primary", primary), replicas, o);
  ASSERT_TRUE(db.wait_probes(2, 5000));
  replikit::Session s;
  db.execute(s, "CREATE TABLE IF NOT EXISTS rk_cpp (id bigserial PRIMARY KEY, v text)");
  for (int i = 0; i < 50; ++i) {
    auto w = db.execute(s, "INSERT INTO rk_cpp (v) VALUES ($1) RETURNING id", {std::to_string(i)});
    ASSERT_TRUE(w.lsn.valid());
    EXPECT_EQ(s.write_lsn, w.lsn);
    auto r = db.query(s, "SELECT v FROM rk_cpp WHERE id = $1", {w.rows.at(0).at(0)});
    ASSERT_EQ(r.rows.size(), 1u);
    EXPECT_EQ(r.rows[0][0], std::to_string(i));
  }
  try {
    db.query(s, "SELECT * FROM rk_no_such_table");
    ADD_FAILURE() << "no error";
  } catch (const replikit::QueryError& e) {
    EXPECT_EQ(e.sqlstate(), "42P01");
    EXPECT_NE(std::string(e.what()).find("rk_no_such_table"), std::string::npos);
  }
}

// hold_primary (a switchover draining the old primary): a strong read and a write wait for the
// release, a replica read does not; a hold that outlasts acquire_timeout_ms lets the call go to
// the primary there is. (No upper time bound is asserted but a minute: no test fails because the
// machine was slow.)
TEST(PgDatabaseCluster, AHeldPrimaryHoldsItsNewCallsUntilTheRelease) {
  const char* primary = std::getenv("REPLIKIT_PG_PRIMARY_DSN");
  if (primary == nullptr) GTEST_SKIP() << "REPLIKIT_PG_PRIMARY_DSN not set";
  const char* replica = std::getenv("REPLIKIT_PG_REPLICA_DSN");
  std::vector<replikit::pg::NodeConfig> replicas;
  if (replica != nullptr) replicas.push_back(node("r1", replica));
  DatabaseOptions o;
  o.acquire_timeout_ms = 60000;
  ReplicatedDatabase db(node("primary", primary), replicas, o);
  ASSERT_TRUE(db.wait_probes(2, 5000));
  replikit::Session s;
  replikit::pg::QueryOptions strong, eventual;
  strong.consistency = replikit::Consistency::Strong;
  eventual.consistency = replikit::Consistency::Eventual;
  db.hold_primary(true);
  std::atomic<bool> read_done{false}, write_done{false};
  std::string read_node;
  std::thread reader([&] {
    replikit::Session own;
    read_node = db.query(own, "SELECT 1", {}, strong).node;
    read_done = true;
  });
  std::thread writer([&] {
    replikit::Session own;
    db.execute(own, "SELECT 1");
    write_done = true;
  });
  if (replica != nullptr && db.wait_probes(1, 5000) && db.node("r1").up) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(db.query(s, "SELECT 1", {}, eventual).node, "r1");
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(read_done.load());
  EXPECT_FALSE(write_done.load());
  db.hold_primary(false);
  reader.join();
  writer.join();
  EXPECT_EQ(read_node, "primary");
  EXPECT_TRUE(write_done.load());

  DatabaseOptions short_wait;
  short_wait.acquire_timeout_ms = 300;
  ReplicatedDatabase bounded(node("primary", primary), {}, short_wait);
  ASSERT_TRUE(bounded.wait_probes(2, 5000));
  bounded.hold_primary(true);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(bounded.query(s, "SELECT 1", {}, strong).node, "primary");
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
}

// A call routed to the primary just before a switchover's hold, not yet counted in flight when
// the drain looks (the hook runs in that window): the drain finds nothing in flight and "fences",
// yet the call must not run before the release (it sees the hold after counting itself and backs
// out). Deterministic: the hook holds the primary at that very point, once per call.
TEST(PgDatabaseCluster, ACallRoutedJustBeforeTheHoldWaitsForTheRelease) {
  const char* primary = std::getenv("REPLIKIT_PG_PRIMARY_DSN");
  if (primary == nullptr) GTEST_SKIP() << "REPLIKIT_PG_PRIMARY_DSN not set";
  DatabaseOptions o;
  o.acquire_timeout_ms = 60000;
  ReplicatedDatabase db(node("primary", primary), {}, o);
  ASSERT_TRUE(db.wait_probes(2, 5000));
  const int p = db.topology()->index_of("primary");
  std::atomic<bool> arm{false}, hooked{false}, released{false};
  db.set_primary_route_hook([&] {
    if (arm.exchange(false)) {
      db.hold_primary(true);
      hooked = true;
    }
  });
  replikit::pg::QueryOptions strong;
  strong.consistency = replikit::Consistency::Strong;
  for (int kind = 0; kind < 2; ++kind) {
    released = false;
    hooked = false;
    arm = true;
    // The switchover's side: after the hold, drain (wait for no call in flight, bounded), then
    // the fence would come; the release 200 ms later.
    std::thread switchover([&] {
      for (int i = 0; i < 60000 && !hooked.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      for (int i = 0; i < 60000 && db.topology()->outstanding(p) > 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      released = true;
      db.hold_primary(false);
    });
    const std::uint64_t ended = db.primary_calls_ended(p);
    replikit::Session own;
    if (kind == 0) {
      db.execute(own, "SELECT 1");
    } else {
      EXPECT_EQ(db.query(own, "SELECT 1", {}, strong).node, "primary");
    }
    const bool ran_after_release = released.load();
    switchover.join();
    EXPECT_TRUE(hooked.load());
    EXPECT_TRUE(ran_after_release) << (kind == 0 ? "write" : "strong read") << " ran on the held primary";
    EXPECT_EQ(db.primary_calls_ended(p), ended + 1);  // the backed-out attempt is not counted
    EXPECT_EQ(db.topology()->outstanding(p), 0);
  }
}

// The read path runs on libpq directly: columns, type OIDs, NULLs (values and parameters),
// embedded newlines, the simple protocol without parameters, many parameters, the
// observed LSN of a Monotonic read, server errors with their SQLSTATE (also class 08 and 57P
// ones on a live connection), and a session ended by the server retried like a lost connection.
TEST(PgDatabaseCluster, ReadPathResultsAndErrors) {
  const char* primary = std::getenv("REPLIKIT_PG_PRIMARY_DSN");
  if (primary == nullptr) GTEST_SKIP() << "REPLIKIT_PG_PRIMARY_DSN not set";
  std::vector<replikit::pg::NodeConfig> replicas;
  if (const char* r = std::getenv("REPLIKIT_PG_REPLICA_DSN")) replicas.push_back(node("r1", r));
  ReplicatedDatabase db(node("primary", primary), replicas);
  ASSERT_TRUE(db.wait_probes(2, 5000));
  replikit::Session s;
  replikit::pg::QueryOptions eventual;
  eventual.consistency = replikit::Consistency::Eventual;

  auto r = db.query(s, "SELECT $1::text AS a, $2::int4 AS b, NULL::text AS c, 'x' || chr(10) || 'y' AS d",
                    {std::string("hello"), std::nullopt}, eventual);
  ASSERT_EQ(r.columns, (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(r.type_oids, (std::vector<std::uint32_t>{25, 23, 25, 25}));
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0][0], std::optional<std::string>("hello"));
  EXPECT_EQ(r.rows[0][1], std::nullopt);
  EXPECT_EQ(r.rows[0][2], std::nullopt);
  EXPECT_EQ(r.rows[0][3], std::optional<std::string>("x\ny"));
  EXPECT_EQ(r.attempts, 1);
  EXPECT_FALSE(r.node.empty());

  auto many = db.query(s, "SELECT generate_series(1, 100)::text", {}, eventual);
  ASSERT_EQ(many.rows.size(), 100u);
  EXPECT_EQ(many.rows[99][0], std::optional<std::string>("100"));

  auto multi = db.query(s, "SELECT 1; SELECT 2 AS two", {}, eventual);  // simple protocol: the last result
  ASSERT_EQ(multi.columns, (std::vector<std::string>{"two"}));
  EXPECT_EQ(multi.rows.at(0).at(0), std::optional<std::string>("2"));

  replikit::pg::Params ten;
  std::string sum_sql = "SELECT 0";
  for (int k = 1; k <= 10; ++k) {
    ten.emplace_back(std::to_string(k));
    sum_sql += " + $" + std::to_string(k) + "::int";
  }
  EXPECT_EQ(db.query(s, sum_sql, ten, eventual).rows.at(0).at(0), std::optional<std::string>("55"));

  // Typed and binary parameters: the OID decides the type without a cast in the SQL; a binary
  // bytea carries a NUL byte, which a text parameter cannot.
  const std::string raw("a\0b", 3);
  auto typed = db.query(s, "SELECT pg_typeof($1)::text, $1 + 1, length($2), encode($2, 'hex'), $3 IS NULL",
                        {replikit::pg::Param(std::string("41"), 20, false),
                         replikit::pg::Param(raw, 17, true), replikit::pg::Param(std::nullopt, 23, false)},
                        eventual);
  EXPECT_EQ(typed.rows.at(0), (std::vector<std::optional<std::string>>{"bigint", "42", "3", "610062", "t"}));

  replikit::pg::QueryOptions monotonic;
  monotonic.consistency = replikit::Consistency::Monotonic;
  auto m = db.query(s, "SELECT 1", {}, monotonic);
  EXPECT_TRUE(m.lsn.valid());

  const auto expect_error = [&](const std::string& sql, const std::string& sqlstate) {
    try {
      db.query(s, sql, {}, eventual);
      ADD_FAILURE() << sql << ": no error";
    } catch (const replikit::QueryError& e) {
      EXPECT_EQ(e.sqlstate(), sqlstate) << sql;
      EXPECT_EQ(std::string(e.what()).rfind("ERROR:", 0), 0u) << e.what();
      EXPECT_NE(std::string(e.what()).back(), '\n');
    }
  };
  expect_error("SELECT 1/0", "22012");
  expect_error("SELEC 1", "42601");
  expect_error("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40001'; END $$", "40001");
  expect_error("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40002'; END $$", "40002");
  expect_error("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40P01'; END $$", "40P01");
  EXPECT_THROW(db.query(s, "BEGIN", {}, eventual), replikit::InvalidArgument);

  // Failures are classified by what happened to the connection, not by the SQLSTATE class: an
  // error with a class-08 or 57P SQLSTATE on a connection that stays open is a QueryError (no
  // node marked down, no retry), such as the server's 08P01 for a parameter count mismatch.
  const auto marked_before = db.stats().nodes_marked_down;
  expect_error("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '08P01'; END $$", "08P01");
  expect_error("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '57P01'; END $$", "57P01");
  try {
    db.query(s, "SELECT $1::int + $2::int", {std::string("1")}, eventual);
    ADD_FAILURE() << "parameter count mismatch: no error";
  } catch (const replikit::QueryError& e) {
    EXPECT_EQ(e.sqlstate(), "08P01") << e.what();
  }
  try {
    db.execute(s, "SELECT $1::int + $2::int", {std::string("1")});
    ADD_FAILURE() << "parameter count mismatch in a write: no error";
  } catch (const replikit::CommitUnknown& e) {
    ADD_FAILURE() << "a protocol error on a live connection is not in doubt: " << e.what();
  } catch (const replikit::QueryError& e) {
    EXPECT_EQ(e.sqlstate(), "08P01") << e.what();
  }
  EXPECT_EQ(db.stats().nodes_marked_down, marked_before);
  EXPECT_EQ(db.stats().read_retries, 0u);

  // A server error that ends the session is a lost connection: the read is retried elsewhere
  // (or fails with ConnectionError when nowhere is left), never reported as a QueryError.
  const auto before = db.stats();
  try {
    auto after_kill = db.query(s, "SELECT pg_terminate_backend(pg_backend_pid())", {}, eventual);
    EXPECT_GE(after_kill.attempts, 2);
  } catch (const replikit::ConnectionError&) {
  }
  EXPECT_GT(db.stats().nodes_marked_down, before.nodes_marked_down);
  EXPECT_EQ(db.stats().watchdog_fired, 0u);
}

// A Monotonic read that goes to the primary first waits until the primary has completed every
// transaction of the session's xid floor; a floor it already shows costs one round trip and is
// then cleared; one it never reaches ends in TimeoutError after statement_timeout_ms / 2, counted
// as a failed read. On a replica (when one is given) the read records it and its snapshot.
TEST(PgDatabaseCluster, MonotonicReadOnThePrimaryWaitsForTheXidFloor) {
  const char* primary = std::getenv("REPLIKIT_PG_PRIMARY_DSN");
  if (primary == nullptr) GTEST_SKIP() << "REPLIKIT_PG_PRIMARY_DSN not set";
  DatabaseOptions o;
  o.statement_timeout_ms = 400;
  ReplicatedDatabase db(node("primary", primary), {}, o);
  ASSERT_TRUE(db.wait_probes(2, 5000));
  replikit::pg::QueryOptions monotonic;
  monotonic.consistency = replikit::Consistency::Monotonic;

  replikit::Session s;
  s.xid_floor.xmax = 3;  // long completed on any primary that ran initdb
  auto r = db.query(s, "SELECT 1", {}, monotonic);
  EXPECT_EQ(r.node, "primary");
  EXPECT_EQ(s.xid_floor.xmax, 0u);  // shown by the primary: cleared
  EXPECT_EQ(s.last_replica, -1);    // the primary is no replica

  s.xid_floor.xmax = std::uint64_t{1} << 50;  // a transaction the primary has not started
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(db.query(s, "SELECT 1", {}, monotonic), replikit::TimeoutError);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(ms, 190);
  EXPECT_LT(ms, 2000);
  EXPECT_EQ(db.stats().read_failures, 1u);
  EXPECT_EQ(s.xid_floor.xmax, std::uint64_t{1} << 50);  // kept: the read did not happen

  if (const char* replica = std::getenv("REPLIKIT_PG_REPLICA_DSN")) {
    ReplicatedDatabase two(node("primary", primary), {node("r1", replica)});
    ASSERT_TRUE(two.wait_probes(2, 5000));
    replikit::Session fresh;
    auto on_replica = two.query(fresh, "SELECT 1", {}, monotonic);
    ASSERT_EQ(on_replica.node, "r1");
    EXPECT_EQ(fresh.last_replica, two.topology()->index_of("r1"));
    EXPECT_EQ(fresh.last_replica_lsn, on_replica.lsn);
    EXPECT_GT(fresh.xid_floor.xmax, 0u);
  }
}

}  // namespace
