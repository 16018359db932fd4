// carry_synchronous: the old primary's synchronous_standby_names rewritten for the new primary
// (no server needed).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "replikit/pg/failover.hpp"

namespace {

using replikit::pg::carry_synchronous;
using replikit::pg::SynchronousCarry;

const std::vector<std::string> kSurvivors{"r2"};

TEST(SynchronousCarry, KeepsTheMethodAndCountWithoutThePromotedNode) {
  const SynchronousCarry any = carry_synchronous("ANY 1 (r1, r2)", "primary", "r1", kSurvivors);
  EXPECT_TRUE(any.parsed);
  EXPECT_EQ(any.to, "ANY 1 (\"r2\")");
  EXPECT_EQ(any.wanted, 1);
  EXPECT_EQ(any.count, 1);
  const SynchronousCarry first = carry_synchronous("first 1 (R1, \"r2\", r3)", "primary", "r1", {"r2", "r3"});
  EXPECT_EQ(first.to, "FIRST 1 (\"r2\", \"r3\")");
}

TEST(SynchronousCarry, ACountAboveTheStandbysLeftDropsToTheirNumberAndSaysSo) {
  const SynchronousCarry c = carry_synchronous("FIRST 2 (r1, r2)", "primary", "r1", kSurvivors);
  EXPECT_EQ(c.to, "FIRST 1 (\"r2\")");
  EXPECT_EQ(c.wanted, 2);
  EXPECT_EQ(c.count, 1);
  EXPECT_NE(c.note.find("1 standby(s) left for a count of 2"), std::string::npos) << c.note;
}

TEST(SynchronousCarry, NoStandbyLeftGivesAnEmptySetting) {
  const SynchronousCarry c = carry_synchronous("ANY 1 (primary, r1)", "primary", "r1", kSurvivors);
  EXPECT_TRUE(c.parsed);
  EXPECT_EQ(c.to, "");
  EXPECT_EQ(c.count, 0);
  EXPECT_NE(c.note.find("asynchronous"), std::string::npos) << c.note;
}

TEST(SynchronousCarry, TheOldFormsAndTheStar) {
  EXPECT_EQ(carry_synchronous("r1, r2", "p", "r1", kSurvivors).to, "FIRST 1 (\"r2\")");
  EXPECT_EQ(carry_synchronous("2 (r1, r2, r3)", "p", "r1", {"r2", "r3"}).to, "FIRST 2 (\"r2\", \"r3\")");
  EXPECT_EQ(carry_synchronous("ANY 2 (*)", "p", "r1", {"r2", "r3"}).to, "ANY 2 (*)");
  EXPECT_EQ(carry_synchronous("FIRST 2 (*)", "p", "r1", kSurvivors).to, "FIRST 1 (*)");
  EXPECT_EQ(carry_synchronous("*", "p", "r1", {}).to, "");
}

TEST(SynchronousCarry, QuotedNamesKeepTheirCommasAndQuotes) {
  const SynchronousCarry c = carry_synchronous("ANY 1 (\"a,b\", \"q\"\"x\", r1)", "p", "r1", {});
  EXPECT_EQ(c.to, "ANY 1 (\"a,b\", \"q\"\"x\")");
}

TEST(SynchronousCarry, AnAsynchronousOrUnreadableSettingCarriesNothing) {
  const SynchronousCarry none = carry_synchronous("  ", "p", "r1", kSurvivors);
  EXPECT_TRUE(none.parsed);
  EXPECT_EQ(none.to, "");
  for (const char* bad : {"ANY 1 (\"r2)", "ANY 1 (r2,)", "ANY 0 (r2)", ", r2"}) {
    const SynchronousCarry c = carry_synchronous(bad, "p", "r1", kSurvivors);
    EXPECT_FALSE(c.parsed) << bad;
    EXPECT_EQ(c.to, "") << bad;
  }
}

}  // namespace
