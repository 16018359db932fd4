"""Operations and histories: what the workload did, as data the checkers read.

One ``Op`` per operation, updated in place from invoke to its outcome:
- ``type``: ``invoke`` (not completed), ``ok``, ``fail`` (known not to have taken effect)
  or ``unknown`` (a write whose commit outcome is unknown, e.g. CommitUnknown);
- ``f``: ``write`` (register ``key`` := ``value``, logged once in the ops table),
  ``read`` (``value`` seen, at ``consistency``), ``token_out`` / ``token_in`` (session
  ``session`` hands its token ``token`` to another / merges one), ``final`` (the value of
  ``key`` on the primary after the faults healed) and ``present`` (how many times write
  ``(session, value)`` is in the ops log at the end: ``value`` is the write's value,
  ``count`` the copies), ``fault`` (fault ``key`` on ``node`` from ``t0`` to ``t1``);
- ``node``: the node the library says served it; ``served``: the node the server itself
  reported (``inet_server_port()``); ``epoch`` / ``primary``: the topology at completion;
- ``lsn``: a write's commit LSN; for a read, the server's replay (replica) or insert
  (primary) LSN read with the value; ``read_lsn``: the session's read LSN after a read;
- ``t0`` / ``t1``: invoke and completion, ``time.monotonic_ns()``;
- failover histories (tests/checker/failover.py; replikit.testing.coordinated's processes all
  but ``xid``) add: ``invoke_epoch`` / ``invoke_primary`` (the topology at invoke: the one at
  completion is read after the acknowledgement, possibly after a switch), ``timeline`` (a
  write: the server's own timeline, read in the write's transaction) and ``xid`` (a write:
  its transaction id, read in it).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Dict, Iterable, Iterator, List, Optional

FIELDS = ("id", "session", "client", "f", "type", "key", "value", "consistency",
          "max_staleness_ms", "node", "served", "reason", "lsn", "epoch", "primary",
          "token", "count", "read_lsn", "t0", "t1", "error", "invoke_epoch",
          "invoke_primary", "timeline", "xid")


class Op:
    """One operation of a history (see the module docstring for the fields)."""

    __slots__ = FIELDS

    def __init__(self, **values: Any):
        for name in FIELDS:
            setattr(self, name, values.get(name))
        if self.type is None:
            self.type = "invoke"

    def to_json(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS if getattr(self, name) is not None}

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "Op":
        unknown = set(data) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown op fields {sorted(unknown)}")
        return cls(**data)

    def __repr__(self) -> str:
        return f"Op({', '.join(f'{k}={v!r}' for k, v in self.to_json().items())})"


class HistoryFull(Exception):
    """The history reached its bound; the workload stops adding operations."""


class History:
    """A bounded, thread-safe, append-only list of operations."""

    def __init__(self, max_ops: int = 1_000_000):
        if max_ops < 1:
            raise ValueError("max_ops must be >= 1")
        self.max_ops = max_ops
        self._ops: List[Op] = []
        self._lock = threading.Lock()

    def add(self, op: Op) -> Op:
        """Append ``op`` (giving it the next id); HistoryFull at the bound."""
        with self._lock:
            if len(self._ops) >= self.max_ops:
                raise HistoryFull(f"history holds its maximum of {self.max_ops} operations")
            op.id = len(self._ops)
            self._ops.append(op)
        return op

    @property
    def full(self) -> bool:
        return len(self._ops) >= self.max_ops

    def ops(self) -> List[Op]:
        with self._lock:
            return list(self._ops)

    def __len__(self) -> int:
        return len(self._ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops())


def save(path: str, ops: Iterable[Op], meta: Dict[str, Any]) -> None:
    """Write a history as JSON lines: first ``{"meta": ...}`` (seed, options), then one op a line."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps({"meta": meta}, sort_keys=True) + "\n")
        for op in ops:
            handle.write(json.dumps(op.to_json(), sort_keys=True) + "\n")


def load(path: str) -> "tuple[Dict[str, Any], List[Op]]":
    """Read a file written by ``save``: (meta, ops)."""
    meta: Optional[Dict[str, Any]] = None
    ops: List[Op] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            data = json.loads(line)
            if "meta" in data and meta is None and not ops:
                meta = data["meta"]
            else:
                ops.append(Op.from_json(data))
    return meta or {}, ops
