"""``replikit monitor``: the command line of the lag monitor."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Dict, List, Optional

from .sources import (DEFAULT_ALERT_LAG_MS, DEFAULT_ALERT_TIMEOUT_MS, DEFAULT_EVENTS_SHOWN,
                      MAX_EVENTS_SHOWN, MonitorSettings, SettingsError, resolve)

# Bounds of the start-up wait for the first probes of every node.
_STARTUP_SLACK_MS = 1000.0
_MAX_COUNT = 10_000_000
_PIPE_WIDTH = 132  # the text view's width when stdout is not a terminal

EPILOG = """\
The first node is the primary (or the one --primary names); the others are its replicas.
A DSN given bare is named primary, r1, r2, ... by its position; --node NAME=DSN names it.

Alerts (to the replikit.alerts logger, to --on-alert, and as replikit_alerts_total):
  replica_lag       a replica over --alert-lag-ms / --alert-lag-bytes, until it is back under
                    --recover-lag-ms / --recover-lag-bytes (default: half the threshold)
  node_down         a node unreachable, until it answers again
  role_mismatch     a server's role differs from the one given here
  reads_on_primary  no replica can serve reads (all are down or LAGGING)
Each fires once when it starts and resolves once when it ends. --on-alert CMD runs through
/bin/sh, one alert at a time, with the alert as one JSON object on stdin and
REPLIKIT_ALERT_RULE, REPLIKIT_ALERT_STATUS, REPLIKIT_ALERT_NODE in its environment. The thresholds are the router's
own: a LAGGING replica is avoided by reads until it recovers, as an application's
ReplicatedDatabase with the same max_lag_ms / recover_lag_ms would do.

Config file (TOML when it ends in .toml, JSON otherwise): the flags' names with underscores,
and the nodes, e.g.
  alert_lag_ms = 5000
  on_alert = "logger -t replikit"
  [[nodes]]
  name = "pg1"
  dsn = "host=10.0.0.1 port=5432 user=monitor dbname=postgres"
"""


def _number(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None

    return parse


def build_parser(prog: str = "replikit monitor") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Watch a PostgreSQL primary and its replicas: role, timeline, LSNs, lag,\n"
                    "state (OK / LAGGING / DOWN), probe health, where reads go, events and\n"
                    "alerts, refreshed at the probe rate.")
    src = p.add_argument_group("nodes (one way)")
    src.add_argument("dsns", nargs="*", metavar="DSN", help="libpq DSNs or URIs, the primary first")
    src.add_argument("--node", action="append", default=[], metavar="NAME=DSN", dest="node_args",
                     help="a named node (repeat it); the first is the primary")
    src.add_argument("--config", metavar="FILE", help="a TOML or JSON config file")
    src.add_argument("--dir", metavar="DIR", help="a cluster directory of `replikit cluster up`")
    src.add_argument("--primary", metavar="NAME", help="which node is the primary (default: the first)")
    out = p.add_argument_group("output")
    out.add_argument("--once", action="store_true", help="print one snapshot and exit")
    out.add_argument("--json", action="store_true", help="JSON lines: one object per refresh")
    out.add_argument("--count", type=_number(int), metavar="N",
                     help="exit after N refreshes (default: until Ctrl-C)")
    out.add_argument("--events", type=_number(int), metavar="N",
                     help=f"events shown, 0-{MAX_EVENTS_SHOWN} (default {DEFAULT_EVENTS_SHOWN})")
    out.add_argument("--refresh-ms", type=_number(float), metavar="MS",
                     help="refresh interval (default: the probe interval)")
    out.add_argument("--prometheus-port", type=_number(int), metavar="PORT",
                     help="serve the Prometheus text format on this port (/metrics; 0: any free port)")
    out.add_argument("--prometheus-addr", metavar="ADDR", help="address to serve it on (default 127.0.0.1)")
    out.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                     help="level of the replikit log on stderr (default INFO)")
    al = p.add_argument_group("alerts and probes")
    al.add_argument("--alert-lag-ms", type=_number(float), metavar="MS",
                    help=f"a replica is LAGGING above this lag (default {DEFAULT_ALERT_LAG_MS:g})")
    al.add_argument("--recover-lag-ms", type=_number(float), metavar="MS",
                    help="... and OK again below this (default: half of --alert-lag-ms)")
    al.add_argument("--alert-lag-bytes", type=_number(int), metavar="BYTES",
                    help="also LAGGING above this many bytes behind (default 0: no byte threshold)")
    al.add_argument("--recover-lag-bytes", type=_number(int), metavar="BYTES",
                    help="... and OK again below this (default: half of --alert-lag-bytes)")
    al.add_argument("--on-alert", metavar="CMD",
                    help="shell command run for each alert, the alert as JSON on stdin")
    al.add_argument("--alert-timeout-ms", type=_number(float), metavar="MS",
                    help=f"the alert command is killed after this (default {DEFAULT_ALERT_TIMEOUT_MS:g})")
    defaults = _database_defaults()
    al.add_argument("--probe-interval-ms", type=_number(float), metavar="MS",
                    help=f"probe (and refresh) interval (default {defaults.get('probe_interval_ms', '?')})")
    al.add_argument("--probe-timeout-ms", type=_number(float), metavar="MS",
                    help=f"a probe's time limit (default {defaults.get('probe_timeout_ms', '?')})")
    al.add_argument("--connect-timeout-ms", type=_number(float), metavar="MS",
                    help=f"connection time limit (default {defaults.get('connect_timeout_ms', '?')})")
    return p


def _database_defaults() -> Dict[str, str]:
    """DatabaseOptions' defaults (defined once, in C++), for the help text."""
    from .. import _core

    if not getattr(_core, "HAVE_PG", False):
        return {}
    options = _core.DatabaseOptions()
    return {name: f"{getattr(options, name):g}" for name in ("probe_interval_ms", "probe_timeout_ms",
                                                      "connect_timeout_ms")}


_FLAG_KEYS = ("primary", "events", "refresh_ms", "prometheus_port", "prometheus_addr", "alert_lag_ms",
              "recover_lag_ms", "alert_lag_bytes", "recover_lag_bytes", "on_alert", "alert_timeout_ms",
              "probe_interval_ms", "probe_timeout_ms", "connect_timeout_ms")


def settings_from_args(args: argparse.Namespace) -> MonitorSettings:
    flags = {key: getattr(args, key) for key in _FLAG_KEYS}
    return resolve(args.dsns, args.node_args, args.config, args.dir, flags)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to sys.stderr as it is at each record: the live view redirects it to print the
    log above the table instead of through it."""

    previous_level = logging.NOTSET  # the "replikit" logger's level before the monitor set it

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _setup_logging(level: str) -> _StderrHandler:
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("replikit")
    handler.previous_level = root.level  # restored when the monitor ends
    root.addHandler(handler)
    root.setLevel(getattr(logging, level))
    return handler


def _wait_first_probes(monitor: Any, stop: "_Stop") -> Optional[str]:
    """Waits (bounded) for every node's first probe; an error text when none is reachable."""
    db = monitor.db
    opts = db.options
    limit_ms = opts.connect_timeout_ms + opts.probe_timeout_ms + 2 * opts.probe_interval_ms + _STARTUP_SLACK_MS
    deadline = time.monotonic() + limit_ms / 1000.0
    while time.monotonic() < deadline and not stop.event.is_set():
        statuses = db.nodes()
        if all(s.probes_ok + s.probes_failed > 0 for s in statuses):
            break
        db.wait_probes(1, max(1.0, min(200.0, (deadline - time.monotonic()) * 1000.0)))
    if not stop.event.is_set():
        db.wait_probes(1, limit_ms)  # a second round: lag needs two samples of the primary
    statuses = db.nodes()
    if any(s.reachable for s in statuses) or stop.event.is_set():
        return None
    lines = [f"  {s.name}: " + (s.last_error or "no answer within the probe timeout").replace("\n", "\n    ")
             for s in statuses]
    return "no node is reachable:\n" + "\n".join(lines)


def _start_prometheus(monitor: Any, settings: MonitorSettings) -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise SettingsError("--prometheus-port needs prometheus_client: pip install 'replikit[monitor]'") from None
    import replikit.metrics

    from .state import MonitorCollector

    registry = prometheus_client.CollectorRegistry()
    replikit.metrics.register(monitor.db, registry)
    registry.register(MonitorCollector(monitor))
    try:
        started = prometheus_client.start_http_server(settings.prometheus_port or 0,
                                                      addr=settings.prometheus_addr, registry=registry)
    except OSError as exc:
        raise SettingsError(f"--prometheus-port {settings.prometheus_port}: cannot serve on "
                            f"{settings.prometheus_addr}: {exc.strerror or exc}") from None
    server = started[0] if isinstance(started, tuple) else None
    port = server.server_port if server is not None else settings.prometheus_port
    print(f"replikit monitor: Prometheus metrics on http://{settings.prometheus_addr}:{port}/metrics",
          file=sys.stderr, flush=True)
    return server


class _Stop:
    """Ctrl-C and SIGTERM end the loop between refreshes (never inside one)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._old: Dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._old[signum] = signal.signal(signum, lambda *_: self.event.set())

    def restore(self) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)


def _loop(monitor: Any, settings: MonitorSettings, args: argparse.Namespace, stop: _Stop) -> None:
    from .view import json_line, render

    interval_s = (settings.refresh_ms or monitor.db.probe_interval_ms) / 1000.0
    count = 1 if args.once else args.count
    title = f"replikit monitor: {len(settings.nodes)} nodes ({settings.source})"
    live = None
    if not args.json and not args.once:
        from rich.live import Live

        live = Live(auto_refresh=False, transient=False, redirect_stderr=True, redirect_stdout=False)
        live.start()
    try:
        done = 0
        next_at = time.monotonic()
        while not stop.event.is_set():
            snapshot = monitor.refresh()
            done += 1
            if args.json:
                print(json_line(snapshot), flush=True)
            else:
                view = render(snapshot, monitor.recent_events(settings.events), title=title)
                if live is not None:
                    live.update(view, refresh=True)
                else:
                    from rich.console import Console

                    console = Console()
                    if not console.is_terminal:
                        console = Console(width=_PIPE_WIDTH)
                    console.print(view)
            if count is not None and done >= count:
                break
            next_at += interval_s
            stop.event.wait(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - interval_s)  # no catch-up burst after a stall
    finally:
        if live is not None:
            live.stop()


def main(argv: Optional[List[str]] = None, prog: str = "replikit monitor") -> int:
    """Entry point of ``replikit monitor``; returns the exit status."""
    parser = build_parser(prog)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.count is not None and not 1 <= args.count <= _MAX_COUNT:
        parser.error(f"argument --count: expected an integer in 1-{_MAX_COUNT}, got {args.count}")
    try:
        settings = settings_from_args(args)
        if not args.json:
            _require_rich()
    except SettingsError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    handler = _setup_logging(args.log_level)
    stop = _Stop()
    stop.install()
    try:
        return _run(settings, args, stop, prog)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `replikit monitor --json | head`: the reader left
        sys.stdout = open(os.devnull, "w")
        return 0
    finally:
        stop.restore()
        logging.getLogger("replikit").removeHandler(handler)
        logging.getLogger("replikit").setLevel(handler.previous_level)


def _require_rich() -> None:
    try:
        import rich  # noqa: F401
    except ImportError:
        raise SettingsError("the terminal view needs rich: pip install 'replikit[monitor]' "
                            "(or use --json)") from None


def _run(settings: MonitorSettings, args: argparse.Namespace, stop: _Stop, prog: str) -> int:
    from .. import _core
    from .state import Monitor

    try:
        monitor = Monitor.open(settings)
    except (_core.Error, ValueError, TypeError, ImportError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, (ValueError, TypeError)) else 1
    server = None
    try:
        problem = _wait_first_probes(monitor, stop)
        if problem is not None:
            print(f"{prog}: error: {problem}", file=sys.stderr)
            return 1
        if settings.prometheus_port is not None:
            server = _start_prometheus(monitor, settings)
        _loop(monitor, settings, args, stop)
        return 0
    except SettingsError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        monitor.close()
