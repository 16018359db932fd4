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
Frontier = Dict[Any, Tuple[int, Op]]  # key -> (value, the op that established it)


def _raise(frontier: Frontier, key: Any, value: int, origin: Op) -> None:
    if value > frontier.get(key, (0, None))[0]:
        frontier[key] = (value, origin)


def check_session_guarantees(ops: Iterable[Op]) -> List[Violation]:
    """Per session: read-your-writes, monotonic reads and causal reads (with tokens).

    - RYW (READ_YOUR_WRITES, CAUSAL, STRONG reads): a read of a key returns at least the
      session's last acknowledged write of it.
    - Monotonic (MONOTONIC, CAUSAL reads): at least what the session's earlier MONOTONIC or
      CAUSAL reads of the key returned (only those record what they saw).
    - Causal (CAUSAL reads): at least what any token the session merged carried: the
      writer's acknowledged writes, monotonic observations and merged tokens when it took
      the token.
    Ops must be in id order (a session is one thread, so that is its program order). Each
    violation also has a ``cause``, from the op that set the bound (see ``_cause``).
    """
    written: Dict[Any, Frontier] = defaultdict(dict)
    observed: Dict[Any, Frontier] = defaultdict(dict)
    merged: Dict[Any, Frontier] = defaultdict(dict)
    tokens: Dict[Any, Frontier] = {}
    out: List[Violation] = []
    for op in ops:
        s = op.session
        if op.f == "write" and op.type == "ok":
            _raise(written[s], op.key, int(op.value), op)
        elif op.f == "token_out" and op.type == "ok":
            frontier: Frontier = {}
            for source in (written[s], observed[s], merged[s]):
                for key, (value, origin) in source.items():
                    _raise(frontier, key, value, origin)
            tokens[op.token] = frontier
        elif op.f == "token_in" and op.type == "ok":
            carried = tokens.get(op.token)
            if carried is None:
                out.append(_violation("sessions", "unknown_token", op,
                                      f"token {op.token} merged before it was handed out"))
                continue
            for key, (value, origin) in carried.items():
                _raise(merged[s], key, value, origin)
        elif op.f == "read" and op.type == "ok" and op.value is not None:
            out.extend(_judge_read(op, written[s], observed[s], merged[s]))
            if op.consistency in MONOTONIC_LEVELS:
                _raise(observed[s], op.key, int(op.value), op)
    return out


def _cause(read: Op, origin: Op) -> str:
    """Which known failure a backwards read looks like, from the op that set its bound:
    ``write_lsn_unknown`` (the write was acknowledged without its commit LSN, so router
    rule 3 applied), ``observed_on_primary`` (the newer value was read
    on the primary, the older one on a replica), ``primary_behind_replica`` (the newer value
    was read on a replica, the older one on the primary), or ``other``."""
    if origin.f == "write":
        return "write_lsn_unknown" if origin.lsn is None else "other"
    if origin.node == "primary" and read.node != "primary":
        return "observed_on_primary"
    if origin.node != "primary" and read.node == "primary":
        return "primary_behind_replica"
    return "other"


def _judge_read(op: Op, written: Frontier, observed: Frontier,
                merged: Frontier) -> List[Violation]:
    value = int(op.value)
    where = f"on {op.node} ({op.reason})"
    out: List[Violation] = []
    checks = ((RYW_LEVELS, written, "read_your_writes", "its acknowledged write of"),
              (MONOTONIC_LEVELS, observed, "monotonic", "reading"),
              (CAUSAL_LEVELS, merged, "causal", "merging a token that had seen"))
    for levels, frontier, kind, what in checks:
        if op.consistency not in levels or op.key not in frontier:
            continue
        bound, origin = frontier[op.key]
        if value < bound:
            violation = _violation("sessions", kind, op,
                                   f"session {op.session} read {op.key}={value} {where} "
                                   f"after {what} {bound} ({origin.f} {origin.id} on "
                                   f"{origin.node})")
            violation["cause"] = _cause(op, origin)
            out.append(violation)
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
    primary_faults = [(int(op.t0), int(op.t1 if op.t1 is not None else op.t0)) for op in ops
                      if op.f == "fault" and op.node == "primary"]
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
            violation = _violation("staleness", "stale", op,
                                   f"read {op.key}={op.value} on {op.node} ({op.reason}): "
                                   f"{values[i]} was acknowledged {age_ms:.1f} ms before the "
                                   f"read began (allowed {allowed_ms:g} ms)")
            # The primary down, frozen or restarting meanwhile: the lag tracker had no
            # primary samples to see the replica fall behind.
            overlap = any(start <= int(op.t0) and end >= earliest[i]
                          for start, end in primary_faults)
            violation["cause"] = "primary_fault" if overlap else "other"
            out.append(violation)
    return out


# ---------------------------------------------------------------------------- primaries
def check_primaries(ops: Iterable[Op]) -> List[Violation]:
    """At most one writable primary per epoch: no write acknowledged by a node that was not
    the primary of its epoch, and no operation served by another node than the library
    reported.

    ``epoch``/``primary``: the topology (db.topology) when the op completed (and, where
    recorded, ``invoke_epoch``/``invoke_primary`` when it was invoked: a write that
    straddled a switch may have been served by either); ``served``: the node the server
    itself said it is (by its port). Every (epoch, primary) pair seen must agree: one primary
    per epoch. Writes that carry the server's ``timeline`` are also checked on the servers'
    side: one node per timeline, and no write acknowledged on an older timeline than one a
    write that had already completed before it was invoked (a deposed primary taking writes).
    """
    ops = list(ops)
    primary_of: Dict[Any, Any] = {}
    out: List[Violation] = []
    for op in ops:
        for epoch, primary in ((op.invoke_epoch, op.invoke_primary), (op.epoch, op.primary)):
            if epoch is None or primary is None:
                continue
            known = primary_of.setdefault(epoch, primary)
            if known != primary:
                out.append(_violation("primaries", "epoch_conflict", op,
                                      f"epoch {epoch} has primaries {known} and {primary}"))
    for op in ops:
        if op.type != "ok" or op.f not in ("write", "read"):
            continue
        if op.served is not None and op.node is not None and op.served != op.node:
            out.append(_violation("primaries", "wrong_node_reported", op,
                                  f"{op.f} reported as served by {op.node}, the server is "
                                  f"{op.served}"))
        if op.f == "write":
            actual = op.served if op.served is not None else op.node
            expected = {primary_of.get(op.epoch)}
            if op.invoke_epoch is not None:
                expected.add(primary_of.get(op.invoke_epoch))
            if actual is None or actual not in expected:
                out.append(_violation("primaries", "not_primary", op,
                                      f"write acknowledged by {actual}; the primary of epoch "
                                      f"{op.epoch} is {primary_of.get(op.epoch)}"))
    return out + _check_timelines(ops)


def _check_timelines(ops: List[Op]) -> List[Violation]:
    writes = [op for op in ops if op.f == "write" and op.type == "ok" and op.timeline is not None]
    out: List[Violation] = []
    node_of: Dict[int, Any] = {}
    for op in writes:
        node = op.served if op.served is not None else op.node
        known = node_of.setdefault(int(op.timeline), node)
        if known != node:
            out.append(_violation("primaries", "timeline_conflict", op,
                                  f"timeline {op.timeline} took writes on {known} and {node}"))
    # Real-time order: the newest timeline among writes completed before each invoke.
    completed = sorted((int(op.t1), int(op.timeline), op.id) for op in writes)
    ends = [c[0] for c in completed]
    newest: List[Tuple[int, Any]] = []
    best: Tuple[int, Any] = (-1, None)
    for _, timeline, op_id in completed:
        best = max(best, (timeline, op_id), key=lambda pair: pair[0])
        newest.append(best)
    for op in writes:
        done_before = bisect.bisect_left(ends, int(op.t0))
        if done_before == 0:
            continue
        timeline, origin = newest[done_before - 1]
        if int(op.timeline) < timeline:
            out.append(_violation("primaries", "deposed_primary_write", op,
                                  f"write acknowledged on timeline {op.timeline} by "
                                  f"{op.served or op.node} after write {origin} had completed "
                                  f"on timeline {timeline}"))
    return out


# ---------------------------------------------------------------------------- all
def check_all(ops: Iterable[Op], tolerance_ms: float) -> List[Violation]:
    """Every checker over one history."""
    ops = list(ops)
    return (check_writes(ops) + check_session_guarantees(ops)
            + check_staleness(ops, tolerance_ms) + check_primaries(ops))


def label(violation: Violation) -> str:
    """``checker:kind`` or ``checker:kind:cause``."""
    cause = violation.get("cause")
    return f"{violation['checker']}:{violation['kind']}" + (f":{cause}" if cause else "")


def summarize(ops: Iterable[Op], violations: List[Violation]) -> Dict[str, Any]:
    """Operations by kind and outcome, reads by consistency, violations by checker and kind,
    and how the unknown writes resolved."""
    ops = list(ops)
    by_kind = Counter(f"{op.f}:{op.type}" for op in ops if op.f in ("write", "read"))
    by_level = Counter(op.consistency for op in ops if op.f == "read" and op.type == "ok")
    tokens = Counter(op.f for op in ops if op.f in ("token_out", "token_in"))
    # Acknowledged writes whose commit LSN the session did not get (rule 3's case).
    lsn_unknown = sum(1 for op in ops if op.f == "write" and op.type == "ok" and op.lsn is None)
    return {
        "operations": dict(sorted(by_kind.items())),
        "reads_by_consistency": dict(sorted(by_level.items())),
        "tokens": dict(tokens),
        "violations": dict(sorted(Counter(label(v) for v in violations).items())),
        "unknown_writes": resolve_unknown(ops),
        "writes_lsn_unknown": {"acknowledged": lsn_unknown},
    }
