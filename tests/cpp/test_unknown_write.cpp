// A write whose commit LSN is unknown (the primary died right after the commit, or the LSN query
// failed): LagTracker::primary_lsn_since, resolve_untracked_write and router rule 3. Exact values
// on hand-made histories, then random histories where the true commit LSN is known to the test:
// a read-your-writes or causal read never goes to a replica that has not replayed it.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "replikit/errors.hpp"
#include "replikit/lag.hpp"
#include "replikit/random.hpp"
#include "replikit/router.hpp"
#include "replikit/session.hpp"

#include "testing.hpp"

using namespace replikit;
using replikit::testing::expect_invalid;
using replikit::testing::node;
using replikit::testing::replay_hint;
using replikit::testing::run_seeds;

namespace {

constexpr std::int64_t kMs = 1000000;
// The wall clock reads the steady clock plus this (any offset: they are unrelated clocks).
constexpr std::int64_t kWallOffset = 1'700'000'000'000 * kMs;

std::shared_ptr<Topology> three_nodes() {
  return std::make_shared<Topology>(node("p"), std::vector<NodeSpec>{node("r1"), node("r2")});
}
constexpr int kP = 0, kR1 = 1, kR2 = 2;

Session unknown_write_at(std::int64_t wall_ns) {
  Session s;
  s.record_write(Lsn(), wall_ns);
  return s;
}

}  // namespace

TEST(UnknownWrite, PrimaryLsnSinceIsTheFirstSampleAtOrAfter) {
  auto t = three_nodes();
  LagTracker lag(t);
  EXPECT_EQ(lag.primary_lsn_since(0), Lsn());  // no sample yet
  lag.primary_sample(10 * kMs, Lsn(0x100));
  lag.primary_sample(20 * kMs, Lsn(0x200));
  lag.primary_sample(30 * kMs, Lsn(0x200));  // an idle primary: one entry, last sample at 30 ms
  lag.primary_sample(40 * kMs, Lsn(0x300));
  EXPECT_EQ(lag.primary_lsn_since(0), Lsn(0x100));
  EXPECT_EQ(lag.primary_lsn_since(10 * kMs), Lsn(0x100));
  EXPECT_EQ(lag.primary_lsn_since(10 * kMs + 1), Lsn(0x200));
  EXPECT_EQ(lag.primary_lsn_since(25 * kMs), Lsn(0x200));  // sampled at 0/200 again at 30 ms
  EXPECT_EQ(lag.primary_lsn_since(30 * kMs), Lsn(0x200));
  EXPECT_EQ(lag.primary_lsn_since(30 * kMs + 1), Lsn(0x300));
  EXPECT_EQ(lag.primary_lsn_since(40 * kMs), Lsn(0x300));
  EXPECT_EQ(lag.primary_lsn_since(40 * kMs + 1), Lsn());  // nothing sampled since
  lag.reset();
  EXPECT_EQ(lag.primary_lsn_since(0), Lsn());
}

TEST(UnknownWrite, EvictedHistoryOnlyMakesTheBoundLarger) {
  auto t = three_nodes();
  LagConfig c;
  c.history_capacity = 2;
  LagTracker lag(t, c);
  for (int k = 1; k <= 5; ++k) lag.primary_sample(k * kMs, Lsn(static_cast<std::uint64_t>(k) * 0x100));
  EXPECT_EQ(lag.primary_lsn_since(0), Lsn(0x400));  // 0/100..0/300 were evicted: the oldest kept
}

TEST(UnknownWrite, ResolvesWithTheFirstSampleAMarginAfterTheWrite) {
  auto t = three_nodes();
  LagTracker lag(t);
  // The write was recorded at steady 100 ms (wall 100 ms + offset).
  Session s = unknown_write_at(kWallOffset + 100 * kMs);
  lag.primary_sample(90 * kMs, Lsn(0x100));
  lag.primary_sample(150 * kMs, Lsn(0x200));
  // No sample 200 ms after the write yet (now is 305 ms): unresolved, the session unchanged.
  EXPECT_FALSE(resolve_untracked_write(s, lag, kWallOffset + 305 * kMs, 305 * kMs, 200.0));
  EXPECT_NE(s.untracked_write_ns, kNever);
  EXPECT_FALSE(s.write_lsn.valid());
  // With margin 200 ms, the sample at 310 ms is the first one that counts.
  lag.primary_sample(310 * kMs, Lsn(0x300));
  Session a = s;
  EXPECT_TRUE(resolve_untracked_write(a, lag, kWallOffset + 320 * kMs, 320 * kMs, 200.0));
  EXPECT_EQ(a.untracked_write_ns, kNever);
  EXPECT_EQ(a.write_lsn, Lsn(0x300));
  // With margin 0, the sample at 150 ms (the one at 90 ms was sent before the write).
  Session b = s;
  EXPECT_TRUE(resolve_untracked_write(b, lag, kWallOffset + 320 * kMs, 320 * kMs, 0.0));
  EXPECT_EQ(b.write_lsn, Lsn(0x200));
  // A larger known write LSN stays.
  Session c = s;
  c.write_lsn = Lsn(0x999);
  EXPECT_TRUE(resolve_untracked_write(c, lag, kWallOffset + 320 * kMs, 320 * kMs, 0.0));
  EXPECT_EQ(c.write_lsn, Lsn(0x999));
  // Nothing to resolve: true, nothing changes.
  Session d;
  EXPECT_TRUE(resolve_untracked_write(d, lag, kWallOffset, 0, 0.0));
  EXPECT_EQ(d, Session());
}

TEST(UnknownWrite, AWriteTimeAheadOfTheWallClockCountsAsNow) {
  auto t = three_nodes();
  LagTracker lag(t);
  lag.primary_sample(100 * kMs, Lsn(0x100));
  lag.primary_sample(200 * kMs, Lsn(0x200));
  // Another host's clock an hour ahead: the write has happened, so at most now (150 ms).
  Session s = unknown_write_at(kWallOffset + 150 * kMs + 3600'000 * kMs);
  EXPECT_TRUE(resolve_untracked_write(s, lag, kWallOffset + 150 * kMs, 150 * kMs, 0.0));
  EXPECT_EQ(s.write_lsn, Lsn(0x200));
}

TEST(UnknownWrite, TheTokenCarriesTheWriteAndResolutionMakesItAnLsn) {
  auto t = three_nodes();
  LagTracker lag(t);
  Session s = unknown_write_at(kWallOffset + 100 * kMs + 1);  // the token rounds up to 101 ms
  Session carried = decode_token(encode_token(s));
  lag.primary_sample(100 * kMs + 500'000, Lsn(0x100));
  lag.primary_sample(101 * kMs, Lsn(0x200));
  EXPECT_TRUE(resolve_untracked_write(carried, lag, kWallOffset + 102 * kMs, 102 * kMs, 0.0));
  EXPECT_EQ(carried.write_lsn, Lsn(0x200));  // rounding up only asks for a later sample
  // Old tokens (no write time, or one) still parse, and a resolved session's token is the
  // plain LSN form.
  EXPECT_EQ(decode_token("1.16b374d848.0.x").write_lsn, Lsn(0x16B374D848ull));
  EXPECT_EQ(encode_token(carried), "1.200.0.x");
}

TEST(UnknownWrite, BadInputNamesTheArgument) {
  auto t = three_nodes();
  LagTracker lag(t);
  Session s = unknown_write_at(5);
  expect_invalid("wall_now_ns", [&] { resolve_untracked_write(s, lag, -1, 0, 0.0); });
  expect_invalid("now_ns", [&] { resolve_untracked_write(s, lag, 0, -1, 0.0); });
  expect_invalid("margin_ms", [&] { resolve_untracked_write(s, lag, 0, 0, -1.0); });
  expect_invalid("margin_ms", [&] { resolve_untracked_write(s, lag, 0, 0, std::numeric_limits<double>::quiet_NaN()); });
  expect_invalid("margin_ms", [&] { resolve_untracked_write(s, lag, 0, 0, 1e11); });
  // A write time that is not a time (set directly) clamps into [0, now]: no overflow.
  s.untracked_write_ns = std::numeric_limits<std::int64_t>::min() + 1;
  EXPECT_FALSE(resolve_untracked_write(s, lag, std::numeric_limits<std::int64_t>::max(), 0, 0.0));
}

// Rule 3: no time makes a replica safe for a write of unknown LSN, only its resolution.
TEST(UnknownWrite, ReadsStayOffReplicasUntilResolved) {
  auto t = three_nodes();
  LagTracker lag(t);
  Router router(t);
  const std::int64_t write_ns = kWallOffset + 1000 * kMs;
  Session s = unknown_write_at(write_ns);
  lag.primary_sample(900 * kMs, Lsn(0x1000));
  lag.replica_sample(kR1, 900 * kMs, Lsn(0x1000), Lsn(0x1000));
  lag.replica_sample(kR2, 900 * kMs, Lsn(0x1000), Lsn(0x1000));
  for (std::int64_t later : {std::int64_t{0}, 1999 * kMs, 2000 * kMs, 3600'000 * kMs}) {
    for (Consistency c : {Consistency::ReadYourWrites, Consistency::Causal}) {
      Decision d = router.route_read(s, c, write_ns + later);
      EXPECT_EQ(d.node, kP) << later;
      EXPECT_EQ(d.reason, Reason::RecentWrite);
    }
    // Other levels never asked for the session's writes.
    EXPECT_NE(router.route_read(s, Consistency::Monotonic, write_ns + later).node, kP);
  }
  t->set_up("p", false);
  Decision down = router.route_read(s, Consistency::ReadYourWrites, write_ns + 3600'000 * kMs);
  EXPECT_EQ(down.node, kNoNode);
  EXPECT_EQ(down.reason, Reason::RecentWrite);
  t->set_up("p", true);
  // The primary sampled after the write at 0/2000; r1 replays it, r2 does not.
  lag.primary_sample(1100 * kMs, Lsn(0x2000));
  lag.replica_sample(kR1, 1150 * kMs, Lsn(0x2000), Lsn(0x2000));
  lag.replica_sample(kR2, 1150 * kMs, Lsn(0x1800), Lsn(0x1800));
  ASSERT_TRUE(resolve_untracked_write(s, lag, kWallOffset + 1200 * kMs, 1200 * kMs, 0.0));
  for (int k = 0; k < 10; ++k) {
    Decision d = router.route_read(s, Consistency::ReadYourWrites, kWallOffset + 1200 * kMs);
    EXPECT_EQ(d.node, kR1);
    EXPECT_EQ(d.reason, Reason::ReplicaCaughtUp);
    EXPECT_EQ(d.required_lsn, Lsn(0x2000));
  }
}

// Random histories: the primary's LSN grows; the prober samples it (with outages, and clock
// offsets between the wall clock and the steady one); replicas replay behind it; one write
// commits at a known LSN and is recorded without it. Resolving at random times and routing:
// every read-your-writes or causal read that goes to a replica goes to one that replayed the
// commit, and a resolved write LSN covers the commit.
TEST(UnknownWriteProperty, NoReplicaLackingTheCommitServesTheSession) {
  const auto seeds = run_seeds(0x8B8B, 300);
  for (int run = 0; run < seeds.runs; ++run) {
    const std::uint64_t seed = seeds.seed(run);
    SCOPED_TRACE(replay_hint(seed, "UnknownWriteProperty.*"));
    SplitMix64 rng(seed);
    auto below = [&rng](std::uint64_t n) { return rng.next() % n; };
    auto t = three_nodes();
    LagTracker lag(t);
    Router router(t);
    const double margin_ms = static_cast<double>(below(400));
    std::uint64_t primary = 0x1000;
    Lsn replay[3];
    int paused_until[3] = {0, 0, 0};
    std::int64_t now = 0;
    bool wrote = false;
    Lsn commit;
    Session s;
    for (int step = 0; step < 400; ++step) {
      now += static_cast<std::int64_t>(1 + below(30)) * kMs;
      primary += below(3) * 0x80;
      const bool outage = below(5) == 0;  // the prober does not reach the primary this step
      if (!outage && below(2) == 0) lag.primary_sample(now, Lsn(primary));
      for (int r : {kR1, kR2}) {
        // Replay paused for a while now and then (or cut off from a primary that died).
        if (below(40) == 0) paused_until[r] = step + static_cast<int>(below(300));
        if (step >= paused_until[r] && below(2) == 0) {
          replay[r] = Lsn(std::max<std::uint64_t>(replay[r].value, primary - below(4) * 0x100));
        }
        lag.replica_sample(r, now, replay[r], replay[r]);
      }
      if (!wrote && step == 50) {
        // Committed at the primary's current LSN; the session records it (a little later)
        // without it, possibly through a token.
        primary += 0x40;
        commit = Lsn(primary);
        now += static_cast<std::int64_t>(1 + below(3)) * kMs;  // acknowledged, then recorded
        s.record_write(Lsn(), now + kWallOffset);
        if (below(2) == 0) s = decode_token(encode_token(s));
        wrote = true;
      }
      if (!wrote) continue;
      if (below(3) == 0) resolve_untracked_write(s, lag, now + kWallOffset, now, margin_ms);
      if (s.untracked_write_ns == kNever) {
        ASSERT_GE(s.write_lsn, commit);
      }
      for (Consistency c : {Consistency::ReadYourWrites, Consistency::Causal}) {
        const Decision d = router.route_read(s, c, now + kWallOffset);
        if (d.node == kR1 || d.node == kR2) {
          ASSERT_GE(t->replay_lsn(d.node), commit.value) << "step " << step;
        }
        if (s.untracked_write_ns != kNever) {
          ASSERT_TRUE(d.node == kP || d.node == kNoNode);
        }
      }
    }
  }
}
