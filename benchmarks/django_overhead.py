#!/usr/bin/env python3
"""What replikit.django costs per ORM call, against plain Django in the same run.

On a LocalCluster (primary + 2 replicas), one thread, the comments example's model:
  reads:  Comment.objects.get(pk=...) routed by ReplikitRouter (read-your-writes, a replica)
          vs .using("plain_r1") (plain Django: the same replica under an alias replikit does
          not know);
  writes: an autocommit create then a read-your-writes get, routed (the commit LSN read once,
          before the get) vs create + get .using("plain") (plain Django, both on the primary);
  atomic: a create inside transaction.atomic() then a routed get (the LSN read in the
          COMMIT's round trip) vs the same .using("plain").
The write cases run with WAIT_FOR_REPLICA_MS 50 (the get waits for a replica to replay the
write) and 0 (the get goes to the primary when no replica has it yet).
Slices of each alternate so drift hits both sides alike; prints calls/s and the ratio
replikit / plain (1.0: no cost)."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

ROOT = Path(__file__).resolve().parents[1]


def setup(cluster) -> None:
    import django
    from django.conf import settings
    from django.core.management import call_command

    def db(node: str) -> dict:
        return {"ENGINE": "django.db.backends.postgresql", "NAME": "postgres", "USER": "postgres",
                "HOST": cluster.host, "PORT": str(cluster.node(node).port), "CONN_MAX_AGE": None}

    sys.path.insert(0, str(ROOT / "examples" / "comments"))
    settings.configure(
        SECRET_KEY="benchmark only", USE_TZ=True, DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        # "plain" and "plain_r1": the same nodes under aliases replikit does not know (no wrappers).
        DATABASES={"default": db("primary"), "r1": db("r1"), "r2": db("r2"), "plain": db("primary"),
                   "plain_r1": db("r1")},
        INSTALLED_APPS=["replikit.django", "comments"], DATABASE_ROUTERS=["replikit.django.ReplikitRouter"],
        REPLIKIT={"PRIMARY": "default", "REPLICAS": ["r1", "r2"], "NODE_NAMES": {"default": "primary"},
                  "WAIT_FOR_REPLICA_MS": 50.0})
    django.setup()
    call_command("migrate", "comments", database="default", verbosity=0)


def measure(fn: Callable[[], None], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        count += 1
    return count / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=6, help="alternating slices per side (default 6)")
    parser.add_argument("--slice-s", type=float, default=1.0, help="seconds per slice (default 1)")
    args = parser.parse_args()
    if not 1 <= args.slices <= 100 or not 0.1 <= args.slice_s <= 60:
        parser.error("--slices in 1..100, --slice-s in 0.1..60")
    from replikit.testing import LocalCluster

    with LocalCluster() as cluster:
        setup(cluster)
        from comments.models import Comment
        from django.db import transaction

        import replikit.django as rd

        rd.get_state().wait_probes(2, 5000)
        ids = [Comment.objects.create(thread="bench", author="b", text=str(k)).pk for k in range(100)]
        cluster.wait_caught_up(timeout_ms=10_000)
        k = [0]

        def pick() -> int:
            k[0] += 1
            return ids[k[0] % len(ids)]

        def write_then_read(using: str = "") -> None:
            objects = Comment.objects.using(using) if using else Comment.objects
            c = objects.create(thread="bench-w", author="b", text="w")
            (Comment.objects.using(using) if using else Comment.objects).get(pk=c.pk)

        def atomic_then_read(using: str = "") -> None:
            with transaction.atomic(using=using or "default"):
                c = (Comment.objects.using(using) if using else Comment.objects).create(
                    thread="bench-a", author="b", text="a")
            (Comment.objects.using(using) if using else Comment.objects).get(pk=c.pk)

        cases: Dict[str, Dict[str, Callable[[], None]]] = {
            "point read": {"replikit": lambda: Comment.objects.get(pk=pick()),
                           "plain": lambda: Comment.objects.using("plain_r1").get(pk=pick())},
            "autocommit write + read": {"replikit": write_then_read,
                                        "plain": lambda: write_then_read("plain")},
            "atomic write + read": {"replikit": atomic_then_read,
                                    "plain": lambda: atomic_then_read("plain")},
        }
        state = rd.get_state()
        print(f"{'case':<26} {'wait_ms':>7} {'replikit/s':>11} {'plain/s':>9} {'ratio':>6}")
        # wait 50: a read after a write waits (probing) for a replica to replay it; 0: such a
        # read goes to the primary at once (what is left is the commit LSN's capture).
        for wait_ms in (50.0, 0.0):
            state._wait_ms = wait_ms
            with rd.use_session():
                for name, sides in cases.items():
                    if wait_ms == 0 and name == "point read":
                        continue
                    rates: Dict[str, List[float]] = {"replikit": [], "plain": []}
                    for _ in range(args.slices):
                        for side, fn in sides.items():
                            rates[side].append(measure(fn, args.slice_s))
                    r, p = statistics.median(rates["replikit"]), statistics.median(rates["plain"])
                    print(f"{name:<26} {wait_ms:>7g} {r:>11.0f} {p:>9.0f} {r / p:>6.2f}", flush=True)
        print(f"replikit's counters: {state.stats()}")
        rd.reset_state()
        from django.db import connections
        connections.close_all()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
