#include "replikit/regions.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "replikit/errors.hpp"

namespace replikit {

namespace {

// printf-style formatting of one note (every caller passes a literal format).
template <typename... Args>
std::string fmt(const char* format, Args... args) {
  char buffer[400];
  std::snprintf(buffer, sizeof buffer, format, args...);
  return buffer;
}

// Replicas per region, checked (default: one in each).
std::vector<int> replicas_of(const RegionMap& map, const PlacementConfig& c) {
  const std::size_t n = map.regions.size();
  if (c.replicas_per_region.empty()) return std::vector<int>(n, 1);
  require(c.replicas_per_region.size() == n, "replicas_per_region",
          "must have one count per region (" + std::to_string(n) + ")");
  int total = 0;
  for (int count : c.replicas_per_region) {
    require(count >= 0 && count <= 64, "replicas_per_region", "counts must be in [0, 64]");
    total += count;
  }
  require(total >= 1, "replicas_per_region", "must place at least one replica");
  return c.replicas_per_region;
}

// Round trips from region `from` to every replica, ascending (a region with k replicas counts k times).
std::vector<double> rtts_to_replicas(const RegionMap& map, const std::vector<int>& replicas, std::size_t from) {
  std::vector<double> out;
  for (std::size_t q = 0; q < replicas.size(); ++q) out.insert(out.end(), static_cast<std::size_t>(replicas[q]), map.rtt_ms[from][q]);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> regions_with(const RegionMap& map, const std::vector<int>& replicas, int also = -1) {
  std::vector<std::string> out;
  for (std::size_t q = 0; q < replicas.size(); ++q) {
    if (replicas[q] > 0 || static_cast<int>(q) == also) out.push_back(map.regions[q]);
  }
  return out;
}

// A read-back right after a write from region r: the ack reaches the client `ack_ms` after the
// commit; a replica in q applies it rtt(P,q)/2 + replay after the commit. The fastest of the
// primary and every replica (waiting there for the commit when the read arrives first).
void read_back(const RegionMap& map, const std::vector<int>& replicas, std::size_t p, std::size_t r, double ack_ms,
               double replay_ms, RegionLatency& out) {
  out.read_your_writes_ms = map.rtt_ms[r][p];
  out.read_your_writes_from = map.regions[p];
  for (std::size_t q = 0; q < replicas.size(); ++q) {
    if (replicas[q] == 0) continue;
    const double arrives = ack_ms + map.rtt_ms[r][q] / 2;
    const double applied = map.rtt_ms[p][q] / 2 + replay_ms;
    const double total = map.rtt_ms[r][q] + std::max(0.0, applied - arrives);
    if (total <= out.read_your_writes_ms) {
      out.read_your_writes_ms = total;
      out.read_your_writes_from = map.regions[q];
    }
  }
}

RegionReport single_leader(const RegionMap& map, const PlacementConfig& c, const std::vector<int>& replicas) {
  const std::size_t p = static_cast<std::size_t>(map.index(c.primary_region, "primary_region"));
  const std::vector<double> standby_rtts = rtts_to_replicas(map, replicas, p);
  require(c.sync_standbys >= 0 && c.sync_standbys <= static_cast<int>(standby_rtts.size()), "sync_standbys",
          "must be in [0, " + std::to_string(standby_rtts.size()) + "] (the standbys placed)");
  const double commit_wait = c.sync_standbys == 0 ? 0.0 : standby_rtts[static_cast<std::size_t>(c.sync_standbys) - 1];
  RegionReport report;
  for (std::size_t r = 0; r < map.regions.size(); ++r) {
    RegionLatency l;
    l.region = map.regions[r];
    l.write_ms = map.rtt_ms[r][p] + commit_wait;
    l.read_ms = map.rtt_ms[r][p];
    l.read_from = map.regions[p];
    for (std::size_t q = 0; q < replicas.size(); ++q) {
      if (replicas[q] > 0 && map.rtt_ms[r][q] <= l.read_ms) {
        l.read_ms = map.rtt_ms[r][q];
        l.read_from = map.regions[q];
      }
    }
    read_back(map, replicas, p, r, commit_wait + map.rtt_ms[r][p] / 2, c.replay_ms, l);
    report.regions.push_back(l);
  }
  report.stored_in = regions_with(map, replicas, static_cast<int>(p));
  report.notes.push_back(fmt("Every write goes to the primary in %s%s.", map.regions[p].c_str(),
                             c.sync_standbys == 0 ? " and is acknowledged before any standby has it"
                                                  : fmt(" and waits %.3g ms for %d standby(s)", commit_wait,
                                                        c.sync_standbys).c_str()));
  return report;
}

RegionReport multi_leader(const RegionMap& map, const PlacementConfig& c, const std::vector<int>& leaders) {
  const std::size_t n = map.regions.size();
  std::vector<double> rates = c.writes_per_s.empty() ? std::vector<double>(n, 0.0) : c.writes_per_s;
  require(rates.size() == n, "writes_per_s", "must have one rate per region (" + std::to_string(n) + ")");
  for (double rate : rates) require(std::isfinite(rate) && rate >= 0, "writes_per_s", "rates must be finite and >= 0");
  for (std::size_t r = 0; r < n; ++r) {
    require(leaders[r] > 0 || rates[r] == 0, "writes_per_s", "a region without a leader writes through another: give it rate 0");
  }
  const double keys = static_cast<double>(c.keys);
  RegionReport report;
  for (std::size_t r = 0; r < n; ++r) {
    RegionLatency l;
    l.region = map.regions[r];
    const std::vector<double> near = rtts_to_replicas(map, leaders, r);
    l.read_ms = l.write_ms = l.read_your_writes_ms = near.front();
    for (std::size_t q = 0; q < n; ++q) {
      if (leaders[q] > 0 && map.rtt_ms[r][q] == near.front()) {
        l.read_from = l.read_your_writes_from = map.regions[q];
        break;
      }
    }
    double exposure = 0;  // expected concurrent writes elsewhere per write here
    for (std::size_t j = 0; j < n; ++j) {
      if (j != r) exposure += rates[j] / keys * map.rtt_ms[r][j] / 1000.0;
      if (j > r) report.conflicts_per_s += rates[r] * rates[j] / keys * map.rtt_ms[r][j] / 1000.0;
    }
    l.conflict_probability = leaders[r] > 0 ? 1.0 - std::exp(-exposure) : 0.0;
    report.regions.push_back(l);
  }
  report.stored_in = regions_with(map, leaders);
  report.notes.push_back(fmt("Writes are local; %.3g pairs of concurrent writes per second must be resolved "
                             "(last-writer-wins loses one of each pair).",
                             report.conflicts_per_s));
  return report;
}

RegionReport leaderless(const RegionMap& map, const PlacementConfig& c, const std::vector<int>& replicas) {
  int n = 0;
  for (int count : replicas) n += count;
  require(c.write_quorum >= 1 && c.write_quorum <= n, "write_quorum", "must be in [1, N=" + std::to_string(n) + "]");
  require(c.read_quorum >= 1 && c.read_quorum <= n, "read_quorum", "must be in [1, N=" + std::to_string(n) + "]");
  RegionReport report;
  report.strong = c.write_quorum + c.read_quorum > n;
  for (std::size_t r = 0; r < map.regions.size(); ++r) {
    RegionLatency l;
    l.region = map.regions[r];
    const std::vector<double> rtts = rtts_to_replicas(map, replicas, r);
    l.write_ms = rtts[static_cast<std::size_t>(c.write_quorum) - 1];
    l.read_ms = rtts[static_cast<std::size_t>(c.read_quorum) - 1];
    // The W fastest acknowledged the write; the R fastest are a prefix of the same order, so the
    // read-back meets an acknowledging replica whatever W and R are.
    l.read_your_writes_ms = l.read_ms;
    l.read_from = l.read_your_writes_from = "quorum";
    report.regions.push_back(l);
  }
  report.stored_in = regions_with(map, replicas);
  report.notes.push_back(fmt("N=%d, W=%d, R=%d: %s.", n, c.write_quorum, c.read_quorum,
                             report.strong ? "W + R > N, every read quorum meets every write quorum"
                                           : "W + R <= N, reads from another region may be stale"));
  return report;
}

}  // namespace

RegionMap RegionMap::defaults() {
  return {{"us", "eu", "asia"}, {{1, 80, 160}, {80, 1, 230}, {160, 230, 1}}};
}

int RegionMap::index(std::string_view region, const char* argument) const {
  for (std::size_t i = 0; i < regions.size(); ++i) {
    if (regions[i] == region) return static_cast<int>(i);
  }
  throw NotFound(argument, "no region named '" + std::string(region) + "'");
}

void RegionMap::validate() const {
  const std::size_t n = regions.size();
  require(n >= 1 && n <= static_cast<std::size_t>(kMaxModelRegions), "regions",
          "must name 1 to " + std::to_string(kMaxModelRegions) + " regions");
  for (std::size_t i = 0; i < n; ++i) {
    require(!regions[i].empty(), "regions", "names must not be empty");
    for (std::size_t j = 0; j < i; ++j) require(regions[i] != regions[j], "regions", "names must be distinct");
  }
  require(rtt_ms.size() == n, "rtt_ms", "must be a square matrix with one row per region");
  for (std::size_t i = 0; i < n; ++i) {
    require(rtt_ms[i].size() == n, "rtt_ms", "must be a square matrix with one row per region");
    for (std::size_t j = 0; j < n; ++j) {
      require(std::isfinite(rtt_ms[i][j]) && rtt_ms[i][j] >= 0, "rtt_ms", "round trips must be finite and >= 0");
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < i; ++j) require(rtt_ms[i][j] == rtt_ms[j][i], "rtt_ms", "must be symmetric");
  }
}

RegionReport model_regions(const RegionMap& map, const PlacementConfig& config) {
  map.validate();
  require(std::isfinite(config.replay_ms) && config.replay_ms >= 0, "replay_ms", "must be finite and >= 0");
  require(config.keys >= 1, "keys", "must be at least 1");
  const std::vector<int> replicas = replicas_of(map, config);
  RegionReport report;
  switch (config.placement) {
    case Placement::SingleLeader: report = single_leader(map, config, replicas); break;
    case Placement::MultiLeader: report = multi_leader(map, config, replicas); break;
    case Placement::Leaderless: report = leaderless(map, config, replicas); break;
  }
  report.placement = config.placement;
  return report;
}

const char* placement_name(Placement placement) {
  switch (placement) {
    case Placement::SingleLeader: return "single_leader";
    case Placement::MultiLeader: return "multi_leader";
    case Placement::Leaderless: return "leaderless";
  }
  return "unknown";
}

}  // namespace replikit
