// LagTracker: byte and time lag from the primary's LSN history, hysteresis, events, bounds.
// Exact values on hand-made histories, then random histories against a slow
// reference written here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "replikit/errors.hpp"
#include "replikit/lag.hpp"
#include "replikit/random.hpp"
#include "replikit/router.hpp"

#include "testing.hpp"

using namespace replikit;
using replikit::testing::expect_invalid;
using replikit::testing::node;
using replikit::testing::for_each_seed;

namespace {

constexpr std::int64_t kMs = 1000000;
constexpr std::int64_t kNotYet = std::numeric_limits<std::int64_t>::min();

std::shared_ptr<Topology> three_nodes() {
  return std::make_shared<Topology>(node("p"), std::vector<NodeSpec>{node("a"), node("b")});
}
constexpr int kA = 1, kB = 2;

// A primary that writes 1000 bytes per ms, starting at LSN 1000 at t = 0.
Lsn lsn_at_ms(std::int64_t ms) { return Lsn(static_cast<std::uint64_t>(1000 + ms * 1000)); }

ReadOptions max_staleness(double ms) {
  ReadOptions options;
  options.max_staleness_ms = ms;
  return options;
}

// Primary p and replicas a and b (`t`), the LagTracker under test over them (made by track()),
// and for the tests that route, a router over the same topology (made by route_to_a_only()).
class Lag : public ::testing::Test {
 protected:
  // Makes the tracker under test, with the default LagConfig changed by `edit`.
  template <typename Edit>
  LagTracker& track(Edit edit) {
    LagConfig config;
    edit(config);
    tracker_ = std::make_unique<LagTracker>(t, config);
    return *tracker_;
  }
  LagTracker& track() {
    return track([](LagConfig&) {});
  }
  // The same with the time lag thresholds `max_lag_ms` and `recover_lag_ms` set first.
  template <typename Edit>
  LagTracker& track(double max_lag_ms, double recover_lag_ms, Edit edit) {
    return track([&](LagConfig& c) {
      c.max_lag_ms = max_lag_ms;
      c.recover_lag_ms = recover_lag_ms;
      edit(c);
    });
  }
  LagTracker& track(double max_lag_ms, double recover_lag_ms) {
    return track(max_lag_ms, recover_lag_ms, [](LagConfig&) {});
  }

  // Samples the primary writing as lsn_at_ms does, every `step_ms` from 0 to `until_ms`.
  void primary_every(std::int64_t step_ms, std::int64_t until_ms) {
    for (std::int64_t ms = 0; ms <= until_ms; ms += step_ms) tracker_->primary_sample(ms * kMs, lsn_at_ms(ms));
  }

  // Samples replica `node` at `now_ns` as having received and replayed `lsn`; its lag then.
  ReplicaLag sampled(int node, std::int64_t now_ns, Lsn lsn) {
    tracker_->replica_sample(node, now_ns, lsn, lsn);
    return tracker_->replica(node);
  }

  // Takes replica b down, so that replica a is the only replica that can serve, and makes the router.
  void route_to_a_only() {
    t->set_up("b", false);
    router_ = std::make_unique<Router>(t);
  }

  // Where a read at `level` goes at `now_ns`.
  Decision read(Consistency level, std::int64_t now_ns, const ReadOptions& options = {}) {
    return router_->route_read(session_, level, now_ns, options);
  }

  // Where a bounded-staleness read allowing `max_staleness_ms` goes at `now_ns`.
  Decision bounded_read(std::int64_t now_ns, double max_staleness_ms) {
    return read(Consistency::BoundedStaleness, now_ns, max_staleness(max_staleness_ms));
  }

  std::shared_ptr<Topology> t = three_nodes();

 private:
  std::unique_ptr<LagTracker> tracker_;
  std::unique_ptr<Router> router_;
  Session session_;
};

}  // namespace

TEST_F(Lag, InterpolatesBetweenPrimarySamples) {
  LagTracker& lag = track();
  lag.primary_sample(0, Lsn(0x1000));
  lag.primary_sample(100 * kMs, Lsn(0x2000));
  EXPECT_EQ(lag.history_size(), 2u);
  EXPECT_EQ(lag.primary_lsn(), Lsn(0x2000));

  // "Past L" means the primary reached L + 1: halfway is 0/17FF -> exactly 50 ms.
  EXPECT_EQ(lag.primary_time_past(Lsn(0x17FF)), 50 * kMs);
  // 0/1800: (0x801 / 0x1000) * 100 ms = 50.0244140625 ms, truncated to whole ns.
  EXPECT_EQ(lag.primary_time_past(Lsn(0x1800)), 50024414);
  EXPECT_EQ(lag.primary_time_past(Lsn(0x1000)), 24414);       // just after the first sample
  EXPECT_EQ(lag.primary_time_past(Lsn(0x1FFF)), 100 * kMs);   // the second sample itself
  EXPECT_EQ(lag.primary_time_past(Lsn(0x2000)), kNotYet);     // the primary is not past it yet
  EXPECT_EQ(lag.primary_time_past(Lsn(0x9000)), kNotYet);
  EXPECT_EQ(lag.primary_time_past(Lsn(0x0FFF)), 0);           // older than the history: its start

  lag.replica_sample(kA, 100 * kMs, Lsn(0x1C00), Lsn(0x1800));
  ReplicaLag r = lag.replica(kA);
  EXPECT_TRUE(r.known);
  EXPECT_EQ(r.node, kA);
  EXPECT_EQ(r.replay_lsn, Lsn(0x1800));
  EXPECT_EQ(r.receive_lsn, Lsn(0x1C00));
  EXPECT_EQ(r.lag_bytes, 0x800);
  EXPECT_EQ(r.receive_lag_bytes, 0x400);
  EXPECT_EQ(r.lag_ns, 100 * kMs - 50024414);  // 49.975586 ms: sub-millisecond resolution
  EXPECT_FALSE(r.lag_is_lower_bound);
  EXPECT_EQ(r.state, LagState::Ok);
  EXPECT_EQ(r.sample_time_ns, 100 * kMs);

  // Published to the topology for the router.
  NodeInfo info = t->info(kA);
  EXPECT_TRUE(info.lag_known);
  EXPECT_EQ(info.lag_ns, r.lag_ns);
  EXPECT_EQ(info.lag_bytes, 0x800);
  EXPECT_EQ(info.replay_lsn, Lsn(0x1800));
  EXPECT_EQ(info.receive_lsn, Lsn(0x1C00));
  EXPECT_EQ(t->info(0).replay_lsn, Lsn(0x2000)) << "the primary's current LSN is published too";
  EXPECT_FALSE(t->info(kB).lag_known);
  EXPECT_FALSE(lag.replica(kB).known);

  // A replica that has everything the primary has is not behind, whatever the time.
  lag.replica_sample("b", 150 * kMs, Lsn(0x2000), Lsn(0x2000));
  EXPECT_EQ(lag.replica(kB).lag_ns, 0);
  EXPECT_EQ(lag.replica(kB).lag_bytes, 0);
  // A replica ahead of the last primary sample is not behind either (no negative lag).
  lag.replica_sample("b", 151 * kMs, Lsn(0x2100), Lsn(0x2100));
  EXPECT_EQ(lag.replica(kB).lag_ns, 0);
  EXPECT_EQ(lag.replica(kB).lag_bytes, 0);
}

TEST_F(Lag, IdlePrimaryCollapsesIntoOneEntry) {
  LagTracker& lag = track();
  for (int k = 0; k <= 10; ++k) lag.primary_sample(k * 100 * kMs, Lsn(0x5000));
  EXPECT_EQ(lag.history_size(), 1u);
  ReplicaLag r = sampled(kA, 1000 * kMs, Lsn(0x5000));
  EXPECT_EQ(r.lag_ns, 0) << "caught up with an idle primary: no lag however long idle";
  EXPECT_EQ(r.lag_bytes, 0);

  // The primary moves on at 1100 ms; it was last seen at 0/5000 at 1000 ms, so the replica
  // fell behind just after 1000 ms, not at t = 0 when 0/5000 was first seen.
  lag.primary_sample(1100 * kMs, Lsn(0x6000));
  EXPECT_EQ(lag.history_size(), 2u);
  EXPECT_EQ(lag.primary_time_past(Lsn(0x5000)), 1000 * kMs + 24414);
  r = sampled(kA, 1100 * kMs, Lsn(0x5000));
  EXPECT_EQ(r.lag_ns, 100 * kMs - 24414);
  EXPECT_EQ(r.lag_bytes, 0x1000);
  EXPECT_FALSE(r.lag_is_lower_bound);
}

TEST_F(Lag, LowerBoundWhenOlderThanTheKeptHistory) {
  LagTracker& lag = track(/*max_lag_ms=*/10000, /*recover_lag_ms=*/10000, [](LagConfig& c) {
    c.history_capacity = 2;
  });
  lag.primary_sample(0, Lsn(0x1000));
  lag.primary_sample(100 * kMs, Lsn(0x2000));
  lag.primary_sample(200 * kMs, Lsn(0x3000));
  EXPECT_EQ(lag.history_size(), 2u);  // 0/1000 was dropped

  ReplicaLag r = sampled(kA, 300 * kMs, Lsn(0x1800));
  EXPECT_TRUE(r.lag_is_lower_bound);
  EXPECT_EQ(r.lag_ns, 200 * kMs) << "lag to the oldest kept entry (0/2000 at 100 ms)";
  EXPECT_EQ(r.lag_bytes, 0x1800);

  r = sampled(kB, 300 * kMs, Lsn(0x27FF));
  EXPECT_FALSE(r.lag_is_lower_bound);
  EXPECT_EQ(r.lag_ns, 150 * kMs);

  // Catching up clears the flag.
  r = sampled(kA, 301 * kMs, Lsn(0x3000));
  EXPECT_FALSE(r.lag_is_lower_bound);
  EXPECT_EQ(r.lag_ns, 0);
}

TEST_F(Lag, HistoryAndEventsAreBounded) {
  LagTracker& lag = track(/*max_lag_ms=*/10, /*recover_lag_ms=*/5, [](LagConfig& c) {
    c.history_capacity = 4;
    c.event_capacity = 2;
  });
  primary_every(10, 990);
  EXPECT_EQ(lag.history_size(), 4u);  // 960, 970, 980 and 990 ms
  EXPECT_EQ(lag.primary_lsn(), lsn_at_ms(990));

  // Three transitions into a buffer of two: the oldest is dropped and counted.
  const std::int64_t now = 990 * kMs;
  EXPECT_EQ(sampled(kA, now, lsn_at_ms(800)).lag_ns, 30 * kMs);  // older than the history: >= 30 ms
  sampled(kA, now, lsn_at_ms(990));                                // caught up: recovered
  sampled(kA, now, lsn_at_ms(0));                                  // far behind again
  EXPECT_EQ(lag.events_dropped(), 1u);
  auto events = lag.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].sequence, 2u);
  EXPECT_EQ(events[0].kind, LagEventKind::Recovered);
  EXPECT_EQ(events[1].sequence, 3u);
  EXPECT_EQ(events[1].kind, LagEventKind::BecameLagging);
  EXPECT_EQ(lag.events(2).size(), 1u);
  EXPECT_EQ(lag.events(2)[0].sequence, 3u);
  EXPECT_EQ(lag.events(3).size(), 0u);
  ASSERT_EQ(lag.events(0, 1).size(), 1u);
  EXPECT_EQ(lag.events(0, 1)[0].sequence, 2u);
  EXPECT_TRUE(lag.replica(kA).lag_is_lower_bound);
}

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

TEST_F(Lag, StaleReplicaIsJudgedAtThePrimarysTime) {
  LagTracker& lag = track(/*max_lag_ms=*/100, /*recover_lag_ms=*/50, [](LagConfig& c) { c.stale_sample_ms = 100; });
  lag.primary_sample(0, Lsn(1000));
  EXPECT_EQ(sampled(kA, 0, Lsn(1000)).lag_ns, 0);

  // 50 ms later the replica is not stale: judged at its own sample time (0), where it was
  // not behind; its byte lag follows the primary.
  lag.primary_sample(50 * kMs, Lsn(51000));
  EXPECT_EQ(lag.replica(kA).lag_ns, 0);
  EXPECT_EQ(lag.replica(kA).lag_bytes, 50000);
  EXPECT_EQ(lag.replica(kA).state, LagState::Ok);

  // Exactly stale_sample_ms later: still judged at its sample time.
  lag.primary_sample(100 * kMs, Lsn(101000));
  EXPECT_EQ(lag.replica(kA).lag_ns, 0);

  // 101 ms of silence: judged at the primary's time. The primary passed 0/3E8 (1000) one byte
  // later, at 1000 ns, so the replica is 101 ms - 1 us behind: LAGGING, without a new sample.
  lag.primary_sample(101 * kMs, Lsn(102000));
  ReplicaLag r = lag.replica(kA);
  EXPECT_EQ(r.lag_ns, 101 * kMs - 1000);
  EXPECT_EQ(r.state, LagState::Lagging);
  EXPECT_EQ(r.sample_time_ns, 0);
  auto events = lag.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].time_ns, 101 * kMs);
  EXPECT_EQ(t->info(kA).lag_state, LagState::Lagging);
  // Replica b was never sampled: it stays unknown and unjudged.
  EXPECT_FALSE(lag.replica(kB).known);
  EXPECT_FALSE(t->info(kB).lag_known);
}

TEST_F(Lag, SilentPrimaryBoundsReplicaLagFromBelow) {
  LagTracker& lag = track([](LagConfig& c) { c.max_lag_ms = 1000; c.stale_sample_ms = 1000; });
  route_to_a_only();
  // The primary writes 1000 bytes per ms until its last sample at 100 ms; replica a keeps up.
  primary_every(50, 100);
  EXPECT_EQ(sampled(kA, 100 * kMs, lsn_at_ms(100)).lag_ns, 0);

  // The primary goes silent (down or frozen); the replica is still sampled. Up to
  // stale_sample_ms after the primary's last sample nothing changes.
  t->set_up("p", false);
  ReplicaLag r = sampled(kA, 600 * kMs, lsn_at_ms(100));
  EXPECT_EQ(r.lag_ns, 0);
  EXPECT_FALSE(r.lag_is_lower_bound);
  EXPECT_EQ(sampled(kA, 1100 * kMs, lsn_at_ms(100)).lag_ns, 0);

  // Beyond it the replica is known fresh only as of 100 ms: its lag is at least now - 100 ms,
  // growing with each replica sample, published to the topology, a lower bound.
  r = sampled(kA, 1101 * kMs, lsn_at_ms(100));
  EXPECT_EQ(r.lag_ns, 1001 * kMs);
  EXPECT_TRUE(r.lag_is_lower_bound);
  EXPECT_EQ(t->info(kA).lag_ns, 1001 * kMs);
  r = sampled(kA, 1600 * kMs, lsn_at_ms(100));
  EXPECT_EQ(r.lag_ns, 1500 * kMs);
  EXPECT_EQ(t->info(kA).lag_ns, 1500 * kMs);
  // The state follows the measured lag: still OK, no event.
  EXPECT_EQ(r.state, LagState::Ok);
  EXPECT_TRUE(lag.events().empty());

  // Bounded staleness cannot use the replica (and the primary is down: no node); an
  // eventual read still can.
  Decision d = bounded_read(1600 * kMs, 500);
  EXPECT_EQ(d.node, kNoNode);
  EXPECT_EQ(d.reason, Reason::NoReplicaFresh);
  EXPECT_EQ(read(Consistency::Eventual, 0).node, kA);

  // Primary samples resume: the replica, sampled 100 ms before, is judged at its own time
  // again, where it had replayed everything up to the primary's LSN then.
  t->set_up("p", true);
  lag.primary_sample(1700 * kMs, lsn_at_ms(100));
  r = lag.replica(kA);
  EXPECT_EQ(r.lag_ns, 0);
  EXPECT_FALSE(r.lag_is_lower_bound);
  EXPECT_EQ(t->info(kA).lag_ns, 0);
  EXPECT_EQ(bounded_read(1700 * kMs, 500).node, kA);
}

// The sequence of a stale bounded-staleness read under a primary kill: the primary commits
// (and acknowledges) past the replica just after its last sample, is down for 2 s, and comes
// back a little further on (recovery records). Interpolating across the outage placed the
// moment the primary passed the replica's LSN near the restart, so the replica, still missing
// those commits, looked 131 ms behind and served a read bounded at 300 ms with data 2.2 s old.
TEST_F(Lag, PrimaryOutageIsNotInterpolatedAcross) {
  LagTracker& lag = track();  // stale_sample_ms 1000
  route_to_a_only();
  primary_every(200, 1000);
  // Killed at 1000 ms, after writing up to 1036 ms; replica a received up to 1035 ms.
  EXPECT_EQ(sampled(kA, 1100 * kMs, lsn_at_ms(1035)).lag_ns, 0);  // ahead of the last primary sample
  t->set_up("p", false);
  ReplicaLag r = sampled(kA, 2500 * kMs, lsn_at_ms(1035));
  EXPECT_EQ(r.lag_ns, 1500 * kMs);  // the silent primary bounds it from below
  EXPECT_TRUE(r.lag_is_lower_bound);
  // Restarted at 3150 ms, 100 bytes further on; replica a has not reconnected yet.
  t->set_up("p", true);
  const Lsn restarted(lsn_at_ms(1036).value + 100);
  lag.primary_sample(3150 * kMs, restarted);
  r = sampled(kA, 3216 * kMs, lsn_at_ms(1035));
  // Known to have everything only as of 1000 ms, the last sample at or below its LSN.
  EXPECT_EQ(r.lag_ns, 2216 * kMs);
  EXPECT_FALSE(r.lag_is_lower_bound);
  EXPECT_EQ(lag.primary_time_past(lsn_at_ms(1035)), 1000 * kMs);
  Decision d = bounded_read(3216 * kMs, 300);
  EXPECT_NE(d.node, kA);
  EXPECT_NE(d.reason, Reason::ReplicaFresh);
  // Caught up with the restarted primary: fresh again.
  EXPECT_EQ(sampled(kA, 3300 * kMs, restarted).lag_ns, 0);
  d = bounded_read(3300 * kMs, 300);
  EXPECT_EQ(d.node, kA);
  EXPECT_EQ(d.reason, Reason::ReplicaFresh);
}

TEST_F(Lag, ReplicaSeenBehindTurnsLaggingWhileThePrimaryIsSilent) {
  track([](LagConfig& c) { c.max_lag_ms = 1000; c.stale_sample_ms = 1000; });
  route_to_a_only();
  // Replica a stops replaying at 100 ms; the primary is sampled once more, past it, at 150 ms
  // and then goes silent. Nothing freezes the measured lag: every replica sample re-judges it
  // at its own time against the crossing the primary's history holds (just after 100 ms).
  primary_every(50, 150);
  EXPECT_EQ(sampled(kA, 150 * kMs, lsn_at_ms(100)).state, LagState::Ok);
  t->set_up("p", false);
  EXPECT_EQ(sampled(kA, 1000 * kMs, lsn_at_ms(100)).state, LagState::Ok);
  EXPECT_EQ(read(Consistency::Eventual, 0).node, kA);
  ReplicaLag r = sampled(kA, 1200 * kMs, lsn_at_ms(100));
  EXPECT_GT(r.lag_ns, 1000 * kMs);
  EXPECT_EQ(r.state, LagState::Lagging);
  // Over max_lag_ms with the primary down, no node serves even an eventual read.
  Decision d = read(Consistency::Eventual, 0);
  EXPECT_EQ(d.node, kNoNode);
  EXPECT_EQ(d.reason, Reason::AllReplicasLagging);
}

TEST_F(Lag, ReplicaOlderThanTheHistoryAfterResetIsNotFresh) {
  // After a reset (a failover, or the primary's LSN went backwards) the history starts at the
  // new primary's first sample; a replica below it passed that LSN at an unknown time.
  LagTracker& lag = track([](LagConfig& c) { c.max_lag_ms = 1000; c.stale_sample_ms = 1000; });
  route_to_a_only();
  primary_every(50, 100);
  lag.reset();
  lag.primary_sample(200 * kMs, lsn_at_ms(5000));
  ReplicaLag r = sampled(kA, 300 * kMs, lsn_at_ms(100));  // far below the first entry
  EXPECT_TRUE(r.lag_is_lower_bound);
  EXPECT_EQ(r.lag_ns, 100 * kMs) << "now - the only entry's first sample";
  EXPECT_EQ(r.state, LagState::Ok) << "the state follows the lower bound";
  EXPECT_FALSE(t->info(kA).lag_known) << "its true time lag is unknown";
  Decision d = bounded_read(300 * kMs, 500);
  EXPECT_NE(d.node, kA);
  EXPECT_EQ(d.reason, Reason::NoReplicaFresh);
  // Reads without a freshness bound still take it.
  EXPECT_EQ(read(Consistency::Eventual, 0, max_staleness(500)).node, kA);
  // Replaying past the first entry makes its lag known again: fresh.
  lag.primary_sample(250 * kMs, lsn_at_ms(5050));
  EXPECT_FALSE(sampled(kA, 310 * kMs, lsn_at_ms(5000)).lag_is_lower_bound);
  EXPECT_TRUE(t->info(kA).lag_known);
  d = bounded_read(310 * kMs, 500);
  EXPECT_EQ(d.node, kA);
  EXPECT_EQ(d.reason, Reason::ReplicaFresh);
}

TEST_F(Lag, BackwardsTimeAndLsnAreRejected) {
  LagTracker& lag = track();
  lag.primary_sample(10 * kMs, Lsn(0x2000));
  expect_invalid<InvalidArgument>([&] { lag.primary_sample(9 * kMs, Lsn(0x3000)); }, "now_ns");
  expect_invalid<InvalidArgument>([&] { lag.primary_sample(11 * kMs, Lsn(0x1FFF)); }, "current_lsn");
  EXPECT_EQ(lag.history_size(), 1u);
  EXPECT_EQ(lag.primary_lsn(), Lsn(0x2000));
  EXPECT_NO_THROW(lag.primary_sample(10 * kMs, Lsn(0x2000)));  // same time, same LSN
  EXPECT_NO_THROW(lag.primary_sample(10 * kMs, Lsn(0x2100)));  // same time, newer LSN
  EXPECT_EQ(lag.history_size(), 2u);

  sampled(kA, 20 * kMs, Lsn(0x2000));
  expect_invalid<InvalidArgument>([&] { lag.replica_sample(kA, 19 * kMs, Lsn(0x2000), Lsn(0x2000)); }, "now_ns");
  EXPECT_EQ(lag.replica(kA).sample_time_ns, 20 * kMs);
  // Another replica keeps its own clock.
  EXPECT_NO_THROW(lag.replica_sample(kB, 1, Lsn(0x2000), Lsn(0x2000)));
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

TEST_F(Lag, NoPrimarySamplesYet) {
  LagTracker& lag = track();
  EXPECT_EQ(lag.history_size(), 0u);
  EXPECT_EQ(lag.primary_time_past(Lsn(1)), kNotYet);
  ReplicaLag r = sampled(kA, 5 * kMs, Lsn(0x100));
  EXPECT_TRUE(r.known);
  EXPECT_EQ(r.lag_ns, 0);
  EXPECT_EQ(r.lag_bytes, 0);
  auto all = lag.replicas();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].node, kA);
  EXPECT_EQ(all[1].node, kB);
}

TEST_F(Lag, RecoveryMarksDefaultToHalfTheThresholds) {
  LagTracker defaults(t);
  EXPECT_EQ(*defaults.config().recover_lag_ms, 500.0);
  EXPECT_EQ(*defaults.config().recover_lag_bytes, 0);
  LagTracker& half = track([](LagConfig& c) { c.max_lag_ms = 200; c.max_lag_bytes = 1000; });
  EXPECT_EQ(*half.config().recover_lag_ms, 100.0);
  EXPECT_EQ(*half.config().recover_lag_bytes, 500);
}

TEST_F(Lag, BadInputNamesTheArgument) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  auto with = [&](auto edit) {
    LagConfig c;
    edit(c);
    return [topology = t, c] { LagTracker tracker(topology, c); };
  };
  expect_invalid<InvalidArgument>([] { LagTracker tracker(nullptr); }, "topology");
  expect_invalid<InvalidArgument>(with([&](LagConfig& c) { c.max_lag_ms = nan; }), "max_lag_ms");
  expect_invalid<InvalidArgument>(with([&](LagConfig& c) { c.max_lag_ms = -1; }), "max_lag_ms");
  expect_invalid<InvalidArgument>(with([&](LagConfig& c) { c.max_lag_ms = inf; }), "max_lag_ms");
  expect_invalid<InvalidArgument>(with([&](LagConfig& c) { c.max_lag_ms = 1e11; }), "max_lag_ms");
  expect_invalid<InvalidArgument>(with([&](LagConfig& c) { c.recover_lag_ms = nan; }), "recover_lag_ms");
  expect_invalid<InvalidArgument>(with([&](LagConfig& c) { c.recover_lag_ms = -0.5; }), "recover_lag_ms");
  expect_invalid<InvalidArgument>(with([&](LagConfig& c) { c.recover_lag_ms = 1001; }), "recover_lag_ms");
  expect_invalid<InvalidArgument>(with([&](LagConfig& c) { c.stale_sample_ms = nan; }), "stale_sample_ms");
  expect_invalid<InvalidArgument>(with([&](LagConfig& c) { c.stale_sample_ms = -1; }), "stale_sample_ms");
  expect_invalid<InvalidArgument>(with([&](LagConfig& c) { c.stale_sample_ms = 1e300; }), "stale_sample_ms");
  expect_invalid<InvalidArgument>(with([&](LagConfig& c) { c.max_lag_bytes = -1; }), "max_lag_bytes");
  expect_invalid<InvalidArgument>(with([&](LagConfig& c) { c.recover_lag_bytes = -1; }), "recover_lag_bytes");
  expect_invalid<InvalidArgument>(with([&](LagConfig& c) { c.max_lag_bytes = 100; c.recover_lag_bytes = 101; }),
                                  "recover_lag_bytes");
  expect_invalid<InvalidArgument>(with([&](LagConfig& c) { c.history_capacity = 0; }), "history_capacity");
  expect_invalid<InvalidArgument>(with([&](LagConfig& c) { c.history_capacity = 1; }), "history_capacity");
  expect_invalid<InvalidArgument>(with([&](LagConfig& c) { c.history_capacity = (1u << 24) + 1; }),
                                  "history_capacity");
  expect_invalid<InvalidArgument>(with([&](LagConfig& c) { c.event_capacity = 0; }), "event_capacity");
  expect_invalid<InvalidArgument>(with([&](LagConfig& c) { c.event_capacity = (1u << 20) + 1; }), "event_capacity");
  EXPECT_NO_THROW(with([&](LagConfig& c) { c.max_lag_ms = 0; c.recover_lag_ms = 0; c.stale_sample_ms = 0; })());
  EXPECT_NO_THROW(with([&](LagConfig& c) { c.history_capacity = 2; c.event_capacity = 1; })());

  LagTracker& lag = track();
  expect_invalid<InvalidArgument>([&] { lag.primary_sample(-1, Lsn(1)); }, "now_ns");
  expect_invalid<InvalidArgument>([&] { lag.replica_sample(kA, -1, Lsn(1), Lsn(1)); }, "now_ns");
  expect_invalid<InvalidArgument>([&] { lag.replica_sample(-1, 0, Lsn(1), Lsn(1)); }, "node");
  expect_invalid<InvalidArgument>([&] { lag.replica_sample(3, 0, Lsn(1), Lsn(1)); }, "node");
  expect_invalid<InvalidArgument>([&] { lag.replica_sample(0, 0, Lsn(1), Lsn(1)); }, "node");  // the primary
  expect_invalid<NotFound>([&] { lag.replica_sample("nobody", 0, Lsn(1), Lsn(1)); }, "name");
  expect_invalid<InvalidArgument>([&] { lag.replica(3); }, "node");
  expect_invalid<InvalidArgument>([&] { lag.replica(-1); }, "node");
  t->remove_replica("b");
  expect_invalid<InvalidArgument>([&] { lag.replica_sample(kB, 0, Lsn(1), Lsn(1)); }, "node");
  expect_invalid<NotFound>([&] { lag.replica_sample("b", 0, Lsn(1), Lsn(1)); }, "name");
  EXPECT_EQ(lag.history_size(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Random histories against a slow reference. The reference keeps every raw primary sample and
// recomputes each answer from scratch with exact integer arithmetic.

namespace {

__extension__ typedef __int128 Int128;  // reference arithmetic only

struct RawSample {
  std::int64_t t;
  std::uint64_t lsn;
};

struct ReferenceLag {
  std::int64_t lag_ns = 0;
  bool lower_bound = false;
  bool history_lower_bound = false;  // older than the kept history (lower_bound for that reason)
};

// When did the primary first pass `lsn`? Obvious scan over all raw samples; `capacity` emulates
// the tracker keeping only the newest `capacity` distinct LSNs.
ReferenceLag reference_lag(const std::vector<RawSample>& raw, std::size_t capacity, std::int64_t stale_ns,
                           std::uint64_t lsn, std::int64_t at_ns) {
  ReferenceLag out;
  if (raw.empty()) return out;
  std::vector<std::uint64_t> distinct;
  for (const auto& s : raw) {
    if (distinct.empty() || distinct.back() != s.lsn) distinct.push_back(s.lsn);
  }
  std::uint64_t oldest_kept = distinct.size() > capacity ? distinct[distinct.size() - capacity] : distinct.front();
  const RawSample* after = nullptr;
  const RawSample* before = nullptr;
  for (const auto& s : raw) {
    if (s.lsn < oldest_kept) continue;
    if (s.lsn <= lsn) before = &s;  // the last sample still at or below lsn
    if (s.lsn > lsn && after == nullptr) after = &s;
  }
  if (after == nullptr) return out;  // the primary has not passed lsn: no lag
  std::int64_t crossing;
  if (before == nullptr) {
    out.lower_bound = out.history_lower_bound = true;
    crossing = after->t;
  } else if (after->t - before->t > stale_ns) {
    crossing = before->t;  // an outage between the samples: no interpolation
  } else {
    Int128 num = static_cast<Int128>(lsn + 1 - before->lsn) * (after->t - before->t);
    crossing = before->t + static_cast<std::int64_t>(num / static_cast<Int128>(after->lsn - before->lsn));
  }
  out.lag_ns = at_ns > crossing ? at_ns - crossing : 0;
  return out;
}

}  // namespace

TEST(LagProperty, RandomHistoriesMatchTheReference) {
  std::uint64_t checked = 0;
  for_each_seed(0x1A6, 300, "LagProperty.*", [&](int, std::uint64_t seed) {
    Xoshiro256 rng(seed);
    const int n = 1 + static_cast<int>(rng.below(8));
    std::vector<NodeSpec> specs;
    for (int i = 0; i < n; ++i) specs.push_back(node("r" + std::to_string(i)));
    auto t = std::make_shared<Topology>(node("p"), specs);
    LagConfig c;
    c.max_lag_ms = 1 + rng.below(60);
    c.recover_lag_ms = c.max_lag_ms * rng.uniform();
    c.stale_sample_ms = rng.below(80);
    c.history_capacity = 2 + rng.below(40);
    c.event_capacity = 1 + rng.below(8);
    if (rng.below(3) == 0) {
      c.max_lag_bytes = 1 + rng.below(200000);
      c.recover_lag_bytes = static_cast<std::int64_t>(rng.below(static_cast<std::uint32_t>(c.max_lag_bytes) + 1));
    }
    LagTracker lag(t, c);
    const std::int64_t lag_max_ns = std::llround(c.max_lag_ms * 1e6);
    const std::int64_t recover_ns = std::llround(*lag.config().recover_lag_ms * 1e6);
    const std::int64_t stale_ns = std::llround(c.stale_sample_ms * 1e6);

    std::vector<RawSample> raw;
    struct Rep {
      bool known = false;
      std::uint64_t receive = 0, replay_lsn = 0;
      std::int64_t sample_ns = 0;
      bool lagging = false;
    };
    std::vector<Rep> reps(static_cast<std::size_t>(n) + 1);
    std::uint64_t events = 0;
    std::vector<LagEvent> expected_events;
    std::int64_t now = 0;
    std::uint64_t primary = 1 + rng.below(1000);

    // Checks one replica against the reference judged at `at`, and advances the reference's
    // hysteresis with the tracker's own (verified) lag.
    auto verify = [&](int node, std::int64_t at, const char* what) {
      Rep& r = reps[node];
      ReplicaLag got = lag.replica(node);
      SCOPED_TRACE(std::string(what) + " node=" + std::to_string(node) + " at=" + std::to_string(at));
      ASSERT_TRUE(got.known);
      ReferenceLag ref = reference_lag(raw, c.history_capacity, stale_ns, r.replay_lsn, at);
      // A stale primary sample bounds the lag from below; the state follows the measured lag.
      const std::int64_t measured = ref.lag_ns;
      const std::int64_t silent = raw.empty() ? 0 : at - raw.back().t;
      if (!raw.empty() && silent > stale_ns && silent > measured) {
        ref.lag_ns = silent;
        ref.lower_bound = true;
      }
      std::uint64_t plsn = raw.empty() ? 0 : raw.back().lsn;
      std::int64_t bytes = plsn > r.replay_lsn ? static_cast<std::int64_t>(plsn - r.replay_lsn) : 0;
      std::int64_t rbytes = plsn > r.receive ? static_cast<std::int64_t>(plsn - r.receive) : 0;
      EXPECT_EQ(got.lag_bytes, bytes);
      EXPECT_EQ(got.receive_lag_bytes, rbytes);
      // The tracker interpolates in long double; allow one nanosecond of rounding.
      EXPECT_LE(std::llabs(got.lag_ns - ref.lag_ns), 1) << "tracker " << got.lag_ns << " reference " << ref.lag_ns;
      EXPECT_EQ(got.lag_is_lower_bound, ref.lower_bound);
      bool was = r.lagging;
      const bool bytes_on = c.max_lag_bytes > 0;
      if (was) {
        bool time_ok = measured < recover_ns || (recover_ns == 0 && measured == 0);
        const std::int64_t recover_bytes = *lag.config().recover_lag_bytes;
        bool bytes_ok = !bytes_on || bytes < recover_bytes || (recover_bytes == 0 && bytes == 0);
        r.lagging = !(time_ok && bytes_ok);
      } else {
        r.lagging = measured > lag_max_ns || (bytes_on && bytes > c.max_lag_bytes);
      }
      EXPECT_EQ(got.state == LagState::Lagging, r.lagging);
      EXPECT_EQ(t->info(node).lag_state == LagState::Lagging, r.lagging);
      EXPECT_EQ(t->info(node).lag_ns, got.lag_ns);
      // Older than the kept history: the time lag is published as unknown.
      EXPECT_EQ(t->info(node).lag_known, !ref.history_lower_bound);
      if (was != r.lagging) {
        LagEvent ev;
        ev.sequence = ++events;
        ev.node = node;
        ev.kind = r.lagging ? LagEventKind::BecameLagging : LagEventKind::Recovered;
        ev.time_ns = at;
        ev.lag_ns = got.lag_ns;
        ev.lag_bytes = got.lag_bytes;
        expected_events.push_back(ev);
      }
      ++checked;
    };
    // The tracker keeps the newest event_capacity events of the reference's full log.
    auto verify_events = [&] {
      auto got = lag.events(0, 1u << 20);
      std::size_t keep = std::min<std::size_t>(expected_events.size(), c.event_capacity);
      ASSERT_EQ(got.size(), keep);
      for (std::size_t k = 0; k < keep; ++k) {
        const LagEvent& want = expected_events[expected_events.size() - keep + k];
        EXPECT_EQ(got[k].sequence, want.sequence);
        EXPECT_EQ(got[k].node, want.node);
        EXPECT_EQ(got[k].kind, want.kind);
        EXPECT_EQ(got[k].time_ns, want.time_ns);
        EXPECT_EQ(got[k].lag_ns, want.lag_ns);
        EXPECT_EQ(got[k].lag_bytes, want.lag_bytes);
      }
      EXPECT_EQ(lag.events_dropped(), expected_events.size() - keep);
    };

    for (int step = 0; step < 120 && !HasFatalFailure(); ++step) {
      now += static_cast<std::int64_t>(rng.below(3)) * static_cast<std::int64_t>(rng.below(static_cast<std::uint32_t>(20 * kMs)));
      if (rng.below(2) == 0) {
        if (rng.below(3) != 0) primary += rng.below(100000);  // else: idle, same LSN
        lag.primary_sample(now, Lsn(primary));
        raw.push_back({now, primary});
        EXPECT_EQ(lag.primary_lsn(), Lsn(primary));
        EXPECT_LE(lag.history_size(), c.history_capacity);
        for (int i = 1; i <= n; ++i) {
          if (!reps[i].known) continue;
          verify(i, now - reps[i].sample_ns > stale_ns ? now : reps[i].sample_ns, "after primary sample");
        }
      } else {
        int node = 1 + static_cast<int>(rng.below(static_cast<std::uint32_t>(n)));
        Rep& r = reps[node];
        // Replicas never go backwards; sometimes they run ahead of the last primary sample.
        std::uint64_t lo = r.replay_lsn, hi = primary + (rng.below(8) == 0 ? rng.below(5000) : 0);
        std::uint64_t replay_lsn = hi > lo ? lo + rng.next() % (hi - lo + 1) : lo;
        std::uint64_t receive = replay_lsn + rng.below(3000);
        std::int64_t at = now - static_cast<std::int64_t>(rng.below(3)) * kMs;  // replica clocks may trail
        if (r.known && at < r.sample_ns) at = r.sample_ns;
        if (at < 0) at = 0;
        lag.replica_sample(node, at, Lsn(receive), Lsn(replay_lsn));
        r.known = true;
        r.receive = receive;
        r.replay_lsn = replay_lsn;
        r.sample_ns = at;
        verify(node, at, "after replica sample");
      }
      verify_events();
    }
    EXPECT_EQ(lag.events_dropped(), events > c.event_capacity ? events - c.event_capacity : 0);
  });
  std::printf("[ LagProperty ] %llu replica judgements checked\n", static_cast<unsigned long long>(checked));
}

// Runs of equal LSNs: the reference keeps every raw sample, the tracker one entry per run.
TEST(LagProperty, HistorySizeCountsDistinctLsns) {
  auto t = three_nodes();
  LagConfig c;
  c.history_capacity = 1000;
  LagTracker lag(t, c);
  Xoshiro256 rng(5);
  std::uint64_t lsn = 1;
  std::size_t distinct = 0;
  std::uint64_t last = 0;
  for (int k = 0; k < 500; ++k) {
    if (rng.below(3) == 0) lsn += 1 + rng.below(10);
    lag.primary_sample(k, Lsn(lsn));
    if (lsn != last) ++distinct;
    last = lsn;
    ASSERT_EQ(lag.history_size(), distinct);
  }
}
