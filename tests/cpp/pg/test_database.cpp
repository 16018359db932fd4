// Tests of the PostgreSQL backend through its public API. The first group needs no server
// (bad DSNs, refused connections, option validation). The second runs only when
// REPLIKIT_PG_PRIMARY_DSN (and optionally REPLIKIT_PG_REPLICA_DSN) point at a running cluster,
// e.g. one from `replikit cluster up`; the full real-cluster suite is
// tests/python/test_pg_backend.py.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <string>

#include "replikit/errors.hpp"
#include "replikit/pg/database.hpp"

namespace {

using replikit::pg::DatabaseOptions;
using replikit::pg::NodeConfig;
using replikit::pg::ReplicatedDatabase;

NodeConfig node(std::string name, std::string dsn) {
  NodeConfig c;
  c.name = std::move(name);
  c.dsn = std::move(dsn);
  return c;
}

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
  bad([](DatabaseOptions& o) { o.wait_for_replica_ms = 1e9; }, "wait_for_replica_ms");
  bad([](DatabaseOptions& o) { o.lag.recover_ms = 5000; }, "recover_ms");
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
  o.wait_for_replica_ms = 500;
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

}  // namespace
