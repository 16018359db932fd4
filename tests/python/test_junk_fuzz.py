"""Junk-argument fuzzer over every public callable of replikit and replikit.pg.

The callables are discovered by introspection: module functions, class constructors and the
public methods of each class (on an instance from INSTANCES); their parameter names come from
pybind11's signatures in the docstrings (or inspect.signature for Python code). Each call gets
random arguments from a hostile pool: objects whose __index__/__int__/__float__/__str__/
__repr__/__eq__/__hash__/__len__/__iter__ raise or lie, lone surrogates, NUL bytes, huge ints,
NaN/inf, numpy arrays of the wrong dtype or shape, None, bytes, dicts, deep nesting, and a few
values of the right type so calls get past the first argument.

Criterion: no crash (the calls run in a subprocess, so a segfault or abort fails this test with
the seed and the call number instead of killing pytest; a call that runs longer than
CALL_TIMEOUT_S is a hang and fails it too), and no untyped error. Tolerated outcomes:
- a return value;
- replikit.Error and its subclasses; one with `.argument` (InvalidArgument, ArgumentTypeError,
  TokenError, NotFound) must name it (a parameter, or a field of one such as a node's "name");
- HostileError: raised by a hostile object's own dunder method (or a callable argument, such
  as a signer) and propagated unchanged;
- TypeError / ValueError / OverflowError raised by Python itself because a hostile object broke
  a protocol ("__index__ returned non-int", "__len__() should return >= 0", "cannot fit 'int'
  into an index-sized integer"), only when such an object is among the arguments;
- a TypeError naming one of the called function's parameters (Python's own argument checks in
  the pure-Python parts, e.g. "unexpected keyword argument").
Everything else (RuntimeError, IndexError, AttributeError, KeyError, SystemError, pybind11's
"incompatible function arguments", MemoryError, ...) is a violation.

Known defects outside this test's reach are listed in XFAIL_DEFECTS: a violation matching one
of them is reported but does not fail the test (xfail, not strict).

Run by hand: `python tests/python/test_junk_fuzz.py --seed 7 --count 200000` (prints each
violation, one per line, and a summary); `--only N` replays call number N of that seed.
In CI: REPLIKIT_JUNK_SECONDS (default 20) bounds the run, REPLIKIT_JUNK_SEED picks the seed
(default: a fixed one, printed).
"""

from __future__ import annotations

import argparse
import collections
import faulthandler
import json
import os
import random
import re
import subprocess
import sys
import time
import warnings

from junk_fuzz_helpers import (
    CALL_TIMEOUT_S,
    DEAD_DSN,
    DEFAULT_SEED,
    OPTION_KEYWORDS,
    XFAIL_DEFECTS,
    HostileError,
    LyingIndex,
    LyingLen,
    RaisingNumber,
    bounded,
    discover,
    hostile_pool,
    instances,
    is_hostile,
    judge,
    option_keywords,
    short,
)


def run(seed, count, seconds, only=None, out=sys.stdout):
    import replikit

    warnings.simplefilter("ignore")
    faulthandler.enable()
    pool = hostile_pool()
    targets = discover()
    OPTION_KEYWORDS.update(option_keywords())
    objs = instances()
    start = time.monotonic()
    stats = collections.Counter()
    violations = collections.Counter()
    examples = {}
    i = -1 if only is None else only - only % 50 - 1  # from the instances' last rebuild
    while True:
        i += 1
        if only is not None and i > only:
            break
        if only is None and (i >= count or time.monotonic() - start > seconds):
            break
        rng = random.Random(f"{seed}:{i}")
        if i % 50 == 0:
            objs = instances()
        qual, cls, meth, params = rng.choice(targets)
        if meth is not None and cls is not None:
            fn = getattr(objs.get(cls), meth, None)
            if fn is None:  # no instance: a static method or a class we cannot build
                fn = getattr(getattr(replikit, cls, None) or getattr(__import__("replikit.pg").pg, cls), meth)
        elif cls is not None:
            fn = getattr(replikit, cls, None) or getattr(__import__("replikit.pg").pg, cls)
        else:
            fn = getattr(replikit, meth, None) or getattr(__import__("replikit.pg").pg, meth)
        pos = [p for p in params if p[1] == "pos"]
        kws = [p for p in params if p[1] == "kw"] + [(k, "kw", False) for k in OPTION_KEYWORDS.get(qual, ())]
        # Every required positional argument (one may follow a defaulted one), then maybe more.
        n_required = max((k + 1 for k, p in enumerate(pos) if p[2]), default=0)
        n = rng.randint(n_required, len(pos)) if pos else 0
        args = [bounded(pos[k][0], rng.choice(pool)) for k in range(n)]
        kwargs = {p[0]: bounded(p[0], rng.choice(pool)) for p in kws if p[2] or rng.random() < 0.3}
        hostile = is_hostile(args) or is_hostile(list(kwargs.values()))
        if only == i:
            print(f"call {i}: {qual}(*{[short(a) for a in args]}, **{ {k: short(v) for k, v in kwargs.items()} })",
                  file=out, flush=True)
        # The call about to be made, so a crash or a hang names it (the traceback follows it).
        sys.stderr.write(f"call {i}: {qual}\n")
        faulthandler.dump_traceback_later(CALL_TIMEOUT_S, exit=True)
        try:
            fn(*args, **kwargs)
            stats["returned"] += 1
        except BaseException as exc:  # noqa: BLE001 - judged below
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            why = judge(exc, params, hostile)
            stats[type(exc).__name__] += 1
            if why is not None:
                key = (qual, type(exc).__name__, why)
                violations[key] += 1
                if key not in examples:
                    xfail = next((d for c, m, d in XFAIL_DEFECTS
                                  if re.search(c, qual) and re.search(m, f"{type(exc).__name__}: {exc}")), None)
                    examples[key] = dict(call=i, name=qual, exc=type(exc).__name__, message=str(exc)[:200],
                                         why=why, xfail=xfail, args=[short(a) for a in args],
                                         kwargs={k: short(v) for k, v in kwargs.items()})
        finally:
            faulthandler.cancel_dump_traceback_later()
    calls = i
    elapsed = time.monotonic() - start
    for key, ex in examples.items():
        ex["count"] = violations[key]
        print("VIOLATION " + json.dumps(ex), file=out, flush=True)
    print("SUMMARY " + json.dumps(dict(seed=seed, calls=calls, callables=len(targets), seconds=round(elapsed, 1),
                                        outcomes=dict(stats))), file=out, flush=True)


# ------------------------------------------------------------------------------ the pytest test


def test_junk_arguments_never_crash_nor_raise_untyped_errors():
    import pytest

    seed = int(os.environ.get("REPLIKIT_JUNK_SEED", DEFAULT_SEED))
    seconds = float(os.environ.get("REPLIKIT_JUNK_SECONDS", "20"))
    count = int(os.environ.get("REPLIKIT_JUNK_COUNT", "10000000"))
    cmd = [sys.executable, __file__, "--seed", str(seed), "--count", str(count), "--seconds", str(seconds)]
    print(f"\n[junk] seed={seed}: {' '.join(cmd)}")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    lines = proc.stdout.splitlines()
    summary = next((json.loads(ln[8:]) for ln in lines if ln.startswith("SUMMARY ")), None)
    assert proc.returncode == 0 and summary is not None, (
        f"the junk fuzzer died (exit {proc.returncode}) with seed {seed}; replay the last call with "
        f"`{' '.join(cmd[:4])} --only N` (N: the last call below)\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    print(f"[junk] {summary}")
    found = [json.loads(ln[10:]) for ln in lines if ln.startswith("VIOLATION ")]
    known = [v for v in found if v["xfail"]]
    real = [v for v in found if not v["xfail"]]
    assert summary["calls"] >= 500, summary
    assert not real, f"seed {seed}: untyped errors:\n" + "\n".join(json.dumps(v) for v in real)
    if known:
        pytest.xfail("known defects: " + "; ".join(sorted({v["xfail"] for v in known})) + "\n"
                     + "\n".join(json.dumps(v) for v in known))


# ------------------------------------------------------------------------------ what the fuzzer found


def _expect(fn, exc, argument):
    import pytest

    with pytest.raises(exc) as info:
        fn()
    assert info.value.argument == argument, (info.value.argument, str(info.value))


def test_numpy_arrays_where_an_int_is_expected_are_argument_type_errors():
    import numpy as np

    import replikit

    at = replikit.ArgumentTypeError
    t = replikit.Topology("p", ["r1"])
    lag = replikit.LagTracker(t)
    s = replikit.Session()
    for bad in (np.array([1, 2]), np.array(5.5), np.array([True, False]), np.zeros((0, 3)), np.array(["0/1"])):
        _expect(lambda: s.observe(bad), at, "lsn")
        _expect(lambda: replikit.Session(bad), at, "write_lsn")
        _expect(lambda: lag.events(bad), at, "after_sequence")
        _expect(lambda: t.name(bad), at, "index")
        _expect(lambda: replikit.QuorumStore(bad), at, "n")
        _expect(lambda: replikit.MultiLeaderCluster(2, max_in_flight=bad), at, "max_in_flight")
    if replikit.HAVE_PG:
        db = replikit.ReplicatedDatabase(("p", DEAD_DSN), [], probe_interval_ms=60_000.0)
        try:
            _expect(lambda: db.record_write(np.array(5), None), at, "session")
            _expect(lambda: db.record_write("1.0.0.x", None), at, "session")
        finally:
            db.close()
    # A 0-d integer array is an int.
    s.observe(np.array(7))
    assert s.read_lsn.value == 7


def test_uniterable_sequences_are_argument_type_errors():
    import numpy as np

    import replikit

    at = replikit.ArgumentTypeError
    _expect(lambda: replikit.MultiLeaderCluster(2, replication_delay_ms=np.array(5.5)), at, "replication_delay_ms")
    _expect(lambda: replikit.MultiLeaderCluster(2, replication_delay_ms=np.array(5)), at, "replication_delay_ms")
    _expect(lambda: replikit.LatencyDistribution.mixture([1.0], np.array(5.5)), at, "components")


def test_hostile_dunder_errors_propagate_unchanged():
    import pytest

    import replikit

    with pytest.raises(HostileError):
        replikit.Session().observe(RaisingNumber())
    with pytest.raises(HostileError):
        replikit.MultiLeaderCluster(2, replication_delay_ms=LyingLen(3))
    # An __index__ that returns a non-int is a wrong type.
    _expect(lambda: replikit.Session().observe(LyingIndex()), replikit.ArgumentTypeError, "lsn")


def test_psycopg_router_argument_errors_name_the_argument():
    import pytest

    import replikit

    if not replikit.HAVE_PG:
        pytest.skip("built without the PostgreSQL backend")
    import replikit.pg

    db = replikit.ReplicatedDatabase(("p", DEAD_DSN), [], probe_interval_ms=60_000.0)
    try:
        for bad in ("5", [5], None.__class__):
            _expect(lambda: replikit.pg.PsycopgRouter(db, acquire_timeout_s=bad), replikit.ArgumentTypeError,
                    "acquire_timeout_s")
        # Errors raised by the Python code carry `.argument` and the core's message form too.
        for bad in (None, "db", object(), lambda: db):
            _expect(lambda: replikit.pg.PsycopgRouter(bad), replikit.ArgumentTypeError, "db")
        _expect(lambda: replikit.pg.PsycopgRouter(db, pool_size="4"), replikit.ArgumentTypeError, "pool_size")
        _expect(lambda: replikit.pg.PsycopgRouter(db, pool_size=0), replikit.InvalidArgument, "pool_size")
        _expect(lambda: replikit.pg.PsycopgRouter(db, acquire_timeout_ms={}), replikit.ArgumentTypeError,
                "acquire_timeout_ms")
        with pytest.raises(replikit.InvalidArgument, match=r"^acquire_timeout_ms: must be > 0"):
            replikit.pg.PsycopgRouter(db, acquire_timeout_ms=-0.0)
    finally:
        db.close()


def test_dsn_with_a_nul_byte_is_refused():
    """Found by fuzz/fuzz_conninfo: libpq reads a DSN as a C string, so a DSN was cut at its
    first NUL and the rest silently ignored (as SQL text was)."""
    import pytest

    import replikit

    if not replikit.HAVE_PG:
        pytest.skip("built without the PostgreSQL backend")
    with pytest.raises(replikit.InvalidArgument) as info:
        replikit.ReplicatedDatabase(("p", "host=127.0.0.1 port=1\x00 not a DSN at all"), [],
                                    probe_interval_ms=60_000.0)
    assert info.value.argument == "dsn"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=float("inf"))
    parser.add_argument("--only", type=int, default=None, help="replay call number N of the seed, printing it")
    ns = parser.parse_args(argv)
    sys.setrecursionlimit(10_000)
    run(ns.seed, ns.count, ns.seconds, ns.only)


if __name__ == "__main__":
    main()
