// A FailoverModel on the core's FailureDetector and plan_failover (see failover_model.hpp).
#include <cstdio>

#include "replikit/sim/failover_model.hpp"

#include "replikit/detector.hpp"
#include "replikit/failover.hpp"

namespace replikit::sim {

namespace {

class CoreFailoverModel final : public FailoverModel {
 public:
  explicit CoreFailoverModel(const SimConfig& c) : detector_(detector_config(c)), synchronous_(c.mode != ReplicationMode::Async) {}

  void heartbeat(std::int64_t now_ns, bool answered) override {
    detector_.record(now_ns, answered ? ProbeOutcome::Ok : ProbeOutcome::Timeout);
  }
  bool suspected(std::int64_t now_ns) const override { return detector_.suspected(now_ns); }

  int select(const std::vector<PromotionCandidate>& candidates, Lsn primary_last_lsn) override {
    std::vector<CandidateState> states;
    for (const auto& c : candidates) {
      CandidateState s;
      s.name = c.name;
      s.reachable = c.reachable;
      s.receive_lsn = c.receive_lsn;
      s.replay_lsn = c.replay_lsn;
      s.timeline = static_cast<std::uint32_t>(c.timeline);
      s.was_synchronous = synchronous_;
      states.push_back(std::move(s));
    }
    PrimaryState primary;
    primary.last_known_lsn = primary_last_lsn;
    primary.timeline = candidates.empty() ? 1 : static_cast<std::uint32_t>(candidates.front().timeline);
    primary.synchronous_mode = synchronous_;
    last_plan_ = plan_failover(states, primary);
    if (!last_plan_.promote) return -1;
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      if (candidates[i].name == *last_plan_.promote) return static_cast<int>(i);
    }
    return -1;
  }

  std::string describe() const override {
    const auto& d = detector_.config();
    char buf[200];
    std::snprintf(buf, sizeof buf, "core FailureDetector (heartbeat %.6g ms x %d missed); plan_failover", d.interval_ms,
                  d.missed_threshold);
    return buf;
  }

 private:
  static DetectorConfig detector_config(const SimConfig& c) {
    DetectorConfig d;
    d.kind = DetectorKind::Heartbeat;
    d.interval_ms = c.heartbeat_interval_ms;
    d.missed_threshold = c.missed_heartbeats;
    return d;
  }

  FailureDetector detector_;
  bool synchronous_;
  FailoverPlan last_plan_;
};

}  // namespace

std::unique_ptr<FailoverModel> core_failover_model(const SimConfig& config) {
  return std::make_unique<CoreFailoverModel>(config);
}

}  // namespace replikit::sim
