"""A lag monitor with alerts for a PostgreSQL primary and its replicas.

From the shell (``replikit monitor --help`` lists everything)::

    replikit monitor --dir .replikit-cluster                 # a `replikit cluster up` directory
    replikit monitor --node pg1='host=a dbname=postgres' --node pg2='host=b dbname=postgres'
    replikit monitor --config monitor.toml --json            # JSON lines, one per refresh
    replikit monitor --dir D --once                          # one snapshot
    replikit monitor --dir D --prometheus-port 9187 --on-alert 'logger -t replikit'

From Python, over an application's own ReplicatedDatabase (the view is that database's: its
probes, its lag tracker's thresholds with hysteresis, its router's choice of replicas)::

    from replikit.monitor import Monitor
    with Monitor(db, on_alert="cat >> alerts.jsonl") as monitor:
        snapshot = monitor.refresh()      # a dict: nodes, reads, firing, new alerts and events
        monitor.alerts.recent()           # Alert values, oldest first

The terminal view needs ``rich`` and the Prometheus endpoint ``prometheus_client``
(``pip install 'replikit[monitor]'``); JSON lines need neither.
"""

from __future__ import annotations

from typing import List, Optional

from .alerts import RULES, Alert, AlertManager, CommandRunner
from .sources import DEFAULT_ALERT_LAG_MS, MonitorSettings, NodeSpec, SettingsError
from .state import Monitor, MonitorCollector, node_state

__all__ = ["Alert", "AlertManager", "CommandRunner", "DEFAULT_ALERT_LAG_MS", "Monitor",
           "MonitorCollector", "MonitorSettings", "NodeSpec", "RULES", "SettingsError", "main",
           "node_state"]


def main(argv: Optional[List[str]] = None, prog: str = "replikit monitor") -> int:
    """``replikit monitor``; returns the exit status."""
    from .cli import main as cli_main

    return cli_main(argv, prog=prog)
