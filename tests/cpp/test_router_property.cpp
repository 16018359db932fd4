// Randomised routing against a slow, obvious reference (issue 2).
//
// Each scenario builds a random topology (1..64 replicas, random up/down, weights, regions),
// feeds a random lag history through a LagTracker, runs random sessions (writes with commit
// LSNs, reads that observe what the serving node had, token merges between sessions) through a
// Router with a random policy, and checks every decision:
//  (a) a replica chosen for RYW has replayed the session's write LSN, for Monotonic its read
//      LSN, for Causal both;
//  (b) the chosen replica is up, a replica, and not LAGGING;
//  (c) the primary is chosen only when the reference finds no replica that qualifies, and then
//      with the reference's reason;
// plus what each policy promises, and that the counters add up.
//
// Every failure carries the scenario seed. Replay one scenario with
//   REPLIKIT_TEST_SEED=<seed> ./replikit_tests --gtest_filter='RouterProperty.*'
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "replikit/lag.hpp"
#include "replikit/random.hpp"
#include "replikit/router.hpp"

#include "testing.hpp"

using namespace replikit;
using replikit::testing::replay_hint;
using replikit::testing::run_seeds;
using replikit::testing::token_ms_ceil;

namespace {

constexpr std::int64_t kMs = 1000000;

// What the reference expects of one read.
struct Expected {
  bool replica_allowed = true;
  Reason primary_reason = Reason::NoReplicaUp;  // when no replica qualifies
  Reason served_reason = Reason::ReplicaAvailable;
  Lsn required;
  std::vector<int> eligible;  // replicas that qualify
};

// The documented rules, restated plainly over a snapshot of every node.
Expected reference(const std::vector<NodeInfo>& nodes, const Session& s, Consistency level, std::int64_t now_ns,
                   double max_staleness_ms, double time_window_ms) {
  Expected e;
  if (level == Consistency::Strong) {
    e.replica_allowed = false;
    e.primary_reason = Reason::StrongRead;
    return e;
  }
  const bool needs_writes = level == Consistency::ReadYourWrites || level == Consistency::Causal;
  if (needs_writes && s.untracked_write_ns != kNever && time_window_ms > 0 &&
      now_ns - s.untracked_write_ns < std::llround(time_window_ms * 1e6)) {
    e.replica_allowed = false;
    e.primary_reason = Reason::RecentWrite;
    return e;
  }
  switch (level) {
    case Consistency::ReadYourWrites: e.required = s.write_lsn; break;
    case Consistency::Monotonic: e.required = s.read_lsn; break;
    case Consistency::Causal: e.required = std::max(s.write_lsn, s.read_lsn); break;
    default: break;
  }
  const bool bounded = level == Consistency::BoundedStaleness;
  const std::int64_t max_lag_ns = bounded ? std::llround(max_staleness_ms * 1e6) : 0;
  e.served_reason = bounded ? Reason::ReplicaFresh : e.required.valid() ? Reason::ReplicaCaughtUp : Reason::ReplicaAvailable;

  std::vector<const NodeInfo*> up, healthy, covering;
  for (const NodeInfo& n : nodes) {
    if (n.role == Role::Replica && n.up) up.push_back(&n);  // removed nodes have Role::Removed
  }
  for (const NodeInfo* n : up) {
    if (n->lag_state != LagState::Lagging) healthy.push_back(n);
  }
  for (const NodeInfo* n : healthy) {
    if (n->replay_lsn >= e.required) covering.push_back(n);
  }
  for (const NodeInfo* n : covering) {
    if (!bounded || (n->lag_known && n->lag_ns <= max_lag_ns)) e.eligible.push_back(n->index);
  }
  e.primary_reason = up.empty()         ? Reason::NoReplicaUp
                     : healthy.empty()  ? Reason::AllReplicasLagging
                     : covering.empty() ? Reason::NoReplicaCaughtUp
                                        : Reason::NoReplicaFresh;
  return e;
}

// A deterministic test signer (not cryptographic): tokens in this test are sometimes signed.
class TestSigner final : public TokenSigner {
 public:
  std::string mac(std::string_view payload) const override {
    std::string out(16, '\0');
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (std::size_t i = 0; i < out.size(); ++i) {
      for (char c : payload) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
      out[i] = static_cast<char>(h >> 40);
    }
    return out;
  }
};

struct Totals {
  std::uint64_t scenarios = 0, decisions = 0, reads = 0, to_replica = 0, to_primary = 0;
  std::array<std::uint64_t, kReasonCount> reasons{};
};

const char* const kRegions[] = {"", "us", "eu", "ap"};

void run_scenario(std::uint64_t seed, Totals& totals) {
  SCOPED_TRACE(replay_hint(seed, "RouterProperty.*"));
  Xoshiro256 rng(seed);
  auto below = [&](std::uint64_t n) { return rng.below(static_cast<std::uint32_t>(n)); };

  // ---- topology
  // Small clusters half the time: they reach the "nothing qualifies" outcomes more often.
  const int replica_count = 1 + static_cast<int>(below(2) ? below(4) : below(64));
  auto random_spec = [&](const std::string& name) {
    NodeSpec s;
    s.name = name;
    s.region = kRegions[below(4)];
    s.weight = below(4) == 0 ? 0.0 : below(2) ? static_cast<double>(below(6)) : 5 * rng.uniform();
    s.up = below(5) != 0;
    s.priority = static_cast<int>(below(3));
    return s;
  };
  NodeSpec primary_spec = random_spec("p");
  primary_spec.up = below(10) != 0;
  std::vector<NodeSpec> specs;
  for (int i = 0; i < replica_count; ++i) specs.push_back(random_spec("r" + std::to_string(i)));
  auto t = std::make_shared<Topology>(primary_spec, specs);
  const int primary = t->primary();

  // ---- lag tracking
  LagConfig lc;
  lc.max_lag_ms = 20 + below(200);
  lc.recover_lag_ms = lc.max_lag_ms * rng.uniform();
  lc.stale_sample_ms = static_cast<double>(below(300));
  lc.history_capacity = 2 + below(64);
  if (below(4) == 0) {
    lc.max_lag_bytes = 1 + below(400000);
    lc.recover_lag_bytes = static_cast<std::int64_t>(below(static_cast<std::uint64_t>(lc.max_lag_bytes) + 1));
  }
  LagTracker tracker(t, lc);

  // ---- router
  RouterConfig rc;
  rc.policy = static_cast<Policy>(below(5));
  rc.time_window_ms = below(3) == 0 ? 0.0 : static_cast<double>(below(100));
  rc.seed = rng.next();
  rc.sticky_reads = below(4) == 0 ? 1 + below(5) : 1;
  if (below(2)) {
    const NodeSpec& some = specs[below(specs.size())];
    rc.region = some.region;  // may be empty: no default region
  }
  Router router(t, rc);
  SCOPED_TRACE(std::string("policy=") + to_string(rc.policy) + " sticky_reads=" + std::to_string(rc.sticky_reads) +
               " replicas=" + std::to_string(replica_count));

  // ---- the test's own record of what it fed in
  std::vector<std::uint64_t> fed_replay(kMaxNodes, 0);
  std::int64_t now = 0;
  std::uint64_t primary_lsn = 1000 + below(100000);  // the primary's real position
  tracker.primary_sample(now, Lsn(primary_lsn));
  std::array<Session, 3> sessions{};
  TestSigner signer;
  std::vector<std::uint64_t> by_node(kMaxNodes, 0);
  std::array<std::uint64_t, kReasonCount> by_reason{};
  std::uint64_t decisions = 0;
  int added = 0;
  // Requests held open (LeastOutstanding): node indexes with a begin() pending.
  std::vector<int> open_requests;

  auto record = [&](const Decision& d) {
    ++decisions;
    if (d.node != kNoNode) ++by_node[d.node];
    ++by_reason[static_cast<int>(d.reason)];
    ++totals.reasons[static_cast<int>(d.reason)];
  };

  const int steps = 40 + static_cast<int>(below(40));
  for (int step = 0; step < steps && !::testing::Test::HasFailure(); ++step) {
    // Mostly small steps, sometimes a long pause (stale replicas, LAGGING, expired windows).
    now += static_cast<std::int64_t>(below(12) == 0 ? below(150 * kMs) : below(3 * kMs));
    std::vector<int> replicas = t->replicas();
    const int kind = static_cast<int>(below(20));
    if (kind < 3) {
      // The primary writes (or idles); the tracker samples it.
      if (below(4) != 0) primary_lsn += below(60000);
      tracker.primary_sample(now, Lsn(primary_lsn));
    } else if (kind < 6) {
      // A replica reports; replicas never go backwards and never pass the primary.
      int node = replicas[below(replicas.size())];
      std::uint64_t lo = fed_replay[node];
      std::uint64_t replay = lo + (primary_lsn > lo ? rng.next() % (primary_lsn - lo + 1) : 0);
      if (below(3) == 0) replay = primary_lsn;  // often fully caught up
      if (below(3) == 0) {
        // Exactly at, or one byte short of, what some session needs: the boundary cases.
        const Session& s = sessions[below(sessions.size())];
        std::uint64_t target = (below(2) ? s.write_lsn : s.read_lsn).value;
        if (target > 0 && below(2)) --target;
        if (target >= lo && target <= primary_lsn) replay = target;
      }
      tracker.replica_sample(node, now, Lsn(replay + below(2000)), Lsn(replay));
      fed_replay[node] = replay;
    } else if (kind == 6) {
      // Topology churn.
      int node = replicas[below(replicas.size())];
      switch (below(6)) {
        case 0: t->set_up(t->name(node), !t->info(node).up); break;
        case 1: t->set_weight(t->name(node), below(2) ? static_cast<double>(below(6)) : 3 * rng.uniform()); break;
        case 2: t->set_up("p", below(4) != 0); break;
        case 3:
          if (replicas.size() > 1) t->remove_replica(t->name(node));
          break;
        case 4:
          if (t->size() < kMaxNodes) t->add_replica(random_spec("added" + std::to_string(added++)));
          break;
        default:
          if (rc.policy == Policy::LeastOutstanding) {
            if (!open_requests.empty() && below(2)) {
              router.end(open_requests.back());
              open_requests.pop_back();
            } else {
              router.begin(node);
              open_requests.push_back(node);
            }
          }
          break;
      }
    } else if (kind < 9) {
      // A session writes.
      Session& s = sessions[below(sessions.size())];
      Decision d = router.route_write();
      record(d);
      EXPECT_EQ(d.node, t->info(primary).up ? primary : kNoNode);
      EXPECT_EQ(d.reason, t->info(primary).up ? Reason::Write : Reason::PrimaryDown);
      if (d.node != kNoNode) {
        primary_lsn += 1 + below(5000);
        s.record_write(below(5) == 0 ? Lsn() : Lsn(primary_lsn), now);  // 0/0: commit LSN unknown
      }
    } else if (kind == 9) {
      // One session passes its token to another (causal hand-off).
      Session& from = sessions[below(sessions.size())];
      Session& to = sessions[below(sessions.size())];
      const bool sign = below(2) != 0;
      std::string token = encode_token(from, sign ? &signer : nullptr);
      Session carried = decode_token(token, sign ? &signer : nullptr);
      EXPECT_EQ(carried.write_lsn, from.write_lsn);
      EXPECT_EQ(carried.read_lsn, from.read_lsn);
      // Whole milliseconds in the token (truncated).
      if (from.untracked_write_ns != kNever) {
        EXPECT_EQ(carried.untracked_write_ns, token_ms_ceil(from.untracked_write_ns));
      } else {
        EXPECT_EQ(carried.untracked_write_ns, kNever);
      }
      to.merge(carried);
    } else {
      // A session reads.
      Session& s = sessions[below(sessions.size())];
      const auto level = static_cast<Consistency>(below(6));
      ReadOptions o;
      if (level == Consistency::BoundedStaleness) {
        o.max_staleness_ms = below(4) == 0 ? 0.0 : below(2) ? static_cast<double>(below(300)) : 300 * rng.uniform();
      }
      if (below(3) == 0) o.region = t->region_id(kRegions[below(4)]);
      std::vector<NodeInfo> before;  // indexed by node, removed ones included
      for (int i = 0; i < t->size(); ++i) before.push_back(t->info(i));
      const Expected e = reference(before, s, level, now, o.max_staleness_ms, rc.time_window_ms);
      Decision d = router.route_read(s, level, now, o);
      record(d);
      ++totals.reads;
      SCOPED_TRACE(std::string("step=") + std::to_string(step) + " level=" + to_string(level) +
                   " reason=" + to_string(d.reason) + " node=" + std::to_string(d.node) +
                   " write_lsn=" + s.write_lsn.to_string() + " read_lsn=" + s.read_lsn.to_string());
      EXPECT_EQ(d.epoch, t->epoch());

      const bool to_replica = d.node != kNoNode && d.node != primary;
      if (to_replica) {
        ++totals.to_replica;
        const NodeInfo n = t->info(d.node);
        // (b) up, a replica, not LAGGING (by the topology and by the tracker itself).
        EXPECT_EQ(n.role, Role::Replica);
        EXPECT_TRUE(n.up);
        EXPECT_EQ(n.lag_state, LagState::Ok);
        EXPECT_EQ(tracker.replica(d.node).state, LagState::Ok);
        // (a) consistency, against what the test itself fed in.
        const std::uint64_t replay = fed_replay[d.node];
        EXPECT_EQ(n.replay_lsn.value, replay);
        if (level == Consistency::ReadYourWrites || level == Consistency::Causal) {
          EXPECT_GE(replay, s.write_lsn.value);
        }
        if (level == Consistency::Monotonic || level == Consistency::Causal) {
          EXPECT_GE(replay, s.read_lsn.value);
        }
        if (level == Consistency::BoundedStaleness) {
          EXPECT_TRUE(n.lag_known);
          EXPECT_LE(n.lag_ns, std::llround(o.max_staleness_ms * 1e6));
        }
        EXPECT_NE(level, Consistency::Strong);
        // (c) the reference agrees the replica qualifies, with the same reason.
        EXPECT_TRUE(e.replica_allowed);
        EXPECT_NE(std::find(e.eligible.begin(), e.eligible.end(), d.node), e.eligible.end());
        EXPECT_EQ(d.reason, e.served_reason);
        EXPECT_EQ(d.required_lsn, e.required);
        EXPECT_FALSE(d.to_primary());

        // What each policy promises among the replicas that qualify (sticky reads keep a
        // thread on a qualifying replica instead, so only NearestRegion's promise remains).
        switch (rc.sticky_reads > 1 && rc.policy != Policy::NearestRegion ? Policy::RoundRobin : rc.policy) {
          case Policy::LeastLag: {
            bool any_known = false;
            std::int64_t best = std::numeric_limits<std::int64_t>::max();
            for (int i : e.eligible) {
              if (before[i].lag_known) {
                any_known = true;
                best = std::min(best, before[i].lag_ns);
              }
            }
            if (any_known) {
              EXPECT_TRUE(n.lag_known) << "an unknown lag was preferred to a known one";
              EXPECT_EQ(n.lag_ns, best);
            }
            break;
          }
          case Policy::NearestRegion: {
            int region = o.region != kNoNode ? o.region : (rc.region.empty() ? kNoNode : t->region_id(rc.region));
            bool local_exists = false;
            for (int i : e.eligible) local_exists = local_exists || (region != kNoNode && t->region_id(before[i].region) == region);
            if (local_exists) {
              EXPECT_EQ(t->region_id(n.region), region);
            }
            break;
          }
          case Policy::LeastOutstanding: {
            if (e.eligible.size() >= 2) {
              std::int32_t top = -1;
              int top_count = 0;
              for (int i : e.eligible) {
                if (before[i].outstanding > top) {
                  top = before[i].outstanding;
                  top_count = 1;
                } else if (before[i].outstanding == top) {
                  ++top_count;
                }
              }
              if (top_count == 1) {
                EXPECT_LT(n.outstanding, top) << "the busiest replica was chosen";
              }
            }
            break;
          }
          case Policy::Weighted: {
            bool positive = false;
            for (int i : e.eligible) positive = positive || before[i].weight > 0;
            if (positive) {
              EXPECT_GT(n.weight, 0) << "a zero-weight replica was chosen over weighted ones";
            }
            break;
          }
          case Policy::RoundRobin: break;
        }
        s.observe(Lsn(replay));
      } else {
        ++totals.to_primary;
        // (c) the primary (or nothing) only when no replica qualifies, with the reference's reason.
        EXPECT_TRUE(!e.replica_allowed || e.eligible.empty())
            << e.eligible.size() << " replicas qualified, first " << (e.eligible.empty() ? -1 : e.eligible[0]);
        EXPECT_EQ(d.reason, e.primary_reason);
        EXPECT_EQ(d.node, before[primary].up ? primary : kNoNode);
        if (d.node != kNoNode) {
          EXPECT_TRUE(d.to_primary());
          s.observe(Lsn(primary_lsn));  // the primary has everything
        }
      }
    }
  }
  while (!open_requests.empty()) {
    router.end(open_requests.back());
    open_requests.pop_back();
  }
  // Counters add up to the decisions made.
  RouterCounters c = router.counters();
  EXPECT_EQ(c.total, decisions);
  for (int k = 0; k < kReasonCount; ++k) EXPECT_EQ(c.by_reason[k], by_reason[k]) << to_string(static_cast<Reason>(k));
  for (std::size_t i = 0; i < c.by_node.size(); ++i) EXPECT_EQ(c.by_node[i], by_node[i]) << "node " << i;
  totals.decisions += decisions;
  ++totals.scenarios;
}

}  // namespace

TEST(RouterProperty, RandomScenariosAgreeWithTheReference) {
  const auto seeds = run_seeds(0x2E9117, 1200);
  Totals totals;
  for (int k = 0; k < seeds.runs; ++k) {
    run_scenario(seeds.seed(k), totals);
    if (HasFailure()) break;  // one scenario's failures are enough to read; its seed is in each
  }
  std::printf("[ RouterProperty ] %llu scenarios, %llu decisions (%llu reads: %llu to a replica, %llu to the primary/no node)\n",
              static_cast<unsigned long long>(totals.scenarios), static_cast<unsigned long long>(totals.decisions),
              static_cast<unsigned long long>(totals.reads), static_cast<unsigned long long>(totals.to_replica),
              static_cast<unsigned long long>(totals.to_primary));
  std::printf("[ RouterProperty ] by reason:");
  for (int k = 0; k < kReasonCount; ++k) {
    std::printf(" %s=%llu", to_string(static_cast<Reason>(k)), static_cast<unsigned long long>(totals.reasons[k]));
  }
  std::printf("\n");
  if (!seeds.replay) {
    EXPECT_GE(totals.decisions, 10000u);
    // The generator must reach every outcome, or the property is checked on too little.
    for (int k = 0; k < kReasonCount; ++k) {
      EXPECT_GT(totals.reasons[k], 0u) << "no decision with reason " << to_string(static_cast<Reason>(k));
    }
  }
}
