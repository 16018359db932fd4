// Arguments the backend refuses before connecting (no server needed): SQL text or a text
// parameter holding a NUL byte, which libpq would cut at the NUL.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "replikit/errors.hpp"
#include "replikit/pg/database.hpp"

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

}  // namespace
