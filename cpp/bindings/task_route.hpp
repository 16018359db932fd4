#pragma once
// TaskRoute: where an asyncio connection router's path (ReadPath, read_path.hpp) keeps each task's
// latest read's Decision, in a memory bounded by the paths alive rather than by the paths a task
// ever read through.
#include <pybind11/pybind11.h>

namespace replikit::bindings {

namespace py = pybind11;

/// One path's entry in the asyncio tasks' latest routes. Every path shares ONE context variable
/// (a variable per path stayed in a context, with its Decision, for as long as the context lived:
/// a task that made a router per request kept one per router it ever read through). Its value in
/// a context is an immutable tuple (key, Decision, key, Decision, ...), one pair per path that
/// context holds a route of, copied on write as a context variable's value must be (a task
/// started meanwhile keeps its creator's as it was). A write keeps only the pairs of paths still
/// alive, so a context holds at most one pair per path alive at its latest write. Everything here
/// runs under the GIL (the module does not declare itself free-threading safe).
class TaskRoute {
 public:
  TaskRoute();
  ~TaskRoute();
  TaskRoute(const TaskRoute&) = delete;
  TaskRoute& operator=(const TaskRoute&) = delete;

  /// The calling context's Decision of this path (null when it holds none).
  py::object get() const;
  /// Sets the calling context's Decision of this path (None: none), dropping the pairs of the
  /// paths gone. No Python code runs between the read of the context's tuple and the write.
  void set(const py::handle& value) const;

 private:
  unsigned long long serial_;  // in the set of the paths alive while this lives
  // Its int object, the key of its pairs, compared by identity: held here and by every tuple that
  // holds one of its pairs, so it is never another live path's key.
  py::object key_;
};

}  // namespace replikit::bindings
