#pragma once
/// \file sim/failover_model.hpp
/// The seam between the simulator and failure detection / candidate selection: the simulator
/// feeds heartbeats of the primary to a FailoverModel and asks it whom to promote. The simple
/// model here (missed heartbeats, most advanced replica) stands in until a model built on the
/// core's own detector and selection is plugged in through SimFailoverFactory.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "replikit/lsn.hpp"
#include "replikit/sim/config.hpp"

namespace replikit::sim {

/// A replica as failover selection sees it.
struct PromotionCandidate {
  int node = 0;             ///< node index
  std::string name;
  bool reachable = true;
  Lsn receive_lsn;          ///< WAL received (flushed)
  Lsn replay_lsn;           ///< WAL replayed
  int timeline = 1;
};

/// Detection and selection for one run (stateful; one instance per run).
class FailoverModel {
 public:
  virtual ~FailoverModel() = default;
  /// Records one heartbeat of the primary at `now_ns`: answered or missed.
  virtual void heartbeat(std::int64_t now_ns, bool answered) = 0;
  /// True once the primary is considered failed.
  virtual bool suspected(std::int64_t now_ns) const = 0;
  /// The index in `candidates` of the replica to promote, or -1 to promote none.
  virtual int select(const std::vector<PromotionCandidate>& candidates, Lsn primary_last_lsn) = 0;
  /// A short description for results.
  virtual std::string describe() const = 0;
};

/// Suspects the primary after `missed` consecutive missed heartbeats (detection takes about
/// interval x missed); promotes the reachable replica with the highest receive LSN, the
/// lowest node index on a tie.
class SimpleFailoverModel final : public FailoverModel {
 public:
  /// A model suspecting after `missed` (>= 1) consecutive misses, heartbeats `interval_ms` apart.
  SimpleFailoverModel(double interval_ms, int missed);
  void heartbeat(std::int64_t now_ns, bool answered) override;
  bool suspected(std::int64_t now_ns) const override;
  int select(const std::vector<PromotionCandidate>& candidates, Lsn primary_last_lsn) override;
  std::string describe() const override;

 private:
  double interval_ms_;
  int threshold_;
  int missed_ = 0;
};

/// Makes the FailoverModel of one run from its configuration.
using SimFailoverFactory = std::function<std::unique_ptr<FailoverModel>(const SimConfig&)>;

/// The default factory: a SimpleFailoverModel from heartbeat_interval_ms and missed_heartbeats.
std::unique_ptr<FailoverModel> simple_failover_model(const SimConfig& config);

/// A factory of models on the core's own FailureDetector (heartbeat kind, heartbeat_interval_ms x
/// missed_heartbeats; a crashed primary's probes time out) and plan_failover (synchronous mode
/// unless the replication mode is async).
std::unique_ptr<FailoverModel> core_failover_model(const SimConfig& config);

}  // namespace replikit::sim
