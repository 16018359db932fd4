// Timelines across failovers: TimelineHistory, Session::reconcile, lost writes, version 2 tokens.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "replikit/errors.hpp"
#include "replikit/random.hpp"
#include "replikit/session.hpp"
#include "replikit/signer.hpp"
#include "replikit/timeline.hpp"
#include "testing.hpp"

using namespace replikit;
using replikit::testing::expect_invalid;

namespace {

constexpr std::int64_t kNow = 1700000000000000000;

// Timeline 1 ended at 0/3000060; timeline 2 at 0/5000000; now on 3.
TimelineHistory three() { return TimelineHistory(3, {{1, Lsn(0x3000060)}, {2, Lsn(0x5000000)}}); }

TEST(Timeline, ParsesPostgresHistoryFiles) {
  const std::string text =
      "1\t0/3000060\tno recovery target specified\n"
      "\n"
      "# a comment\n"
      "2\t0/5000000\tno recovery target specified\n";
  EXPECT_EQ(TimelineHistory::parse(text, 3), three());
  EXPECT_EQ(TimelineHistory::parse("", 1), TimelineHistory());
  expect_invalid("text", [] { TimelineHistory::parse("x\t0/1\n", 2); });
  expect_invalid("text", [] { TimelineHistory::parse("1\n", 2); });
  expect_invalid("text", [] { TimelineHistory::parse("1\t0/zz\n", 2); });
  expect_invalid("text", [] { TimelineHistory::parse("2\t0/1\n1\t0/2\n", 3); });  // not ascending
  expect_invalid("text", [] { TimelineHistory::parse("3\t0/1\n", 3); });          // not an ancestor
  expect_invalid("current", [] { TimelineHistory::parse("", 0); });
  expect_invalid("switches", [] { TimelineHistory(3, {{1, Lsn(5)}, {2, Lsn(4)}}); });
}

TEST(Timeline, WhatSurvives) {
  const TimelineHistory h = three();
  EXPECT_TRUE(h.survives(1, Lsn(0x3000060)));   // at the switch point
  EXPECT_FALSE(h.survives(1, Lsn(0x3000061)));  // above it
  EXPECT_TRUE(h.survives(2, Lsn(0x4000000)));
  EXPECT_TRUE(h.survives(3, Lsn(~0ull)));       // the current timeline
  EXPECT_TRUE(h.survives(0, Lsn(~0ull)));       // unknown: taken as current
  EXPECT_TRUE(h.survives(4, Lsn(1)));           // newer than the history knows
  const TimelineHistory sibling(3, {{1, Lsn(0x3000060)}});  // 2 is not on 3's path
  EXPECT_FALSE(sibling.survives(2, Lsn(1)));
  EXPECT_EQ(h.end_of(2), std::optional<Lsn>(Lsn(0x5000000)));
  EXPECT_EQ(h.end_of(3), std::nullopt);
}

TEST(Timeline, ReconcileSplitsValidAndLostWrites) {
  Session s;
  s.reconcile(TimelineHistory());  // a new session takes the current timeline
  EXPECT_EQ(s.timeline, 1u);
  s.record_write(Lsn(0x3000000), kNow);
  s.record_write(Lsn(0x3000060), kNow);
  s.record_write(Lsn(0x3000100), kNow);
  s.record_write(Lsn(0x3000200), kNow);
  s.observe(Lsn(0x3000300));
  const TimelineHistory h(2, {{1, Lsn(0x3000060)}});
  const auto lost = s.reconcile(h);
  ASSERT_EQ(lost.size(), 2u);
  EXPECT_EQ(lost[0].lsn, Lsn(0x3000100));
  EXPECT_EQ(lost[1].lsn, Lsn(0x3000200));
  EXPECT_EQ(lost[1].timeline, 1u);
  EXPECT_EQ(lost[1].switch_lsn, Lsn(0x3000060));
  EXPECT_EQ(s.timeline, 2u);
  // Requires only what survived: never pinned to the primary waiting for lost WAL.
  EXPECT_EQ(s.write_lsn, Lsn(0x3000060));
  EXPECT_EQ(s.read_lsn, Lsn(0x3000060));
  EXPECT_EQ(s.lost_writes().size(), 2u);
  EXPECT_TRUE(s.reconcile(h).empty());  // idempotent
  try {
    s.check_lost_writes();
    ADD_FAILURE() << "expected LostWrites";
  } catch (const LostWrites& e) {
    EXPECT_EQ(e.lsns(), (std::vector<Lsn>{Lsn(0x3000100), Lsn(0x3000200)}));
    EXPECT_EQ(e.timeline(), 1u);
    EXPECT_EQ(e.switch_lsn(), Lsn(0x3000060));
    EXPECT_NE(std::string(e.what()).find("0/3000200"), std::string::npos) << e.what();
  }
  s.check_lost_writes();  // raised once
  EXPECT_EQ(s.lost_writes().size(), 2u);  // still listed
}

TEST(Timeline, WritesAtOrBelowTheSwitchSurviveSeveralFailovers) {
  Session s;
  s.timeline = 1;
  s.record_write(Lsn(0x1000000), kNow);
  EXPECT_TRUE(s.reconcile(three()).empty());
  EXPECT_EQ(s.write_lsn, Lsn(0x1000000));
  EXPECT_EQ(s.timeline, 3u);
  s.check_lost_writes();  // nothing to raise
}

// A session that came in a token has no write log: its highest write is still judged.
TEST(Timeline, TokenSessionsKnowTheirHighestWrite) {
  Session s;
  s.timeline = 1;
  s.write_lsn = Lsn(0x3000100);
  const Session carried = decode_token(encode_token(s));
  EXPECT_EQ(carried.timeline, 1u);
  Session t = carried;
  const auto lost = t.reconcile(TimelineHistory(2, {{1, Lsn(0x3000060)}}));
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].lsn, Lsn(0x3000100));
  EXPECT_THROW(t.check_lost_writes(), LostWrites);
}

TEST(Timeline, OldTokensStillParseAsTimelineUnknown) {
  const Session old = decode_token("1.3000100.0.x");
  EXPECT_EQ(old.timeline, 0u);
  Session s = old;
  EXPECT_TRUE(s.reconcile(three()).empty());  // taken as the current timeline
  EXPECT_EQ(s.timeline, 3u);
  EXPECT_EQ(s.write_lsn, Lsn(0x3000100));
  EXPECT_EQ(encode_token(Session{}), "1.0.0.x");  // no timeline: still version 1
  Session v2;
  v2.timeline = 0x1f;
  v2.write_lsn = Lsn(0x10);
  EXPECT_EQ(encode_token(v2), "2.1f.10.0.x");
  EXPECT_EQ(decode_token("2.1f.10.0.x"), v2);
  EXPECT_THROW(decode_token("2.0.10.0.x"), TokenError);        // timeline 0 is written as version 1
  EXPECT_THROW(decode_token("2.100000000.10.0.x"), TokenError);  // beyond 32 bits
  EXPECT_THROW(decode_token("2.10.0.x"), TokenError);          // a field short
  EXPECT_THROW(decode_token("3.1.10.0.x"), TokenError);
}

// A stand-in MAC (not cryptographic): 16 bytes that depend on every byte of the payload.
class MixSigner final : public TokenSigner {
 public:
  std::string mac(std::string_view payload) const override {
    std::string out(16, '\0');
    std::uint64_t h = 1469598103934665603ull;
    for (std::size_t i = 0; i < 16 + payload.size(); ++i) {
      if (i < payload.size()) h = (h ^ static_cast<unsigned char>(payload[i])) * 1099511628211ull;
      else out[i - payload.size()] = static_cast<char>(SplitMix64(h + i).next());
    }
    return out;
  }
};

TEST(Timeline, VersionTwoTokensRoundTripSignedAndUnsigned) {
  const auto seeds = replikit::testing::run_seeds(0x7151, 1);
  const std::uint64_t seed = seeds.seed(0);
  SCOPED_TRACE(replikit::testing::replay_hint(seed, "Timeline.VersionTwo*"));
  Xoshiro256 rng(seed);
  const MixSigner signer;
  for (int k = 0; k < 2000; ++k) {
    Session s;
    s.timeline = k % 7 == 0 ? 0 : (k % 11 == 0 ? 0xFFFFFFFFu : static_cast<std::uint32_t>(1 + rng.below(1000)));
    s.write_lsn = Lsn(rng.next() >> rng.below(64));
    s.read_lsn = Lsn(rng.next() >> rng.below(64));
    s.untracked_write_ns = rng.below(2) ? kNever : static_cast<std::int64_t>(rng.next() >> 24) * 1000000;
    for (const TokenSigner* with : {static_cast<const TokenSigner*>(nullptr), static_cast<const TokenSigner*>(&signer)}) {
      const std::string token = encode_token(s, with);
      ASSERT_LE(token.size(), kMaxTokenLength) << token;
      ASSERT_EQ(token[0], s.timeline == 0 ? '1' : '2') << token;
      ASSERT_EQ(decode_token(token, with), s) << token;
    }
  }
  // The timeline is signed: changing it breaks the signature.
  Session s;
  s.timeline = 2;
  std::string token = encode_token(s, &signer);
  token[2] = '3';
  EXPECT_THROW(decode_token(token, &signer), TokenError);
}

TEST(Timeline, MergeKeepsTheKnownNewerTimeline) {
  Session a, b;
  b.timeline = 2;
  a.merge(b);
  EXPECT_EQ(a.timeline, 2u);
  Session c;
  c.timeline = 1;
  a.merge(c);
  EXPECT_EQ(a.timeline, 2u);
}

TEST(Timeline, TheLostListIsBounded) {
  Session s;
  s.timeline = 1;
  for (int k = 0; k < 5; ++k) {
    for (int i = 1; i <= 20; ++i) s.record_write(Lsn(static_cast<std::uint64_t>(0x1000000 * (k + 1) + i)), kNow);
    std::vector<TimelineSwitch> switches;
    for (std::uint32_t t = 1; t <= static_cast<std::uint32_t>(k + 1); ++t) switches.push_back({t, Lsn(0x1000000 * (k + 1))});
    s.reconcile(TimelineHistory(static_cast<std::uint32_t>(k + 2), switches));
  }
  EXPECT_EQ(s.lost_writes().size(), static_cast<std::size_t>(kMaxTrackedWrites));
  EXPECT_EQ(s.writes.lost_total, 5u * kMaxTrackedWrites);  // the log keeps the last 8 writes of each round
}

}  // namespace
