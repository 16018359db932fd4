// Runs every case of the failover selection tables, tests/testdata/failover/*.txt: the executable
// specification of plan_failover (format in README.md there). The pytest runner
// tests/python/test_failover_tables.py runs the same files through the bindings.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "replikit/failover.hpp"

using namespace replikit;

namespace {

struct Line {
  int number = 0;
  std::vector<std::string> words;
};

struct Case {
  std::string file;
  int line = 0;
  std::string title;
  std::vector<Line> lines;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.file << ":" << c.line << " " << c.title; }

std::vector<Case> load_file(const std::filesystem::path& path) {
  std::vector<Case> out;
  std::ifstream in(path);
  std::string text;
  int number = 0;
  const std::string shown = "tests/testdata/failover/" + path.filename().string();
  while (std::getline(in, text)) {
    ++number;
    std::istringstream words(text);
    Line line{number, {}};
    for (std::string w; words >> w;) line.words.push_back(w);
    if (line.words.empty() || line.words[0][0] == '#') continue;
    if (line.words[0] == "case") {
      out.push_back(Case{shown, number, text.substr(text.find("case") + 5), {}});
    } else if (out.empty()) {
      throw std::runtime_error(shown + ":" + std::to_string(number) + ": a line before the first case");
    } else {
      out.back().lines.push_back(line);
    }
  }
  return out;
}

std::vector<Case> all_cases() {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(REPLIKIT_TESTDATA_DIR) / "failover")) {
    if (e.path().extension() == ".txt") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<Case> out;
  for (const auto& f : files) {
    for (auto& c : load_file(f)) out.push_back(std::move(c));
  }
  return out;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string name = std::filesystem::path(info.param.file).stem().string() + "_" + std::to_string(info.param.line);
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

Lsn lsn_of(const std::string& text) {
  if (text.find('/') != std::string::npos) return Lsn::parse(text);
  return Lsn(std::stoull(text));
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, sep)) out.push_back(item);
  return out;
}

// key=value words after the first `skip` ones; bare words map to "".
std::map<std::string, std::string> options(const Line& line, std::size_t skip) {
  std::map<std::string, std::string> out;
  for (std::size_t i = skip; i < line.words.size(); ++i) {
    const auto eq = line.words[i].find('=');
    if (eq == std::string::npos) out[line.words[i]] = "";
    else out[line.words[i].substr(0, eq)] = line.words[i].substr(eq + 1);
  }
  return out;
}

CandidateState candidate_of(const Line& line) {
  CandidateState c;
  c.name = line.words.at(1);
  c.timeline = 1;
  for (const auto& [k, v] : options(line, 2)) {
    if (k == "receive") c.receive_lsn = lsn_of(v);
    else if (k == "replay") c.replay_lsn = lsn_of(v);
    else if (k == "timeline") c.timeline = static_cast<std::uint32_t>(std::stoul(v));
    else if (k == "priority") c.priority = std::stoi(v);
    else if (k == "region") c.region = v;
    else if (k == "down") c.reachable = false;
    else if (k == "nofailover") c.no_failover = true;
    else if (k == "sync") c.was_synchronous = true;
    else throw std::runtime_error("unknown candidate option " + k);
  }
  return c;
}

void apply_primary(PrimaryState& p, const Line& line) {
  for (const auto& [k, v] : options(line, 1)) {
    if (k == "lsn") p.last_known_lsn = lsn_of(v);
    else if (k == "timeline") p.timeline = static_cast<std::uint32_t>(std::stoul(v));
    else if (k == "acked") p.last_acknowledged_commit_lsn = lsn_of(v);
    else if (k == "sync") {
      p.synchronous_mode = true;
      p.synchronous_standbys = split(v, ',');
    } else {
      throw std::runtime_error("unknown primary option " + k);
    }
  }
}

void apply_config(FailoverConfig& c, const Line& line) {
  for (const auto& [k, v] : options(line, 1)) {
    if (k == "max_lag_bytes") c.max_lag_bytes = std::stoll(v);
    else if (k == "region") c.preferred_region = v;
    else throw std::runtime_error("unknown config option " + k);
  }
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : " ") + n;
  return out.empty() ? "none" : out;
}

class FailoverTables : public ::testing::TestWithParam<Case> {};

TEST_P(FailoverTables, Case) {
  const Case& c = GetParam();
  std::vector<CandidateState> candidates;
  PrimaryState primary;
  primary.timeline = 1;
  FailoverConfig config;
  std::vector<const Line*> expectations;
  for (const auto& line : c.lines) {
    const std::string& kind = line.words[0];
    if (kind == "primary") apply_primary(primary, line);
    else if (kind == "config") apply_config(config, line);
    else if (kind == "candidate") candidates.push_back(candidate_of(line));
    else expectations.push_back(&line);
  }
  const FailoverPlan plan = plan_failover(candidates, primary, config);
  const std::string shown = describe(plan);
  std::map<std::string, std::string> excluded;
  for (const auto& line : expectations) {
    SCOPED_TRACE(c.file + ":" + std::to_string(line->number) + "\n" + shown);
    const auto& w = line->words;
    if (w[0] == "promote") {
      EXPECT_EQ(plan.promote.value_or("none"), w.at(1));
      const auto opts = options(*line, 2);
      if (opts.count("loss")) {
        EXPECT_EQ(plan.expected_loss_bytes, std::stoll(opts.at("loss")));
      }
    } else if (w[0] == "exclude") {
      excluded[w.at(1)] = w.at(2);
    } else if (w[0] == "repoint") {
      const std::vector<std::string> want(w.begin() + 1, w.end());
      EXPECT_EQ(joined(plan.repoint), joined(want));
    } else if (w[0] == "reason") {
      std::string text;
      for (std::size_t i = 1; i < w.size(); ++i) text += (i > 1 ? " " : "") + w[i];
      EXPECT_NE(plan.reason.find(text), std::string::npos) << "reason lacks '" << text << "'";
    } else {
      ADD_FAILURE() << "unknown line kind " << w[0];
    }
  }
  std::map<std::string, std::string> got;
  for (const auto& e : plan.excluded) got[e.name] = to_string(e.reason);
  EXPECT_EQ(got, excluded) << c.file << ":" << c.line << " exclusions\n" << shown;
}

INSTANTIATE_TEST_SUITE_P(Failover, FailoverTables, ::testing::ValuesIn(all_cases()), case_name);

TEST(FailoverTablesFiles, EveryFileHasCases) { EXPECT_GE(all_cases().size(), 20u); }

}  // namespace
