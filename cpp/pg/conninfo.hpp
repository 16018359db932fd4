#pragma once
// Connection strings: libpq parses them (PQconninfoParse); replikit only adds defaults.
#include <cstdint>
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

/// A connect refused with SQLSTATE 53300 (too many connections, or the remaining slots are
/// reserved): the server is up and answering, only full. Needs the message of a connection
/// made with verbose errors (PQERRORS_VERBOSE), which carries the SQLSTATE whatever the
/// server's language.
inline bool server_full(const std::string& message) { return message.find(" 53300: ") != std::string::npos; }

/// A verbose libpq message without its LOCATION line (the server's source file and line).
inline std::string without_location(std::string message) {
  const std::size_t at = message.find("\nLOCATION:");
  if (at != std::string::npos) message.erase(at);
  return trimmed(message);
}

/// libpq's connect_timeout in `conninfo` (seconds; libpq waits at least 2) as nanoseconds,
/// `fallback_ns` when it is unset or not a positive integer.
std::int64_t connect_timeout_ns(const std::string& conninfo, std::int64_t fallback_ns);

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
