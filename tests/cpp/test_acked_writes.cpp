// Acknowledged writes and the loss rule: AckedWrites (bounded, oldest dropped first) and
// write_fate (the new primary's next xid at promotion, then its commit log).
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "replikit/acked_writes.hpp"
#include "replikit/errors.hpp"
#include "replikit/session.hpp"

namespace replikit {
namespace {

AckedWrite write(std::uint64_t xid) { return AckedWrite{xid, Lsn(xid * 100), 0, 1, 1}; }

TEST(AckedWrites, KeepsTheNewestUpToItsCapacityAndCountsTheDropped) {
  AckedWrites w(3);
  for (std::uint64_t x = 1; x <= 5; ++x) w.add(write(x));
  ASSERT_EQ(w.writes().size(), 3u);
  EXPECT_EQ(w.writes().front().xid, 3u);
  EXPECT_EQ(w.writes().back().xid, 5u);
  EXPECT_EQ(w.dropped(), 2u);
  w.forget({4});
  ASSERT_EQ(w.writes().size(), 2u);
  EXPECT_EQ(w.writes()[1].xid, 5u);
  w.clear();
  EXPECT_TRUE(w.writes().empty());
}

TEST(AckedWrites, RefusesACapacityOutOfRange) {
  try {
    AckedWrites w(0);
    FAIL() << "capacity 0 accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(e.argument(), "capacity");
  }
  EXPECT_THROW(AckedWrites(kMaxAckedWrites + 1), InvalidArgument);
}

TEST(AckedWrites, ASessionKeepsItsOwnAndMergeLeavesThemAlone) {
  Session a, b;
  a.acked_writes.add(write(7));
  b.acked_writes.add(write(8));
  a.merge(b);
  ASSERT_EQ(a.acked_writes.writes().size(), 1u);
  EXPECT_EQ(a.acked_writes.writes()[0].xid, 7u);
  EXPECT_EQ(a.acked_writes.capacity(), kDefaultMaxAckedWrites);
}

TEST(WriteFate, XidsAtOrBeyondTheNextXidAreLostWithoutAsking) {
  // The new primary never saw them and hands these numbers out again: whatever its commit log
  // says about them now belongs to its own transactions.
  EXPECT_EQ(write_fate(100, 100, std::string_view("committed")), WriteFate::Lost);
  EXPECT_EQ(write_fate(150, 100, std::nullopt), WriteFate::Lost);
}

TEST(WriteFate, BelowTheNextXidTheCommitLogDecides) {
  EXPECT_EQ(write_fate(99, 100, std::string_view("committed")), WriteFate::Survived);
  EXPECT_EQ(write_fate(99, 100, std::string_view("aborted")), WriteFate::Lost);  // replicated without its commit
  EXPECT_EQ(write_fate(99, 100, std::string_view("in progress")), WriteFate::Lost);
  EXPECT_EQ(write_fate(99, 100, std::nullopt), WriteFate::Unknown);  // older than the commit log keeps
}

TEST(WriteFate, AnUnknownXidHasAnUnknownFate) {
  EXPECT_EQ(write_fate(0, 100, std::string_view("committed")), WriteFate::Unknown);
}

}  // namespace
}  // namespace replikit
