"""Every fenced code block in README.md runs as written.

Rules (the README follows them; this test enforces them):

- Every block names its language: ```python, ```cpp, ```bash or ```text. A block without
  one fails the test, so that nothing is skipped by accident.
- ```python blocks run in order, each in a fresh namespace. A block whose first line is
  ``# continues the previous block`` runs in the namespace the previous python block left.
  A block that uses ``LocalCluster`` needs PostgreSQL: it is marked ``pg`` and skipped when
  the server is not installed.
- Output claims are checked where the README states an output:
    ``print(...)  # prints: TEXT``   what that statement prints must be TEXT;
    ``expression  # -> TEXT``        repr() of the expression's value must be TEXT;
  ``...`` in TEXT matches any text (as doctest's ELLIPSIS), so a claim can leave out what
  varies. A claim may sit on any expression statement, also inside ``with`` or ``for``.
  A ``print(...)`` with any other trailing comment fails the test: either claim the output
  or move the comment to its own line.
- ```cpp blocks are complete programs: each is compiled in a tiny temporary CMake project
  that adds this repository with add_subdirectory and links ``replikit_core`` (built under
  build/readme-cpp, incremental across runs), then run; ``// prints: TEXT`` comments are
  checked, in order, against the program's output lines. Skipped, with the reason, only
  when cmake or a C++ compiler is missing.
- ```bash and ```text blocks are documentation and are not run (test_documentation_blocks
  lists them), except a block opened with ```bash test, which runs with ``bash -e`` from
  the repository root.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import io
import os
import re
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
LANGUAGES = {"python", "cpp", "bash", "text"}
CONTINUES = "# continues the previous block"
PG_SERVER_BINARY = "/usr/lib/postgresql/15/bin/postgres"


@dataclass
class Block:
    language: str
    marker: str  # the rest of the info string ("test" for ```bash test)
    code: str
    line: int    # line of the opening fence in README.md

    @property
    def id(self) -> str:
        return f"{self.language}-line{self.line}"


def readme_blocks() -> List[Block]:
    blocks: List[Block] = []
    lines = README.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^```(.*)$", lines[i])
        if not opening:
            i += 1
            continue
        info = opening.group(1).strip().split()
        start = i
        i += 1
        body = []
        while i < len(lines) and lines[i].rstrip() != "```":
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"README.md:{start + 1}: code block is never closed")
        i += 1
        blocks.append(Block(info[0] if info else "", " ".join(info[1:]), "\n".join(body) + "\n", start + 1))
    return blocks


BLOCKS = readme_blocks()


def claim_matches(claim: str, actual: str) -> bool:
    return doctest.OutputChecker().check_output(claim.strip() + "\n", actual.strip() + "\n",
                                                doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)


# ------------------------------------------------------------------------------ python

def trailing_comments(code: str) -> Dict[int, str]:
    """Line number -> text of the comment that ends that line."""
    import tokenize
    out: Dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string[1:].strip()
    return out


class _Claims(ast.NodeTransformer):
    """Wraps every expression statement that carries a claim in a call to __readme_claim__."""

    def __init__(self, comments: Dict[int, str], block: Block):
        self.comments = comments
        self.block = block
        self.count = 0

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        comment = self.comments.get(node.end_lineno or node.lineno, "")
        is_print = (isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                    and node.value.func.id == "print")
        if comment.startswith("prints:"):
            kind, claim = "prints", comment[len("prints:"):]
        elif comment.startswith("->"):
            kind, claim = "value", comment[len("->"):]
        elif is_print and comment:
            line = self.block.line + node.lineno
            raise AssertionError(f"README.md:{line}: a print with a comment must claim its output "
                                 f"with '# prints: TEXT' (got '# {comment}')")
        else:
            return node
        self.count += 1
        call = ast.Call(
            func=ast.Name("__readme_claim__", ast.Load()),
            args=[ast.Constant(kind), ast.Constant(claim.strip()), ast.Constant(self.block.line + node.lineno),
                  ast.Lambda(ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
                             node.value)],
            keywords=[])
        return ast.copy_location(ast.Expr(call), node)


def _check_claim(kind: str, claim: str, line: int, thunk):
    if kind == "prints":
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            thunk()
        actual = out.getvalue()
    else:
        actual = repr(thunk())
    print(f"README.md:{line}: {actual.strip()}")
    assert claim_matches(claim, actual), f"README.md:{line}: claims {claim!r}, got {actual.strip()!r}"


def python_params():
    params = []
    for index, block in enumerate(BLOCKS):
        if block.language != "python":
            continue
        marks = [pytest.mark.pg] if "LocalCluster" in block.code else []
        params.append(pytest.param(index, id=block.id, marks=marks))
    return params


_namespaces: Dict[int, dict] = {}


@pytest.mark.parametrize("index", python_params())
def test_python_block(index):
    block = BLOCKS[index]
    if "LocalCluster" in block.code and not os.path.exists(PG_SERVER_BINARY):
        pytest.skip(f"needs the PostgreSQL 15 server ({PG_SERVER_BINARY})")
    if block.code.startswith(CONTINUES):
        earlier = [i for i in _namespaces if i < index]
        assert earlier, f"README.md:{block.line}: continues a python block that did not run"
        namespace = _namespaces[max(earlier)]
    else:
        namespace = {"__name__": "__readme__"}
    namespace["__readme_claim__"] = _check_claim
    tree = ast.parse(block.code, filename=f"README.md:{block.line}")
    claims = _Claims(trailing_comments(block.code), block)
    tree = ast.fix_missing_locations(claims.visit(tree))
    exec(compile(tree, f"README.md (block at line {block.line})", "exec"), namespace)
    _namespaces[index] = namespace
    print(f"README.md:{block.line}: ran, {claims.count} output claim(s) checked")


# ------------------------------------------------------------------------------ C++

def _cxx_tools() -> Optional[str]:
    """None when cmake and a C++ compiler are available, else why not."""
    if shutil.which("cmake") is None:
        return "cmake is not installed"
    if not any(shutil.which(c) for c in (os.environ.get("CXX", "c++"), "g++", "clang++")):
        return "no C++ compiler (c++, g++, clang++) is installed"
    return None


CMAKE_PROJECT = textwrap.dedent("""\
    cmake_minimum_required(VERSION 3.18)
    project(readme_block LANGUAGES CXX)
    set(CMAKE_CXX_STANDARD 17)
    set(CMAKE_CXX_STANDARD_REQUIRED ON)
    add_subdirectory("{root}" replikit EXCLUDE_FROM_ALL)
    add_executable(readme_block main.cpp)
    target_link_libraries(readme_block PRIVATE replikit_core)
    """)


@pytest.mark.parametrize("index", [pytest.param(i, id=b.id) for i, b in enumerate(BLOCKS) if b.language == "cpp"])
def test_cpp_block(index, tmp_path):
    block = BLOCKS[index]
    missing = _cxx_tools()
    if missing:
        pytest.skip(f"cannot compile the README's C++ block: {missing}")
    # The project lives in a persistent build folder so that replikit_core builds incrementally.
    build = ROOT / "build" / "readme-cpp" / f"line{block.line}"
    src = build / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "CMakeLists.txt").write_text(CMAKE_PROJECT.format(root=ROOT.as_posix()))
    (src / "main.cpp").write_text(block.code)
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    for cmd in (["cmake", "-S", str(src), "-B", str(build / "out"), "-DCMAKE_BUILD_TYPE=Release", *generator],
                ["cmake", "--build", str(build / "out"), "--target", "readme_block", "-j2"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"README.md:{block.line}: {' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    exe = build / "out" / "readme_block"
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"README.md:{block.line}: exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    claims = re.findall(r"//\s*prints:\s*(.*)$", block.code, flags=re.M)
    lines = run.stdout.splitlines()
    assert len(lines) == len(claims), f"README.md:{block.line}: {len(claims)} claims, output {lines!r}"
    for claim, actual in zip(claims, lines):
        assert claim_matches(claim, actual), f"README.md:{block.line}: claims {claim!r}, got {actual!r}"
    print(f"README.md:{block.line}: compiled and ran, {len(claims)} output claim(s) checked")


# ------------------------------------------------------------------------------ the rest

def test_every_block_names_a_known_language():
    unknown = [f"README.md:{b.line}: ```{b.language}" for b in BLOCKS if b.language not in LANGUAGES]
    assert not unknown, "blocks without a known language (python, cpp, bash, text): " + ", ".join(unknown)
    assert any(b.language == "python" for b in BLOCKS) and any(b.language == "cpp" for b in BLOCKS)


def test_documentation_blocks():
    # Listed, not run (shell commands that install packages or start long jobs).
    for b in BLOCKS:
        if b.language in ("bash", "text") and b.marker != "test":
            first = b.code.strip().splitlines()[0] if b.code.strip() else ""
            print(f"README.md:{b.line}: ```{b.language} (documentation, not run): {first}")


@pytest.mark.parametrize("index", [pytest.param(i, id=b.id) for i, b in enumerate(BLOCKS)
                                   if b.language == "bash" and b.marker == "test"])
def test_marked_bash_block(index):
    block = BLOCKS[index]
    proc = subprocess.run(["bash", "-e", "-c", block.code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"README.md:{block.line}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
