#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh), then runs every test: the GoogleTest suite (Release,
# warnings as errors), the same suite under AddressSanitizer + UndefinedBehaviorSanitizer,
# a short run of each libFuzzer target (clang), and the pytest suite (unit, property,
# real-PostgreSQL scenarios, notebooks), which also runs the C++ PostgreSQL suite (Release, and
# ASan + LeakSanitizer from build/asan-pg) against its cluster.
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
  -DREPLIKIT_WERROR=ON -DREPLIKIT_SANITIZE=address,undefined -DREPLIKIT_WITH_PG=OFF >/dev/null
cmake --build build/asan -j2 --target replikit_tests
(cd build/asan && ctest --output-on-failure)

echo "== C++ PostgreSQL tests under address + leak + undefined behaviour sanitizers (build) =="
# Built here, run by tests/python/test_pg_cpp.py against the pytest session's cluster (as is
# build/ci/replikit_pg_tests).
cmake -S . -B build/asan-pg -G Ninja -DCMAKE_BUILD_TYPE=Debug -DREPLIKIT_BUILD_TESTS=ON \
  -DREPLIKIT_WERROR=ON -DREPLIKIT_SANITIZE=address,undefined -DREPLIKIT_WITH_PG=ON >/dev/null
cmake --build build/asan-pg -j2 --target replikit_pg_tests

echo "== fuzzers: a short libFuzzer run of each target (fuzz/README.md has the long ones) =="
if command -v clang++ >/dev/null 2>&1; then
  CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DREPLIKIT_BUILD_FUZZERS=ON -DREPLIKIT_WITH_PG=OFF -DREPLIKIT_WERROR=ON >/dev/null
  cmake --build build/fuzz -j2
  for target in fuzz_lsn fuzz_token fuzz_conninfo; do
    # New inputs go to a scratch directory, not into the seed corpus in the repository.
    scratch="$(mktemp -d)"
    if ! build/fuzz/$target -runs=20000 -max_total_time=20 -artifact_prefix="$scratch/" "$scratch" \
        "fuzz/corpus/$target" >"$scratch/log" 2>&1; then
      tail -n 40 "$scratch/log" >&2
      echo "$target failed; the failing input is kept in $scratch" >&2
      exit 1
    fi
    echo "$target: $(tail -n 1 "$scratch/log")"
    rm -rf "$scratch"
  done
else
  echo "clang++ not found (scripts/setup.sh installs clang and libclang-rt-14-dev): fuzzers skipped" >&2
fi

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
