// end_lsn_of_insert: PostgreSQL's insert position (next record's start) as the end of the WAL
// written so far, checked against a slow reference of xlog.c's two conversions of a byte
// position (XLogBytePosToRecPtr, XLogBytePosToEndRecPtr).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "replikit/lsn.hpp"
#include "replikit/wal_end.hpp"
#include "testing.hpp"

using replikit::end_lsn_of_insert;
using replikit::Lsn;
using replikit::testing::expect_invalid;

namespace {

constexpr std::uint64_t kShort = 24;  // SizeOfXLogShortPHD
constexpr std::uint64_t kLong = 40;   // SizeOfXLogLongPHD
constexpr std::uint64_t kMiB = 1ull << 20;

struct Layout {
  std::uint64_t block;
  std::uint64_t segment;
  std::uint64_t usable_page() const { return block - kShort; }
  std::uint64_t usable_segment() const { return segment / block * usable_page() - (kLong - kShort); }
};

// The reference: walks a byte position (WAL bytes, page headers left out) page by page to the
// page holding it. `end`: a position at a page's first usable byte is that page's boundary.
std::uint64_t reference(const Layout& l, std::uint64_t bytepos, bool end) {
  const std::uint64_t segs = bytepos / l.usable_segment();
  std::uint64_t left = bytepos % l.usable_segment();
  std::uint64_t page = 0;
  for (;;) {
    const std::uint64_t room = page == 0 ? l.block - kLong : l.usable_page();
    if (left < room) break;
    left -= room;
    ++page;
  }
  const std::uint64_t header = page == 0 ? kLong : kShort;
  const std::uint64_t page_start = segs * l.segment + page * l.block;
  return end && left == 0 ? page_start : page_start + header + left;
}

const std::vector<Layout> kLayouts = {
    {8192, 16 * kMiB}, {8192, kMiB}, {1024, kMiB}, {65536, 1024 * kMiB}, {16384, 64 * kMiB}};

}  // namespace

TEST(EndLsnOfInsert, PageAndSegmentBoundariesBecomeTheBoundary) {
  const auto at = [](const char* lsn) { return end_lsn_of_insert(Lsn::parse(lsn), 8192, 16 * kMiB).to_string(); };
  EXPECT_EQ(at("0/3002018"), "0/3002000");    // after a page's short header
  EXPECT_EQ(at("0/3000028"), "0/3000000");    // after a segment's long header
  EXPECT_EQ(at("16/B374E018"), "16/B374E000");
  EXPECT_EQ(at("1/28"), "1/0");               // a segment starting at a 4 GiB line
  // Not a boundary's insert form: unchanged.
  EXPECT_EQ(at("0/3002000"), "0/3002000");    // already a boundary
  EXPECT_EQ(at("0/3002020"), "0/3002020");    // a record's end just past the header
  EXPECT_EQ(at("0/3002010"), "0/3002010");
  EXPECT_EQ(at("0/3000018"), "0/3000018");    // inside a long header: no position at all
  EXPECT_EQ(at("0/3002028"), "0/3002028");    // +40 on a page that does not start a segment
  EXPECT_EQ(at("16/B374D848"), "16/B374D848");
  EXPECT_EQ(at("0/28"), "0/28");              // segment 0 holds no WAL: never made 0/0
  EXPECT_EQ(at("0/0"), "0/0");
  // The block and segment sizes decide what a boundary is.
  EXPECT_EQ(end_lsn_of_insert(Lsn::parse("0/3004018"), 16384, 16 * kMiB).to_string(), "0/3004000");
  EXPECT_EQ(end_lsn_of_insert(Lsn::parse("0/3004018"), 32768, 16 * kMiB).to_string(), "0/3004018");
  EXPECT_EQ(end_lsn_of_insert(Lsn::parse("0/3100028"), 8192, kMiB).to_string(), "0/3100000");
  EXPECT_EQ(end_lsn_of_insert(Lsn::parse("0/3100028"), 8192, 16 * kMiB).to_string(), "0/3100028");
}

TEST(EndLsnOfInsert, MatchesTheReferenceAndNeverMovesARecordEnd) {
  replikit::testing::printed_seed("EndLsnOfInsert", 2611);  // runs use SplitMix64(seed + k)
  replikit::testing::for_each_seed(2611, 4, "EndLsnOfInsert.*", [](int, std::uint64_t seed) {
    replikit::Xoshiro256 rng(seed);
    for (const Layout& l : kLayouts) {
      SCOPED_TRACE("block=" + std::to_string(l.block) + " segment=" + std::to_string(l.segment));
      int boundaries = 0;
      for (int k = 0; k < 3000; ++k) {
        // Every third position is a page's first usable byte (the case that matters).
        std::uint64_t bytepos = (rng.next() >> 24) / 8 * 8;
        if (k % 3 == 0) {
          const std::uint64_t segs = bytepos / l.usable_segment();
          const std::uint64_t page = rng.below(static_cast<std::uint32_t>(l.segment / l.block));
          bytepos = segs * l.usable_segment() + (page == 0 ? 0 : l.block - kLong + (page - 1) * l.usable_page());
        }
        if (bytepos < l.usable_segment()) bytepos += l.usable_segment();  // segment 0 holds no WAL
        const Lsn insert(reference(l, bytepos, false)), end(reference(l, bytepos, true));
        boundaries += insert != end;
        EXPECT_EQ(end_lsn_of_insert(insert, l.block, l.segment), end) << insert.to_string();
        EXPECT_EQ(end_lsn_of_insert(end, l.block, l.segment), end) << end.to_string();  // a real end stays
      }
      EXPECT_GE(boundaries, 900);
    }
  });
}

TEST(EndLsnOfInsert, LeavesEveryOtherOffsetAlone) {
  const Layout l{8192, 16 * kMiB};
  for (std::uint64_t page : std::vector<std::uint64_t>{1, 2, 2047, 2048, 4096}) {
    for (std::uint64_t offset = 0; offset < 128; ++offset) {
      const std::uint64_t v = page * l.block + offset;
      const bool moved = (v % l.segment == kLong) || (v % l.block == kShort && v % l.segment >= l.block);
      EXPECT_EQ(end_lsn_of_insert(Lsn(v), l.block, l.segment).value, moved ? v - offset : v) << v;
    }
  }
}

TEST(EndLsnOfInsert, RejectsLayoutsNoServerHas) {
  for (std::uint64_t block : std::vector<std::uint64_t>{0, 512, 1000, 3072, 131072}) {
    expect_invalid("wal_block_bytes", [&] { end_lsn_of_insert(Lsn(1), block, 16 * kMiB); });
  }
  for (std::uint64_t segment : std::vector<std::uint64_t>{0, 512 * 1024, 3 * kMiB, 2048 * kMiB, ~0ull}) {
    expect_invalid("wal_segment_bytes", [&] { end_lsn_of_insert(Lsn(1), 8192, segment); });
  }
}
