"""The parts of the junk-argument fuzzer (test_junk_fuzz.py, which describes it and runs it) that
are not the run itself (`from junk_fuzz_helpers import ...`): the callables and parameters it
leaves alone, the hostile pool, the discovery of every public callable and its parameters, and
the judging of an outcome.
"""

from __future__ import annotations

import enum
import inspect
import math
import re

CALL_TIMEOUT_S = 20
DEFAULT_SEED = 20260
DEAD_DSN = "host=127.0.0.1 port=1 connect_timeout=1"

# Callables not fuzzed, with the reason.
SKIP = {
    "replikit.ReplicatedDatabase.wait_probes": "blocks for up to its timeout_ms argument (junk: 1e100 ms)",
    "replikit.pg.ReplicatedDatabase.wait_probes": "blocks for up to its timeout_ms argument (junk: 1e100 ms)",
    "replikit.pg.database_for_cluster": "takes a LocalCluster by duck typing (junk: AttributeError from the junk "
                                        "object, as Python code does); a real cluster means starting PostgreSQL",
    "replikit.pg.LocalCluster": "the test-cluster harness (deprecated alias): starts PostgreSQL processes",
    "replikit.LatencyDistribution.sample": "draws as many samples as asked (junk: 10**18 of them)",
    "replikit.pg.RowFactory": "a typing alias (Callable[...]) for annotations, not a function",
    "replikit.pg.ConsistencyName": "a typing alias (Literal[...]) for annotations, not a function",
    "replikit.EventLog.wait": "blocks for up to its timeout_ms argument (junk: 3.6e6 ms)",
    "replikit.pg.EventLog.wait": "blocks for up to its timeout_ms argument (junk: 3.6e6 ms)",
}
# Parameters that set an amount of work (simulation trials, simulated time, workload size): a
# junk number there that is valid (say trials=2**32, under PBS_MAX_TRIALS = 1e10) asks for minutes
# of honest work, so valid-sized numbers (1e3 < |x| <= 1e12) are cut to 1000 for them; every other
# junk value (wrong types, NaN, negative, beyond the limits) still reaches them.
WORK_PARAMS = {"trials", "duration_ms", "writes_per_s", "max_writes", "keys", "at_ms", "dt_ms", "size"}
SKIP_MODULES = ("replikit.testing",)  # the PostgreSQL cluster harness: processes and files, not the API under test

# (callable-name regex, exception-message regex, defect) triples: a violation matching one is a
# known defect being fixed elsewhere, reported as an xfail (not strict) instead of a failure. Empty:
# the untyped errors of issue 8's defect 6 that this fuzzer can reach (lone surrogates and
# wrong-typed values in pg options and node specs, replication_delay_ms=np.array(5)) no longer occur.
XFAIL_DEFECTS: list = []


class HostileError(Exception):
    """Raised by the hostile objects' own dunder methods."""


# ------------------------------------------------------------------------------ the hostile pool


class _Hostile:
    hostile = True


class RaisingNumber(_Hostile):
    def __index__(self):
        raise HostileError("__index__")

    __int__ = __index__

    def __float__(self):
        raise HostileError("__float__")

    def __repr__(self):
        return "RaisingNumber()"


class LyingIndex(_Hostile):
    def __index__(self):
        return "7"

    def __int__(self):
        return 7.5

    def __float__(self):
        return "nan"

    def __repr__(self):
        return "LyingIndex()"


class HugeIndex(_Hostile):
    def __index__(self):
        return 2**100

    __int__ = __index__

    def __float__(self):
        return 1e308

    def __repr__(self):
        return "HugeIndex()"


class RaisingStr(_Hostile):
    def __str__(self):
        raise HostileError("__str__")

    __repr__ = __str__

    def __format__(self, spec):
        raise HostileError("__format__")


class LyingEq(_Hostile):
    def __eq__(self, other):
        raise HostileError("__eq__")

    def __hash__(self):
        raise HostileError("__hash__")

    def __bool__(self):
        raise HostileError("__bool__")

    def __repr__(self):
        return "LyingEq()"


class LyingLen(_Hostile):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __iter__(self):
        yield 1
        yield "0/1"
        raise HostileError("__iter__")

    def __getitem__(self, i):
        raise HostileError("__getitem__")

    def __repr__(self):
        return f"LyingLen({self.n})"


class RaisingIter(_Hostile):
    def __iter__(self):
        raise HostileError("__iter__")

    def __len__(self):
        return 2

    def __repr__(self):
        return "RaisingIter()"


class LyingStrSubclass(str):
    hostile = True

    def __eq__(self, other):
        raise HostileError("str.__eq__")

    def __hash__(self):
        raise HostileError("str.__hash__")


class LyingIntSubclass(int):
    hostile = True

    def __index__(self):
        raise HostileError("int.__index__")

    def __repr__(self):
        return "LyingIntSubclass()"


class RaisingCall(_Hostile):
    def __call__(self, *args, **kwargs):
        raise HostileError("__call__")

    def __repr__(self):
        return "RaisingCall()"


def _deep(n):
    x = []
    for _ in range(n):
        x = [x]
    return x


def hostile_pool():
    import numpy as np

    import replikit

    return [
        None, True, False, 0, 1, 2, 3, -1, 5, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, -(2**63), -(2**63) - 1,
        10**100, -(10**100), 0.0, -0.0, 0.5, 1e-300, 1e300, math.nan, math.inf, -math.inf,
        "", "r1", "p", "eu", "0/0", "0/1", "16/B374D848", "FFFFFFFF/FFFFFFFF", "1.0.0.x", "1.5.6.x",
        "\ud800", "r\udfff", "a\x00b", "\x00", "0/1\x00", "x" * 300, "\U0010ffff", "é", "SELECT 1", "strong",
        "eventual", "read_your_writes", "last_writer_wins", "nan", "inf", "-1", DEAD_DSN,
        b"", b"\x00\xff", b"0123456789abcdef", bytearray(b"abc"), memoryview(b"xyz"),
        [], [1, 2], ["r1", "r2"], [[1, 2], [3]], (), ("p", DEAD_DSN), [("r1", DEAD_DSN)], {"name": "r1", "dsn": DEAD_DSN},
        {}, {"a": 1}, {1: 2}, {"name": "\ud800"}, ("\ud800", DEAD_DSN), ("p", "a\x00b"), ("p", "\udc80"),
        {"name": 5, "dsn": DEAD_DSN}, {"name": "r1", "dsn": DEAD_DSN, "priority": 2**40},
        {"name": "r1", "dsn": DEAD_DSN, "region": 5, "weight": "x"}, set(), frozenset({1}), _deep(200), _deep(5000), [math.nan] * 3,
        object(), RaisingNumber(), LyingIndex(), HugeIndex(), RaisingStr(), LyingEq(), LyingLen(-1), LyingLen(2**70),
        LyingLen(3), RaisingIter(), LyingStrSubclass("r1"), LyingIntSubclass(3), RaisingCall(),
        lambda *a, **k: b"0123456789abcdef0123", lambda *a, **k: None,
        np.array(5), np.array(5.5), np.array([1, 2], dtype=np.int64), np.array([[1, 2], [3, 4]]),
        np.array([1, None], dtype=object), np.array([True, False]), np.array([1.5], dtype=np.float16),
        np.array([], dtype=np.uint64), np.zeros((0, 3)), np.array([math.nan]), np.array(["0/1"]),
        np.uint64(2**64 - 1), np.int32(-1), np.float64(math.nan), np.bool_(True), np.array([2**63], dtype=np.uint64),
        replikit.Lsn(5), replikit.Session(), replikit.Node("junk"), replikit.Consistency.STRONG,
        replikit.Policy.WEIGHTED, replikit.Role.PRIMARY, replikit,
    ]


def is_hostile(x, depth=0):
    if getattr(type(x), "hostile", False):
        return True
    if depth < 3 and isinstance(x, (list, tuple)) and len(x) < 50:
        return any(is_hostile(y, depth + 1) for y in x)
    if depth < 3 and isinstance(x, dict):
        return any(is_hostile(y, depth + 1) for y in list(x.keys()) + list(x.values()))
    return False


# ------------------------------------------------------------------------------ discovery


def _split_top(text):
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def parameters(fn, name):
    """[(name, kind, required)] with kind 'pos' or 'kw'; from inspect or pybind11's docstring."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    if sig is not None and not any(p.name == "args" and p.kind is p.VAR_POSITIONAL for p in sig.parameters.values()):
        out = []
        for p in sig.parameters.values():
            if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            kind = "kw" if p.kind is p.KEYWORD_ONLY else "pos"
            out.append((p.name, kind, p.default is p.empty))
        return out
    doc = (getattr(fn, "__doc__", None) or "").strip()
    short = name.rsplit(".", 1)[-1]
    lines = [ln for ln in doc.splitlines() if re.match(r"^(\d+\. )?" + re.escape(short) + r"\(", ln.strip())]
    if not lines:
        return None
    line = lines[0].strip()
    inner = line[line.index("(") + 1: line.rindex(") ->") if ") ->" in line else line.rindex(")")]
    out, kw = [], False
    for part in _split_top(inner):
        if part == "*":
            kw = True
            continue
        if part.startswith("**"):
            continue
        pname = part.split(":")[0].split("=")[0].strip()
        if pname == "self":
            continue
        out.append((pname, "kw" if kw else "pos", "=" not in part))
    return out


OPTION_KEYWORDS: dict = {}
INSTANCE_CLASSES = {"Lsn", "Node", "Topology", "LagTracker", "Router", "Session", "QuorumStore", "QuorumDatabase",
                    "MultiLeaderCluster", "LatencyDistribution", "LagConfig", "RouterConfig", "WarsModel",
                    "WarsSimulation", "DatabaseOptions", "ReplicatedDatabase", "PsycopgRouter", "SimConfig",
                    "EventLog"}


def option_keywords():
    """Callables taking **options: the keywords they accept (DatabaseOptions' attributes)."""
    import replikit

    if not replikit.HAVE_PG:
        return {}
    names = tuple(k for k in dir(replikit.DatabaseOptions()) if not k.startswith("_")
                  and not callable(getattr(replikit.DatabaseOptions(), k)))
    return {q: names for q in ("replikit.DatabaseOptions", "replikit.DatabaseOptions.replace",
                               "replikit.ReplicatedDatabase", "replikit.pg.DatabaseOptions",
                               "replikit.pg.ReplicatedDatabase")}


def instances():
    """One live object per class whose methods are fuzzed (fresh each time: calls mutate them)."""
    import replikit

    t = replikit.Topology("p", [replikit.Node("r1", region="eu"), "r2"])
    lag = replikit.LagTracker(t)
    out = {
        "Lsn": replikit.Lsn(5),
        "Node": replikit.Node("n"),
        "Topology": t,
        "LagTracker": lag,
        "Router": replikit.Router(t),
        "Session": replikit.Session(5, 6),
        "QuorumStore": replikit.QuorumStore(3, 2, 2),
        "QuorumDatabase": replikit.QuorumDatabase(3),
        "MultiLeaderCluster": replikit.MultiLeaderCluster(2),
        "LatencyDistribution": replikit.LatencyDistribution.constant(1.0),
        "LagConfig": replikit.LagConfig(),
        "RouterConfig": replikit.RouterConfig(),
        "DetectorConfig": replikit.DetectorConfig(),
        "FailureDetector": replikit.FailureDetector(),
        "CandidateState": replikit.CandidateState("r1"),
        "PrimaryState": replikit.PrimaryState(),
        "FailoverConfig": replikit.FailoverConfig(),
        "TimelineHistory": replikit.TimelineHistory(2, [(1, 5)]),
        "LeaseConfig": replikit.LeaseConfig(),
        "LeasePermit": replikit.LeasePermit(revision=1, valid_until_ns=5),
        "LeaderLease": replikit.LeaderLease(),
        "PublishedReplica": replikit.PublishedReplica("r1", "up"),
        "PublishedTopology": replikit.PublishedTopology(primary="p", leader_revision=1, revision=2),
        "TopologyView": replikit.TopologyView(),
    }
    d = replikit.LatencyDistribution.constant(1.0)
    out["WarsModel"] = replikit.WarsModel(d, d, d, d)
    out["WarsSimulation"] = replikit.WarsSimulation(3, 2, 2, out["WarsModel"])
    out["SimConfig"] = replikit.SimConfig(duration_ms=50.0)
    if replikit.HAVE_PG:
        import replikit.pg

        out["DatabaseOptions"] = replikit.DatabaseOptions()
        db = replikit.ReplicatedDatabase(("p", DEAD_DSN), [], probe_interval_ms=60_000.0)
        out["ReplicatedDatabase"] = db
        out["PsycopgRouter"] = replikit.pg.PsycopgRouter(db)
        out["EventLog"] = replikit.EventLog(8)
    return out


def discover():
    """[(qualified name, class name or None, attribute, params)] for every public callable."""
    import replikit

    modules = [replikit]
    if replikit.HAVE_PG:
        import replikit.pg

        modules.append(replikit.pg)
    found, seen = [], set()
    for mod in modules:
        for attr in sorted(dir(mod)):
            if attr.startswith("_"):
                continue
            obj = getattr(mod, attr)
            qual = f"{mod.__name__}.{attr}"
            if inspect.ismodule(obj) or not callable(obj) or qual in SKIP:
                continue
            if getattr(obj, "__module__", "").startswith(SKIP_MODULES) or obj is typing_any():
                continue
            if isinstance(obj, type):
                if issubclass(obj, (BaseException, enum.Enum)):
                    continue
                key = ("class", id(obj))
                if key in seen:
                    continue
                seen.add(key)
                init = parameters(obj.__init__, "__init__")
                if init is not None:  # None: no constructor (a result type made by the library)
                    found.append((qual, attr, None, init))
                for m in sorted(dir(obj)):
                    if m.startswith("_") or f"{qual}.{m}" in SKIP:
                        continue
                    meth = getattr(obj, m, None)
                    if not callable(meth) or isinstance(meth, type):
                        continue
                    if attr not in INSTANCE_CLASSES and not isinstance(inspect.getattr_static(obj, m), staticmethod):
                        continue  # an instance method of a class we have no instance of
                    found.append((f"{qual}.{m}", attr, m, parameters(meth, m) or []))
            else:
                if ("func", id(obj)) in seen:
                    continue
                seen.add(("func", id(obj)))
                found.append((qual, None, attr, parameters(obj, attr) or []))
    return found


def typing_any():
    import typing

    return typing.Any


# ------------------------------------------------------------------------------ judging


PROTOCOL = re.compile(r"returned non-|should return >= 0|cannot fit 'int' into an index-sized integer|"
                      r"__len__|__index__|__float__|__int__")


def judge(exc, params, args_hostile):
    """None when `exc` is a tolerated outcome, else why not."""
    import replikit

    names = {p[0] for p in params}
    if isinstance(exc, HostileError):
        return None
    if isinstance(exc, replikit.Error):
        argument = getattr(exc, "argument", None)
        if isinstance(exc, (replikit.InvalidArgument, replikit.ArgumentTypeError)):
            # A parameter, or a field inside one (a node spec's "name", a statement's "params").
            if not isinstance(argument, str) or not argument:
                return "typed error without .argument"
        return None
    if args_hostile and isinstance(exc, (TypeError, ValueError, OverflowError)) and PROTOCOL.search(str(exc)):
        return None
    if type(exc) is TypeError and "incompatible" in str(exc):
        return "pybind11's overload-resolution TypeError (no argument named)"
    if type(exc) is TypeError and any(re.search(r"\b" + re.escape(n) + r"\b", str(exc)) for n in names):
        return None
    return "untyped"


def bounded(param, value):
    """`value`, or 1000 in place of a valid-sized number for a WORK_PARAMS parameter."""
    if param not in WORK_PARAMS or isinstance(value, bool) or type(value) not in (int, float):
        return value
    return 1000 if 1e3 < abs(value) <= 1e12 else value


def short(x):
    try:
        r = repr(x)
    except BaseException:  # noqa: BLE001 - a hostile repr
        r = f"<{type(x).__name__}>"
    return r if len(r) <= 60 else r[:57] + "..."
