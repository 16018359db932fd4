// LeaderLease (election and lease state machine) and TopologyView (revision fencing), with a
// seeded simulation of a lease service: no two holders may act at overlapping times.
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "replikit/lease.hpp"
#include "testing.hpp"

using namespace replikit;
using replikit::testing::expect_invalid;

namespace {

constexpr std::int64_t kMs = 1000000;

LeaseConfig config(double ttl, double margin, double renew) {
  LeaseConfig c;
  c.ttl_ms = ttl;
  c.margin_ms = margin;
  c.renew_interval_ms = renew;
  return c;
}

}  // namespace

TEST(Lease, AcquireRenewAndDeadline) {
  LeaderLease l(config(2000, 600, 300));
  EXPECT_EQ(l.state(0), LeaseState::Campaigning);
  EXPECT_FALSE(l.may_act(0));
  l.acquired(100 * kMs, 120 * kMs, 7);
  EXPECT_EQ(l.state(120 * kMs), LeaseState::Leading);
  // The deadline counts from when the lease's request was sent, not answered.
  EXPECT_EQ(l.deadline_ns(), 1500 * kMs);
  ASSERT_TRUE(l.permit(200 * kMs).has_value());
  EXPECT_EQ(l.permit(200 * kMs)->revision, 7);
  EXPECT_FALSE(l.renew_due(300 * kMs));
  EXPECT_TRUE(l.renew_due(400 * kMs));
  l.renewed(400 * kMs, 450 * kMs, 2000);
  EXPECT_EQ(l.deadline_ns(), 1800 * kMs);
  EXPECT_TRUE(l.may_act(1799 * kMs));
  EXPECT_FALSE(l.may_act(1800 * kMs));
  EXPECT_EQ(l.state(1800 * kMs), LeaseState::Lost);
}

TEST(Lease, FailedRenewalsKeepLeadingOnlyUntilTheDeadline) {
  LeaderLease l(config(2000, 600, 300));
  l.acquired(0, 10 * kMs, 3);
  l.renew_failed(300 * kMs, "timeout");
  l.renew_failed(600 * kMs, "timeout");
  EXPECT_EQ(l.failed_renewals(), 2);
  EXPECT_TRUE(l.may_act(1399 * kMs));
  EXPECT_FALSE(l.may_act(1400 * kMs));
  l.campaign(1500 * kMs);
  EXPECT_EQ(l.state(1500 * kMs), LeaseState::Campaigning);
  ASSERT_GE(l.transitions().size(), 3u);
  EXPECT_EQ(l.transitions()[1].to, LeaseState::Lost);
  EXPECT_EQ(l.transitions()[1].at_ns, 1400 * kMs);
}

// A paused process (SIGSTOP) whose keepalive answer arrives after its deadline is not leading:
// the answer confirms the lease only from when the request was sent.
TEST(Lease, PausedHolderDoesNotActOnResume) {
  LeaderLease l(config(2000, 600, 300));
  l.acquired(0, 5 * kMs, 4);
  // Keepalive sent at 300 ms; the process stops; resumes at 5 s with the (positive) answer.
  l.renewed(300 * kMs, 5000 * kMs, 2000);
  EXPECT_EQ(l.state(5000 * kMs), LeaseState::Lost);
  EXPECT_FALSE(l.may_act(5000 * kMs));
  // Nor does a later keepalive answer revive it: only a new campaign does.
  l.renewed(4999 * kMs, 5001 * kMs, 2000);
  EXPECT_FALSE(l.may_act(5001 * kMs));
  l.acquired(5002 * kMs, 5003 * kMs, 9);  // not campaigning: ignored
  EXPECT_FALSE(l.may_act(5003 * kMs));
  l.campaign(5004 * kMs);
  l.acquired(5004 * kMs, 5010 * kMs, 9);
  EXPECT_EQ(l.permit(5010 * kMs)->revision, 9);
}

TEST(Lease, LostStepDownAndExpiredAnswer) {
  LeaderLease l(config(2000, 600, 300));
  l.acquired(0, 1 * kMs, 2);
  l.renewed(300 * kMs, 301 * kMs, 0);  // the service: expired
  EXPECT_EQ(l.state(301 * kMs), LeaseState::Lost);
  l.campaign(400 * kMs);
  l.acquired(400 * kMs, 410 * kMs, 5);
  l.step_down(500 * kMs);
  EXPECT_EQ(l.state(500 * kMs), LeaseState::SteppingDown);
  EXPECT_FALSE(l.may_act(500 * kMs));
  l.stepped_down(510 * kMs);
  EXPECT_EQ(l.state(510 * kMs), LeaseState::Lost);
  l.campaign(600 * kMs);
  l.lost(700 * kMs, "another holds the key");  // campaigning: stays so, with the reason
  EXPECT_EQ(l.state(700 * kMs), LeaseState::Campaigning);
  EXPECT_EQ(l.reason(), "another holds the key");
  // Won too late: the lease's local validity ended before the answer came.
  l.acquired(700 * kMs, 2200 * kMs, 6);
  EXPECT_EQ(l.state(2200 * kMs), LeaseState::Lost);
  // A smaller granted TTL shortens the deadline.
  l.campaign(2300 * kMs);
  l.acquired(2300 * kMs, 2310 * kMs, 8);
  l.renewed(2400 * kMs, 2410 * kMs, 1000);
  EXPECT_EQ(l.deadline_ns(), 3700 * kMs);  // the first confirmation's is later
  EXPECT_STREQ(to_string(LeaseState::SteppingDown), "stepping_down");
}

TEST(Lease, BadInput) {
  expect_invalid<InvalidArgument>([] { LeaderLease(config(5, 1, 1)); }, "ttl_ms");
  expect_invalid<InvalidArgument>([] { LeaderLease(config(2000, 2000, 1)); }, "margin_ms");
  expect_invalid<InvalidArgument>([] { LeaderLease(config(2000, 600, 1400)); }, "renew_interval_ms");
  LeaderLease l;
  l.campaign(100);
  expect_invalid<InvalidArgument>([&] { l.campaign(50); }, "now_ns");
  expect_invalid<InvalidArgument>([&] { l.acquired(300, 200, 1); }, "lease_sent_ns");
  expect_invalid<InvalidArgument>([&] { l.acquired(100, 200, 0); }, "revision");
  expect_invalid<InvalidArgument>([&] { l.renewed(100, 200, -1); }, "granted_ttl_ms");
}

TEST(TopologyView, IgnoresOlderRevisionsAndOlderLeaders) {
  TopologyView v;
  PublishedTopology t;
  t.primary = "p";
  t.replicas = {{"r1", "streaming"}, {"r2", "streaming"}};
  t.leader_revision = 5;
  t.revision = 10;
  EXPECT_EQ(v.offer(t), TopologyVerdict::Applied);
  EXPECT_EQ(v.offer(t), TopologyVerdict::Duplicate);
  PublishedTopology older = t;
  older.revision = 9;
  older.primary = "r1";
  older.replicas = {{"p", "down"}};
  EXPECT_EQ(v.offer(older), TopologyVerdict::Stale);
  PublishedTopology old_leader = older;
  old_leader.revision = 12;
  old_leader.leader_revision = 4;  // written by a leader deposed before the current one
  EXPECT_EQ(v.offer(old_leader), TopologyVerdict::Stale);
  EXPECT_EQ(v.stale(), 2u);
  EXPECT_EQ(v.current()->primary, "p");
  PublishedTopology next = older;
  next.revision = 13;
  next.leader_revision = 6;
  EXPECT_EQ(v.offer(next), TopologyVerdict::Applied);
  EXPECT_EQ(v.revision(), 13);
  PublishedTopology bad = next;
  bad.replicas.push_back({"r1", "x"});
  expect_invalid<InvalidArgument>([&] { v.offer(bad); }, "replicas");
  bad = next;
  bad.revision = 0;
  expect_invalid<InvalidArgument>([&] { v.offer(bad); }, "revision");
  bad = next;
  bad.primary.clear();
  expect_invalid<InvalidArgument>([&] { v.offer(bad); }, "primary");
}

// ---------------------------------------------------------------- simulation

namespace {

// A lease service as etcd's: one leader key held under a lease; the lease expires `ttl` after
// the service last received a grant or keepalive for it. Requests and answers travel with
// random delays and may be lost; candidates pause (SIGSTOP) at random; their clocks drift.
struct Service {
  std::int64_t ttl_ns = 0;
  int holder = -1;
  std::int64_t expiry_ns = 0;
  std::int64_t revision = 0;  // the key's creation revision of the current holder
  std::int64_t counter = 0;

  bool held(std::int64_t t) const { return holder >= 0 && t < expiry_ns; }
};

struct Message {
  bool campaign = false;  // else a keepalive
  std::int64_t sent_local_ns = 0;
  std::int64_t arrive_ns = 0;   // at the service (real time)
  std::int64_t answer_ns = 0;   // back at the candidate (real time); -1: lost
  bool served = false;
  std::int64_t revision = 0;    // campaign won at this revision (0: lost the race)
  double ttl_ms = 0;            // keepalive answer
};

struct Candidate {
  LeaderLease lease;
  double rate = 1.0;             // local clock rate
  std::int64_t paused_until_ns = 0;
  std::deque<Message> in_flight;
  std::int64_t local(std::int64_t t) const { return static_cast<std::int64_t>(static_cast<double>(t) * rate); }
};

std::int64_t pick(Xoshiro256& rng, std::int64_t lo, std::int64_t hi) {
  return lo + static_cast<std::int64_t>(rng.next() % static_cast<std::uint64_t>(hi - lo + 1));
}

// The service side of a message that reached it at real time t.
void serve(Service& s, int who, Message& m, std::int64_t t) {
  m.served = true;
  if (m.campaign) {
    if (s.held(t)) return;
    s.holder = who;
    s.revision = ++s.counter;
    s.expiry_ns = t + s.ttl_ns;
    m.revision = s.revision;
    return;
  }
  if (s.holder == who && s.held(t)) {
    s.expiry_ns = t + s.ttl_ns;
    m.ttl_ms = static_cast<double>(s.ttl_ns) / kMs;
  }
}

// The candidate side of an answer (or of a lost request's timeout) at real time t.
void receive(Candidate& c, const Message& m, std::int64_t t) {
  const std::int64_t now = c.local(t);
  if (m.campaign) {
    if (m.revision > 0) c.lease.acquired(m.sent_local_ns, now, m.revision);
  } else if (m.answer_ns < 0) {
    c.lease.renew_failed(now, "timeout");
  } else {
    c.lease.renewed(m.sent_local_ns, now, m.ttl_ms);
  }
}

void send(Candidate& c, bool campaign, std::int64_t t, Xoshiro256& rng) {
  Message m;
  m.campaign = campaign;
  m.sent_local_ns = c.local(t);
  // Mostly quick; now and then a slow network (up to 1.3 s each way); one in eight lost.
  const auto delay = [&rng] { return (rng.next() % 10 == 0 ? pick(rng, 200, 1300) : pick(rng, 0, 80)) * kMs; };
  m.arrive_ns = t + delay();
  const bool lost = rng.next() % 8 == 0;
  m.answer_ns = lost ? -1 : m.arrive_ns + delay();
  c.in_flight.push_back(m);
}

// One candidate's turn at real time t: messages, then its own decisions.
void step(Service& s, std::vector<Candidate>& cs, int who, std::int64_t t, Xoshiro256& rng) {
  Candidate& c = cs[who];
  for (Message& m : c.in_flight) {
    if (!m.served && m.arrive_ns <= t) serve(s, who, m, t);
  }
  if (t < c.paused_until_ns) return;
  const std::int64_t timeout = 500 * kMs;
  while (!c.in_flight.empty()) {
    const Message& m = c.in_flight.front();
    const std::int64_t due = m.answer_ns < 0 ? m.arrive_ns + timeout : m.answer_ns;
    if (due > t || !m.served) break;
    receive(c, m, t);
    c.in_flight.pop_front();
  }
  const std::int64_t now = c.local(t);
  const LeaseState st = c.lease.state(now);
  if (st == LeaseState::Lost) c.lease.campaign(now);
  if (c.in_flight.empty() && c.lease.state(now) == LeaseState::Campaigning && rng.next() % 4 == 0) {
    send(c, true, t, rng);
  } else if (c.lease.renew_due(now) && c.in_flight.size() < 4) {
    send(c, false, t, rng);
  }
  if (rng.next() % 400 == 0) c.paused_until_ns = t + pick(rng, 100, 5000) * kMs;  // SIGSTOP, then SIGCONT
}

}  // namespace

// Whatever the interleaving of campaigns, keepalives, lost messages, pauses and clock drift
// (within the margin), a candidate that may act holds the key at the service at that instant:
// so no two candidates ever act at overlapping times.
TEST(Lease, NoTwoHoldersActAtOverlappingTimes) {
  const auto seeds = replikit::testing::run_seeds(20261129, 60);
  std::printf("[Lease] base seed %llu, %d runs (replay one run with REPLIKIT_TEST_SEED)\n",
              static_cast<unsigned long long>(seeds.base), seeds.runs);
  std::int64_t acted = 0, takeovers = 0;
  for (int run = 0; run < seeds.runs; ++run) {
    const std::uint64_t seed = seeds.seed(run);
    SCOPED_TRACE(replikit::testing::replay_hint(seed, "Lease.NoTwoHoldersActAtOverlappingTimes"));
    Xoshiro256 rng(seed);
    Service s;
    s.ttl_ns = 2000 * kMs;
    std::vector<Candidate> cs;
    for (int i = 0; i < 3; ++i) {
      // Drift up to 2% either way: 2000 ms x 2% is well inside the 600 ms margin.
      cs.push_back(Candidate{LeaderLease(config(2000, 600, 300)), 1.0 + static_cast<double>(pick(rng, 0, 40) - 20) / 1000.0, 0, {}});
    }
    std::int64_t t = 0, last_revision = 0;
    for (int k = 0; k < 4000; ++k) {
      t += pick(rng, 1, 30) * kMs;
      for (int who = 0; who < 3; ++who) step(s, cs, who, t, rng);
      int acting = 0;
      for (int who = 0; who < 3; ++who) {
        const auto permit = cs[who].lease.permit(cs[who].local(t));
        if (!permit || t < cs[who].paused_until_ns) continue;
        ++acting;
        ++acted;
        ASSERT_TRUE(s.held(t)) << "candidate " << who << " acts at " << t << " ns without a live lease";
        ASSERT_EQ(s.holder, who) << "candidate " << who << " acts while " << s.holder << " holds the key";
        ASSERT_EQ(permit->revision, s.revision);
        if (permit->revision != last_revision) ++takeovers;
        last_revision = permit->revision;
      }
      ASSERT_LE(acting, 1);
    }
  }
  std::printf("[Lease] %lld acting instants, %lld leaderships\n", static_cast<long long>(acted),
              static_cast<long long>(takeovers));
  EXPECT_GT(acted, 0);
  EXPECT_GT(takeovers, seeds.runs);  // leadership changed hands, so the property was tested
}
