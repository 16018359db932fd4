#pragma once
// The node prober: one background thread, one libpq connection per node, driven with libpq's
// asynchronous API so that every connect and every probe has a client-side deadline and all
// nodes are probed in parallel (a node that stopped answering delays nobody else).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "replikit/lag.hpp"
#include "node_events.hpp"
#include "replikit/topology.hpp"
#include "watchdog.hpp"

namespace replikit::pg::detail {

/// Minimum gap between two probes of one replica asked for by expedite(): a waiting read
/// learns of a replay within about this plus one round trip; it bounds the probe rate while
/// readers wait (a probe is one small query).
inline constexpr std::int64_t kExpediteGapNs = 250'000;

struct ProberConfig {
  std::int64_t interval_ns = 100'000'000;
  std::int64_t probe_timeout_ns = 1'000'000'000;
  std::int64_t connect_timeout_ns = 2'000'000'000;
};

/// What one node looked like at its last probe (the prober's part of NodeStatus).
struct ProbeState {
  bool reachable = false;
  bool in_recovery = false;
  bool role_mismatch = false;
  std::uint32_t timeline = 0;
  Lsn current_lsn, receive_lsn, replay_lsn;
  std::int64_t last_probe_ns = 0;
  std::int64_t last_probe_sent_ns = 0;  // when that probe (or its connect) began
  double rtt_ms = 0;
  std::uint64_t probes_ok = 0, probes_failed = 0;
  std::string last_error;
};

class Prober {
 public:
  /// `conninfos[i]` is the connection string of topology node i. `on_probe(node, ok)` runs on
  /// the prober thread after every completed probe (it must not block); `ok` is false when the
  /// node is unreachable (not for a connect refused by a full server, SQLSTATE 53300).
  /// `events` hears of every down/up, role and lag transition and makes the routing changes.
  Prober(ProberConfig config, std::shared_ptr<Topology> topology, std::shared_ptr<LagTracker> tracker,
         std::vector<std::string> conninfos, Watchdog* watchdog, std::function<void(int, bool)> on_probe,
         NodeEvents& events);
  ~Prober();
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  void start();
  /// Stops probing, closes the watchdog to new entries, and joins the thread once the
  /// watchdog has no armed entry left (it keeps cutting the deadlines of calls in flight until
  /// then, so this returns within the longest deadline armed). Idempotent and safe to call
  /// from several threads at once: one joins, the others wait until it has.
  void stop();

  /// Asks for replicas to be probed now rather than at their next period (a reader is waiting
  /// for one to catch up); a replica probed less than kExpediteGapNs ago is left alone.
  void expedite() noexcept;

  ProbeState state(int node) const;
  /// Waits until every node completed `count` more probes, or until `timeout_ns` passed.
  bool wait_probes(int count, std::int64_t timeout_ns) const;

 private:
  struct Slot;
  void run();
  /// Closes every node's connection (when the thread stops).
  void disconnect_all();
  void step(std::int64_t now_ns);
  void start_connect(Slot& s, std::int64_t now_ns);
  void send_probe(Slot& s, std::int64_t now_ns);
  void on_readable(Slot& s, std::int64_t now_ns);
  /// The probe's connection broke (the server ended it, or it was reset): reconnect at once
  /// before counting a failed probe, so that losing only the prober's connection (e.g. to
  /// pg_terminate_backend) marks nothing down; a loss right after that reconnect is a failure.
  void lost(Slot& s, const std::string& message, std::int64_t now_ns);
  void fail(Slot& s, const std::string& message, std::int64_t now_ns);
  void succeed(Slot& s, std::int64_t now_ns);
  /// Judges `s`'s good probe (inside NodeEvents::good_probe): feeds the lag tracker, and may
  /// adopt a promoted replica.
  ProbeVerdict judge(const Slot& s, std::int64_t now_ns);
  /// Feeds the primary's LSN of `s`'s probe to the lag tracker (a fresh history when it went back).
  void sample_primary(const Slot& s);
  void finish(Slot& s, bool ok);
  /// True when `s`'s timeline is older than the newest one seen on any node.
  bool stale_primary(const Slot& s);
  /// A replica found out of recovery on a timeline newer than the primary's: promotes it in
  /// the topology (a new epoch; NodeEvents::promotion). True when it is the primary now.
  bool adopt(const Slot& s);
  /// When the topology's epoch or primary changed since the last look (two atomic loads), cuts
  /// the user statements in flight to a primary that was deposed (Watchdog::fire_deposed).
  void cut_deposed();

  ProberConfig config_;
  std::shared_ptr<Topology> topology_;
  std::shared_ptr<LagTracker> tracker_;
  Watchdog* watchdog_;
  std::function<void(int, bool)> on_probe_;
  NodeEvents& events_;
  std::vector<std::unique_ptr<Slot>> slots_;
  mutable std::mutex mutex_;  // guards every Slot::state and Slot::completed
  mutable std::condition_variable probed_;
  std::atomic<bool> stop_{false};
  std::mutex stop_mutex_;  // serialises stop(): std::thread::join from two threads is undefined
  std::atomic<bool> expedite_{false};
  std::atomic<std::uint32_t> newest_timeline_{0};  // the newest timeline any probe showed
  int wake_pipe_[2] = {-1, -1};
  std::uint64_t seen_epoch_ = 0;  // the prober thread's: the epoch cut_deposed() last acted on
  int seen_primary_ = -1;
  std::thread thread_;
};

}  // namespace replikit::pg::detail
