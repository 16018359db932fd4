// carry_synchronous: the old primary's synchronous_standby_names rewritten for the new primary
// (no server needed).
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "../testing.hpp"
#include "replikit/pg/failover.hpp"

namespace {

using replikit::pg::carry_synchronous;
using replikit::pg::restore_synchronous;
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

// What PostgreSQL 15 itself accepted and refused (ALTER SYSTEM SET synchronous_standby_names
// runs its parser): the carry reads exactly the settings a server can have.
TEST(SynchronousCarry, ReadsWhatPostgreSQLAcceptsAndRefusesTheRest) {
  for (const char* good : {"\"any\"", "1, 2", "FIRST 1 (1)", "\"\"", "ANY 1 (\"*\")", "ANY 01 (a)", "\xc3\xa9", "a$b",
                           "*, a", "2(a,b)", " \ta ,\n b ", "ANY 1 (a, *)", "\"a\"\"b\"", "1", "_x", "Any 2 (A, b)",
                           "ANY 3 (a)", "fIrSt 1 (anyone, firsts)"}) {
    const SynchronousCarry c = carry_synchronous(good, "p", "r1", kSurvivors);
    EXPECT_TRUE(c.parsed) << good << ": " << c.note;
  }
  for (const char* bad : {"r-1", "my node", "any", "first", "1abc", "$a", "ANY 1 (a) b", "FIRST 0 (a)", "ANY (a)",
                          "FIRST 1 ()", "a,", ",a", "\"a\"b", "ANY 1 (\"r2)", "ANY 1 (a), ANY 1 (b)", "a.b", "FIRST1(a)",
                          "ANY1 (a)", "a b", "-1 (a)", "FIRST -1 (a)", "ANY 1 ((a))", "\"a\" \"b\"", "a\x01",
                          "FIRST 1 (a", "ANY 1 a", "(a)"}) {
    const SynchronousCarry c = carry_synchronous(bad, "p", "r1", kSurvivors);
    EXPECT_FALSE(c.parsed) << bad;
    EXPECT_EQ(c.to, "") << bad;
    EXPECT_NE(c.note.find("could not be read"), std::string::npos) << c.note;
  }
}

TEST(SynchronousCarry, SaysWhyASettingCouldNotBeRead) {
  EXPECT_NE(carry_synchronous("ANY 1 (a) b", "p", "r1", {}).note.find("syntax error at offset 10 ('b')"),
            std::string::npos);
  EXPECT_NE(carry_synchronous("a,", "p", "r1", {}).note.find("syntax error at end of input"), std::string::npos);
  EXPECT_NE(carry_synchronous("ANY 1 (\"r2)", "p", "r1", {}).note.find("unterminated quoted name at offset 7"),
            std::string::npos);
  EXPECT_NE(carry_synchronous("FIRST 0 (a)", "p", "r1", {}).note.find("at least 1"), std::string::npos);
  // PostgreSQL reads an overlong count through an int overflow: not carried rather than guessed.
  const SynchronousCarry big = carry_synchronous("FIRST 99999999999 (a)", "p", "r1", {});
  EXPECT_FALSE(big.parsed);
  EXPECT_NE(big.note.find("too large"), std::string::npos) << big.note;
  EXPECT_EQ(carry_synchronous("FIRST 000000000002 (a, b, c)", "p", "r1", {"b", "c"}).to, "FIRST 2 (\"a\", \"b\", \"c\")");
}

TEST(SynchronousCarry, KeywordsAnyCaseNamesKeptAsWrittenAndAQuotedStarIsAStar) {
  EXPECT_EQ(carry_synchronous("aNy 1 (Anyone, R2, \"First\")", "p", "r1", kSurvivors).to,
            "ANY 1 (\"Anyone\", \"R2\", \"First\")");
  EXPECT_EQ(carry_synchronous("1, R1, 2", "p", "r1", kSurvivors).to, "FIRST 1 (\"1\", \"2\")");
  // PostgreSQL compares each name with "*" after unquoting: a quoted star matches every standby too.
  EXPECT_EQ(carry_synchronous("ANY 2 (\"*\")", "p", "r1", {"r2", "r3"}).to, "ANY 2 (*)");
}

// 100 KB settings, well-formed and not: read in one linear pass (no recursion), the note cut.
TEST(SynchronousCarry, LongSettingsAreReadWithoutRecursionAndTheNoteStaysShort) {
  std::string list = "ANY 2 (r1";
  std::vector<std::string> survivors;
  for (int i = 0; list.size() < 100'000; ++i) {
    list += ", s" + std::to_string(i);
    survivors.push_back("s" + std::to_string(i));
  }
  list += ")";
  const SynchronousCarry many = carry_synchronous(list, "p", "r1", survivors);
  EXPECT_TRUE(many.parsed);
  EXPECT_EQ(many.count, 2);
  EXPECT_EQ(many.to.rfind("ANY 2 (\"s0\", \"s1\", ", 0), 0u);
  EXPECT_LT(many.note.size(), 1000u);
  EXPECT_NE(many.note.find(" bytes)"), std::string::npos) << many.note;

  const std::string name(100'000, 'x');
  EXPECT_EQ(carry_synchronous("\"" + name + "\"", "p", "r1", {}).count, 1);
  EXPECT_TRUE(carry_synchronous(name, "p", "r1", {}).parsed);
  EXPECT_TRUE(carry_synchronous(std::string(100'000, ' ') + "a" + std::string(100'000, ' '), "p", "r1", {}).parsed);
  for (const std::string& bad : {std::string(100'000, '('), "ANY 1 (" + std::string(100'000, '('),
                                 "\"" + name, std::string(100'000, '"') + "\"", "FIRST " + std::string(100'000, '9') + " (a)",
                                 list + ")", list.substr(0, list.size() - 1), std::string(100'000, ','),
                                 std::string(100'000, '\xff') + " (a)"}) {
    const SynchronousCarry c = carry_synchronous(bad, "p", "r1", survivors);
    EXPECT_FALSE(c.parsed) << bad.substr(0, 40);
    EXPECT_EQ(c.to, "");
    EXPECT_LT(c.note.size(), 1000u);
  }
}

// Seeded random settings from the grammar's pieces and junk: never a crash nor an exception; a
// setting read carries over to one that reads again and carries over to itself (the names it
// drops are gone), so what the new primary gets is a setting PostgreSQL's grammar accepts.
TEST(SynchronousCarry, RandomSettingsCarryToAFixedPoint) {
  const std::uint64_t seed = replikit::testing::printed_seed("SynchronousCarry.RandomSettings", 20261130);
  std::mt19937_64 rng(seed);
  const std::vector<std::string> pieces{"ANY ", "first ", "2", "0", "1 ", " ", ",", "(", ")", "\"", "\"\"", "*",
                                        "r1", "R2", "p", "x$", "-", "\xc3\xa9", "\t", "\"a,b\"", "any", "9999999999"};
  int read = 0, carried = 0;
  for (int i = 0; i < 20'000; ++i) {
    std::string setting;
    const int n = static_cast<int>(rng() % 12);
    for (int k = 0; k < n; ++k) setting += pieces[rng() % pieces.size()];
    const SynchronousCarry c = carry_synchronous(setting, "p", "r1", {"r2", "x$"});
    if (!c.parsed) continue;
    ++read;
    if (c.to.empty()) continue;
    ++carried;
    const SynchronousCarry again = carry_synchronous(c.to, "p", "r1", {"r2", "x$"});
    ASSERT_TRUE(again.parsed) << "'" << setting << "' -> '" << c.to << "': " << again.note;
    ASSERT_EQ(again.to, c.to) << "'" << setting << "'";
  }
  std::printf("read %d of 20000, carried %d\n", read, carried);
  EXPECT_GT(carried, 100);  // the generator reaches the readable settings too
}

// The deposed primary, streaming from the promoted node again, is listed where the promoted node
// was: the old method and count (as far as the names listed allow).
TEST(SynchronousRestore, ListsTheDeposedPrimaryWithTheOldMethodAndCount) {
  EXPECT_EQ(restore_synchronous("ANY 1 (r1, r2)", "r1", "p").to, "ANY 1 (\"r2\", \"p\")");
  const SynchronousCarry first = restore_synchronous("FIRST 2 (r1, r2)", "r1", "p");
  EXPECT_EQ(first.to, "FIRST 2 (\"r2\", \"p\")");
  EXPECT_EQ(first.count, 2);
  EXPECT_NE(first.note.find("'p' streams again"), std::string::npos) << first.note;
  // One replica: the promoted node was the only standby (carried as asynchronous).
  EXPECT_EQ(restore_synchronous("ANY 1 (r1)", "r1", "p").to, "ANY 1 (\"p\")");
  // A setting that named the old primary itself (the same list on every node) keeps its place.
  EXPECT_EQ(restore_synchronous("2 (P, r1, r2)", "r1", "p").to, "FIRST 2 (\"P\", \"r2\")");
  EXPECT_EQ(restore_synchronous("r1", "R1", "p").to, "FIRST 1 (\"p\")");
}

TEST(SynchronousRestore, NothingToRestoreForAStarAnAsynchronousOrUnreadableSetting) {
  for (const char* nothing : {"", "  ", "ANY 1 (*)", "*", "ANY 1 (r2, \"*\")", "ANY 1 (r2", "r-1"}) {
    const SynchronousCarry c = restore_synchronous(nothing, "r1", "p");
    EXPECT_EQ(c.to, "") << nothing;
    EXPECT_FALSE(c.note.empty()) << nothing;
  }
  EXPECT_FALSE(restore_synchronous("ANY 1 (r2", "r1", "p").parsed);
  EXPECT_FALSE(restore_synchronous(std::string(100'000, '('), "r1", "p").parsed);
}

}  // namespace
