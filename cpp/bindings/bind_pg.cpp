#include "bindings.hpp"

namespace replikit::bindings {

void bind_pg(py::module_& m) {
#ifdef REPLIKIT_HAVE_PG
  m.attr("HAVE_PG") = true;
#else
  m.attr("HAVE_PG") = false;
#endif
}

}  // namespace replikit::bindings
