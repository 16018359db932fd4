#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh), then runs the main demo: simulated users writing and
# reading back their own data while a replica's replay is paused and resumed. It runs against a
# real local PostgreSQL 15 cluster it starts itself (and stops afterwards) when PostgreSQL and the
# PostgreSQL backend are available, and in-process otherwise. Extra arguments go to the demo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
exec .venv/bin/python -m replikit.demo "$@"
