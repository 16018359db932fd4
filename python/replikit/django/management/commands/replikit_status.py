"""manage.py replikit_status: each node's role, state and lag as replikit's prober sees them."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ...state import get_state


class Command(BaseCommand):
    help = "Show each replikit node (Django alias, role, up, lag, replay LSN) after fresh probes."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.add_argument("--timeout-ms", type=float, default=5000.0,
                            help="how long to wait for two probes of every node (default 5000)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["timeout_ms"] > 0:
            raise CommandError("--timeout-ms must be > 0")
        state = get_state()
        complete = state.wait_probes(2, options["timeout_ms"])
        rows = state.nodes()
        if options["json"]:
            out = [{k: (str(v) if k in ("replay_lsn",) else getattr(v, "name", v)) for k, v in row.items()}
                   for row in rows]
            self.stdout.write(json.dumps({"nodes": out, "probes_complete": complete}, default=str))
            return
        self.stdout.write(f"{'alias':<12} {'node':<12} {'role':<8} {'up':<4} {'lag_ms':>9} "
                          f"{'lag_state':<10} {'replay_lsn':<14} last_error")
        for r in rows:
            lag = f"{r['lag_ms']:.1f}" if r["lag_known"] else "-"
            role = getattr(r["role"], "name", str(r["role"])).lower()
            state_name = getattr(r["lag_state"], "name", str(r["lag_state"])).lower()
            self.stdout.write(f"{r['alias']:<12} {r['name']:<12} {role:<8} {'yes' if r['up'] else 'no':<4} "
                              f"{lag:>9} {state_name:<10} {str(r['replay_lsn']):<14} {r['last_error']}")
        if not complete:
            self.stdout.write(f"(not every node answered two probes within {options['timeout_ms']:g} ms)")
