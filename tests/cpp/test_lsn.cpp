// LSN: PostgreSQL's text form, ordering, byte distance.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "replikit/errors.hpp"
#include "replikit/lsn.hpp"
#include "replikit/random.hpp"

using replikit::InvalidArgument;
using replikit::Lsn;
using replikit::lsn_diff_bytes;

namespace {

__extension__ typedef __int128 Int128;  // reference arithmetic only

struct LsnCase {
  bool ok = false;
  std::string text;
  std::uint64_t value = 0;
  std::string canonical;
  int line = 0;
};

std::string unescape(std::string s) {
  if (s == "<empty>") return "";
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    if (s.compare(i, 4, "<sp>") == 0) {
      out.push_back(' ');
      i += 4;
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}

std::vector<LsnCase> load_cases() {
  std::ifstream in(std::string(REPLIKIT_TESTDATA_DIR) + "/routing_lsn_cases.txt");
  std::vector<LsnCase> cases;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string kind, text;
    fields >> kind >> text;
    LsnCase c;
    c.line = number;
    c.text = unescape(text);
    if (kind == "ok") {
      std::string hex;
      fields >> hex >> c.canonical;
      c.ok = true;
      c.value = std::stoull(hex, nullptr, 16);
    } else if (kind != "bad") {
      ADD_FAILURE() << "routing_lsn_cases.txt:" << number << ": unknown kind '" << kind << "'";
      continue;
    }
    cases.push_back(c);
  }
  return cases;
}

}  // namespace

TEST(Lsn, DataDrivenParseCases) {
  auto cases = load_cases();
  ASSERT_GE(cases.size(), 30u) << "testdata/routing_lsn_cases.txt missing or truncated";
  for (const auto& c : cases) {
    SCOPED_TRACE("routing_lsn_cases.txt:" + std::to_string(c.line) + " '" + c.text + "'");
    if (c.ok) {
      Lsn lsn = Lsn::parse(c.text);
      EXPECT_EQ(lsn.value, c.value);
      EXPECT_EQ(lsn.to_string(), c.canonical);
      EXPECT_EQ(Lsn::parse(lsn.to_string()), lsn);
    } else {
      try {
        Lsn::parse(c.text, "replay_lsn");
        ADD_FAILURE() << "parsed malformed text";
      } catch (const InvalidArgument& e) {
        EXPECT_EQ(e.argument(), "replay_lsn");
        EXPECT_NE(std::string(e.what()).find("replay_lsn"), std::string::npos);
      }
    }
  }
}

TEST(Lsn, EmbeddedNulIsRejected) {
  std::string text("1/0\0" "0", 5);
  EXPECT_THROW(Lsn::parse(text), InvalidArgument);
  std::string front("\0" "1/0", 4);
  EXPECT_THROW(Lsn::parse(front), InvalidArgument);
}

TEST(Lsn, DefaultArgumentNameIsLsn) {
  try {
    Lsn::parse("nope");
    FAIL() << "no exception";
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(e.argument(), "lsn");
  }
}

TEST(Lsn, FormatIsUpperCaseWithoutLeadingZeros) {
  EXPECT_EQ(Lsn(0x16B374D848ull).to_string(), "16/B374D848");
  EXPECT_EQ(Lsn(0).to_string(), "0/0");
  EXPECT_EQ(Lsn(0x100000000ull).to_string(), "1/0");
  EXPECT_EQ(Lsn(0xABCull).to_string(), "0/ABC");
  EXPECT_EQ(Lsn(~0ull).to_string(), "FFFFFFFF/FFFFFFFF");
}

TEST(Lsn, RandomRoundTripAgainstReference) {
  const std::uint64_t seed = 20240501;
  replikit::Xoshiro256 rng(seed);
  for (int k = 0; k < 2000; ++k) {
    // Mix full-range values with small ones so short halves are exercised.
    std::uint64_t v = rng.next();
    v >>= rng.below(64);
    SCOPED_TRACE("seed=" + std::to_string(seed) + " k=" + std::to_string(k) + " v=" + std::to_string(v));
    char expected[32];
    std::snprintf(expected, sizeof expected, "%X/%X", static_cast<unsigned>(v >> 32),
                  static_cast<unsigned>(v & 0xFFFFFFFFu));
    EXPECT_EQ(Lsn(v).to_string(), expected);
    EXPECT_EQ(Lsn::parse(expected).value, v);
    // Zero-padded lower-case spelling parses to the same value.
    char padded[32];
    std::snprintf(padded, sizeof padded, "%08x/%08x", static_cast<unsigned>(v >> 32),
                  static_cast<unsigned>(v & 0xFFFFFFFFu));
    EXPECT_EQ(Lsn::parse(padded).value, v);
  }
}

TEST(Lsn, ComparesAsUnsigned64BitPositions) {
  Lsn a = Lsn::parse("0/FFFFFFFF");
  Lsn b = Lsn::parse("1/0");
  EXPECT_LT(a, b);
  EXPECT_LE(a, b);
  EXPECT_GT(b, a);
  EXPECT_GE(b, a);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, Lsn(0xFFFFFFFFull));
  EXPECT_LT(Lsn::parse("7FFFFFFF/FFFFFFFF"), Lsn::parse("80000000/0"));  // no signed wrap
  EXPECT_EQ(replikit::lsn_max(a, b), b);
  EXPECT_EQ(replikit::lsn_max(b, a), b);
  EXPECT_FALSE(Lsn().valid());
  EXPECT_TRUE(Lsn(1).valid());
}

TEST(Lsn, DiffBytes) {
  EXPECT_EQ(lsn_diff_bytes(Lsn::parse("0/2000"), Lsn::parse("0/1000")), 0x1000);
  EXPECT_EQ(lsn_diff_bytes(Lsn::parse("0/1000"), Lsn::parse("0/2000")), -0x1000);
  EXPECT_EQ(lsn_diff_bytes(Lsn::parse("1/0"), Lsn::parse("0/FFFFFFFF")), 1);
  EXPECT_EQ(lsn_diff_bytes(Lsn::parse("16/B374D848"), Lsn::parse("16/B374D848")), 0);
  EXPECT_EQ(lsn_diff_bytes(Lsn::parse("17/0"), Lsn::parse("16/B374D848")), 0x100000000ll - 0xB374D848ll);
}

TEST(Lsn, DiffBytesSaturates) {
  constexpr auto max = std::numeric_limits<std::int64_t>::max();
  constexpr auto min = std::numeric_limits<std::int64_t>::min();
  EXPECT_EQ(lsn_diff_bytes(Lsn(~0ull), Lsn(0)), max);
  EXPECT_EQ(lsn_diff_bytes(Lsn(0), Lsn(~0ull)), min);
  EXPECT_EQ(lsn_diff_bytes(Lsn(static_cast<std::uint64_t>(max)), Lsn(0)), max);
  EXPECT_EQ(lsn_diff_bytes(Lsn(0), Lsn(static_cast<std::uint64_t>(max))), -max);
  EXPECT_EQ(lsn_diff_bytes(Lsn(static_cast<std::uint64_t>(max) + 1), Lsn(0)), max);
  EXPECT_EQ(lsn_diff_bytes(Lsn(0), Lsn(static_cast<std::uint64_t>(max) + 1)), min);
}

TEST(Lsn, RandomDiffAgainstReference) {
  const std::uint64_t seed = 77;
  replikit::Xoshiro256 rng(seed);
  for (int k = 0; k < 2000; ++k) {
    std::uint64_t a = rng.next() >> rng.below(64), b = rng.next() >> rng.below(64);
    SCOPED_TRACE("seed=" + std::to_string(seed) + " k=" + std::to_string(k));
    // Reference in 128-bit arithmetic, clamped.
    Int128 d = static_cast<Int128>(a) - static_cast<Int128>(b);
    Int128 lo = std::numeric_limits<std::int64_t>::min(), hi = std::numeric_limits<std::int64_t>::max();
    std::int64_t expected = static_cast<std::int64_t>(d < lo ? lo : d > hi ? hi : d);
    EXPECT_EQ(lsn_diff_bytes(Lsn(a), Lsn(b)), expected);
  }
}
