"""Runs every case of the routing tables, tests/testdata/routing/*.txt, through the bindings.

The tables are the executable specification of the router (format and clock/LSN model in
tests/testdata/routing/README.md); tests/cpp/test_routing_tables.cpp runs the same files in C++.
A failing case is reported as `file:line` of the case and of the step that failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from conftest import node_name

from replikit import Consistency, LagTracker, Node, Policy, Reason, Router, Session, Topology

TABLES = Path(__file__).resolve().parent.parent / "testdata" / "routing"
MS = 1_000_000
NOW_MS = 1000
NOW = NOW_MS * MS
NO_NODE = "none"


@dataclass
class Case:
    file: str
    line: int
    title: str
    steps: List[tuple] = field(default_factory=list)  # (line number, words)

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.title}"


def load_cases() -> List[Case]:
    cases: List[Case] = []
    for path in sorted(TABLES.glob("*.txt")):
        shown = f"tests/testdata/routing/{path.name}"
        for number, text in enumerate(path.read_text().splitlines(), start=1):
            words = text.split()
            if not words or words[0].startswith("#"):
                continue
            if words[0] == "case":
                cases.append(Case(shown, number, text.split(None, 1)[1]))
            else:
                assert cases and cases[-1].file == shown, f"{shown}:{number}: a step before the first case"
                cases[-1].steps.append((number, words))
    return cases


CASES = load_cases()


# ---------------------------------------------------------------- the clock and LSN model


def lsn_at_ms(ms: int) -> int:
    """The primary wrote 1000 bytes per ms from LSN 1000 at 0 ms."""
    return 1000 + ms * 1000


def replay_behind(ms: int) -> int:
    """The replay LSN of a replica exactly `ms` behind now."""
    return lsn_at_ms(NOW_MS) if ms == 0 else lsn_at_ms(NOW_MS - ms) - 1


def parse_ms(text: str) -> int:
    m = re.fullmatch(r"(\d+)ms", text)
    assert m, f"expected <n>ms: {text}"
    return int(m.group(1))


def parse_lsn(text: str) -> int:
    m = re.fullmatch(r"@(\d+ms)([+-]\d+)?", text)
    if m:
        return replay_behind(parse_ms(m.group(1))) + int(m.group(2) or 0)
    if "/" in text:
        hi, lo = text.split("/")
        return (int(hi, 16) << 32) | int(lo, 16)
    return int(text)


def parse_time(text: str) -> int:
    assert text.startswith("now"), f"expected now[+-]...: {text}"
    t = NOW
    for sign, n, unit in re.findall(r"([+-])(\d+)(ms|ns)", text[3:]):
        d = int(n) * (MS if unit == "ms" else 1)
        t += d if sign == "+" else -d
    assert re.fullmatch(r"now(?:[+-]\d+(?:ms|ns))*", text), f"bad time: {text}"
    return t


def parse_args(words, allowed):
    """key=value words, bare flags, and an `xN` repeat count. Anything not in `allowed` (keys and
    flags; "xN" when it holds "x") is an error, so a typo cannot make a case silently test less."""
    kv: Dict[str, str] = {}
    flags: List[str] = []
    repeat = 1
    for w in words:
        key = w.split("=", 1)[0] if "=" in w else "x" if re.fullmatch(r"x\d+", w) else w
        assert key in allowed, f"unexpected {w!r}"
        if "=" in w:
            k, v = w.split("=", 1)
            kv[k] = v
        elif re.fullmatch(r"x\d+", w):
            repeat = int(w[1:])
        else:
            flags.append(w)
    return kv, flags, repeat


# ---------------------------------------------------------------- one case


class CaseRun:
    def __init__(self, case: Case):
        self.case = case
        self.where = str(case)
        self.primary = Node("p")
        self.replicas: List[Node] = []
        self.lags: List[Optional[int]] = []
        self.lag_config = (100.0, 50.0)  # max_lag_ms, recover_lag_ms
        self.router_kwargs: dict = {}
        self.topology = None
        self.tracker = None
        self.router = None
        self.session = Session()
        self.bound: Dict[str, str] = {}

    def run(self) -> None:
        for number, words in self.case.steps:
            self.where = f"{self.case.file}:{number} (case {self.case.file}:{self.case.line} {self.case.title})"
            try:
                self.step(words)
            except Exception as e:  # a malformed line, or an error from the bindings
                self.fail(f"{type(e).__name__}: {e}")
        self.build()

    def fail(self, message: str) -> None:
        pytest.fail(f"{self.where}: {message}", pytrace=False)

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.fail(message)

    # ---- steps

    def step(self, w) -> None:
        op = w[0]
        if op in ("primary", "replica"):
            return self.declare(w)
        if op == "lag_config":
            kv, _, _ = parse_args(w[1:], {"max_lag_ms", "recover_lag_ms"})
            self.lag_config = (float(kv.get("max_lag_ms", 100)), float(kv.get("recover_lag_ms", 50)))
            return None
        if op == "router":
            kv, _, _ = parse_args(w[1:], {"policy", "time_window_ms", "seed", "region", "sticky_reads"})
            self.router_kwargs = dict(
                policy=Policy[kv.get("policy", "round_robin").upper()],
                time_window_ms=float(kv.get("time_window_ms", 2000)),
                seed=int(kv.get("seed", 0)),
                region=kv.get("region", ""),
                sticky_reads=int(kv.get("sticky_reads", 1)),
            )
            if self.router is not None:
                self.router = Router(self.topology, **self.router_kwargs)
            return None
        self.build()
        t = self.topology
        if op in ("down", "up"):
            for name in w[1:]:
                t.set_up(self.name(name), op == "up")
        elif op == "weight":
            t.set_weight(self.name(w[1]), float(w[2]))
        elif op == "remove":
            t.remove_replica(self.name(w[1]))
        elif op == "promote":
            t.promote(self.name(w[1]))
        elif op == "sample":
            kv, _, _ = parse_args(w[2:], {"lag", "replay"})
            replay = replay_behind(parse_ms(kv["lag"])) if "lag" in kv else parse_lsn(kv["replay"])
            self.tracker.replica_sample(self.name(w[1]), replay, replay, now_ns=NOW)
        elif op in ("begin", "end"):
            _, _, repeat = parse_args(w[2:], {"x"})
            for _ in range(repeat):
                getattr(self.router, op)(self.name(w[1]))
        elif op == "session":
            kv, flags, _ = parse_args(w[1:], {"write", "read", "untracked", "token", "last_replica",
                                              "last_replica_lsn"})
            s = Session(write_lsn=parse_lsn(kv.get("write", "0")), read_lsn=parse_lsn(kv.get("read", "0")))
            if "untracked" in kv:
                s.record_write(None, now_ns=parse_time(kv["untracked"]))
            if "last_replica" in kv:
                seen = parse_lsn(kv["last_replica_lsn"]) if "last_replica_lsn" in kv else s.read_lsn
                s.observe_replica(seen, self.name(kv["last_replica"]), self.topology)
            if "token" in flags:
                s = Session.from_token(s.token())
            self.session = s
        elif op in ("write", "read"):
            self.route(w)
        else:
            self.fail(f"unknown step {op!r}")
        return None

    def declare(self, w) -> None:
        self.check(self.topology is None, "declarations must come before the first step")
        kv, flags, _ = parse_args(w[2:], {"region", "weight", "down", "lag"})
        node = Node(w[1], region=kv.get("region", ""), weight=float(kv.get("weight", 1)), up="down" not in flags)
        if w[0] == "primary":
            self.primary = node
        else:
            self.replicas.append(node)
            self.lags.append(parse_ms(kv["lag"]) if "lag" in kv else None)

    def build(self) -> None:
        if self.topology is not None:
            return
        self.topology = Topology(self.primary, self.replicas)
        # Positional thresholds: max_lag_ms, recover_lag_ms (whatever their keyword names).
        self.tracker = LagTracker(self.topology, *self.lag_config)
        for ms in range(NOW_MS + 1):
            self.tracker.primary_sample(lsn_at_ms(ms), now_ns=ms * MS)
        for node, lag in zip(self.replicas, self.lags):
            if lag is not None:
                replay = replay_behind(lag)
                self.tracker.replica_sample(node.name, replay, replay, now_ns=NOW)
        self.router = Router(self.topology, **self.router_kwargs)

    # ---- placeholders

    def name(self, word: str) -> str:
        if not word.startswith("$"):
            return word
        self.check(word in self.bound, f"placeholder {word} is not bound yet")
        return self.bound[word]

    def matches(self, want: str, got: str) -> bool:
        if not want.startswith("$"):
            return want == got
        if want in self.bound:
            return self.bound[want] == got
        if got in self.bound.values():
            return False  # distinct placeholders, distinct nodes
        self.bound[want] = got
        return True

    # ---- reads and writes

    def route(self, w) -> None:
        self.check("->" in w and len(w) - w.index("->") >= 3, "expected '-> <node> <reason>'")
        at = w.index("->")
        read = w[0] == "read"
        self.check(not read or at >= 2, "expected 'read <consistency> ...'")
        kv, _, repeat = parse_args(w[2 if read else 1:at], {"max_staleness_ms", "region", "at", "x"})
        after, _, _ = parse_args(w[at + 3:], {"required", "epoch"})
        expect, reason = w[at + 1], Reason[w[at + 2].upper()]
        got = []
        for k in range(repeat):
            if w[0] == "write":
                d = self.router.route_write()
            else:
                options = {}
                if "max_staleness_ms" in kv:
                    options["max_staleness_ms"] = float(kv["max_staleness_ms"])
                if "region" in kv:
                    options["region"] = kv["region"]
                now = parse_time(kv["at"]) if "at" in kv else NOW
                d = self.router.route_read(self.session, Consistency[w[1].upper()], now_ns=now, **options)
            name = node_name(d) or NO_NODE
            got.append(name)
            self.check(d.reason is reason, f"read {k + 1} went to {name} with {d.reason.name}, expected {reason.name}")
            if "required" in after:
                self.check(d.required_lsn.value == parse_lsn(after["required"]),
                           f"required_lsn {d.required_lsn}, expected {after['required']}")
            if "epoch" in after:
                self.check(d.epoch == int(after["epoch"]), f"epoch {d.epoch}, expected {after['epoch']}")
        self.check_nodes(expect, got)

    def check_nodes(self, expect: str, got: List[str]) -> None:
        seen = ",".join(got)
        if "=" in expect:
            counts: Dict[str, int] = {}
            for g in got:
                counts[g] = counts.get(g, 0) + 1
            for term in expect.split(","):
                m = re.fullmatch(r"([^=]+)=(\d+)(?:~(\d+))?", term)
                self.check(m is not None, f"bad count {term!r}")
                name, want, slack = self.name(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
                n = counts.pop(name, 0)
                self.check(abs(n - want) <= slack, f"{name} got {n} reads, expected {term}")
            self.check(not counts, f"unexpected nodes {counts}, expected {expect}")
        elif "," in expect:
            want = expect.split(",")
            self.check(len(want) == len(got), "the sequence must name every read")
            for k, (wk, g) in enumerate(zip(want, got)):
                self.check(self.matches(wk, g), f"read {k + 1} went to {g}, expected {wk} (reads: {seen})")
        else:
            options = expect.split("|")
            for k, g in enumerate(got):
                self.check(any(self.matches(o, g) for o in options), f"read {k + 1} went to {g}, expected {expect}")


def test_tables_have_cases():
    # An empty or missing folder must not pass silently.
    assert CASES, f"no cases under {TABLES}"
    files = {c.file for c in CASES}
    assert len(files) >= 1
    assert all(c.steps for c in CASES), [str(c) for c in CASES if not c.steps]
    print(f"[routing tables] {len(CASES)} cases in {len(files)} files")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{Path(c.file).stem}:{c.line}")
def test_routing_table_case(case: Case):
    CaseRun(case).run()
