// libFuzzer target for build_conninfo (cpp/pg/conninfo.cpp), which rewrites a user's DSN
// through libpq's own parser.
// Input: the DSN, then optionally "\x01" and the extra server options, then optionally "\x01"
// and an application_name default.
// Properties:
// - build_conninfo accepts exactly what PQconninfoParse accepts; it refuses with ConnectionError
//   naming the node, and raises nothing else;
// - its output is accepted by PQconninfoParse, and parses to the DSN's own settings, plus each
//   default the DSN did not set (connect_timeout: kept only when a positive integer), and
//   `options` = extra options followed by the DSN's own.
// A DSN holding a NUL byte is cut there by the C API (std::string -> char*), so the DSN part
// stops at the first NUL.
#include <libpq-fe.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "conninfo.hpp"
#include "fuzz_check.hpp"
#include "replikit/errors.hpp"

namespace {

using Settings = std::map<std::string, std::string>;

// What libpq parses `text` to (keywords with a value), or false when it refuses it.
bool libpq_parse(const std::string& text, Settings& out) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(text.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);
    return false;
  }
  out.clear();
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val != nullptr) out[o->keyword] = o->val;
  }
  PQconninfoFree(options);
  return true;
}

bool positive_integer(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (end == text.c_str() || errno != 0) return false;
  while (*end == ' ' || *end == '\t') ++end;
  return *end == '\0' && v > 0;
}

std::string until_nul(std::string_view s) { return std::string(s.substr(0, s.find('\0'))); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string parts[3] = {"", "", "fuzz"};
  for (int i = 0; i < 3; ++i) {
    const auto cut = input.find('\x01');
    parts[i] = until_nul(input.substr(0, cut));
    if (cut == std::string_view::npos) break;
    input.remove_prefix(cut + 1);
  }
  const std::string& dsn = parts[0];
  const std::string& extra = parts[1];
  const std::vector<std::pair<std::string, std::string>> defaults = {
      {"application_name", parts[2]}, {"connect_timeout", "5"}};

  Settings given;
  const bool valid = libpq_parse(dsn, given);
  std::string out;
  try {
    out = replikit::pg::detail::build_conninfo("n1", dsn, defaults, extra, {"connect_timeout"});
  } catch (const replikit::ConnectionError& e) {
    FUZZ_CHECK(!valid);
    FUZZ_CHECK(std::string_view(e.what()).rfind("node 'n1': invalid DSN: ", 0) == 0);
    return 0;
  }
  FUZZ_CHECK(valid);
  Settings got;
  FUZZ_CHECK(libpq_parse(out, got));

  Settings expected = given;
  if (expected.count("connect_timeout") && !positive_integer(expected["connect_timeout"])) {
    expected.erase("connect_timeout");
  }
  for (const auto& [key, value] : defaults) expected.emplace(key, value);
  std::string options = expected.count("options") ? expected["options"] : "";
  if (!extra.empty()) options = options.empty() ? extra : extra + " " + options;
  if (options.empty()) {
    expected.erase("options");
  } else {
    expected["options"] = options;
  }
  FUZZ_CHECK(got == expected);
  return 0;
}
