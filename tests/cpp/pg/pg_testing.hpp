#pragma once
// Helpers shared by the PostgreSQL backend's C++ tests.
#include <string>
#include <utility>

#include "replikit/pg/database.hpp"

namespace replikit::pg::testing {

/// A node named `name` at `dsn`, every other field at its default.
inline NodeConfig node(std::string name, std::string dsn) {
  NodeConfig c;
  c.name = std::move(name);
  c.dsn = std::move(dsn);
  return c;
}

}  // namespace replikit::pg::testing
