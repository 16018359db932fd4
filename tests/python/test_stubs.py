"""The type stubs (python/replikit/_core.pyi) against the compiled module replikit._core.

Every public name of the module is in the stub and every public stub name is in the module;
for each class, every public method / property / enum member likewise, with the right kind
(method, static method, property or attribute), the right bases, and the protocol dunders
the class implements (len, iteration, context manager, operators). This covers every section
of the stub (routing, quorum, pg). The routing section is checked more strictly: parameter
names against pybind11's signatures, enum values, read-only properties typed as read-only.

The stub is parsed with `ast`, never imported.
"""

from __future__ import annotations

import ast
import enum
import inspect
import re
from pathlib import Path

import pytest

import replikit
from replikit import _core

STUB_PATH = Path(__file__).resolve().parents[2] / "python" / "replikit" / "_core.pyi"
ROUTING_START, ROUTING_END = "# ---- routing ----", "# ---- end routing ----"
PG_START, PG_END = "# ---- pg ----", "# ---- end pg ----"

# Protocol dunders that change how a class is used; the stub must declare them when present.
PROTOCOL_DUNDERS = {
    "__len__", "__iter__", "__next__", "__getitem__", "__setitem__", "__contains__", "__enter__",
    "__exit__", "__call__", "__int__", "__index__", "__float__", "__bool__", "__add__", "__sub__",
    "__mul__", "__truediv__", "__lt__", "__le__", "__gt__", "__ge__", "__getstate__", "__setstate__",
    "__copy__", "__deepcopy__",
}


def stub_text() -> str:
    return STUB_PATH.read_text()


def section(text: str, start: str, end: str) -> str:
    assert text.count(start) == 1 and text.count(end) == 1, f"expected one '{start}' and one '{end}'"
    return text[text.index(start): text.index(end)]


def top_level(tree: ast.Module) -> dict:
    """Public top-level definitions: name -> 'class' | 'function' | 'variable' (and the node)."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            out[node.name] = ("class", node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = ("function", node)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = ("variable", node)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = ("variable", node)
    return {k: v for k, v in out.items() if not k.startswith("_")}


def decorator_names(fn: ast.FunctionDef) -> set:
    names = set()
    for d in fn.decorator_list:
        if isinstance(d, ast.Name):
            names.add(d.id)
        elif isinstance(d, ast.Attribute):
            names.add(d.attr)  # e.g. x.setter -> 'setter'
    return names


def class_members(cls: ast.ClassDef) -> dict:
    """name -> kind: 'method', 'staticmethod', 'classmethod', 'property', 'rw-property', 'attribute'."""
    out = {}
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            decos = decorator_names(node)
            if "setter" in decos:
                out[node.name] = "rw-property"
            elif "property" in decos:
                out.setdefault(node.name, "property")
            elif "staticmethod" in decos:
                out[node.name] = "staticmethod"
            elif "classmethod" in decos:
                out[node.name] = "classmethod"
            else:
                out[node.name] = "method"
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = "attribute"
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = "attribute"
    return out


def runtime_kind(cls, name) -> str:
    raw = inspect.getattr_static(cls, name)
    if isinstance(raw, staticmethod):
        return "staticmethod"
    if isinstance(raw, classmethod):
        return "classmethod"
    if isinstance(raw, property):
        return "property" if raw.fset is None else "rw-property"
    if callable(raw):
        # pybind11 static methods are wrapped in staticmethod; instance methods are plain callables.
        return "method"
    return "attribute"


KIND_COMPATIBLE = {
    "method": {"method"},
    "staticmethod": {"staticmethod"},
    "classmethod": {"classmethod"},
    "property": {"property", "attribute"},
    "rw-property": {"rw-property", "attribute"},
    "attribute": {"attribute", "property", "rw-property"},
}


@pytest.fixture(scope="module")
def stub():
    text = stub_text()
    tree = ast.parse(text, filename=str(STUB_PATH))
    return text, tree, top_level(tree)


def runtime_public():
    return {n for n in dir(_core) if not n.startswith("_")}


def optional_names(text: str) -> set:
    """Stub names the module may lack in this build: the pg section without libpqxx, HmacSigner
    without OpenSSL."""
    names = set()
    if not getattr(_core, "HAVE_PG", False) and PG_START in text and PG_END in text:
        pg = top_level(ast.parse(section(text, PG_START, PG_END)))
        names |= set(pg) - {"HAVE_PG"}
    names.add("HmacSigner")
    return names


def test_stub_exists_and_is_valid_python():
    assert STUB_PATH.exists(), f"{STUB_PATH} is missing"
    compile(stub_text(), str(STUB_PATH), "exec", flags=ast.PyCF_ONLY_AST)
    assert (STUB_PATH.parent / "py.typed").exists()


def test_every_module_name_is_in_the_stub(stub):
    _, _, names = stub
    missing = sorted(runtime_public() - set(names))
    assert not missing, f"in replikit._core but not in _core.pyi: {missing}"


def test_every_stub_name_is_in_the_module(stub):
    text, _, names = stub
    extra = sorted(set(names) - runtime_public() - optional_names(text))
    assert not extra, f"in _core.pyi but not in replikit._core: {extra}"


def test_no_name_is_defined_twice(stub):
    """Sections are written separately: two sections declaring one name is a conflict."""
    _, tree, _ = stub
    seen, dupes = set(), set()
    for node in tree.body:
        names = []
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names = [node.name]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        for n in names:
            (dupes if n in seen else seen).add(n)
    assert not dupes, f"defined more than once in _core.pyi: {sorted(dupes)}"


def test_kinds_of_module_names(stub):
    _, _, names = stub
    wrong = []
    for name in sorted(runtime_public() & set(names)):
        obj = getattr(_core, name)
        expected = "class" if isinstance(obj, type) else "function" if callable(obj) else "variable"
        if names[name][0] != expected:
            wrong.append(f"{name}: module has a {expected}, stub a {names[name][0]}")
    assert not wrong, wrong


def stub_classes(stub):
    _, _, names = stub
    for name in sorted(names):
        kind, node = names[name]
        if kind == "class" and hasattr(_core, name) and isinstance(getattr(_core, name), type):
            yield name, node, getattr(_core, name)


def test_class_bases_match(stub):
    wrong = []
    for name, node, cls in stub_classes(stub):
        # Generic[...] makes a stub class generic for type checkers only (Result[Row]).
        stub_bases = sorted(ast.unparse(b).split(".")[-1] for b in node.bases
                            if not ast.unparse(b).startswith("Generic["))
        runtime_bases = sorted(b.__name__ for b in cls.__bases__ if b is not object)
        if issubclass(cls, enum.Enum):
            runtime_bases = sorted(b.__name__ for b in cls.__bases__)
        if runtime_bases == ["pybind11_object"]:
            runtime_bases = []
        if stub_bases != runtime_bases:
            wrong.append(f"{name}: stub bases {stub_bases}, module bases {runtime_bases}")
    assert not wrong, wrong


def test_enum_members_match(stub):
    wrong = []
    for name, node, cls in stub_classes(stub):
        if not issubclass(cls, enum.Enum):
            continue
        members = class_members(node)
        stub_members = {m for m, k in members.items() if k == "attribute" and not m.startswith("_")}
        if stub_members != set(cls.__members__):
            wrong.append(f"{name}: stub {sorted(stub_members)} vs module {sorted(cls.__members__)}")
        extra_methods = {m for m, k in members.items() if k != "attribute"} - set(dir(cls))
        if extra_methods:
            wrong.append(f"{name}: stub methods not on the enum: {sorted(extra_methods)}")
    assert not wrong, wrong


def test_class_members_match(stub):
    problems = []
    for name, node, cls in stub_classes(stub):
        if issubclass(cls, enum.Enum):
            continue
        members = class_members(node)
        stub_public = {m for m in members if not m.startswith("_")}
        runtime = {m for m in vars(cls) if not m.startswith("_")}
        missing = sorted(runtime - stub_public)
        if missing:
            problems.append(f"{name}: not in the stub: {missing}")
        extra = stub_public - runtime - {m for m in dir(cls) if not m.startswith("_")}
        if issubclass(cls, BaseException):
            # Instance attributes set when raised (e.g. InvalidArgument.argument).
            extra = {m for m in extra if members[m] != "attribute"}
        if extra:
            problems.append(f"{name}: not in the module: {sorted(extra)}")
        dunders = sorted(m for m in vars(cls) if m in PROTOCOL_DUNDERS and m not in members)
        if dunders:
            problems.append(f"{name}: protocol methods not in the stub: {dunders}")
        for m in sorted(runtime & stub_public):
            rk = runtime_kind(cls, m)
            if members[m] not in KIND_COMPATIBLE[rk]:
                problems.append(f"{name}.{m}: module has a {rk}, stub a {members[m]}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- routing section, strictly


@pytest.fixture(scope="module")
def routing():
    text = stub_text()
    src = section(text, ROUTING_START, ROUTING_END)
    tree = ast.parse(src)
    return tree, top_level(tree)


ROUTING_NAMES = {
    "Lsn", "lsn_diff_bytes", "end_lsn_of_insert", "Role", "LagState", "LagEventKind", "Policy", "Consistency", "Reason", "CatchUpReason", "CatchUpPlan",
    "Node", "NodeInfo", "Topology", "ReplicaLag", "LagEvent", "LagTracker", "TokenSigner", "HmacSigner",
    "Session", "Decision", "InFlight", "Router", "Error", "InvalidArgument", "TokenError", "NotFound",
    "CapacityExceeded", "ConnectionError", "TimeoutError", "QueryError", "CommitUnknown", "NO_NODE", "MAX_NODES",
    "ArgumentTypeError", "LagConfig", "RouterConfig", "DEFAULT_CONSISTENCY", "TimelineHistory", "LostWrite",
    "LostWrites",
}


def test_routing_section_declares_the_routing_api(routing):
    _, names = routing
    assert set(names) == ROUTING_NAMES
    for name in ROUTING_NAMES - {"HmacSigner"}:
        assert hasattr(_core, name), name


def test_routing_enum_values(routing):
    _, names = routing
    for name, (kind, node) in names.items():
        cls = getattr(_core, name, None)
        if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
            continue
        values = {}
        for stmt in node.body:
            if isinstance(stmt, ast.Assign):
                values[stmt.targets[0].id] = ast.literal_eval(stmt.value)
        assert values == {m.name: m.value for m in cls}, name


def test_routing_read_only_properties_are_read_only_in_the_stub(routing):
    _, names = routing
    wrong = []
    for name, (kind, node) in names.items():
        cls = getattr(_core, name, None)
        if kind != "class" or cls is None or issubclass(cls, (enum.Enum, BaseException)):
            continue
        members = class_members(node)
        for m, sk in members.items():
            if m.startswith("_") or not hasattr(cls, m):
                continue
            rk = runtime_kind(cls, m)
            if rk == "property" and sk != "property":
                wrong.append(f"{name}.{m} is read-only: declare it with @property")
            if rk == "rw-property" and sk not in ("attribute", "rw-property"):
                wrong.append(f"{name}.{m} is writable: declare it as an attribute")
    assert not wrong, wrong


def split_top_level(params: str):
    """Splits a pybind11 parameter list on commas outside brackets and quotes."""
    parts, depth, quote, cur = [], 0, None, ""
    for ch in params:
        if quote:
            cur += ch
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{<":
            depth += 1
        elif ch in ")]}>" and depth > 0:
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def pybind_parameter_names(fn) -> list:
    """Parameter names from the signature line pybind11 puts at the top of each docstring."""
    first = (fn.__doc__ or "").lstrip().splitlines()[0]
    m = re.match(r"^\s*\w+\((.*)\)\s*(->.*)?$", first)
    assert m, f"no signature in {fn!r}: {first!r}"
    names = [p.split(":")[0].split("=")[0].strip().lstrip("*") for p in split_top_level(m.group(1))]
    return [n for n in names if n]  # a bare "*" (keyword-only marker) names nothing


def stub_parameter_names(fn: ast.FunctionDef) -> list:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args]
    if a.vararg:
        names.append(a.vararg.arg)
    names += [x.arg for x in a.kwonlyargs]
    if a.kwarg:
        names.append(a.kwarg.arg)
    return names


def test_routing_parameter_names_match_the_module(routing):
    """Keyword arguments are part of the API: the stub must name them as the bindings do."""
    _, names = routing
    wrong = []
    checked = 0
    for name, (kind, node) in names.items():
        obj = getattr(_core, name, None)
        if obj is None:
            continue
        if kind == "function":
            fns = [(name, obj, node)]
        elif kind == "class" and not issubclass(obj, (enum.Enum, BaseException)):
            fns = []
            for stmt in node.body:
                if isinstance(stmt, ast.FunctionDef) and not ({"property", "setter"} & decorator_names(stmt)):
                    if stmt.name in ("__exit__",) or stmt.name not in vars(obj):
                        continue  # pybind11's __exit__ takes *args; inherited members are checked on the base
                    fns.append((f"{name}.{stmt.name}", getattr(obj, stmt.name), stmt))
        else:
            continue
        for label, fn, stmt in fns:
            if fn is None or not (fn.__doc__ or "").strip():
                continue
            runtime = pybind_parameter_names(fn)
            stub_names = stub_parameter_names(stmt)
            if label.endswith(("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__sub__")):
                runtime, stub_names = runtime[:1], stub_names[:1]  # operators: names are not part of the API
            if label.endswith(("__setstate__", "__getstate__", "__deepcopy__", "__copy__", "__hash__")):
                runtime, stub_names = runtime[:1], stub_names[:1]
            checked += 1
            if runtime != stub_names:
                wrong.append(f"{label}: module {runtime}, stub {stub_names}")
    assert checked > 50
    assert not wrong, "\n".join(wrong)


def test_package_reexports_the_routing_api():
    for name in ROUTING_NAMES:
        if hasattr(_core, name):
            assert getattr(replikit, name) is getattr(_core, name), name
