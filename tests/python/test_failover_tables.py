"""Runs every case of the failover selection tables, tests/testdata/failover/*.txt, through the bindings.

The tables are the executable specification of plan_failover (format in
tests/testdata/failover/README.md); tests/cpp/test_failover_tables.cpp runs the same files in C++.
A failing case is reported as `file:line` of the case and of the expectation that failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import pytest

from replikit import CandidateState, FailoverConfig, Lsn, PrimaryState, plan_failover

TABLES = Path(__file__).resolve().parent.parent / "testdata" / "failover"


@dataclass
class Case:
    file: str
    line: int
    title: str
    lines: List[tuple] = field(default_factory=list)  # (line number, words)

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.title}"


def load_cases() -> List[Case]:
    cases: List[Case] = []
    for path in sorted(TABLES.glob("*.txt")):
        shown = f"tests/testdata/failover/{path.name}"
        for number, text in enumerate(path.read_text().splitlines(), start=1):
            words = text.split()
            if not words or words[0].startswith("#"):
                continue
            if words[0] == "case":
                cases.append(Case(shown, number, text.split(None, 1)[1]))
            else:
                assert cases and cases[-1].file == shown, f"{shown}:{number}: a line before the first case"
                cases[-1].lines.append((number, words))
    return cases


CASES = load_cases()


def lsn(text: str) -> Lsn:
    return Lsn(text) if "/" in text else Lsn(int(text))


def options(words: List[str]) -> Dict[str, str]:
    out = {}
    for word in words:
        key, _, value = word.partition("=")
        out[key] = value
    return out


def candidate(words: List[str]) -> CandidateState:
    c = CandidateState(words[1])
    for key, value in options(words[2:]).items():
        if key == "receive":
            c.receive_lsn = lsn(value)
        elif key == "replay":
            c.replay_lsn = lsn(value)
        elif key == "timeline":
            c.timeline = int(value)
        elif key == "priority":
            c.priority = int(value)
        elif key == "region":
            c.region = value
        elif key == "down":
            c.reachable = False
        elif key == "nofailover":
            c.no_failover = True
        elif key == "sync":
            c.was_synchronous = True
        else:
            raise AssertionError(f"unknown candidate option {key}")
    return c


def primary(p: PrimaryState, words: List[str]) -> None:
    for key, value in options(words[1:]).items():
        if key == "lsn":
            p.last_known_lsn = lsn(value)
        elif key == "timeline":
            p.timeline = int(value)
        elif key == "acked":
            p.last_acknowledged_commit_lsn = lsn(value)
        elif key == "sync":
            p.synchronous_mode = True
            p.synchronous_standbys = value.split(",")
        else:
            raise AssertionError(f"unknown primary option {key}")


def config(c: FailoverConfig, words: List[str]) -> None:
    for key, value in options(words[1:]).items():
        if key == "max_lag_bytes":
            c.max_lag_bytes = int(value)
        elif key == "region":
            c.preferred_region = value
        else:
            raise AssertionError(f"unknown config option {key}")


def test_there_are_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case(case: Case):
    candidates, p, c, expectations = [], PrimaryState(), FailoverConfig(), []
    for number, words in case.lines:
        if words[0] == "primary":
            primary(p, words)
        elif words[0] == "config":
            config(c, words)
        elif words[0] == "candidate":
            candidates.append(candidate(words))
        else:
            expectations.append((number, words))
    plan = plan_failover(candidates, p, c)
    want_excluded = {}
    for number, words in expectations:
        where = f"{case.file}:{number}\n{plan}"
        if words[0] == "promote":
            assert (plan.promote or "none") == words[1], where
            loss = options(words[2:]).get("loss")
            if loss is not None:
                assert plan.expected_loss_bytes == int(loss), where
        elif words[0] == "exclude":
            want_excluded[words[1]] = words[2]
        elif words[0] == "repoint":
            assert plan.repoint == [w for w in words[1:] if w != "none"], where
        elif words[0] == "reason":
            assert " ".join(words[1:]) in plan.reason, where
        else:
            raise AssertionError(f"{where}: unknown line kind {words[0]}")
    got = {e.name: e.reason.name.lower() for e in plan.excluded}
    assert got == want_excluded, f"{case}: exclusions\n{plan}"
