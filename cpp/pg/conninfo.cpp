#include "conninfo.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <memory>

#include "replikit/errors.hpp"

namespace replikit::pg::detail {

namespace {

// key='value' with libpq's quoting: backslash and single quote escaped by a backslash.
void append_pair(std::string& out, const std::string& key, const std::string& value) {
  if (!out.empty()) out.push_back(' ');
  out += key;
  out += "='";
  for (char c : value) {
    if (c == '\\' || c == '\'') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
}

bool is_positive_integer(const char* text) {
  errno = 0;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (end == text || errno != 0) return false;
  while (*end == ' ' || *end == '\t') ++end;
  return *end == '\0' && value > 0;
}

}  // namespace

std::string build_conninfo(const std::string& node, const std::string& dsn,
                           const std::vector<std::pair<std::string, std::string>>& defaults,
                           const std::string& extra_options, const std::vector<std::string>& positive) {
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(dsn.c_str(), &error);
  if (parsed == nullptr) {
    std::string message = error != nullptr ? trimmed(error) : "out of memory";
    if (error != nullptr) PQfreemem(error);
    throw ConnectionError("node '" + node + "': invalid DSN: " + message);
  }
  std::unique_ptr<PQconninfoOption, void (*)(PQconninfoOption*)> guard(parsed, PQconninfoFree);
  std::string out;
  std::vector<std::string> given;
  std::string options;
  for (PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    std::string key = o->keyword;
    bool must_be_positive = false;
    for (const auto& p : positive) must_be_positive = must_be_positive || p == key;
    if (must_be_positive && !is_positive_integer(o->val)) continue;  // the default replaces it
    given.push_back(key);
    if (key == "options") {
      options = o->val;
      continue;
    }
    append_pair(out, key, o->val);
  }
  for (const auto& [key, value] : defaults) {
    bool set = false;
    for (const auto& g : given) set = set || g == key;
    if (!set) append_pair(out, key, value);
  }
  if (!extra_options.empty()) options = options.empty() ? extra_options : extra_options + " " + options;  // the DSN's own settings win
  if (!options.empty()) append_pair(out, "options", options);
  return out;
}

std::int64_t connect_timeout_ns(const std::string& conninfo, std::int64_t fallback_ns) {
  PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), nullptr);
  if (parsed == nullptr) return fallback_ns;
  std::unique_ptr<PQconninfoOption, void (*)(PQconninfoOption*)> guard(parsed, PQconninfoFree);
  for (PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || std::string(o->keyword) != "connect_timeout" || !is_positive_integer(o->val)) continue;
    const long seconds = std::max(2L, std::min(std::strtol(o->val, nullptr, 10), 86400L * 365));
    return static_cast<std::int64_t>(seconds) * 1'000'000'000;
  }
  return fallback_ns;
}

}  // namespace replikit::pg::detail
