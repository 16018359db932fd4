// A connection lost inside execute() and transaction(): the server's backend of the call is
// ended (pg_terminate_backend from another connection) while the statement or the COMMIT
// runs. The call fails with a message that says what happened, and nothing leaks (run under
// LeakSanitizer by the ASan build, build/asan-pg). Needs REPLIKIT_PG_PRIMARY_DSN.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "replikit/errors.hpp"
#include "pg_testing.hpp"
#include "replikit/pg/database.hpp"

namespace {

using replikit::pg::NodeConfig;
using replikit::pg::ReplicatedDatabase;

using replikit::pg::testing::node;

// Runs `call` on a thread and ends the backend of the victim's connection (named by its
// application_name) once it sleeps: in a statement that calls pg_sleep, or in a COMMIT (whose
// deferred trigger sleeps). Returns the message of the exception `call` threw ("" when none).
template <typename E, typename F>
std::string kill_during(ReplicatedDatabase& killer, F call) {
  auto victim = std::async(std::launch::async, [&]() -> std::string {
    try {
      call();
    } catch (const E& e) {
      return e.what();
    }
    return "";
  });
  replikit::Session s;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = killer.query(s,
                          "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                          "application_name = 'rk_victim' AND state = 'active' AND "
                          "(query LIKE '%pg_sleep%' OR query LIKE 'COMMIT%')",
                          {});
    if (r.rows.at(0).at(0) == std::optional<std::string>("1")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return victim.get();
}

class PgLostConnection : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* primary = std::getenv("REPLIKIT_PG_PRIMARY_DSN");
    if (primary == nullptr) GTEST_SKIP() << "REPLIKIT_PG_PRIMARY_DSN not set";
    victim_.emplace(node("primary", std::string(primary) + " application_name=rk_victim"),
                    std::vector<NodeConfig>{});
    killer_.emplace(node("primary", primary), std::vector<NodeConfig>{});
    ASSERT_TRUE(victim_->wait_probes(1, 5000));
    replikit::Session s;
    // A deferred constraint trigger that sleeps: the COMMIT runs it, so the kill lands in COMMIT.
    killer_->execute(s,
                     "CREATE TABLE IF NOT EXISTS rk_lost (v int);"
                     "CREATE OR REPLACE FUNCTION rk_lost_sleep() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN PERFORM pg_sleep(10); RETURN NULL; END $$;"
                     "DROP TRIGGER IF EXISTS rk_lost_at_commit ON rk_lost;"
                     "CREATE CONSTRAINT TRIGGER rk_lost_at_commit AFTER INSERT ON rk_lost "
                     "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION rk_lost_sleep()");
  }
  void TearDown() override {
    if (killer_) {
      replikit::Session s;
      killer_->execute(s, "DROP TABLE IF EXISTS rk_lost; DROP FUNCTION IF EXISTS rk_lost_sleep()");
    }
  }
  void expect_node_back() {
    ASSERT_TRUE(victim_->wait_probes(2, 5000));
    replikit::Session s;
    EXPECT_EQ(victim_->execute(s, "SELECT 1").rows.at(0).at(0), std::optional<std::string>("1"));
  }

  std::optional<ReplicatedDatabase> victim_, killer_;
};

void expect_says_what_happened(const std::string& message) {
  EXPECT_EQ(message.find("client encoding"), std::string::npos) << message;
  EXPECT_NE(message.find("node 'primary'"), std::string::npos) << message;
  EXPECT_NE(message.find("terminating connection due to administrator command"), std::string::npos) << message;
}

TEST_F(PgLostConnection, InsideExecuteIsCommitUnknown) {
  for (int round = 0; round < 3; ++round) {
    replikit::Session s;
    const std::string m = kill_during<replikit::CommitUnknown>(*killer_, [&] { victim_->execute(s, "SELECT pg_sleep(10)"); });
    ASSERT_FALSE(m.empty()) << "execute() did not throw CommitUnknown";
    EXPECT_NE(m.find("connection lost during the write"), std::string::npos) << m;
    expect_says_what_happened(m);
    expect_node_back();
  }
}

TEST_F(PgLostConnection, InsideATransactionStatementIsAConnectionError) {
  replikit::Session s;
  const std::string m = kill_during<replikit::ConnectionError>(*killer_, [&] {
    victim_->transaction(s, {{"INSERT INTO rk_lost VALUES (1)", {}}, {"SELECT pg_sleep(10)", {}}});
  });
  ASSERT_FALSE(m.empty()) << "transaction() did not throw ConnectionError";
  EXPECT_NE(m.find("connection lost before COMMIT"), std::string::npos) << m;
  expect_says_what_happened(m);
  expect_node_back();
}

TEST_F(PgLostConnection, InsideCommitIsCommitUnknown) {
  replikit::Session s;
  const std::string m = kill_during<replikit::CommitUnknown>(*killer_, [&] {
    victim_->transaction(s, {{"INSERT INTO rk_lost VALUES (1)", {}}});
  });
  ASSERT_FALSE(m.empty()) << "transaction() did not throw CommitUnknown";
  EXPECT_NE(m.find("connection lost during COMMIT"), std::string::npos) << m;
  expect_says_what_happened(m);
  expect_node_back();
}

}  // namespace
