#include "conninfo.hpp"

#include <libpq-fe.h>

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

}  // namespace

std::string build_conninfo(const std::string& node, const std::string& dsn,
                           const std::vector<std::pair<std::string, std::string>>& defaults,
                           const std::string& extra_options) {
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(dsn.c_str(), &error);
  if (parsed == nullptr) {
    std::string message = error != nullptr ? error : "out of memory";
    if (error != nullptr) PQfreemem(error);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    throw ConnectionError("node '" + node + "': invalid DSN: " + message);
  }
  std::unique_ptr<PQconninfoOption, void (*)(PQconninfoOption*)> guard(parsed, PQconninfoFree);
  std::string out;
  std::vector<std::string> given;
  std::string options;
  for (PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    std::string key = o->keyword;
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

}  // namespace replikit::pg::detail
