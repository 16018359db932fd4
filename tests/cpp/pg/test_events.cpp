// The event ring (replikit/pg/events.hpp) without a server: sequences, overwrites counted per
// reader, bounded waits, close; concurrent publishers against one reader; and a database whose
// nodes cannot be reached reports each node down exactly once however many probes fail.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "replikit/errors.hpp"
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

TEST(DatabaseEvents, UnreachableNodesAreDownOnceEach) {
  replikit::pg::NodeConfig p, r;
  p.name = "p";
  p.dsn = "host=127.0.0.1 port=1";
  r.name = "r";
  r.dsn = "host=127.0.0.1 port=1";
  replikit::pg::DatabaseOptions o;
  o.probe_interval_ms = 5;
  replikit::pg::ReplicatedDatabase db(p, {r}, o);
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

}  // namespace
