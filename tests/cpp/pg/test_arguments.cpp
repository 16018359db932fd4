// Arguments the backend refuses before connecting (no server needed): SQL text or a text
// parameter holding a NUL byte, which libpq would cut at the NUL; a FailoverManager option out
// of its range.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "replikit/errors.hpp"
#include "replikit/pg/database.hpp"
#include "replikit/pg/failover_manager.hpp"

namespace {

using replikit::pg::DatabaseOptions;
using replikit::pg::NodeConfig;
using replikit::pg::ReplicatedDatabase;

NodeConfig nowhere(std::string name) {
  NodeConfig c;
  c.name = std::move(name);
  c.dsn = "host=127.0.0.1 port=1";
  return c;
}

template <typename F>
std::string argument_of(F&& f) {
  try {
    f();
  } catch (const replikit::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("NUL"), std::string::npos) << e.what();
    return e.argument();
  }
  ADD_FAILURE() << "expected InvalidArgument";
  return {};
}

TEST(PgArguments, ANulInSqlOrATextParameterIsRefusedBeforeConnecting) {
  DatabaseOptions o;
  o.probe_interval_ms = 60000;
  ReplicatedDatabase db(nowhere("primary"), {nowhere("r1")}, o);
  replikit::Session s;
  const std::string nul_param("secret-token\0-suffix", 20);
  const std::string nul_sql("SELECT 1\0; DROP TABLE t", 23);
  ASSERT_EQ(nul_param.size(), 20u);
  EXPECT_EQ(argument_of([&] { db.execute(s, "INSERT INTO t VALUES ($1)", {nul_param}); }), "params");
  EXPECT_EQ(argument_of([&] { db.execute(s, nul_sql); }), "sql");
  EXPECT_EQ(argument_of([&] { db.query(s, "SELECT $1::text", {std::nullopt, nul_param}); }), "params");
  EXPECT_EQ(argument_of([&] { db.query(s, nul_sql); }), "sql");
  EXPECT_EQ(argument_of([&] { db.transaction(s, {{"SELECT 1", {}}, {"SELECT $1", {nul_param}}}); }), "statements");
  EXPECT_EQ(argument_of([&] { db.transaction(s, {{nul_sql, {}}}); }), "statements");
  // Nothing was routed, sent or counted.
  EXPECT_EQ(db.stats().writes, 0u);
  EXPECT_EQ(db.stats().reads, 0u);
  EXPECT_EQ(db.stats().nodes_marked_down, 0u);
}

TEST(PgArguments, AFailoverManagerRefusesADrainBoundOutOfRange) {
  replikit::pg::FailoverManagerOptions o;
  EXPECT_EQ(o.max_drain_ms, 2000);
  o.max_drain_ms = 0;  // no drain: the fence ends every call in flight at once
  EXPECT_NO_THROW(replikit::pg::check_options(o));
  for (double bad : {-1.0, 600001.0, std::nan("")}) {
    o.max_drain_ms = bad;
    try {
      replikit::pg::check_options(o);
      ADD_FAILURE() << "accepted max_drain_ms " << bad;
    } catch (const replikit::InvalidArgument& e) {
      EXPECT_EQ(e.argument(), "max_drain_ms");
    }
  }
}

}  // namespace
