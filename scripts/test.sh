#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh), then runs every test: the GoogleTest suite (Release,
# warnings as errors), the same suite under AddressSanitizer + UndefinedBehaviorSanitizer,
# and the pytest suite (unit, property, real-PostgreSQL scenarios, notebooks), which also runs
# the C++ PostgreSQL suite (Release, and ASan + LeakSanitizer from build/asan-pg) against its cluster.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh

echo "== C++ tests (Release, -Werror) =="
cmake -S . -B build/ci -G Ninja -DCMAKE_BUILD_TYPE=Release -DREPLIKIT_BUILD_TESTS=ON \
  -DREPLIKIT_BUILD_BENCHMARKS=ON -DREPLIKIT_WERROR=ON >/dev/null
cmake --build build/ci -j2
(cd build/ci && ctest --output-on-failure)

echo "== C++ tests under address + undefined behaviour sanitizers =="
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DREPLIKIT_BUILD_TESTS=ON \
  -DREPLIKIT_WERROR=ON -DREPLIKIT_SANITIZE=address,undefined -DREPLIKIT_WITH_PQXX=OFF >/dev/null
cmake --build build/asan -j2 --target replikit_tests
(cd build/asan && ctest --output-on-failure)

echo "== C++ PostgreSQL tests under address + leak + undefined behaviour sanitizers (build) =="
# Built here, run by tests/python/test_pg_cpp.py against the pytest session's cluster (as is
# build/ci/replikit_pg_tests).
cmake -S . -B build/asan-pg -G Ninja -DCMAKE_BUILD_TYPE=Debug -DREPLIKIT_BUILD_TESTS=ON \
  -DREPLIKIT_WERROR=ON -DREPLIKIT_SANITIZE=address,undefined -DREPLIKIT_WITH_PQXX=ON >/dev/null
cmake --build build/asan-pg -j2 --target replikit_pg_tests

echo "== Python tests =="
set +e
.venv/bin/python -m pytest tests/python -q -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$status"
