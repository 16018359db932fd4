#pragma once
// Connection strings: libpq parses them (PQconninfoParse); replikit only adds defaults.
#include <string>
#include <utility>
#include <vector>

namespace replikit::pg::detail {

/// `text` without trailing newlines and spaces (libpq's messages end in "\n"); null gives "".
inline std::string trimmed(const char* text) {
  std::string s = text != nullptr ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}
/// The same for a std::string.
inline std::string trimmed(const std::string& text) { return trimmed(text.c_str()); }

/// Parses `dsn` with libpq (key=value or URI) and returns an equivalent key=value string
/// with each of `defaults` added unless the DSN sets that keyword itself; `extra_options`
/// is appended to libpq's `options` keyword (server settings such as "-c statement_timeout=...").
/// Each keyword in `positive` (which must also be in `defaults`) keeps the DSN's value only when
/// that is a positive integer; otherwise (e.g. connect_timeout=0, libpq's "wait forever") the
/// default replaces it.
/// Throws ConnectionError with libpq's message for a malformed DSN, naming `node`.
std::string build_conninfo(const std::string& node, const std::string& dsn,
                           const std::vector<std::pair<std::string, std::string>>& defaults,
                           const std::string& extra_options, const std::vector<std::string>& positive = {});

}  // namespace replikit::pg::detail
