"""The monitor's terminal view (rich) and its JSON lines."""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Optional

_STATE_STYLE = {"OK": "bold green", "LAGGING": "bold yellow", "DOWN": "bold red"}


def json_line(snapshot: Dict[str, Any]) -> str:
    """One snapshot as one line of JSON (keys sorted)."""
    return json.dumps(snapshot, sort_keys=True, default=str)


def _ms(value: Optional[float]) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 10_000 else f"{value:,.0f}"


def _bytes(value: Optional[int]) -> str:
    if value is None:
        return "-"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"


def _thresholds(t: Dict[str, Any]) -> str:
    text = f"LAGGING above {_ms(t['max_lag_ms'])} ms, OK again below {_ms(t['recover_lag_ms'])} ms"
    if t.get("max_lag_bytes"):
        text += (f"; or above {_bytes(t['max_lag_bytes'])}, OK again below "
                 f"{_bytes(t['recover_lag_bytes'])}")
    return text


def reads_line(reads: Dict[str, Any]) -> str:
    """Where eventual reads go now, in words."""
    targets = reads["targets"]
    if not targets:
        return f"reads: no node can serve them ({reads['reason']})"
    if reads["to_primary"] and reads["replicas"]:
        return f"reads -> {targets[0]} (the primary): {reads['reason']}"
    return f"reads -> {', '.join(targets)} ({reads['reason']})"


def _clock(time_ns: int) -> str:
    """Local time of day, to the millisecond."""
    return time.strftime("%H:%M:%S", time.localtime(time_ns / 1e9)) + f".{time_ns // 1_000_000 % 1000:03d}"


def _one_line(text: str) -> str:
    """libpq's messages span lines ("...\\n\\tIs the server running..."): one line each."""
    return " ".join(text.split())


def _probe(probe: Dict[str, Any]) -> str:
    """Round trip / age of the last probe in ms, and the failed probes if any."""
    text = f"{_ms(probe['rtt_ms'])} / {_ms(probe['age_ms'])}"
    if probe["failed"]:
        text += f", {probe['failed']} failed"
    return text


def _node_row(n: Dict[str, Any]) -> List[Any]:
    from rich.text import Text

    role = n["role"] + (" (role mismatch!)" if n["role_mismatch"] else "")
    lsn = n["current_lsn"] if n["role"] == "primary" else n["receive_lsn"]
    state = Text(n["state"], style=_STATE_STYLE.get(n["state"], ""))
    reads = Text("yes", style="bold cyan") if n["reads"] else Text("-", style="dim")
    down = n["state"] == "DOWN"  # the lag (and staleness) of a node that does not answer is not known
    lag_ms = "-" if down else (">= " if n.get("lag_is_lower_bound") else "") + _ms(n["lag_ms"])
    return [n["name"], role, state, str(n["timeline"] or "-"), lsn or "-", n["replay_lsn"] or "-",
            lag_ms, "-" if down else _bytes(n["lag_bytes"]), "-" if down else _ms(n.get("staleness_ms")), reads,
            _probe(n["probe"])]


def render(snapshot: Dict[str, Any], events: List[Dict[str, Any]], *, title: str = "") -> Any:
    """A rich renderable of one snapshot and the last ``events``."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title or None, title_justify="left", expand=False)
    # LSN: the primary's current (insert) LSN, a replica's receive LSN.
    for header, justify in (("node", "left"), ("role", "left"), ("state", "left"), ("TL", "right"),
                            ("LSN", "left"), ("replay", "left"), ("lag ms", "right"),
                            ("lag", "right"), ("stale ms", "right"), ("reads", "left"), ("probe ms", "left")):
        table.add_column(header, justify=justify, no_wrap=True,  # type: ignore[arg-type]
                         min_width=7 if header in ("node", "role", "state") else None)
    for n in snapshot["nodes"]:
        table.add_row(*_node_row(n))
    parts: List[Any] = [table]
    reads = snapshot["reads"]
    parts.append(Text(reads_line(reads), style="bold red" if reads["to_primary"] and reads["replicas"]
                      else "bold"))
    parts.append(Text(_thresholds(snapshot["thresholds"]) + "; stale ms: at most this stale (bounded-staleness "
                      "reads); probe ms: round trip / age of the last probe", style="dim"))
    firing = snapshot["firing"]
    alerts = Text("alerts firing: " + ("none" if not firing else ""), style="bold")
    for a in firing:
        alerts.append(f"\n  {a['rule']} on {a['node']} since {_clock(a['time_ns'])}: {_one_line(a['message'])}",
                      style="bold red")
    parts.append(alerts)
    if events:
        lines = Text("last events:", style="bold")
        for e in events:
            lines.append(f"\n  {_clock(e['time_ns'])}  {_one_line(e['text'])}")
        parts.append(lines)
    if snapshot.get("events_missed"):
        parts.append(Text(f"{snapshot['events_missed']} event(s) missed (ring overflow)", style="yellow"))
    return Group(*parts)
