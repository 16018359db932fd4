// LagTracker: byte and time lag from the primary's LSN history (interpolation, the bounds of
// the history, a silent primary and stale samples) and bad input, exact values on hand-made
// histories. Transitions are in test_lag_transitions.cpp, random histories against a reference
// in test_lag_property.cpp; the fixture in lag_fixture.hpp.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "replikit/errors.hpp"
#include "replikit/lag.hpp"

#include "lag_fixture.hpp"

using namespace replikit;
using namespace replikit::testing;

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

TEST_F(Lag, APrimaryProbedOnTimeIsNotAnOutageBetweenItsSamples) {
  // A prober every ~1 s against the default stale_sample_ms (1 s): each gap between two primary
  // samples, a little over the interval, read as an outage, so a replica 1 ms behind the last
  // sample read the whole gap behind. probed_lag_config raises the bound to twice the interval.
  const LagConfig defaults;
  EXPECT_EQ(probed_lag_config(defaults, 1000).stale_sample_ms, 2000);
  EXPECT_EQ(probed_lag_config(defaults, 100).stale_sample_ms, 1000);  // kept when already longer
  for (const bool probed : {false, true}) {
    track([&](LagConfig& c) { c = probed ? probed_lag_config(c, 1000) : c; });
    for (std::int64_t ms : {0, 1001, 2002}) tracker().primary_sample(ms * kMs, lsn_at_ms(ms));
    const ReplicaLag r = sampled(kA, 2002 * kMs, lsn_at_ms(2001));
    // Interpolated, the primary passed it (reached its LSN + 1) at 2001.001 ms; read as an
    // outage, at the earlier sample's 1001 ms.
    EXPECT_EQ(r.lag_ns, probed ? 999'000 : 1001 * kMs) << "probed " << probed;
    EXPECT_FALSE(r.lag_is_lower_bound);
  }
  // A NaN stays a NaN, which the tracker rejects by name.
  LagConfig bad;
  bad.stale_sample_ms = std::numeric_limits<double>::quiet_NaN();
  expect_invalid<InvalidArgument>([&] { LagTracker tracker(t, probed_lag_config(bad, 1000)); }, "stale_sample_ms");
  for (const double interval : {0.0, -1.0, std::numeric_limits<double>::infinity(), bad.stale_sample_ms}) {
    expect_invalid<InvalidArgument>([&] { probed_lag_config(defaults, interval); }, "probe_interval_ms");
  }
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
