#!/usr/bin/env bash
# Installs what replikit needs on a fresh Debian 12 machine and builds the package into .venv.
# Idempotent: packages already present are not reinstalled. Used by scripts/test.sh and
# scripts/demo.sh; source it or run it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Debian packages: compilers and build tools, libpq (the PostgreSQL backend's one dependency) and
# OpenSSL headers, libpqxx 6.4 (only for the pg_point_select benchmark baseline), GoogleTest,
# Google Benchmark, PostgreSQL 15 for the real-cluster tests, pgpool-II for the comparison benchmark,
# clang 14 with its libFuzzer runtime (libclang-rt-14-dev) for the fuzz targets in fuzz/, etcd 3.4
# (etcd-server; the tests start their own members, never on 2379/2380) for the coordination tests,
# openssl (the command) for their throw-away TLS certificates.
PACKAGES=(g++ cmake ninja-build pkg-config python3-venv python3-dev libpq-dev libpqxx-dev libssl-dev
          libgtest-dev libbenchmark-dev postgresql-15 postgresql-client-15 pgpool2 procps
          clang libclang-rt-14-dev etcd-server openssl)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# The machine's own python3 (pyenv) may already provide venv and headers: skip Debian's then.
if python3 -c "import venv, sysconfig, os; assert os.path.exists(sysconfig.get_paths()['include'] + '/Python.h')" 2>/dev/null; then
  missing=($(printf '%s\n' "${missing[@]}" | grep -v -x -e python3-venv -e python3-dev || true))
fi
# cmake/ninja from PyPI (on PATH) are fine too.
command -v cmake >/dev/null 2>&1 && missing=($(printf '%s\n' "${missing[@]}" | grep -v -x cmake || true))
command -v ninja >/dev/null 2>&1 && missing=($(printf '%s\n' "${missing[@]}" | grep -v -x ninja-build || true))
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python: a venv of our own with the package and the test/notebook dependencies.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# The build tools first (the wheel build below reuses them: --no-build-isolation), then the
# package with its test extras and the optional integrations the tests exercise (pyproject.toml
# lists them).
.venv/bin/python -m pip install -q --disable-pip-version-check scikit-build-core "pybind11>=3.0"
# Warnings are errors in our own build.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation \
  -Ccmake.define.REPLIKIT_WERROR=ON -Cbuild-dir=build/py ".[test,sqlalchemy,django]"
