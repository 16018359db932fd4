#pragma once
/// \file timeline.hpp
/// PostgreSQL timelines: after a promotion the new primary writes on a new timeline that
/// branched from the old one at a switch point. WAL of the old timeline at or below the switch
/// point is part of the new timeline; WAL above it (written by the old primary after the
/// last record the promoted replica had) is not: commits there are lost. LSN numbers continue
/// across the switch, so an LSN says nothing without its timeline.
///
/// A TimelineHistory is what PostgreSQL keeps in `pg_wal/NNNNNNNN.history` for the current
/// timeline NNNNNNNN: each ancestor timeline and the LSN where it ended.

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "replikit/lsn.hpp"

namespace replikit {

/// Most switches a TimelineHistory keeps.
inline constexpr int kMaxTimelineSwitches = 4096;

/// One ancestor timeline and where it ended (the new timeline branched off there).
struct TimelineSwitch {
  std::uint32_t timeline = 0;  ///< the ancestor timeline (>= 1)
  Lsn end_lsn;                 ///< its last LSN on the path to the current timeline

  friend bool operator==(const TimelineSwitch& a, const TimelineSwitch& b) noexcept {
    return a.timeline == b.timeline && a.end_lsn == b.end_lsn;
  }
};

/// The current timeline and its ancestors. A value; immutable once built.
class TimelineHistory {
 public:
  /// Timeline 1, no ancestors (a cluster that never failed over).
  TimelineHistory() = default;
  /// `current` (>= 1) with its ancestors `switches`: timelines strictly ascending and below
  /// `current`, end LSNs non-decreasing, at most kMaxTimelineSwitches. Throws InvalidArgument
  /// naming `current` or `switches`.
  TimelineHistory(std::uint32_t current, std::vector<TimelineSwitch> switches);
  /// Parses the text of PostgreSQL's history file of timeline `current` (lines
  /// "parent_timeline<TAB>switch_lsn<TAB>reason"; blank and '#' lines skipped). Throws
  /// InvalidArgument naming `text` (or `current`).
  static TimelineHistory parse(std::string_view text, std::uint32_t current);

  /// The current timeline.
  std::uint32_t current() const noexcept { return current_; }
  /// The ancestors, oldest first.
  const std::vector<TimelineSwitch>& switches() const noexcept { return switches_; }
  /// Where ancestor `timeline` ended; none for the current timeline or one not on its path.
  std::optional<Lsn> end_of(std::uint32_t timeline) const noexcept;
  /// True when data at `lsn` written on `timeline` is part of the current timeline: the
  /// current timeline itself, 0 (unknown: taken as current), a newer timeline than this
  /// history knows (it cannot judge), or an ancestor at or below its end. An LSN above an
  /// ancestor's end, or on a timeline not on the current one's path, is lost.
  bool survives(std::uint32_t timeline, Lsn lsn) const noexcept;

  friend bool operator==(const TimelineHistory& a, const TimelineHistory& b) noexcept {
    return a.current_ == b.current_ && a.switches_ == b.switches_;
  }

 private:
  std::uint32_t current_ = 1;
  std::vector<TimelineSwitch> switches_;
};

}  // namespace replikit
