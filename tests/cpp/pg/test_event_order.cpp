// An event is published before routing shows the change it announces, also for role events,
// for the primary a promotion deposes, and when a call marks a node down while a good probe of
// it completes; and a switchover drain's counts come from one instant. Each test looks at the
// moment an event is published (ReplicatedDatabase::set_event_hook) or at the window a race
// needs (set_mark_down_hook, set_call_end_hook), so none depends on timing. They run against
// the cluster of REPLIKIT_PG_PRIMARY_DSN (skipped without it).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pg_testing.hpp"
#include "replikit/lease.hpp"
#include "replikit/pg/database.hpp"
#include "replikit/pg/events.hpp"

namespace {

using replikit::pg::DatabaseOptions;
using replikit::pg::Event;
using replikit::pg::EventKind;
using replikit::pg::ReplicatedDatabase;
using replikit::pg::testing::node;

// What routing showed when an event was published.
struct Seen {
  EventKind kind;
  std::string node;
  std::string message;
  bool routed;          // the event's node was in routing
  std::string primary;  // the topology's primary
};

// Records, for every event `db` publishes, what routing showed at that moment.
class Recorder {
 public:
  explicit Recorder(ReplicatedDatabase& db) : db_(db) {
    db.set_event_hook([this](const Event& e) {
      const auto& topology = *db_.topology();
      const int i = topology.find(e.node);
      Seen s{e.kind, e.node, e.message, i >= 0 && (topology.flags(i) & replikit::detail::kUpBit) != 0,
             topology.name(topology.primary())};
      std::lock_guard<std::mutex> lock(mutex_);
      seen_.push_back(std::move(s));
    });
  }
  ~Recorder() { db_.set_event_hook({}); }
  std::vector<Seen> of(EventKind kind, const std::string& name) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<Seen> out;
    for (const Seen& s : seen_) {
      if (s.kind == kind && s.node == name) out.push_back(s);
    }
    return out;
  }

 private:
  ReplicatedDatabase& db_;
  std::mutex mutex_;
  std::vector<Seen> seen_;
};

// Waits (bounded) until `ready` holds.
template <typename Ready>
bool eventually(Ready ready) {
  for (int i = 0; i < 1000; ++i) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return ready();
}

DatabaseOptions fast_probes() {
  DatabaseOptions o;
  o.probe_interval_ms = 10;
  return o;
}

// "r" is the primary's server named as a replica (not in recovery): its RoleMismatch is published
// while it is still routed. A coordinator's topology then makes it the primary: RoleRestored
// while it is still out of routing, and the deposed "p" gets its RoleMismatch while it is still
// the routed primary.
TEST(PgEventOrder, RoleEventsAndTheDeposedPrimaryComeBeforeRouting) {
  const char* primary = std::getenv("REPLIKIT_PG_PRIMARY_DSN");
  if (primary == nullptr) GTEST_SKIP() << "REPLIKIT_PG_PRIMARY_DSN not set";
  ReplicatedDatabase db(node("p", primary), {node("r", primary)}, fast_probes());
  Recorder events(db);
  ASSERT_TRUE(eventually([&] { return !events.of(EventKind::RoleMismatch, "r").empty(); }));
  EXPECT_TRUE(events.of(EventKind::RoleMismatch, "r").front().routed) << "published after routing dropped r";
  ASSERT_TRUE(eventually([&] { return !db.node("r").up; }));

  replikit::PublishedTopology published;
  published.primary = "r";
  published.replicas.push_back(replikit::PublishedReplica{"p", "down"});
  published.revision = published.leader_revision = 1;
  ASSERT_EQ(db.apply_topology(published), replikit::TopologyVerdict::Applied);
  ASSERT_TRUE(eventually([&] { return !events.of(EventKind::RoleRestored, "r").empty(); }));
  const Seen restored = events.of(EventKind::RoleRestored, "r").front();
  EXPECT_FALSE(restored.routed) << "published after routing took r back";
  ASSERT_TRUE(eventually([&] { return !events.of(EventKind::RoleMismatch, "p").empty(); }));
  const Seen deposed = events.of(EventKind::RoleMismatch, "p").front();
  EXPECT_TRUE(deposed.routed) << "published after routing dropped p";
  EXPECT_EQ(deposed.primary, "p") << "published after the promotion";
  EXPECT_NE(deposed.message.find("deposed"), std::string::npos) << deposed.message;
  ASSERT_TRUE(eventually([&] { return db.node("r").up && !db.node("p").up; }));
  EXPECT_EQ(events.of(EventKind::RoleMismatch, "p").size(), 1u);  // its probes agree: no second one
  EXPECT_EQ(events.of(EventKind::RoleRestored, "p").size(), 0u);
}

// The primary is unreachable and "r" (the primary's server) is out of recovery: the prober adopts
// it. Failover for it and the deposed primary's RoleMismatch are published before the topology
// shows the promotion.
TEST(PgEventOrder, AnAdoptedPrimaryIsAnnouncedBeforeRoutingShowsIt) {
  const char* primary = std::getenv("REPLIKIT_PG_PRIMARY_DSN");
  if (primary == nullptr) GTEST_SKIP() << "REPLIKIT_PG_PRIMARY_DSN not set";
  ReplicatedDatabase db(node("p", "host=127.0.0.1 port=1"), {node("r", primary)}, fast_probes());
  Recorder events(db);
  ASSERT_TRUE(eventually([&] { return db.topology()->name(db.topology()->primary()) == "r"; }));
  const auto failover = events.of(EventKind::Failover, "r");
  ASSERT_EQ(failover.size(), 1u);
  EXPECT_EQ(failover.front().primary, "p") << "published after the promotion";
  const auto deposed = events.of(EventKind::RoleMismatch, "p");
  ASSERT_EQ(deposed.size(), 1u);
  EXPECT_EQ(deposed.front().primary, "p") << "published after the promotion";
  EXPECT_TRUE(db.node("p").role_mismatch);  // as its last role event says, though it never answered
  ASSERT_TRUE(eventually([&] { return db.node("r").up; }));
}

// The prober adopts "r" (the primary's server, out of recovery) while another thread removes r
// through the Topology directly (as a Python call to db.topology.remove_replica can): the
// removal waits for the promotion, which comes with its events, or wins and the promotion
// publishes nothing. Never a Failover event for a promotion that did not happen. The hook
// gives the other thread a second at the moment the Failover event is published.
TEST(PgEventOrder, AFailoverEventFollowsOnlyAPromotionThatHappens) {
  const char* primary = std::getenv("REPLIKIT_PG_PRIMARY_DSN");
  if (primary == nullptr) GTEST_SKIP() << "REPLIKIT_PG_PRIMARY_DSN not set";
  ReplicatedDatabase db(node("p", "host=127.0.0.1 port=1"), {node("r", primary)}, fast_probes());
  std::mutex mutex;
  std::condition_variable removed_cv;
  bool removal_done = false;
  std::string removal;  // what the direct removal said
  std::thread remover;
  db.set_event_hook([&](const Event& e) {
    std::unique_lock<std::mutex> lock(mutex);
    if (e.kind != EventKind::Failover || remover.joinable()) return;
    remover = std::thread([&] {
      std::string said = "removed";
      try {
        db.topology()->remove_replica("r");
      } catch (const std::exception& error) {
        said = error.what();
      }
      std::lock_guard<std::mutex> done(mutex);
      removal = said;
      removal_done = true;
      removed_cv.notify_all();
    });
    removed_cv.wait_for(lock, std::chrono::seconds(1), [&] { return removal_done; });
  });
  const bool promoted = eventually([&] { return db.topology()->name(db.topology()->primary()) == "r"; });
  ASSERT_TRUE(eventually([&] {
    std::lock_guard<std::mutex> lock(mutex);
    return remover.joinable();
  }));
  remover.join();
  db.set_event_hook({});
  EXPECT_TRUE(promoted) << "a Failover event for 'r', which was then removed: " << removal;
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_NE(removal.find("is the primary"), std::string::npos) << removal;
  int failovers = 0;
  for (const Event& e : db.events()->read(0, 1000).events) failovers += e.kind == EventKind::Failover;
  EXPECT_EQ(failovers, 1);
}

// A call marks the primary down while a good probe of it completes (the hook waits for two
// probes in the window): whichever comes last, routing and the last event agree.
TEST(PgEventOrder, MarkDownRacingAGoodProbeLeavesRoutingAndTheLastEventAgreeing) {
  const char* primary = std::getenv("REPLIKIT_PG_PRIMARY_DSN");
  if (primary == nullptr) GTEST_SKIP() << "REPLIKIT_PG_PRIMARY_DSN not set";
  DatabaseOptions o;
  o.probe_interval_ms = 50;
  ReplicatedDatabase db(node("p", primary), {}, o);
  ASSERT_TRUE(db.wait_probes(2, 5000));
  std::atomic<bool> probed{false};
  db.set_mark_down_hook([&] { probed = db.wait_probes(2, 5000); });
  db.mark_down("p");
  const bool routed = db.node("p").up;
  db.close();  // no probe after this
  EXPECT_TRUE(probed.load());
  EventKind last = EventKind::NodeUp;
  int downs = 0;
  for (const Event& e : db.events()->read(0, 1000).events) {
    if (e.node != "p" || (e.kind != EventKind::NodeDown && e.kind != EventKind::NodeUp)) continue;
    last = e.kind;
    downs += e.kind == EventKind::NodeDown;
  }
  EXPECT_EQ(downs, 1);
  const bool routed_at_close = (db.topology()->flags(0) & replikit::detail::kUpBit) != 0;
  EXPECT_EQ(routed_at_close, last == EventKind::NodeUp)
      << "p is " << (routed_at_close ? "in" : "out of") << " routing, its last event "
      << replikit::pg::to_string(last) << " (routed right after mark_down: " << routed << ")";
}

// Three calls in flight on the primary at the hold end while it is held; at each end (the hook
// runs between its counted end and its leaving the router's count) and after, the drain's counts
// add up: drained + cut == 3.
TEST(PgEventOrder, HeldCallsAreCountedDrainedOrInFlightNeverBoth) {
  const char* primary = std::getenv("REPLIKIT_PG_PRIMARY_DSN");
  if (primary == nullptr) GTEST_SKIP() << "REPLIKIT_PG_PRIMARY_DSN not set";
  DatabaseOptions o;
  o.acquire_timeout_ms = 60000;
  ReplicatedDatabase db(node("p", primary), {}, o);
  ASSERT_TRUE(db.wait_probes(2, 5000));
  const int p = db.topology()->index_of("p");
  std::atomic<bool> held{false};
  replikit::pg::PrimaryCalls at_hold;
  std::mutex sums_mutex;
  std::vector<std::int64_t> sums;
  auto sum = [&] {
    const replikit::pg::PrimaryCalls now = db.primary_calls(p);
    return static_cast<std::int64_t>(now.ended - at_hold.ended) + now.in_flight;
  };
  db.set_call_end_hook([&] {
    if (!held.load()) return;
    std::lock_guard<std::mutex> lock(sums_mutex);
    sums.push_back(sum());
  });
  std::vector<std::thread> calls;
  for (int i = 1; i <= 3; ++i) {
    calls.emplace_back([&db, i] {
      replikit::Session own;
      db.execute(own, "SELECT pg_sleep(" + std::to_string(0.1 * i) + ")");
    });
  }
  ASSERT_TRUE(eventually([&] { return db.primary_calls(p).in_flight == 3; }));
  at_hold = db.hold_primary(true);
  held = true;
  EXPECT_EQ(at_hold.in_flight, 3);
  for (auto& t : calls) t.join();
  db.hold_primary(false);
  std::lock_guard<std::mutex> lock(sums_mutex);
  ASSERT_EQ(sums.size(), 3u);
  for (std::int64_t s : sums) EXPECT_EQ(s, 3);
  EXPECT_EQ(sum(), 3);
  EXPECT_EQ(db.primary_calls(p).in_flight, 0);
}

}  // namespace
