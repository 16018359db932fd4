#include "bindings.hpp"

namespace replikit::bindings {

void bind_quorum(py::module_&) {
  // Filled in by the quorum work (issue 3).
}

}  // namespace replikit::bindings
