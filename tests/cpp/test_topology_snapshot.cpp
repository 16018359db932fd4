// Topology::epoch_and_primary under a concurrent promoter: never an epoch with another's primary.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "replikit/topology.hpp"
#include "testing.hpp"

using namespace replikit;
using replikit::testing::node;

namespace {

constexpr int kPromotes = 20000;
constexpr int kReaders = 2;

TEST(TopologySnapshot, StartsAtEpochOneWithThePrimaryAndFollowsPromote) {
  Topology t(node("primary"), {node("r1"), node("r2")});
  EpochPrimary ep = t.epoch_and_primary();
  EXPECT_EQ(ep.epoch, 1u);
  EXPECT_EQ(ep.primary, t.index_of("primary"));
  EXPECT_EQ(t.promote("r2"), 2u);
  ep = t.epoch_and_primary();
  EXPECT_EQ(ep.epoch, 2u);
  EXPECT_EQ(ep.primary, t.index_of("r2"));
  EXPECT_THROW(t.promote("r2"), InvalidArgument);  // a refused promote changes nothing
  EXPECT_EQ(t.epoch_and_primary().epoch, 2u);
}

// A promoter runs a seeded sequence of promotes; readers check every pair they read against
// the primary that sequence gives its epoch, and that epochs never go back.
TEST(TopologySnapshot, ReadersNeverSeeATornPairWhileAPromoterRuns) {
  replikit::testing::for_each_seed(20261129, 3, "TopologySnapshot.ReadersNever*", [](int, std::uint64_t seed) {
    std::printf("TopologySnapshot seed %llu\n", static_cast<unsigned long long>(seed));
    Topology t(node("primary"), {node("r1"), node("r2"), node("r3")});
    // primary_of[e]: the primary of epoch e.
    std::vector<int> primary_of(kPromotes + 2, kNoNode);
    primary_of[1] = t.primary();
    std::mt19937_64 rng(seed);
    for (int e = 2; e < kPromotes + 2; ++e) {
      int next = static_cast<int>(rng() % 3);
      if (next >= primary_of[static_cast<std::size_t>(e - 1)]) ++next;  // any node but the last primary
      primary_of[static_cast<std::size_t>(e)] = next;
    }
    std::atomic<bool> done{false};
    std::atomic<long> torn{0}, backwards{0}, reads{0};
    std::atomic<int> started{0};
    std::vector<std::thread> readers;
    for (int r = 0; r < kReaders; ++r) {
      readers.emplace_back([&] {
        std::uint64_t last = 1;
        started.fetch_add(1);
        // Bounded by the promoter: it sets done after kPromotes promotes.
        while (!done.load(std::memory_order_acquire)) {
          const EpochPrimary ep = t.epoch_and_primary();
          if (ep.epoch >= primary_of.size() || primary_of[ep.epoch] != ep.primary) torn.fetch_add(1);
          if (ep.epoch < last) backwards.fetch_add(1);
          last = ep.epoch;
          reads.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    // The readers must be running before the promotes (bounded: 10 s on a loaded machine).
    for (int k = 0; k < 10000 && started.load() < kReaders; ++k) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (int e = 2; e < kPromotes + 2; ++e) {
      if (e % 64 == 0) std::this_thread::yield();  // let the readers in on a busy machine
      EXPECT_EQ(t.promote(t.name(primary_of[static_cast<std::size_t>(e)])), static_cast<std::uint64_t>(e));
    }
    done.store(true, std::memory_order_release);
    for (auto& th : readers) th.join();
    EXPECT_EQ(torn.load(), 0);
    EXPECT_EQ(backwards.load(), 0);
    EXPECT_GT(reads.load(), 0);
  });
}

}  // namespace
