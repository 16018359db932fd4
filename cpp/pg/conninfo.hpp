#pragma once
// Connection strings: libpq parses them (PQconninfoParse); replikit only adds defaults.
#include <string>
#include <utility>
#include <vector>

namespace replikit::pg::detail {

/// Parses `dsn` with libpq (key=value or URI) and returns an equivalent key=value string
/// with each of `defaults` added unless the DSN sets that keyword itself; `extra_options`
/// is appended to libpq's `options` keyword (server settings such as "-c statement_timeout=...").
/// Throws ConnectionError with libpq's message for a malformed DSN, naming `node`.
std::string build_conninfo(const std::string& node, const std::string& dsn,
                           const std::vector<std::pair<std::string, std::string>>& defaults,
                           const std::string& extra_options);

}  // namespace replikit::pg::detail
