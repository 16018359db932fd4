"""The fault schedule: one fault at a time on a LocalCluster, each held a while, then healed.

Kinds (``FAULT_KINDS``): kill -9 of a replica or of the primary, then a restart (there is no
failover yet: while the primary is down writes fail or end unknown, and none may be lost);
SIGSTOP/SIGCONT of a replica or the primary (``freeze``/``thaw``); pause/resume of a
replica's replay; an apply delay on a replica; a clean restart (``stop -m fast``) of a
replica or the primary.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

FAULT_KINDS = ("kill_replica", "kill_primary", "freeze_replica", "freeze_primary",
               "pause_replay", "apply_delay", "restart_replica", "restart_primary")
HOLD_MS = (300, 2500)  # how long a fault lasts
GAP_MS = (200, 1500)  # quiet time between faults
RESTART_TIMEOUT_MS = 60_000.0


class FaultSchedule:
    """Runs faults of ``kinds`` on ``cluster`` from a thread until ``stop()``; seeded."""

    def __init__(self, cluster: Any, seed: int, kinds: Sequence[str] = FAULT_KINDS,
                 log: Callable[[str], None] = lambda line: None):
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        self.cluster = cluster
        self.kinds = list(kinds)
        self.rng = random.Random(seed)
        self.log = log
        self.events: List[Dict[str, Any]] = []  # kind, node, start_ns, heal_ns, error
        self.errors: List[str] = []
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        if self.kinds:
            self._thread = threading.Thread(target=self._run, name="faults", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop after healing the fault in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def counts(self) -> Dict[str, int]:
        return dict(Counter(e["kind"] for e in self.events))

    def _sleep_ms(self, bounds: Tuple[int, int]) -> None:
        self._stop.wait(self.rng.uniform(*bounds) / 1000.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sleep_ms(GAP_MS)
            if self._stop.is_set():
                return
            kind = self.rng.choice(self.kinds)
            node = ("primary" if kind.endswith("_primary")
                    else self.rng.choice(self.cluster.replica_names))
            event: Dict[str, Any] = {"kind": kind, "node": node, "start_ns": time.monotonic_ns()}
            self.events.append(event)
            self.log(f"fault {kind} on {node}")
            try:
                heal = self._inject(kind, node)
            except Exception as exc:  # a harness failure: reported, and the run goes on
                event["error"] = f"inject: {type(exc).__name__}: {exc}"
                self.errors.append(event["error"])
                heal = None
            self._sleep_ms(HOLD_MS)
            try:
                if heal is not None:
                    heal()
            except Exception as exc:
                event["error"] = f"heal: {type(exc).__name__}: {exc}"
                self.errors.append(event["error"])
            event["heal_ns"] = time.monotonic_ns()

    def _inject(self, kind: str, node: str) -> Optional[Callable[[], None]]:
        c = self.cluster
        if kind.startswith("kill_"):
            c.kill(node)
            return lambda: _restart(c, node)
        if kind.startswith("freeze_"):
            c.freeze(node)
            return lambda: c.thaw(node)
        if kind.startswith("restart_"):
            c.stop(node, "fast")
            return lambda: _restart(c, node)
        if kind == "pause_replay":
            c.pause_replay(node)
            return lambda: c.resume_replay(node)
        if kind == "apply_delay":
            c.set_apply_delay(node, self.rng.choice((300, 1000, 2000)))
            return lambda: c.clear_apply_delay(node)
        raise ValueError(kind)


def _restart(cluster: Any, node: str) -> None:
    cluster.stop(node)  # reaps the orphans of a killed postmaster
    cluster.start(node, timeout_ms=RESTART_TIMEOUT_MS)


def heal_all(cluster: Any, timeout_ms: float = RESTART_TIMEOUT_MS) -> None:
    """Everything back to normal: thaw every node, start stopped ones, resume replay, clear
    apply delays, and wait until the replicas stream and have caught up."""
    for name in cluster.nodes:
        if cluster.is_up(name):
            cluster.thaw(name)
    cluster.reset(timeout_ms=timeout_ms)
    cluster.wait_caught_up(timeout_ms=timeout_ms)
