#include "bindings.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "replikit's compiled core: routing, lag tracking, sessions, quorum math, PostgreSQL backend";
  using namespace replikit::bindings;
  bind_errors(m);
  bind_lsn(m);
  bind_routing(m);
  bind_quorum(m);
  bind_pg(m);
}
