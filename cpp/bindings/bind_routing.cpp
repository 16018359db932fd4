#include "bindings.hpp"

namespace replikit::bindings {

void bind_routing(py::module_&) {}

}  // namespace replikit::bindings
