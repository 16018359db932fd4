"""Checkers over a history: pure functions of a list of ``Op`` (history.py), in id order.

Each returns a list of violations, ``{"checker", "kind", "op", "detail"}`` (``op``: the id of
the offending operation). The register workload they judge: every key is written by one
session only, with values that increase (1, 2, 3, ...; 0 is the initial value), so a value
says which write a read saw, and a smaller value is an older state.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .history import Op

Violation = Dict[str, Any]

RYW_LEVELS = ("read_your_writes", "causal", "strong")
MONOTONIC_LEVELS = ("monotonic", "causal")  # the reads that record what they saw
CAUSAL_LEVELS = ("causal",)


def _violation(checker: str, kind: str, op: Optional[Op], detail: str) -> Violation:
    return {"checker": checker, "kind": kind, "op": None if op is None else op.id,
            "detail": detail}


# ---------------------------------------------------------------------------- writes
def check_writes(ops: Iterable[Op]) -> List[Violation]:
    """Every acknowledged write is in the ops log exactly once at the end; a failed write is
    not in it; an unknown one at most once; nothing is in it that no one wrote; and each
    key's final value is its last committed write.

    Needs the ``present`` ops (one per (session, value) found in the log or written) and the
    ``final`` ops (one per key) that the runner adds after the faults healed.
    """
    writes: Dict[Tuple[Any, Any], Op] = {}
    present: Dict[Tuple[Any, Any], Op] = {}
    finals: List[Op] = []
    for op in ops:
        if op.f == "write":
            writes[(op.session, op.value)] = op
        elif op.f == "present":
            present[(op.session, op.value)] = op
        elif op.f == "final":
            finals.append(op)
    out: List[Violation] = []
    committed_max: Dict[Any, int] = defaultdict(int)
    for key, write in writes.items():
        seen = present.get(key)
        if seen is None:
            out.append(_violation("writes", "not_read_back", write,
                                  f"write {key} has no read-back at the end"))
            continue
        count = int(seen.count or 0)
        if count > 1:
            out.append(_violation("writes", "duplicated", write,
                                  f"{write.type} write {key} is present {count} times"))
        if write.type == "ok" and count == 0:
            out.append(_violation("writes", "lost", write, f"acknowledged write {key} is missing"))
        elif write.type == "fail" and count > 0:
            out.append(_violation("writes", "failed_write_present", write,
                                  f"write {key} reported as failed ({write.error}) is present"))
        elif write.type == "invoke":
            out.append(_violation("writes", "not_completed", write,
                                  f"write {key} never completed"))
        if count > 0:
            committed_max[write.key] = max(committed_max[write.key], int(write.value))
    for key, seen in present.items():
        if key not in writes and int(seen.count or 0) > 0:
            out.append(_violation("writes", "phantom", seen,
                                  f"{key} is present {seen.count} times but was never written"))
    for final in finals:
        expected = committed_max.get(final.key, 0)
        if final.value != expected:
            out.append(_violation("writes", "final_value", final,
                                  f"key {final.key} ends at {final.value}, its last committed "
                                  f"write is {expected}"))
    return out


def resolve_unknown(ops: Iterable[Op]) -> Dict[str, int]:
    """How the unknown writes turned out, by the read-back: committed / not_committed."""
    present = {(op.session, op.value): int(op.count or 0) for op in ops if op.f == "present"}
    result = Counter(committed=0, not_committed=0, not_read_back=0)
    for op in ops:
        if op.f == "write" and op.type == "unknown":
            count = present.get((op.session, op.value))
            result["not_read_back" if count is None else
                   "committed" if count > 0 else "not_committed"] += 1
    return dict(result)


# ---------------------------------------------------------------------------- sessions
def check_session_guarantees(ops: Iterable[Op]) -> List[Violation]:
    """Per session: read-your-writes, monotonic reads and causal reads (with tokens).

    - RYW (READ_YOUR_WRITES, CAUSAL, STRONG reads): a read of a key returns at least the
      session's last acknowledged write of it.
    - Monotonic (MONOTONIC, CAUSAL reads): at least what the session's earlier MONOTONIC or
      CAUSAL reads of the key returned (only those record what they saw).
    - Causal (CAUSAL reads): at least what any token the session merged carried: the
      writer's acknowledged writes, monotonic observations and merged tokens when it took
      the token.
    Ops must be in id order (a session is one thread, so that is its program order).
    """
    written: Dict[Any, Dict[Any, int]] = defaultdict(dict)
    observed: Dict[Any, Dict[Any, int]] = defaultdict(dict)
    merged: Dict[Any, Dict[Any, int]] = defaultdict(dict)
    seen_on: Dict[Any, Dict[Any, Any]] = defaultdict(dict)  # node of the observed value
    tokens: Dict[Any, Dict[Any, int]] = {}
    out: List[Violation] = []
    for op in ops:
        s = op.session
        if op.f == "write" and op.type == "ok":
            mine = written[s]
            mine[op.key] = max(mine.get(op.key, 0), int(op.value))
        elif op.f == "token_out" and op.type == "ok":
            frontier: Dict[Any, int] = {}
            for source in (written[s], observed[s], merged[s]):
                for key, value in source.items():
                    frontier[key] = max(frontier.get(key, 0), value)
            tokens[op.token] = frontier
        elif op.f == "token_in" and op.type == "ok":
            frontier = tokens.get(op.token)
            if frontier is None:
                out.append(_violation("sessions", "unknown_token", op,
                                      f"token {op.token} merged before it was handed out"))
                continue
            mine = merged[s]
            for key, value in frontier.items():
                mine[key] = max(mine.get(key, 0), value)
        elif op.f == "read" and op.type == "ok" and op.value is not None:
            out.extend(_judge_read(op, written[s], observed[s], merged[s], seen_on[s]))
            if op.consistency in MONOTONIC_LEVELS:
                seen = observed[s]
                if int(op.value) > seen.get(op.key, 0):
                    seen[op.key] = int(op.value)
                    seen_on[s][op.key] = op.node
    return out


def _judge_read(op: Op, written: Dict[Any, int], observed: Dict[Any, int],
                merged: Dict[Any, int], seen_on: Dict[Any, Any]) -> List[Violation]:
    value = int(op.value)
    where = f"on {op.node} ({op.reason})"
    out: List[Violation] = []
    if op.consistency in RYW_LEVELS and value < written.get(op.key, 0):
        out.append(_violation("sessions", "read_your_writes", op,
                              f"session {op.session} read {op.key}={value} {where} after "
                              f"its acknowledged write of {written[op.key]}"))
    if op.consistency in MONOTONIC_LEVELS and value < observed.get(op.key, 0):
        out.append(_violation("sessions", "monotonic", op,
                              f"session {op.session} read {op.key}={value} {where} after "
                              f"reading {observed[op.key]} on {seen_on.get(op.key)}"))
    if op.consistency in CAUSAL_LEVELS and value < merged.get(op.key, 0):
        out.append(_violation("sessions", "causal", op,
                              f"session {op.session} read {op.key}={value} {where} after "
                              f"merging a token that had seen {merged[op.key]}"))
    return out


# ---------------------------------------------------------------------------- staleness
def check_staleness(ops: Iterable[Op], tolerance_ms: float) -> List[Violation]:
    """A BOUNDED_STALENESS read returns no value that was overwritten, by an acknowledged
    write, more than ``max_staleness_ms + tolerance_ms`` before the read began.

    A read that returned v missed the next write w of the key; w committed before it was
    acknowledged (w.t1), and the replica had not replayed it when the read was routed
    (after read.t0), so the data was at least ``read.t0 - w.t1`` old.
    """
    ops = list(ops)
    acked: Dict[Any, List[Tuple[int, int]]] = defaultdict(list)
    for op in ops:
        if op.f == "write" and op.type == "ok":
            acked[op.key].append((int(op.value), int(op.t1)))
    first_ack: Dict[Any, Tuple[List[int], List[int]]] = {}
    for key, pairs in acked.items():
        pairs.sort()
        values = [v for v, _ in pairs]
        earliest = [t for _, t in pairs]
        for i in range(len(earliest) - 2, -1, -1):  # earliest ack among values >= values[i]
            earliest[i] = min(earliest[i], earliest[i + 1])
        first_ack[key] = (values, earliest)
    out: List[Violation] = []
    for op in ops:
        if (op.f != "read" or op.type != "ok" or op.consistency != "bounded_staleness"
                or op.value is None or op.key not in first_ack):
            continue
        values, earliest = first_ack[op.key]
        i = bisect.bisect_right(values, int(op.value))
        if i == len(values):
            continue
        age_ms = (int(op.t0) - earliest[i]) / 1e6
        allowed_ms = float(op.max_staleness_ms) + tolerance_ms
        if age_ms > allowed_ms:
            out.append(_violation("staleness", "stale", op,
                                  f"read {op.key}={op.value} on {op.node} ({op.reason}): "
                                  f"{values[i]} was acknowledged {age_ms:.1f} ms before the "
                                  f"read began (allowed {allowed_ms:g} ms)"))
    return out


# ---------------------------------------------------------------------------- primaries
def check_primaries(ops: Iterable[Op]) -> List[Violation]:
    """No write acknowledged by a node that was not the primary of its epoch, and no
    operation served by another node than the library reported.

    ``epoch``/``primary``: the topology (db.topology) when the op completed; ``served``:
    the node the server itself said it is (by its port). Every (epoch, primary) pair seen
    must agree: one primary per epoch.
    """
    ops = list(ops)
    primary_of: Dict[Any, Any] = {}
    out: List[Violation] = []
    for op in ops:
        if op.epoch is None or op.primary is None:
            continue
        known = primary_of.setdefault(op.epoch, op.primary)
        if known != op.primary:
            out.append(_violation("primaries", "epoch_conflict", op,
                                  f"epoch {op.epoch} has primaries {known} and {op.primary}"))
    for op in ops:
        if op.type != "ok" or op.f not in ("write", "read"):
            continue
        if op.served is not None and op.node is not None and op.served != op.node:
            out.append(_violation("primaries", "wrong_node_reported", op,
                                  f"{op.f} reported as served by {op.node}, the server is "
                                  f"{op.served}"))
        if op.f == "write":
            actual = op.served if op.served is not None else op.node
            expected = primary_of.get(op.epoch)
            if actual is None or expected is None or actual != expected:
                out.append(_violation("primaries", "not_primary", op,
                                      f"write acknowledged by {actual}; the primary of epoch "
                                      f"{op.epoch} is {expected}"))
    return out


# ---------------------------------------------------------------------------- all
def check_all(ops: Iterable[Op], tolerance_ms: float) -> List[Violation]:
    """Every checker over one history."""
    ops = list(ops)
    return (check_writes(ops) + check_session_guarantees(ops)
            + check_staleness(ops, tolerance_ms) + check_primaries(ops))


def summarize(ops: Iterable[Op], violations: List[Violation]) -> Dict[str, Any]:
    """Operations by kind and outcome, reads by consistency, violations by checker and kind,
    and how the unknown writes resolved."""
    ops = list(ops)
    by_kind = Counter(f"{op.f}:{op.type}" for op in ops if op.f in ("write", "read"))
    by_level = Counter(op.consistency for op in ops if op.f == "read" and op.type == "ok")
    tokens = Counter(op.f for op in ops if op.f in ("token_out", "token_in"))
    return {
        "operations": dict(sorted(by_kind.items())),
        "reads_by_consistency": dict(sorted(by_level.items())),
        "tokens": dict(tokens),
        "violations": dict(sorted(Counter(f"{v['checker']}:{v['kind']}"
                                          for v in violations).items())),
        "unknown_writes": resolve_unknown(ops),
    }
