"""The package that ships py.typed type-checks as strictly as it asks its users to:
`mypy --strict python/replikit` (its own source, with the compiled module's _core.pyi) reports
no error outside EXCLUDED, run from the repository root as a developer runs it (so a
[tool.mypy] section in pyproject.toml, if one is added, applies here too).

A mypy crash or a usage error (exit status 2) fails the test, as does any error line outside
EXCLUDED; the mypy cache is a temporary directory, so every run checks from scratch.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import mypy  # noqa: F401  (in the test extra: missing mypy fails, never skips)

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "python" / "replikit"
EXCLUDED: tuple[str, ...] = ()

ERROR_LINE = re.compile(r"^(?P<path>[^:\s][^:]*):\d+(?::\d+)?: error: ")


def _errors_outside(output: str, excluded: tuple[str, ...]) -> list[str]:
    """mypy's error lines whose file is in none of the ``excluded`` directories; a line that
    says "error:" but names no file (a config or usage error) is always kept."""
    kept = []
    for line in output.splitlines():
        if " error: " not in line and not line.startswith("error: "):
            continue
        found = ERROR_LINE.match(line)
        path = found.group("path").replace("\\", "/") if found else ""
        if found and any(part in path for part in excluded):
            continue
        kept.append(line)
    return kept


def test_errors_outside_filters_only_the_excluded_directories():
    output = ("python/replikit/psycopg/sync.py:1: error: Returning Any  [no-any-return]\n"
              "python/replikit/demo.py:2: error: Missing type  [no-untyped-def]\n"
              "python/replikit/demo.py:2: note: a note is no error\n"
              "error: Cannot find implementation or library stub\n")
    assert _errors_outside(output, ("replikit/psycopg/",)) == [
        "python/replikit/demo.py:2: error: Missing type  [no-untyped-def]",
        "error: Cannot find implementation or library stub"]
    assert len(_errors_outside(output, ())) == 3


def test_mypy_strict_on_the_package_source(tmp_path):
    assert (PACKAGE / "py.typed").is_file() and (PACKAGE / "_core.pyi").is_file(), PACKAGE
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / ".mypy_cache"),
         "--no-error-summary", "--show-error-codes", "--no-pretty", "--no-color-output",
         str(PACKAGE.relative_to(ROOT))],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1), output  # 2: mypy crashed or was misused
    assert (proc.returncode == 1) == bool(_errors_outside(output, ())), output
    errors = _errors_outside(output, EXCLUDED)
    assert errors == [], "\n".join(errors)
    if not EXCLUDED:
        assert proc.returncode == 0, output
