#pragma once
/// \file regions.hpp
/// A multi-region model: regions with a round-trip latency matrix, and what a client in each
/// region sees under three placements: single-leader (a primary in one region, replicas
/// anywhere), multi-leader (a leader in every region, asynchronous replication between them)
/// and leaderless (replicas spread over regions, W and R quorums).
///
/// Latencies are steady-state, unloaded figures: a one-way delay is half the round trip, and a
/// replica applies a commit `replay_ms` after its WAL arrives. Conflict rates for multi-leader
/// follow from Poisson writes over uniformly chosen keys: a write at leader i is concurrent
/// with a write to the same key at j when neither saw the other, a window of d(i,j) + d(j,i) =
/// rtt(i,j). Pure arithmetic: deterministic, no clock.

#include <string>
#include <string_view>
#include <vector>

namespace replikit {

/// Most regions a RegionMap holds.
inline constexpr int kMaxModelRegions = 16;

/// Regions and the round trip between each pair (symmetric; the diagonal is the round trip
/// inside a region).
struct RegionMap {
  std::vector<std::string> regions;
  std::vector<std::vector<double>> rtt_ms;

  /// us, eu and asia with public-cloud figures: 1 ms inside a region, us-eu 80 ms, us-asia
  /// 160 ms, eu-asia 230 ms.
  static RegionMap defaults();
  /// The index of `region`; NotFound naming `argument` when there is none.
  int index(std::string_view region, const char* argument = "region") const;
  /// InvalidArgument for an empty, non-square, asymmetric, negative or non-finite matrix, or
  /// duplicate or empty names.
  void validate() const;
};

/// Where the data lives and who accepts writes.
enum class Placement { SingleLeader, MultiLeader, Leaderless };

/// One placement to model on a RegionMap.
struct PlacementConfig {
  Placement placement = Placement::SingleLeader;
  std::string primary_region = "us";     ///< single-leader: the primary's region
  int sync_standbys = 0;                  ///< single-leader: commits wait for the k nearest standbys (0: async)
  std::vector<int> replicas_per_region;   ///< replicas per region (empty: one in each); single-leader: standbys
  int write_quorum = 2;                   ///< leaderless W
  int read_quorum = 2;                    ///< leaderless R
  double replay_ms = 0.5;                 ///< time a replica takes to apply a commit once its WAL arrived
  std::vector<double> writes_per_s;       ///< multi-leader: write rate at each region's leader (empty: 0)
  int keys = 1000;                        ///< multi-leader: keys the writes spread over uniformly
};

/// What a client in one region sees.
struct RegionLatency {
  std::string region;
  double read_ms = 0;                ///< an eventual read, at the nearest copy that serves reads
  double write_ms = 0;               ///< a write until acknowledged
  double read_your_writes_ms = 0;    ///< a read-back right after a write, at the fastest place that has it
  std::string read_from;             ///< region that serves its eventual reads
  std::string read_your_writes_from; ///< region that serves its read-backs
  double conflict_probability = 0;   ///< multi-leader: share of its writes concurrent with another region's
};

/// The model's answer for one placement.
struct RegionReport {
  Placement placement = Placement::SingleLeader;
  std::vector<RegionLatency> regions;
  double conflicts_per_s = 0;           ///< multi-leader: concurrent write pairs per second, all pairs
  bool strong = false;                  ///< leaderless W + R > N, single-leader sync reads at the primary
  std::vector<std::string> stored_in;   ///< regions that hold a copy of every write (data residency)
  std::vector<std::string> notes;       ///< one sentence per finding, for a person
};

/// Models `config` on `map`; InvalidArgument naming the field for bad input (unknown primary
/// region, quorums outside [1, N], replicas_per_region or writes_per_s of the wrong length or
/// negative, sync_standbys more than the standbys, keys < 1).
RegionReport model_regions(const RegionMap& map, const PlacementConfig& config);

/// The name of a placement, lower case ("single_leader", ...).
const char* placement_name(Placement placement);

}  // namespace replikit
