// Runs every case of the routing tables, tests/testdata/routing/*.txt: the executable
// specification of Router (format and clock/LSN model in README.md there). The pytest runner
// tests/python/test_routing_tables.py runs the same files through the bindings.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "replikit/lag.hpp"
#include "replikit/router.hpp"
#include "replikit/session.hpp"

using namespace replikit;

namespace {

constexpr std::int64_t kMs = 1000000;
constexpr std::int64_t kNowMs = 1000;
constexpr std::int64_t kNow = kNowMs * kMs;
const char* const kNoName = "none";

struct Line {
  int number = 0;
  std::vector<std::string> words;
};

struct Case {
  std::string file;  // path relative to the source tree, for messages
  int line = 0;
  std::string title;
  std::vector<Line> steps;
};

// Test names and failure messages show the case as file:line.
void PrintTo(const Case& c, std::ostream* os) { *os << c.file << ":" << c.line << " " << c.title; }

std::vector<Case> load_file(const std::filesystem::path& path) {
  std::vector<Case> out;
  std::ifstream in(path);
  std::string text;
  int number = 0;
  const std::string shown = "tests/testdata/routing/" + path.filename().string();
  while (std::getline(in, text)) {
    ++number;
    std::istringstream words(text);
    Line line{number, {}};
    for (std::string w; words >> w;) line.words.push_back(w);
    if (line.words.empty() || line.words[0][0] == '#') continue;
    if (line.words[0] == "case") {
      out.push_back(Case{shown, number, text.substr(text.find("case") + 5), {}});
    } else if (out.empty()) {
      ADD_FAILURE() << shown << ":" << number << ": a step before the first case";
    } else {
      out.back().steps.push_back(line);
    }
  }
  return out;
}

std::vector<Case> load_all() {
  std::vector<std::filesystem::path> files;
  const std::filesystem::path dir = std::filesystem::path(REPLIKIT_TESTDATA_DIR) / "routing";
  if (std::filesystem::is_directory(dir)) {
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (entry.path().extension() == ".txt") files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<Case> all;
  for (const auto& f : files) {
    auto cases = load_file(f);
    all.insert(all.end(), cases.begin(), cases.end());
  }
  return all;
}

template <typename E, int N>
E enum_named(const std::string& name, const char* what) {
  for (int k = 0; k < N; ++k) {
    if (name == to_string(static_cast<E>(k))) return static_cast<E>(k);
  }
  throw std::runtime_error(std::string("unknown ") + what + " '" + name + "'");
}

// The primary wrote 1000 bytes per ms from LSN 1000 at 0 ms.
std::uint64_t lsn_at_ms(std::int64_t ms) { return static_cast<std::uint64_t>(1000 + ms * 1000); }
// The replay LSN of a replica exactly `ms` behind now.
std::uint64_t replay_behind(std::int64_t ms) { return ms == 0 ? lsn_at_ms(kNowMs) : lsn_at_ms(kNowMs - ms) - 1; }

std::int64_t parse_ms(const std::string& s) {  // "30ms"
  if (s.size() < 3 || s.compare(s.size() - 2, 2, "ms") != 0) throw std::runtime_error("expected <n>ms: " + s);
  return std::stoll(s.substr(0, s.size() - 2));
}

Lsn parse_lsn(const std::string& s) {
  if (s.empty() || s[0] != '@') {
    if (s.find('/') != std::string::npos) return Lsn::parse(s);
    return Lsn(std::stoull(s));
  }
  const std::size_t sign = s.find_first_of("+-", 1);
  std::uint64_t v = replay_behind(parse_ms(s.substr(1, sign == std::string::npos ? std::string::npos : sign - 1)));
  if (sign != std::string::npos) {
    const std::uint64_t k = std::stoull(s.substr(sign + 1));
    v = s[sign] == '+' ? v + k : v - k;
  }
  return Lsn(v);
}

std::int64_t parse_time(const std::string& s) {  // now[+-]<n>(ms|ns)...
  if (s.compare(0, 3, "now") != 0) throw std::runtime_error("expected now[+-]...: " + s);
  std::int64_t t = kNow;
  std::size_t i = 3;
  while (i < s.size()) {
    const bool plus = s[i] == '+';
    std::size_t end = i + 1;
    while (end < s.size() && std::isdigit(static_cast<unsigned char>(s[end]))) ++end;
    const std::int64_t n = std::stoll(s.substr(i + 1, end - i - 1));
    const std::string unit = s.substr(end, 2);
    if (unit != "ms" && unit != "ns") throw std::runtime_error("bad unit in " + s);
    const std::int64_t d = unit == "ms" ? n * kMs : n;
    t += plus ? d : -d;
    i = end + 2;
  }
  return t;
}

// key=value words and bare flags after the keyword; "xN" is a repeat count. Anything not in
// `allowed` (keys and flags; "xN" when it holds "x") is an error, so a typo cannot make a case
// silently test less.
struct Args {
  std::map<std::string, std::string> kv;
  std::vector<std::string> flags;
  int repeat = 1;
  std::string get(const std::string& key, const std::string& fallback = "") const {
    auto it = kv.find(key);
    return it == kv.end() ? fallback : it->second;
  }
};

Args parse_args(const std::vector<std::string>& words, std::size_t from, std::size_t to,
                const std::set<std::string>& allowed) {
  Args a;
  for (std::size_t k = from; k < to; ++k) {
    const std::string& w = words[k];
    const std::size_t eq = w.find('=');
    const bool repeat = w.size() > 1 && w[0] == 'x' && std::isdigit(static_cast<unsigned char>(w[1]));
    const std::string key = eq != std::string::npos ? w.substr(0, eq) : repeat ? "x" : w;
    if (allowed.count(key) == 0) throw std::runtime_error("unexpected '" + w + "'");
    if (eq != std::string::npos) {
      a.kv[key] = w.substr(eq + 1);
    } else if (repeat) {
      a.repeat = std::stoi(w.substr(1));
    } else {
      a.flags.push_back(w);
    }
  }
  return a;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, sep)) out.push_back(part);
  return out;
}

// One case being run: the cluster it builds and the placeholders it has bound.
class CaseRun {
 public:
  explicit CaseRun(const Case& c) : case_(c) { primary_.name = "p"; }

  void run() {
    for (const Line& line : case_.steps) {
      where_ = case_.file + ":" + std::to_string(line.number);
      try {
        step(line.words);
      } catch (const std::exception& e) {
        ADD_FAILURE() << where_ << ": " << e.what();
      }
      if (::testing::Test::HasFailure()) return;
    }
    build();
  }

 private:
  void step(const std::vector<std::string>& w) {
    const std::string& op = w[0];
    if (op == "primary" || op == "replica") return declare(w);
    if (op == "lag_config") {
      Args a = parse_args(w, 1, w.size(), {"max_lag_ms", "recover_lag_ms"});
      lag_config_.max_lag_ms = std::stod(a.get("max_lag_ms", "100"));
      lag_config_.recover_lag_ms = std::stod(a.get("recover_lag_ms", "50"));
      return;
    }
    if (op == "router") {
      Args a = parse_args(w, 1, w.size(), {"policy", "time_window_ms", "seed", "region", "sticky_reads"});
      router_config_ = RouterConfig{};
      router_config_.policy = enum_named<Policy, 5>(a.get("policy", "round_robin"), "policy");
      router_config_.time_window_ms = std::stod(a.get("time_window_ms", "2000"));
      router_config_.seed = std::stoull(a.get("seed", "0"));
      router_config_.region = a.get("region");
      router_config_.sticky_reads = static_cast<std::uint32_t>(std::stoul(a.get("sticky_reads", "1")));
      if (router_) router_ = std::make_unique<Router>(topology_, router_config_);
      return;
    }
    build();
    if (op == "down" || op == "up") {
      for (std::size_t k = 1; k < w.size(); ++k) topology_->set_up(node_name(w[k]), op == "up");
    } else if (op == "weight") {
      topology_->set_weight(node_name(w.at(1)), std::stod(w.at(2)));
    } else if (op == "remove") {
      topology_->remove_replica(node_name(w.at(1)));
    } else if (op == "promote") {
      topology_->promote(node_name(w.at(1)));
    } else if (op == "sample") {
      Args a = parse_args(w, 2, w.size(), {"lag", "replay"});
      Lsn replay = a.kv.count("lag") ? Lsn(replay_behind(parse_ms(a.get("lag")))) : parse_lsn(a.get("replay"));
      tracker_->replica_sample(node_name(w.at(1)), kNow, replay, replay);
    } else if (op == "begin" || op == "end") {
      Args a = parse_args(w, 2, w.size(), {"x"});
      const int node = topology_->index_of(node_name(w.at(1)));
      for (int k = 0; k < a.repeat; ++k) op == "begin" ? router_->begin(node) : router_->end(node);
    } else if (op == "session") {
      Args a = parse_args(w, 1, w.size(), {"write", "read", "untracked", "token", "last_replica", "last_replica_lsn"});
      session_ = Session{};
      if (a.kv.count("write")) session_.write_lsn = parse_lsn(a.get("write"));
      if (a.kv.count("read")) session_.read_lsn = parse_lsn(a.get("read"));
      if (a.kv.count("untracked")) session_.record_write(Lsn(), parse_time(a.get("untracked")));
      if (a.kv.count("last_replica")) {
        // The session's last read was on that replica, in the current epoch, which it was seen
        // to have replayed up to last_replica_lsn (default: the read LSN).
        const Lsn seen = a.kv.count("last_replica_lsn") ? parse_lsn(a.get("last_replica_lsn")) : session_.read_lsn;
        session_.observe_replica(seen, topology_->index_of(node_name(a.get("last_replica"))), topology_->epoch());
      }
      if (std::count(a.flags.begin(), a.flags.end(), "token")) session_ = decode_token(encode_token(session_));
    } else if (op == "write" || op == "read") {
      route(w);
    } else {
      throw std::runtime_error("unknown step '" + op + "'");
    }
  }

  void declare(const std::vector<std::string>& w) {
    if (topology_) throw std::runtime_error("declarations must come before the first step");
    Args a = parse_args(w, 2, w.size(), {"region", "weight", "down", "lag"});
    NodeSpec spec;
    spec.name = w.at(1);
    spec.region = a.get("region");
    spec.weight = std::stod(a.get("weight", "1"));
    spec.up = std::count(a.flags.begin(), a.flags.end(), "down") == 0;
    if (w[0] == "primary") {
      primary_ = spec;
      return;
    }
    replicas_.push_back(spec);
    lags_.push_back(a.kv.count("lag") ? parse_ms(a.get("lag")) : -1);
  }

  void build() {
    if (topology_) return;
    topology_ = std::make_shared<Topology>(primary_, replicas_);
    tracker_ = std::make_unique<LagTracker>(topology_, lag_config_);
    for (std::int64_t ms = 0; ms <= kNowMs; ++ms) tracker_->primary_sample(ms * kMs, Lsn(lsn_at_ms(ms)));
    for (std::size_t k = 0; k < replicas_.size(); ++k) {
      if (lags_[k] < 0) continue;
      const Lsn replay(replay_behind(lags_[k]));
      tracker_->replica_sample(replicas_[k].name, kNow, replay, replay);
    }
    router_ = std::make_unique<Router>(topology_, router_config_);
  }

  // A node name, or the node a placeholder is bound to.
  std::string node_name(const std::string& word) const {
    if (word.empty() || word[0] != '$') return word;
    auto it = bound_.find(word);
    if (it == bound_.end()) throw std::runtime_error("placeholder " + word + " is not bound yet");
    return it->second;
  }

  // Does `got` match `want` (a name or a placeholder, bound here if it is new)?
  bool matches(const std::string& want, const std::string& got) {
    if (want.empty() || want[0] != '$') return want == got;
    auto it = bound_.find(want);
    if (it != bound_.end()) return it->second == got;
    for (const auto& [name, node] : bound_) {
      if (node == got) return false;  // distinct placeholders, distinct nodes
    }
    bound_[want] = got;
    return true;
  }

  void route(const std::vector<std::string>& w) {
    const auto arrow = std::find(w.begin(), w.end(), "->");
    if (arrow == w.end() || std::distance(arrow, w.end()) < 3) {
      throw std::runtime_error("expected '-> <node> <reason>'");
    }
    const std::size_t at = static_cast<std::size_t>(arrow - w.begin());
    const bool read = w[0] == "read";
    if (read && at < 2) throw std::runtime_error("expected 'read <consistency> ...'");
    Args a = parse_args(w, read ? 2 : 1, at, {"max_staleness_ms", "region", "at", "x"});
    const Args after = parse_args(w, at + 3, w.size(), {"required", "epoch"});
    const std::string expect = w[at + 1];
    const Reason reason = enum_named<Reason, kReasonCount>(w[at + 2], "reason");
    std::vector<std::string> got;
    for (int k = 0; k < a.repeat; ++k) {
      Decision d;
      if (w[0] == "write") {
        d = router_->route_write();
      } else {
        const Consistency level = enum_named<Consistency, 6>(w[1], "consistency");
        ReadOptions o;
        if (a.kv.count("max_staleness_ms")) o.max_staleness_ms = std::stod(a.get("max_staleness_ms"));
        if (a.kv.count("region")) o.region = topology_->region_id(a.get("region"));
        const std::int64_t now = a.kv.count("at") ? parse_time(a.get("at")) : kNow;
        d = router_->route_read(session_, level, now, o);
      }
      const std::string name = d.node == kNoNode ? kNoName : topology_->name(d.node);
      got.push_back(name);
      EXPECT_EQ(to_string(d.reason), to_string(reason)) << where_ << ": read " << k + 1 << " went to " << name;
      if (d.reason != reason) break;  // one message per step is enough
      if (after.kv.count("required")) {
        EXPECT_EQ(d.required_lsn, parse_lsn(after.get("required"))) << where_ << ": required_lsn";
      }
      if (after.kv.count("epoch")) {
        EXPECT_EQ(d.epoch, std::stoull(after.get("epoch"))) << where_ << ": epoch";
      }
    }
    check_nodes(expect, got);
  }

  void check_nodes(const std::string& expect, const std::vector<std::string>& got) {
    std::string seen;
    for (const auto& g : got) seen += (seen.empty() ? "" : ",") + g;
    if (expect.find('=') != std::string::npos) {
      std::map<std::string, int> count;
      for (const auto& g : got) ++count[g];
      for (const std::string& term : split(expect, ',')) {
        const std::size_t eq = term.find('='), tilde = term.find('~');
        const std::string name = node_name(term.substr(0, eq));
        const int want = std::stoi(term.substr(eq + 1, tilde == std::string::npos ? std::string::npos : tilde - eq - 1));
        const int slack = tilde == std::string::npos ? 0 : std::stoi(term.substr(tilde + 1));
        EXPECT_LE(std::abs(count[name] - want), slack) << where_ << ": " << name << " got " << count[name]
                                                        << " reads, expected " << term;
        count.erase(name);
      }
      for (const auto& [name, n] : count) EXPECT_EQ(n, 0) << where_ << ": " << name << " was not expected";
    } else if (expect.find(',') != std::string::npos) {
      const auto want = split(expect, ',');
      ASSERT_EQ(want.size(), got.size()) << where_ << ": the sequence must name every read";
      for (std::size_t k = 0; k < got.size(); ++k) {
        EXPECT_TRUE(matches(want[k], got[k])) << where_ << ": read " << k + 1 << " went to " << got[k]
                                              << ", expected " << want[k] << " (reads: " << seen << ")";
      }
    } else {
      const auto any = split(expect, '|');
      for (std::size_t k = 0; k < got.size(); ++k) {
        bool ok = false;
        for (const auto& want : any) ok = ok || matches(want, got[k]);
        EXPECT_TRUE(ok) << where_ << ": read " << k + 1 << " went to " << got[k] << ", expected " << expect;
        if (!ok) break;  // one message per step is enough
      }
    }
  }

  const Case& case_;
  std::string where_;
  NodeSpec primary_;
  std::vector<NodeSpec> replicas_;
  std::vector<std::int64_t> lags_;  // -1: never sampled
  LagConfig lag_config_ = [] {
    LagConfig c;
    c.max_lag_ms = 100;
    c.recover_lag_ms = 50;
    return c;
  }();
  RouterConfig router_config_;
  std::shared_ptr<Topology> topology_;
  std::unique_ptr<LagTracker> tracker_;
  std::unique_ptr<Router> router_;
  Session session_;
  std::map<std::string, std::string> bound_;
};

const std::vector<Case>& all_cases() {
  static const std::vector<Case> cases = load_all();
  return cases;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string stem = std::filesystem::path(info.param.file).stem().string();
  for (char& ch : stem) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return stem + "_line" + std::to_string(info.param.line);
}

class RoutingTables : public ::testing::TestWithParam<Case> {};

}  // namespace

TEST_P(RoutingTables, Case) {
  SCOPED_TRACE(GetParam().file + ":" + std::to_string(GetParam().line) + " case " + GetParam().title);
  CaseRun(GetParam()).run();
}

INSTANTIATE_TEST_SUITE_P(Routing, RoutingTables, ::testing::ValuesIn(all_cases()), case_name);

TEST(RoutingTablesFiles, EveryFileHasCases) {
  // An empty or missing folder must not pass silently.
  EXPECT_GE(all_cases().size(), 1u) << "no cases under " << REPLIKIT_TESTDATA_DIR << "/routing";
  std::set<std::string> files;
  for (const Case& c : all_cases()) {
    files.insert(c.file);
    EXPECT_FALSE(c.steps.empty()) << c.file << ":" << c.line << ": a case without steps";
  }
  std::printf("[ RoutingTables ] %zu cases in %zu files\n", all_cases().size(), files.size());
}
