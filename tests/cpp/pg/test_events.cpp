// The event ring (replikit/pg/events.hpp) without a server: sequences, overwrites counted per
// reader, bounded waits, close; concurrent publishers against one reader; and a database whose
// nodes cannot be reached reports each node down exactly once however many probes fail, and
// publishes each lag transition before routing shows it.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "replikit/errors.hpp"
#include "replikit/lag.hpp"
#include "replikit/pg/database.hpp"
#include "replikit/pg/events.hpp"

namespace {

using replikit::pg::Event;
using replikit::pg::EventBatch;
using replikit::pg::EventKind;
using replikit::pg::EventLog;

Event event(EventKind kind, std::string node) {
  Event e;
  e.kind = kind;
  e.node = std::move(node);
  return e;
}

TEST(EventLog, SequencesOverwritesAndMissedPerReader) {
  EventLog log(3);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(log.publish(event(EventKind::NodeDown, "n" + std::to_string(i))), i + 1u);
  EXPECT_EQ(log.last_sequence(), 5u);
  EXPECT_EQ(log.dropped(), 2u);
  EventBatch all = log.read(0, 100);
  EXPECT_EQ(all.missed, 2u);
  ASSERT_EQ(all.events.size(), 3u);
  EXPECT_EQ(all.events.front().sequence, 3u);
  EXPECT_EQ(all.events.front().node, "n2");
  EXPECT_GT(all.events.front().time_ns, 0);
  EXPECT_EQ(all.last_sequence, 5u);
  EventBatch one = log.read(2, 1);  // up to date reader: nothing missed, one at a time
  EXPECT_EQ(one.missed, 0u);
  ASSERT_EQ(one.events.size(), 1u);
  EXPECT_EQ(one.last_sequence, 3u);
  EXPECT_TRUE(log.read(5, 10).events.empty());
  EXPECT_THROW(EventLog(0), replikit::InvalidArgument);
}

TEST(EventLog, WaitIsBoundedAndEndsAtClose) {
  EventLog log(4);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(log.wait(0, 10, 30'000'000).events.empty());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(25));
  std::thread closer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    log.publish(event(EventKind::NodeUp, "a"));
    log.close();
  });
  EventBatch b = log.wait(0, 10, 10'000'000'000);
  closer.join();
  ASSERT_EQ(b.events.size(), 1u);
  EXPECT_TRUE(log.wait(b.last_sequence, 10, 10'000'000'000).closed);  // at once
}

TEST(EventLog, ConcurrentPublishersLoseNothingUncounted) {
  EventLog log(64);
  constexpr int kThreads = 4, kEach = 5000;
  std::atomic<bool> done{false};
  std::uint64_t seen = 0, missed = 0, after = 0;
  std::thread reader([&] {
    while (true) {
      const bool finished = done.load();
      EventBatch b = log.wait(after, 16, 1'000'000);
      missed += b.missed;
      for (const Event& e : b.events) {
        EXPECT_GT(e.sequence, after);
        after = e.sequence;
        ++seen;
      }
      after = b.last_sequence;
      if (finished && b.events.empty() && b.missed == 0) break;
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&log, t] {
      for (int i = 0; i < kEach; ++i) log.publish(event(EventKind::ReadRetry, "w" + std::to_string(t)));
    });
  }
  for (auto& w : writers) w.join();
  done.store(true);
  reader.join();
  EXPECT_EQ(seen + missed, static_cast<std::uint64_t>(kThreads * kEach));
  EXPECT_EQ(after, static_cast<std::uint64_t>(kThreads * kEach));
}

// A node no server answers (port 1).
replikit::pg::NodeConfig unreachable(const std::string& name) {
  replikit::pg::NodeConfig c;
  c.name = name;
  c.dsn = "host=127.0.0.1 port=1";
  return c;
}

replikit::pg::DatabaseOptions fast_probes() {
  replikit::pg::DatabaseOptions o;
  o.probe_interval_ms = 5;
  return o;
}

TEST(DatabaseEvents, UnreachableNodesAreDownOnceEach) {
  replikit::pg::ReplicatedDatabase db(unreachable("p"), {unreachable("r")}, fast_probes());
  ASSERT_TRUE(db.wait_probes(5, 5000));
  db.mark_down("r");  // already down: no second event
  db.close();
  EventBatch b = db.events()->read(0, 100);
  EXPECT_TRUE(b.closed);
  ASSERT_EQ(b.events.size(), 2u);
  std::set<std::string> nodes;
  for (const Event& e : b.events) {
    EXPECT_EQ(e.kind, EventKind::NodeDown);
    EXPECT_FALSE(e.message.empty());
    nodes.insert(e.node);
  }
  EXPECT_EQ(nodes, (std::set<std::string>{"p", "r"}));
  EXPECT_STREQ(replikit::pg::to_string(EventKind::Lagging), "lagging");
}

// A reader polling while the prober finds both nodes unreachable: a node it sees out of routing
// has its NodeDown in the log already (published before routing drops the node).
TEST(DatabaseEvents, ANodeOutOfRoutingHasItsDownEventPublished) {
  replikit::pg::ReplicatedDatabase db(unreachable("p"), {unreachable("r")}, fast_probes());
  const auto& topology = *db.topology();
  std::set<std::string> published;
  std::uint64_t cursor = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (published.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::vector<std::string> out_of_routing;
    for (int i = 0; i < topology.size(); ++i) {
      if (!(topology.flags(i) & replikit::detail::kUpBit)) out_of_routing.push_back(topology.name(i));
    }
    for (const Event& e : db.events()->read(cursor, 100).events) {
      cursor = e.sequence;
      if (e.kind == EventKind::NodeDown) published.insert(e.node);
    }
    for (const std::string& name : out_of_routing) ASSERT_EQ(published.count(name), 1u) << name;
  }
  EXPECT_EQ(published, (std::set<std::string>{"p", "r"}));
}

// A database whose nodes are unreachable (port 1), so its prober feeds its lag tracker nothing:
// the test feeds it, the replica turning LAGGING and back on every round.
class LagEventOrder : public ::testing::Test {
 protected:
  LagEventOrder() : db_(unreachable("p"), {unreachable("r")}, options()) {}
  static replikit::pg::DatabaseOptions options() {
    replikit::pg::DatabaseOptions o;
    o.lag.max_lag_ms = 10;
    o.lag.recover_lag_ms = 5;
    o.event_capacity = 1 << 20;  // the reader misses none
    return o;
  }
  // Round i at i * 100 ms: the primary 1000 bytes per ms ahead; the replica 50 ms behind on
  // even rounds (LAGGING from round 2: at round 0 the history begins there), caught up on odd
  // ones (recovered).
  void round(int i) {
    const std::int64_t ms = 100 * static_cast<std::int64_t>(i);
    const replikit::Lsn primary(static_cast<std::uint64_t>(1'000'000 + ms * 1000));
    const replikit::Lsn replica(primary.value - (i % 2 == 0 ? 50'000u : 0u));
    db_.lag_tracker()->primary_sample(ms * 1'000'000, primary);
    db_.lag_tracker()->replica_sample("r", ms * 1'000'000, replica, replica);
  }
  // The replica's state as routing sees it.
  bool lagging_in_routing() const {
    return db_.topology()->info(db_.topology()->index_of("r")).lag_state == replikit::LagState::Lagging;
  }
  replikit::pg::ReplicatedDatabase db_;
};

// Polled after each round: the newest lag event always says what routing shows.
TEST_F(LagEventOrder, EachRoutingChangeFindsItsEventPublished) {
  std::uint64_t cursor = 0;
  EventKind last = EventKind::Recovered;
  for (int i = 0; i < 200; ++i) {
    round(i);
    const bool lagging = lagging_in_routing();
    for (const Event& e : db_.events()->read(cursor, 1000).events) {
      cursor = e.sequence;
      if (e.kind == EventKind::Lagging || e.kind == EventKind::Recovered) last = e.kind;
    }
    ASSERT_EQ(last, lagging ? EventKind::Lagging : EventKind::Recovered) << "round " << i;
  }
  EXPECT_EQ(db_.lag_tracker()->events(0, 1000).size(), 198u);
}

// A reader polling concurrently reads routing, then the events: every change of state it has
// seen in routing (at least one transition each) has its event in the log already.
TEST_F(LagEventOrder, AConcurrentReaderNeverSeesRoutingAheadOfTheEvents) {
  constexpr int kRounds = 4000;
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> reads{0};
  std::thread feeder([&] {
    // Each round waits (bounded) for two more reads, so that the two threads interleave even when
    // one of them is descheduled for a while.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (int i = 0; i < kRounds; ++i) {
      const std::uint64_t before = reads.load();
      round(i);
      while (reads.load() < before + 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    }
    done.store(true);
  });
  std::uint64_t cursor = 0, published = 0, at_least = 0;
  while (true) {
    const bool finished = done.load();
    const bool lagging = lagging_in_routing();
    if (lagging != (at_least % 2 == 1)) ++at_least;  // transitions alternate, from OK
    for (const Event& e : db_.events()->read(cursor, 100000).events) {
      cursor = e.sequence;
      if (e.kind == EventKind::Lagging || e.kind == EventKind::Recovered) ++published;
    }
    reads.fetch_add(1);
    if (published < at_least || finished) break;
  }
  feeder.join();
  EXPECT_GE(published, at_least) << "after " << reads.load() << " reads";
  EXPECT_GT(at_least, 100u);  // the reader saw the replica's state change many times
  EXPECT_EQ(published, static_cast<std::uint64_t>(kRounds - 2));  // every transition, from round 2
}

}  // namespace
