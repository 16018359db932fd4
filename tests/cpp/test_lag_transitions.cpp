// LagTracker transitions: LAGGING and RECOVERED with hysteresis on time and bytes, the
// transition listener and events before routing shows them, reset and forget_replica.
#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "replikit/errors.hpp"
#include "replikit/lag.hpp"

#include "lag_fixture.hpp"

using namespace replikit;
using namespace replikit::testing;

TEST_F(Lag, ListenerHearsEachTransitionBeforeRoutingShowsIt) {
  LagTracker& lag = track(/*max_lag_ms=*/10, /*recover_lag_ms=*/5);
  std::vector<LagEvent> heard;
  std::vector<LagState> routing_then;  // the replica's state in the topology as each was heard
  lag.set_transition_listener([&](const LagEvent& e) {
    heard.push_back(e);
    routing_then.push_back(t->info(e.node).lag_state);
  });
  primary_every(10, 200);
  const std::int64_t now = 200 * kMs;
  sampled(kA, now, lsn_at_ms(100));  // 100 ms behind: lagging
  EXPECT_EQ(t->info(kA).lag_state, LagState::Lagging);
  sampled(kA, now, lsn_at_ms(200));  // caught up: recovered
  EXPECT_EQ(t->info(kA).lag_state, LagState::Ok);
  sampled(kB, now, lsn_at_ms(198));  // 2 ms behind: ok; then a and b silent while the primary
  lag.primary_sample(1300 * kMs, lsn_at_ms(1300));  // moves on: this primary sample turns both lagging
  EXPECT_EQ(t->info(kA).lag_state, LagState::Lagging);
  EXPECT_EQ(t->info(kB).lag_state, LagState::Lagging);
  // Each transition was heard once, in order, while routing still showed the state before it.
  const std::vector<LagEvent> recorded = lag.events();
  ASSERT_EQ(heard.size(), 4u);
  ASSERT_EQ(recorded.size(), 4u);
  for (std::size_t i = 0; i < heard.size(); ++i) {
    EXPECT_EQ(heard[i].sequence, recorded[i].sequence);
    EXPECT_EQ(heard[i].node, recorded[i].node);
    EXPECT_EQ(heard[i].kind, recorded[i].kind);
    const LagState before = heard[i].kind == LagEventKind::BecameLagging ? LagState::Ok : LagState::Lagging;
    EXPECT_EQ(routing_then[i], before) << "transition " << i;
  }
  lag.set_transition_listener({});  // removed: no longer called
  sampled(kB, 1300 * kMs, lsn_at_ms(1300));
  EXPECT_EQ(lag.events().size(), 5u);
  EXPECT_EQ(heard.size(), 4u);
}

TEST_F(Lag, ResetPublishesRecoveredForEachLaggingReplicaBeforeRoutingTakesItBack) {
  LagTracker& lag = track(/*max_lag_ms=*/10, /*recover_lag_ms=*/5);
  std::vector<LagEvent> heard;
  std::vector<LagState> routing_then;
  lag.set_transition_listener([&](const LagEvent& e) {
    heard.push_back(e);
    routing_then.push_back(t->info(e.node).lag_state);
  });
  primary_every(10, 200);
  sampled(kA, 200 * kMs, lsn_at_ms(100));  // 100 ms behind: lagging
  sampled(kB, 210 * kMs, lsn_at_ms(200));  // caught up: ok, no event
  ASSERT_EQ(heard.size(), 1u);
  lag.reset();
  // Routing takes a back; its alert must resolve: one Recovered event, heard before routing
  // showed it, stamped with the tracker's last known instant (b's sample), nothing for b.
  EXPECT_EQ(t->info(kA).lag_state, LagState::Ok);
  ASSERT_EQ(heard.size(), 2u);
  EXPECT_EQ(heard[1].node, kA);
  EXPECT_EQ(heard[1].kind, LagEventKind::Recovered);
  EXPECT_EQ(heard[1].time_ns, 210 * kMs);
  EXPECT_EQ(heard[1].lag_ns, 0);
  EXPECT_EQ(routing_then[1], LagState::Lagging);
  EXPECT_EQ(lag.events().size(), 2u);
  lag.reset();  // nothing lagging any more: no event
  EXPECT_EQ(lag.events().size(), 2u);
}

TEST_F(Lag, ForgetReplicaBeforeAPromotionResolvesItsLagWithTheHistoryKept) {
  LagTracker& lag = track(/*max_lag_ms=*/10, /*recover_lag_ms=*/5);
  std::vector<LagState> routing_then;
  lag.set_transition_listener([&](const LagEvent& e) { routing_then.push_back(t->info(e.node).lag_state); });
  primary_every(10, 200);
  sampled(kA, 200 * kMs, lsn_at_ms(100));  // 100 ms behind: lagging
  const std::size_t history = lag.history_size();
  lag.forget_replica(kA);
  // The Recovered event comes before routing changes (the promotion clears the lag flag).
  ASSERT_EQ(lag.events().size(), 2u);
  EXPECT_EQ(lag.events()[1].node, kA);
  EXPECT_EQ(lag.events()[1].kind, LagEventKind::Recovered);
  EXPECT_EQ(lag.events()[1].time_ns, 200 * kMs);
  EXPECT_EQ(routing_then, (std::vector<LagState>{LagState::Ok, LagState::Lagging}));
  t->promote("a");
  EXPECT_EQ(t->info(kA).lag_state, LagState::Ok);
  EXPECT_FALSE(lag.replica(kA).known);
  EXPECT_EQ(lag.history_size(), history) << "the new primary continues the old one's WAL";
  lag.forget_replica(kB);  // not lagging: no event
  EXPECT_EQ(lag.events().size(), 2u);
  expect_invalid<InvalidArgument>([&] { lag.forget_replica(99); }, "node");
}

TEST_F(Lag, AThrowingListenerLosesOnlyItsCopyNotTheRoutingUpdate) {
  LagTracker& lag = track(/*max_lag_ms=*/10, /*recover_lag_ms=*/5);
  int calls = 0;
  lag.set_transition_listener([&](const LagEvent&) {
    ++calls;
    throw std::runtime_error("listener failed");
  });
  primary_every(10, 200);
  EXPECT_NO_THROW(sampled(kA, 200 * kMs, lsn_at_ms(100)));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(t->info(kA).lag_state, LagState::Lagging) << "routing still updated";
  EXPECT_EQ(lag.events().size(), 1u);
}

TEST_F(Lag, HysteresisOnTimeLag) {
  LagTracker& lag = track(/*max_lag_ms=*/100, /*recover_lag_ms=*/50);
  std::int64_t primary_ms = 0;
  // Advances the primary to `now_ms` (a sample every 10 ms), then samples replica a as having
  // replayed what the primary had just before `replayed_ms`: its lag is exactly now - that.
  auto step = [&](std::int64_t now_ms, std::int64_t replayed_ms) {
    for (; primary_ms <= now_ms; primary_ms += 10) lag.primary_sample(primary_ms * kMs, lsn_at_ms(primary_ms));
    return sampled(kA, now_ms * kMs, Lsn(lsn_at_ms(replayed_ms).value - 1));
  };
  struct Step {
    std::int64_t now_ms, replayed_ms;
    LagState expected;
  };
  const Step steps[] = {
      {200, 150, LagState::Ok},       // 50 ms
      {300, 200, LagState::Ok},       // exactly 100 ms: not above the maximum
      {310, 200, LagState::Lagging},  // 110 ms
      {400, 320, LagState::Lagging},  // 80 ms: below max, not below recover
      {500, 450, LagState::Lagging},  // exactly 50 ms: not below recover
      {600, 560, LagState::Ok},       // 40 ms: recovered
      {700, 620, LagState::Ok},       // 80 ms: between the thresholds, stays OK
  };
  for (const Step& s : steps) {
    SCOPED_TRACE("now_ms=" + std::to_string(s.now_ms));
    ReplicaLag r = step(s.now_ms, s.replayed_ms);
    EXPECT_EQ(r.lag_ns, (s.now_ms - s.replayed_ms) * kMs);
    EXPECT_EQ(r.state, s.expected);
    EXPECT_EQ(t->info(kA).lag_state, s.expected);
    EXPECT_EQ((t->flags(kA) & detail::kLaggingBit) != 0, s.expected == LagState::Lagging);
  }
  auto events = lag.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].sequence, 1u);
  EXPECT_EQ(events[0].node, kA);
  EXPECT_EQ(events[0].kind, LagEventKind::BecameLagging);
  EXPECT_EQ(events[0].time_ns, 310 * kMs);
  EXPECT_EQ(events[0].lag_ns, 110 * kMs);
  EXPECT_EQ(events[0].lag_bytes, 110 * 1000 + 1);
  EXPECT_EQ(events[1].sequence, 2u);
  EXPECT_EQ(events[1].kind, LagEventKind::Recovered);
  EXPECT_EQ(events[1].time_ns, 600 * kMs);
  EXPECT_EQ(events[1].lag_ns, 40 * kMs);
  EXPECT_EQ(lag.events_dropped(), 0u);
  EXPECT_STREQ(to_string(events[0].kind), "became_lagging");
  EXPECT_STREQ(to_string(events[1].kind), "recovered");
}

TEST_F(Lag, HysteresisOnByteLag) {
  LagTracker& lag = track(/*max_lag_ms=*/1e9, /*recover_lag_ms=*/1e9, [](LagConfig& c) {
    c.max_lag_bytes = 1000;
    c.recover_lag_bytes = 500;
  });
  lag.primary_sample(0, Lsn(10000));
  auto at = [&](std::uint64_t replay) { return sampled(kA, 0, Lsn(replay)).state; };
  EXPECT_EQ(at(9000), LagState::Ok);        // exactly 1000 bytes: not above
  EXPECT_EQ(at(8999), LagState::Lagging);   // 1001
  EXPECT_EQ(at(9400), LagState::Lagging);   // 600: not below 500
  EXPECT_EQ(at(9500), LagState::Lagging);   // exactly 500
  EXPECT_EQ(at(9501), LagState::Ok);        // 499
  EXPECT_EQ(at(9100), LagState::Ok);        // 900: between, stays OK
  // The primary moving on raises byte lag without a replica sample.
  lag.primary_sample(1, Lsn(20000));
  EXPECT_EQ(lag.replica(kA).lag_bytes, 20000 - 9100);
  EXPECT_EQ(lag.replica(kA).state, LagState::Lagging);
  EXPECT_EQ(lag.events().size(), 3u);
}

TEST_F(Lag, ZeroRecoverThresholdsRecoverWhenFullyCaughtUp) {
  // recover_ms = 0 (and recover_bytes = 0) mean "OK again only with no lag at all"; a replica
  // that has replayed everything must then recover rather than stay LAGGING for ever.
  LagTracker& lag = track(/*max_lag_ms=*/0, /*recover_lag_ms=*/0, [](LagConfig& c) {
    c.max_lag_bytes = 1;
    c.recover_lag_bytes = 0;
  });
  lag.primary_sample(0, Lsn(0x1000));
  lag.primary_sample(10 * kMs, Lsn(0x2000));
  EXPECT_EQ(sampled(kA, 10 * kMs, Lsn(0x1000)).state, LagState::Lagging);
  ReplicaLag r = sampled(kA, 11 * kMs, Lsn(0x2000));
  EXPECT_EQ(r.lag_ns, 0);
  EXPECT_EQ(r.lag_bytes, 0);
  EXPECT_EQ(r.state, LagState::Ok);
}


TEST_F(Lag, ResetForgetsHistoryAndLag) {
  LagTracker& lag = track(/*max_lag_ms=*/10, /*recover_lag_ms=*/5);
  lag.primary_sample(0, Lsn(0x1000));
  lag.primary_sample(100 * kMs, Lsn(0x9000));
  ASSERT_EQ(sampled(kA, 100 * kMs, Lsn(0x1000)).state, LagState::Lagging);
  ASSERT_EQ(t->info(kA).lag_state, LagState::Lagging);

  t->promote("b");
  lag.reset();
  EXPECT_EQ(lag.history_size(), 0u);
  EXPECT_EQ(lag.primary_lsn(), Lsn());
  EXPECT_EQ(lag.primary_time_past(Lsn(0x1000)), kNotYet);
  EXPECT_FALSE(lag.replica(kA).known);
  EXPECT_EQ(lag.replica(kA).state, LagState::Ok);
  EXPECT_FALSE(t->info(kA).lag_known);
  EXPECT_EQ(t->info(kA).lag_state, LagState::Ok);
  // Events are a log and survive reset; a was LAGGING, so routing taking it back is its recovery.
  ASSERT_EQ(lag.events().size(), 2u);
  EXPECT_EQ(lag.events()[1].node, kA);
  EXPECT_EQ(lag.events()[1].kind, LagEventKind::Recovered);

  // The new primary's timeline may restart below the old LSN, and time restarts too.
  EXPECT_NO_THROW(lag.primary_sample(0, Lsn(0x500)));
  EXPECT_EQ(t->info(kB).replay_lsn, Lsn(0x500)) << "published to the new primary";
  EXPECT_NO_THROW(lag.replica_sample(kA, 0, Lsn(0x500), Lsn(0x500)));
  EXPECT_EQ(lag.replica(kA).lag_ns, 0);
  // The new primary cannot be sampled as a replica.
  expect_invalid<InvalidArgument>([&] { lag.replica_sample(kB, 1, Lsn(0x500), Lsn(0x500)); }, "node");
}


TEST_F(Lag, RecoveryMarksDefaultToHalfTheThresholds) {
  LagTracker defaults(t);
  EXPECT_EQ(*defaults.config().recover_lag_ms, 500.0);
  EXPECT_EQ(*defaults.config().recover_lag_bytes, 0);
  LagTracker& half = track([](LagConfig& c) { c.max_lag_ms = 200; c.max_lag_bytes = 1000; });
  EXPECT_EQ(*half.config().recover_lag_ms, 100.0);
  EXPECT_EQ(*half.config().recover_lag_bytes, 500);
}

