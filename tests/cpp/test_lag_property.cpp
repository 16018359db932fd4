// LagTracker on random histories against a slow reference written here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "replikit/errors.hpp"
#include "replikit/lag.hpp"
#include "replikit/random.hpp"

#include "lag_fixture.hpp"

using namespace replikit;
using namespace replikit::testing;

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
