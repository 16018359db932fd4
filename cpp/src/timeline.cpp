#include "replikit/timeline.hpp"

#include <string>

#include "replikit/errors.hpp"

namespace replikit {

namespace {

constexpr std::size_t kMaxHistoryText = 1 << 20;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// The next whitespace-separated word of `line` (consumed from it).
std::string_view next_word(std::string_view& line) {
  line = trim(line);
  std::size_t end = 0;
  while (end < line.size() && line[end] != ' ' && line[end] != '\t') ++end;
  std::string_view word = line.substr(0, end);
  line.remove_prefix(end);
  return word;
}

std::uint32_t parse_timeline(std::string_view word, int line_number) {
  const std::string where = "line " + std::to_string(line_number) + ": ";
  require(!word.empty() && word.size() <= 10, "text", where + "bad timeline '" + std::string(word) + "'");
  std::uint64_t v = 0;
  for (char c : word) {
    require(c >= '0' && c <= '9', "text", where + "bad timeline '" + std::string(word) + "'");
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  require(v >= 1 && v <= 0xFFFFFFFFull, "text", where + "timeline out of range");
  return static_cast<std::uint32_t>(v);
}

}  // namespace

TimelineHistory::TimelineHistory(std::uint32_t current, std::vector<TimelineSwitch> switches)
    : current_(current), switches_(std::move(switches)) {
  require(current_ >= 1, "current", "must be a timeline >= 1");
  require(static_cast<long long>(switches_.size()) <= kMaxTimelineSwitches, "switches",
          "more than " + std::to_string(kMaxTimelineSwitches) + " switches");
  for (std::size_t i = 0; i < switches_.size(); ++i) {
    const TimelineSwitch& s = switches_[i];
    require(s.timeline >= 1 && s.timeline < current_, "switches",
            "timeline " + std::to_string(s.timeline) + " is not an ancestor of timeline " + std::to_string(current_));
    if (i > 0) {
      require(s.timeline > switches_[i - 1].timeline, "switches", "timelines must be strictly ascending");
      require(s.end_lsn >= switches_[i - 1].end_lsn, "switches", "switch LSNs must not decrease");
    }
  }
}

TimelineHistory TimelineHistory::parse(std::string_view text, std::uint32_t current) {
  require(text.size() <= kMaxHistoryText, "text", "history longer than 1 MiB");
  std::vector<TimelineSwitch> switches;
  int line_number = 0;
  while (!text.empty()) {
    const std::size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    ++line_number;
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    const std::uint32_t timeline = parse_timeline(next_word(line), line_number);
    const std::string_view lsn = next_word(line);
    require(!lsn.empty(), "text", "line " + std::to_string(line_number) + ": missing switch LSN");
    require(static_cast<long long>(switches.size()) < kMaxTimelineSwitches, "text", "too many lines");
    switches.push_back(TimelineSwitch{timeline, Lsn::parse(lsn, "text")});
  }
  try {
    return TimelineHistory(current, std::move(switches));
  } catch (const InvalidArgument& e) {
    if (e.argument() == "current") throw;
    throw InvalidArgument("text", e.what());
  }
}

std::optional<Lsn> TimelineHistory::end_of(std::uint32_t timeline) const noexcept {
  for (const auto& s : switches_) {
    if (s.timeline == timeline) return s.end_lsn;
  }
  return std::nullopt;
}

bool TimelineHistory::survives(std::uint32_t timeline, Lsn lsn) const noexcept {
  if (timeline == 0 || timeline >= current_) return true;
  const std::optional<Lsn> end = end_of(timeline);
  return end && lsn <= *end;
}

}  // namespace replikit
