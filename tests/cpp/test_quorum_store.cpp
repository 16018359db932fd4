// Leaderless quorum store: behaviour tests and a randomised property test (seeded, replayable).
#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <string>

#include "replikit/errors.hpp"
#include "replikit/quorum_store.hpp"
#include "replikit/random.hpp"

#include "testing.hpp"

namespace {

using namespace replikit;
using replikit::testing::expect_invalid;

TEST(QuorumStore, ClockOrder) {
  EXPECT_EQ(compare_clocks({{"a", 1}}, {{"a", 1}}), ClockOrder::Equal);
  EXPECT_EQ(compare_clocks({{"a", 1}}, {{"a", 2}}), ClockOrder::Before);
  EXPECT_EQ(compare_clocks({{"a", 1}, {"b", 1}}, {{"a", 1}}), ClockOrder::After);
  EXPECT_EQ(compare_clocks({{"a", 1}}, {{"b", 1}}), ClockOrder::Concurrent);
  EXPECT_EQ(compare_clocks({}, {{"b", 1}}), ClockOrder::Before);
  EXPECT_EQ(merge_clocks({{"a", 2}}, {{"a", 1}, {"b", 3}}), (VectorClock{{"a", 2}, {"b", 3}}));
}

TEST(QuorumStore, QuorumDatabaseIsMajorityNewestWins) {
  QuorumDatabase db(5);
  EXPECT_EQ(db.options().w, 3);
  EXPECT_EQ(db.options().r, 3);
  ASSERT_TRUE(db.put("k", "v1").ok());
  ASSERT_TRUE(db.put("k", "v2").ok());
  const ReadResult read = db.get("k");
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read.siblings.size(), 1u);
  EXPECT_EQ(read.siblings[0].value, "v2");
  const auto home = db.preference_list("k");
  db.fail_node(home[0]);
  db.fail_node(home[1]);
  EXPECT_TRUE(db.put("k", "v3").ok());
  db.fail_node(home[2]);
  const WriteResult refused = db.put("k", "v4");
  EXPECT_FALSE(refused.ok());
  EXPECT_FALSE(refused.reason.empty());
  EXPECT_FALSE(db.get("k").ok());
}

TEST(QuorumStore, PartialQuorumReadsStaleUntilReplicationArrives) {
  QuorumStoreOptions o;
  o.n = 3;
  o.w = 1;
  o.r = 1;
  o.read_repair = false;
  QuorumStore store(o);
  const auto home = store.preference_list("k");
  // Writes land first on the fastest node, reads go to the same fastest node: make the
  // write's fastest node differ from the read's by changing latency in between.
  store.set_node_latency_ms(home[0], 1);
  store.set_node_latency_ms(home[1], 5);
  store.set_node_latency_ms(home[2], 9);
  ASSERT_TRUE(store.put("k", "v1").ok());
  EXPECT_EQ(store.in_flight(), 2u);
  store.set_node_latency_ms(home[0], 20);  // now home[1] answers reads first
  EXPECT_FALSE(store.get("k").found());    // stale: the write has not reached it yet
  store.advance_ms(5);
  const ReadResult read = store.get("k");
  ASSERT_TRUE(read.found());
  EXPECT_EQ(read.siblings[0].value, "v1");
  store.advance_ms(10);
  EXPECT_EQ(store.in_flight(), 0u);
  EXPECT_EQ(store.stats().deliveries, 2u);
}

TEST(QuorumStore, VectorClocksKeepConcurrentSiblingsAndResolveThem) {
  QuorumStoreOptions o;
  o.versioning = Versioning::VectorClocks;
  QuorumStore store(o);
  // Two clients write without having read each other's write: both survive.
  ASSERT_TRUE(store.put("cart", "milk", "alice").ok());
  ASSERT_TRUE(store.put("cart", "eggs", "bob").ok());
  ReadResult read = store.get("cart");
  ASSERT_TRUE(read.conflict());
  std::vector<std::string> values{read.siblings[0].value, read.siblings[1].value};
  std::sort(values.begin(), values.end());
  EXPECT_EQ(values, (std::vector<std::string>{"eggs", "milk"}));
  // A write carrying the read's context supersedes both.
  ASSERT_TRUE(store.put("cart", "eggs,milk", "alice", read.context).ok());
  read = store.get("cart");
  ASSERT_EQ(read.siblings.size(), 1u);
  EXPECT_EQ(read.siblings[0].value, "eggs,milk");
  // Last-writer-wins would have kept only one of the two silently.
  QuorumStore lww(QuorumStoreOptions{});
  lww.put("cart", "milk", "alice");
  lww.put("cart", "eggs", "bob");
  EXPECT_EQ(lww.get("cart").siblings.size(), 1u);
}

TEST(QuorumStore, ReadRepairFixesStaleReplicas) {
  QuorumStoreOptions o;
  o.n = 3;
  o.w = 2;
  o.r = 2;
  QuorumStore store(o);
  const auto home = store.preference_list("k");
  store.fail_node(home[2]);
  ASSERT_TRUE(store.put("k", "v1").ok());
  store.recover_node(home[2]);
  EXPECT_TRUE(store.replica_versions(home[2], "k").empty());
  const ReadResult read = store.get("k");
  EXPECT_EQ(read.repaired, 1);
  ASSERT_EQ(store.replica_versions(home[2], "k").size(), 1u);
  EXPECT_EQ(store.replica_versions(home[2], "k")[0].value, "v1");
}

TEST(QuorumStore, HintedHandoffDeliversOnRecoveryWithinItsBound) {
  QuorumStoreOptions o;
  o.read_repair = false;
  o.hinted_handoff = true;
  o.max_hints = 2;
  QuorumStore store(o);
  const auto home = store.preference_list("a");
  store.fail_node(home[2]);
  WriteResult w = store.put("a", "1");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.hinted, 1);
  store.put("a", "2");
  store.put("a", "3");  // third hint exceeds the bound
  EXPECT_EQ(store.hints_pending(), 2u);
  EXPECT_EQ(store.stats().hints_dropped, 1u);
  store.recover_node(home[2]);
  EXPECT_EQ(store.hints_pending(), 0u);
  EXPECT_EQ(store.stats().hints_delivered, 2u);
  ASSERT_EQ(store.replica_versions(home[2], "a").size(), 1u);
  EXPECT_EQ(store.replica_versions(home[2], "a")[0].value, "2");  // "3" was dropped
}

TEST(QuorumStore, SloppyQuorumWritesThroughFallbacks) {
  QuorumStoreOptions o;
  o.n = 3;
  o.w = 3;
  o.r = 1;
  o.nodes = 5;
  o.read_repair = false;
  QuorumStore strict(o);
  o.sloppy_quorum = true;
  QuorumStore sloppy(o);
  for (QuorumStore* s : {&strict, &sloppy}) s->fail_node(s->preference_list("k")[0]);
  EXPECT_FALSE(strict.put("k", "v").ok());
  const WriteResult w = sloppy.put("k", "v");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.hinted, 1);
  const auto pref = sloppy.preference_list("k");
  EXPECT_EQ(sloppy.replica_versions(pref[3], "k").size(), 1u);  // the fallback holds it
  sloppy.recover_node(pref[0]);
  EXPECT_EQ(sloppy.replica_versions(pref[0], "k").size(), 1u);  // handed off
  EXPECT_TRUE(sloppy.replica_versions(pref[3], "k").empty());   // and dropped by the fallback
}

// Property: after a successful strong-quorum write, a successful strong-quorum read never
// returns an older version, under random failures, recoveries, latency changes, time
// advances and concurrent writers. Reference: a map of the newest acknowledged version.
void run_property(Versioning versioning, std::uint64_t seed) {
  Xoshiro256 rng(seed);
  for (int round = 0; round < 40; ++round) {
    QuorumStoreOptions o;
    o.n = 3 + static_cast<int>(rng.below(4));  // 3..6
    o.w = 1 + static_cast<int>(rng.below(static_cast<std::uint32_t>(o.n)));
    o.r = o.n + 1 - o.w + static_cast<int>(rng.below(static_cast<std::uint32_t>(o.w)));  // W + R > N
    o.nodes = o.n + static_cast<int>(rng.below(3));
    o.versioning = versioning;
    o.read_repair = rng.below(2) == 1;
    o.hinted_handoff = rng.below(2) == 1;
    o.max_hints = 1 + rng.below(8);
    QuorumStore store(o);
    std::map<std::string, StoredVersion> acknowledged;
    std::map<std::string, VectorClock> last_context;
    for (int step = 0; step < 300; ++step) {
      const std::string key = "k" + std::to_string(rng.below(4));
      const int node = static_cast<int>(rng.below(static_cast<std::uint32_t>(o.nodes)));
      switch (rng.below(7)) {
        case 0:
          store.fail_node(node);
          break;
        case 1:
          store.recover_node(node);
          break;
        case 2:
          store.set_node_latency_ms(node, static_cast<double>(rng.below(20)));
          break;
        case 3:
          store.advance_ms(static_cast<double>(rng.below(10)));
          break;
        case 4:
        case 5: {
          const std::string client = "c" + std::to_string(rng.below(3));
          const WriteResult w = store.put(key, "v" + std::to_string(step), client, last_context[key]);
          if (w.ok()) acknowledged[key] = w.version;
          break;
        }
        default: {
          const ReadResult r = store.get(key);
          if (!r.ok()) break;
          last_context[key] = r.context;
          auto it = acknowledged.find(key);
          if (it == acknowledged.end()) break;
          ASSERT_TRUE(r.found()) << "seed " << seed << " round " << round << " step " << step;
          if (versioning == Versioning::LastWriterWins) {
            ASSERT_GE(r.siblings[0].timestamp, it->second.timestamp)
                << "older version returned; seed " << seed << " round " << round << " step " << step;
          } else {
            const ClockOrder order = compare_clocks(it->second.clock, r.context);
            ASSERT_TRUE(order == ClockOrder::Before || order == ClockOrder::Equal)
                << "read misses an acknowledged write; seed " << seed << " round " << round << " step " << step;
          }
        }
      }
    }
  }
}

std::uint64_t property_seed() { return replikit::testing::printed_seed("quorum store", 4242ull); }

TEST(QuorumStore, StrongQuorumNeverReadsOlderThanAcknowledgedLww) {
  const std::uint64_t seed = property_seed();
  for (std::uint64_t s = seed; s < seed + 5; ++s) run_property(Versioning::LastWriterWins, s);
}

TEST(QuorumStore, StrongQuorumNeverReadsOlderThanAcknowledgedVectorClocks) {
  const std::uint64_t seed = property_seed();
  for (std::uint64_t s = seed; s < seed + 5; ++s) run_property(Versioning::VectorClocks, s);
}

TEST(QuorumStore, BadInputNamesTheArgument) {
  auto with = [](auto change) {
    QuorumStoreOptions o;
    change(o);
    return o;
  };
  expect_invalid("n", [&] { QuorumStore(with([](auto& o) { o.n = 0; })); });
  expect_invalid("w", [&] { QuorumStore(with([](auto& o) { o.w = 4; })); });
  expect_invalid("r", [&] { QuorumStore(with([](auto& o) { o.r = 0; })); });
  expect_invalid("nodes", [&] { QuorumStore(with([](auto& o) { o.nodes = 2; })); });
  expect_invalid("max_hints", [&] { QuorumStore(with([](auto& o) { o.max_hints = 0; })); });
  expect_invalid("n", [] { QuorumDatabase(0); });
  QuorumStore store(QuorumStoreOptions{});
  expect_invalid("node", [&] { store.fail_node(3); });
  expect_invalid("node", [&] { store.recover_node(-1); });
  expect_invalid("latency_ms", [&] { store.set_node_latency_ms(0, -1); });
  expect_invalid("latency_ms", [&] { store.set_node_latency_ms(0, std::numeric_limits<double>::quiet_NaN()); });
  expect_invalid("dt_ms", [&] { store.advance_ms(-1); });
  expect_invalid("client", [&] { store.put("k", "v", ""); });
}

TEST(QuorumStore, InFlightBoundIsEnforcedWithoutPartialWrites) {
  QuorumStoreOptions o;
  o.w = 1;
  o.max_in_flight = 2;
  QuorumStore store(o);
  ASSERT_TRUE(store.put("k", "v1").ok());  // two async deliveries
  EXPECT_THROW(store.put("k", "v2"), CapacityExceeded);
  EXPECT_EQ(store.get("k").siblings.at(0).value, "v1");
  store.advance_ms(10);
  EXPECT_TRUE(store.put("k", "v2").ok());
}

}  // namespace
