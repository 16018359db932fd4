"""`replikit monitor` and its alerts against a real cluster.

A paused replica is shown LAGGING and alerted once, its recovery alerted once; the JSON lines
and the Prometheus text format are parsed here (prometheus_client's parser); the alert
command gets each alert as JSON on stdin. Thresholds are short (300 ms) so that it runs in
seconds. Without a cluster: the config checks, the alert rules' once-per-transition state and
a failing or hanging alert command (logged, never fatal, bounded).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from conftest import wait_until

import replikit

_core = replikit._core
if not getattr(_core, "HAVE_PG", False):  # pragma: no cover - depends on the build
    pytest.skip("replikit was built without the PostgreSQL backend", allow_module_level=True)

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from replikit.monitor import AlertManager, Monitor  # noqa: E402
from replikit.monitor.cli import main as monitor_main  # noqa: E402
from replikit.pg import database_for_cluster  # noqa: E402

MAX_LAG_MS = 300.0
RECOVER_LAG_MS = 150.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Writer:
    """One small write every 20 ms through a database of its own (lag grows only while the
    primary's LSN moves)."""

    def __init__(self, cluster):
        self.db = database_for_cluster(cluster, probe_interval_ms=50)
        self.stop, self.errors = threading.Event(), []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            try:
                self.db.execute("INSERT INTO rk_monitor_t (v) VALUES (1)")
            except replikit.Error as exc:  # pragma: no cover - reported by the assertion
                self.errors.append(exc)
            time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        self.db.close()


class Lines:
    """The JSON lines of a monitor process, read on a thread (bounded)."""

    def __init__(self, proc, limit=20_000):
        self.proc, self.items, self.limit = proc, [], limit
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        for line in self.proc.stdout:
            if len(self.items) < self.limit:
                self.items.append(json.loads(line))

    def node(self, item, name):
        return next(n for n in item["nodes"] if n["name"] == name)

    def wait(self, predicate, timeout_s, what):
        start = len(self.items)

        def found():
            return next((i for i in self.items[start:] if predicate(i)), None)

        return wait_until(found, timeout_s, what)


@pytest.fixture
def cluster(pg_cluster_reset):
    pg_cluster_reset.sql("primary", "CREATE TABLE IF NOT EXISTS rk_monitor_t (id bigserial PRIMARY KEY, v int)")
    pg_cluster_reset.wait_caught_up(timeout_ms=10_000)
    return pg_cluster_reset


def node_flags(cluster):
    return [arg for name in ["primary"] + cluster.replica_names
            for arg in ("--node", f"{name}={cluster.dsn(name)}")]


def scrape(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


# ------------------------------------------------------------------ the command, real cluster
@pytest.mark.pg
def test_paused_replica_lagging_alerted_once_recovery_once_json_prometheus_and_command(cluster, tmp_path):
    alerts_file = tmp_path / "alerts.jsonl"
    port = free_port()
    cmd = [sys.executable, "-m", "replikit", "monitor", *node_flags(cluster), "--json",
           "--alert-lag-ms", str(MAX_LAG_MS), "--recover-lag-ms", str(RECOVER_LAG_MS),
           "--probe-interval-ms", "50", "--on-alert", f"cat >> {alerts_file}",
           "--prometheus-port", str(port), "--count", "2000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = Lines(proc)
        first = lines.wait(lambda i: True, 15, "the first JSON line")
        assert [n["state"] for n in first["nodes"]] == ["OK", "OK", "OK"]
        assert first["thresholds"]["max_lag_ms"] == MAX_LAG_MS
        assert first["thresholds"]["recover_lag_ms"] == RECOVER_LAG_MS
        with Writer(cluster) as writer:
            cluster.pause_replay("r1")
            lagging = lines.wait(lambda i: lines.node(i, "r1")["state"] == "LAGGING", 15, "r1 LAGGING")
            # While r1 is over the threshold, reads avoid it (the router's own view).
            assert lagging["reads"]["targets"] == ["r2"] and lines.node(lagging, "r1")["reads"] is False
            assert lines.node(lagging, "r1")["lag_ms"] > MAX_LAG_MS
            # The bound bounded-staleness reads judge by: at least the lag; the primary has none.
            assert lines.node(lagging, "r1")["staleness_ms"] > MAX_LAG_MS
            assert lines.node(lagging, "primary")["staleness_ms"] is None
            assert lines.node(lagging, "primary")["fresh_as_of_ns"] is None
            lines.wait(lambda i: any(a["rule"] == "replica_lag" for a in i["firing"]), 10, "the alert firing")
            n = len(lines.items)
            wait_until(lambda: len(lines.items) >= n + 10, 10, "ten more refreshes while r1 lags")
            samples = scrape(port)
            assert value(samples, "replikit_node_lagging", node="r1") == 1.0
            assert value(samples, "replikit_alerts_total", rule="replica_lag", node="r1", status="firing") == 1.0
            assert value(samples, "replikit_alert_firing", rule="replica_lag", node="r1") == 1.0
            assert value(samples, "replikit_read_target", node="r1") == 0.0
            assert value(samples, "replikit_read_target", node="r2") == 1.0
            cluster.resume_replay("r1")
            lines.wait(lambda i: any(a["status"] == "resolved" for a in i["alerts"]), 15, "the alert resolved")
            n = len(lines.items)
            wait_until(lambda: len(lines.items) >= n + 10, 10, "ten more refreshes after recovery")
        assert not writer.errors
        samples = scrape(port)
        assert value(samples, "replikit_alerts_total", rule="replica_lag", node="r1", status="resolved") == 1.0
        assert value(samples, "replikit_alert_firing", rule="replica_lag", node="r1") == 0.0
        assert value(samples, "replikit_node_lagging", node="r1") == 0.0
        # The command runs on a thread of its own: both runs show up soon after the alerts.
        wait_until(lambda: scrape(port).get(("replikit_alert_commands_total", frozenset({("result", "ok")})))
                   == 2.0, 10, "two alert command runs")
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean exit, after the alert commands ran
        assert proc.wait(15) == 0
        lines.thread.join(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    stderr = proc.stderr.read()
    assert "Traceback" not in stderr, stderr
    assert "ALERT replica_lag FIRING on r1" in stderr and "ALERT replica_lag RESOLVED on r1" in stderr
    alerts = [(a["rule"], a["node"], a["status"]) for item in lines.items for a in item["alerts"]]
    print(f"\n[monitor] {len(lines.items)} JSON lines; alerts {alerts}")
    assert alerts == [("replica_lag", "r1", "firing"), ("replica_lag", "r1", "resolved")]
    events = [(e["kind"], e["node"]) for item in lines.items for e in item["events"]]
    assert events.count(("lagging", "r1")) == 1 and events.count(("recovered", "r1")) == 1
    sent = [json.loads(line) for line in alerts_file.read_text().splitlines()]
    assert [(a["rule"], a["node"], a["status"]) for a in sent] == alerts
    assert sent[0]["lag_ms"] > MAX_LAG_MS and sent[0]["thresholds"]["max_lag_ms"] == MAX_LAG_MS
    assert sent[1]["lag_ms"] < RECOVER_LAG_MS and sent[1]["sequence"] > sent[0]["sequence"]


@pytest.mark.pg
def test_once_prints_the_table_from_a_cluster_directory_or_dsns(cluster, capsys):
    assert os.path.exists(os.path.join(cluster.base_dir, "cluster.json"))
    for args in (["--dir", cluster.base_dir], [cluster.dsn(n) for n in ["primary"] + cluster.replica_names]):
        assert monitor_main(args + ["--once"]) == 0
        out = capsys.readouterr().out
        rows = [line for line in out.splitlines() if line.startswith("│")]
        assert [row.split("│")[1].strip() for row in rows] == ["primary", "r1", "r2"]
        assert all(" OK " in row for row in rows)
        assert "reads -> r1, r2 (replica_available)" in out
        assert "LAGGING above 5,000.0 ms, OK again below 2,500.0 ms" in out  # the default rule


def consistent_refresh(monitor):
    """monitor.refresh(), checked: a replica that reads go to has no lag, down or role alert
    firing in the same snapshot (a lag transition, a node's return or its role matching again is
    published before routing shows it, and a refresh polls the events after reading routing),
    except one fired by an event this refresh polled: a replica that turned LAGGING (or went
    down) after routing was read."""
    snap = monitor.refresh()
    polled = {e["sequence"] for e in snap["events"]}
    for alert in snap["firing"]:
        if alert["rule"] in ("replica_lag", "node_down", "role_mismatch") and alert["node"] in snap["reads"]["targets"]:
            assert alert["event_sequence"] in polled, snap
    return snap


@pytest.mark.pg
def test_monitor_over_an_application_database_shows_reads_to_the_primary_when_all_lag(cluster, caplog):
    caplog.set_level(logging.INFO, logger="replikit.alerts")
    db = database_for_cluster(cluster, probe_interval_ms=50, max_lag_ms=MAX_LAG_MS)
    with db, Monitor(db) as monitor:
        assert db.wait_probes(2, 5000)
        assert monitor.thresholds["max_lag_ms"] == MAX_LAG_MS
        assert monitor.thresholds["recover_lag_ms"] == MAX_LAG_MS / 2  # LagConfig's default mark
        with Writer(cluster) as writer:
            for name in cluster.replica_names:
                cluster.pause_replay(name)
            snap = wait_until(lambda: (lambda s: s if s["reads"]["to_primary"] else None)(consistent_refresh(monitor)),
                              15, "reads to the primary")
            assert snap["reads"]["targets"] == ["primary"]
            assert snap["reads"]["reason"] == "all_replicas_lagging"
            assert db.route_read(None, consistency="eventual").node == "primary"
            for name in cluster.replica_names:
                cluster.resume_replay(name)
            # Replicas recover one by one: wait for one snapshot with both back and nothing firing.
            wait_until(lambda: (lambda s: s["reads"]["targets"] == ["r1", "r2"] and not s["firing"])(
                consistent_refresh(monitor)), 15, "reads back on replicas and no alert firing")
        assert not writer.errors
        got = [(a.rule, a.node, a.status) for a in monitor.alerts.recent()]
        assert "firing: none" in repr(monitor) and "3 nodes" in repr(monitor)
    assert got.count(("reads_on_primary", "primary", "firing")) == 1
    assert got.count(("reads_on_primary", "primary", "resolved")) == 1
    for name in ("r1", "r2"):
        assert got.count(("replica_lag", name, "firing")) == 1
        assert got.count(("replica_lag", name, "resolved")) == 1
    assert got.index(("reads_on_primary", "primary", "firing")) < got.index(("reads_on_primary", "primary", "resolved"))
    records = [r for r in caplog.records if getattr(r, "replikit_alert", None) is not None]
    assert len(records) == len(got)
    assert {r.levelno for r in records if r.replikit_alert.status == "firing"} == {logging.WARNING}


# ------------------------------------------------------------------ bad input, no cluster needed
def test_the_table_shows_no_staleness_or_lag_for_a_down_node():
    from replikit.monitor.view import _node_row

    def node(name, state, staleness_ms):
        return {"name": name, "role": "replica", "role_mismatch": False, "state": state, "timeline": 1,
                "current_lsn": None, "receive_lsn": "0/3000000", "replay_lsn": "0/3000000", "lag_ms": 12.0,
                "lag_bytes": 100, "lag_is_lower_bound": False, "staleness_ms": staleness_ms, "reads": False,
                "probe": {"rtt_ms": 0.5, "age_ms": 20.0, "failed": 0}}

    stale_column = 8  # node, role, state, TL, LSN, replay, lag ms, lag, stale ms, ...
    assert _node_row(node("r1", "OK", 1234.5))[stale_column] == "1,234.5"
    assert _node_row(node("r1", "OK", None))[stale_column] == "-"
    down = _node_row(node("r2", "DOWN", 1234.5))  # its last known instant, but it serves nothing
    assert (down[6], down[7], down[stale_column]) == ("-", "-", "-")


def run_cli(args, capsys):
    status = monitor_main(args)
    return status, capsys.readouterr().err


def test_unreachable_dsns_are_a_clear_error(capsys):
    port = free_port()  # nothing listens there
    status, err = run_cli([f"host=127.0.0.1 port={port} dbname=postgres connect_timeout=2",
                           "--once", "--json", "--connect-timeout-ms", "1000"], capsys)
    assert status == 1
    assert "no node is reachable" in err and "primary:" in err and str(port) in err


@pytest.mark.parametrize("text, suffix, message", [
    ("{not json", ".json", "not valid JSON"),
    ("nodes = [", ".toml", "not valid TOML"),
    ('{"nodes": [{"name": "a"}]}', ".json", "nodes[0] (a): needs a dsn"),
    ('{"nodes": {"a": "host=x"}, "alert_lag_ms": "5"}', ".json", "alert_lag_ms: expected a number"),
    ('{"nodes": {"a": "host=x"}, "alert_lag_ms": 100, "recover_lag_ms": 200}', ".json",
     "recover_lag_ms: must be <= alert_lag_ms"),
    ('{"nodes": {"a": "host=x"}, "lag": 1}', ".json", "unknown key(s) lag"),
    ('{"nodes": []}', ".json", "no nodes to watch"),
    ('[1]', ".json", "expected an object/table"),
])
def test_bad_config_is_a_clear_error(tmp_path, capsys, text, suffix, message):
    path = tmp_path / f"monitor{suffix}"
    path.write_text(text)
    status, err = run_cli(["--config", str(path), "--json"], capsys)
    assert status == 2 and message in err, err


def test_bad_flags_are_clear_errors(tmp_path, capsys):
    assert run_cli(["--json"], capsys) == (2, "replikit monitor: error: no nodes to watch: give DSNs, "
                                              "--node NAME=DSN, --config FILE or --dir DIR\n")
    status, err = run_cli(["host=a", "--dir", str(tmp_path), "--json"], capsys)
    assert status == 2 and "one way" in err
    status, err = run_cli(["--dir", str(tmp_path), "--json"], capsys)
    assert status == 2 and "not a replikit cluster directory" in err
    status, err = run_cli(["--node", "a=host=x", "--node", "a=host=y", "--json"], capsys)
    assert status == 2 and "given twice: a" in err
    status, err = run_cli(["--node", "a=host=x", "--primary", "b", "--json"], capsys)
    assert status == 2 and "--primary b: no such node" in err
    status, err = run_cli(["host=x", "--alert-lag-ms", "-1", "--json"], capsys)
    assert status == 2 and "argument --alert-lag-ms: expected a number >= 0.001, got -1.0" in err, err
    with pytest.raises(SystemExit):
        monitor_main(["host=x", "--count", "lots"])


def test_config_file_nodes_and_flags_override_it(tmp_path):
    from replikit.monitor.sources import resolve

    path = tmp_path / "m.toml"
    path.write_text('alert_lag_ms = 800\nprimary = "b"\n[[nodes]]\nname = "a"\ndsn = "host=x"\n'
                    '[[nodes]]\nname = "b"\ndsn = "host=y"\nregion = "eu"\n')
    s = resolve([], [], str(path), None, {"alert_lag_ms": 400.0, "recover_lag_ms": None})
    assert [n.name for n in s.nodes] == ["b", "a"] and s.nodes[0].extra == {"region": "eu"}
    assert s.alert_lag_ms == 400.0 and s.recover_lag_ms is None
    options = s.database_options()
    assert options["max_lag_ms"] == 400.0 and "recover_lag_ms" not in options


# ------------------------------------------------------------------ alert rules and the command
def test_each_rule_fires_once_per_transition_and_a_never_down_node_resolves_nothing():
    manager = AlertManager({"max_lag_ms": 300.0})
    assert manager.transition("node_down", "resolved", "r1", message="up") is None
    first = manager.transition("replica_lag", "firing", "r1", message="lag", lag_ms=400.0, lag_bytes=10)
    assert first is not None and first.thresholds == {"max_lag_ms": 300.0}
    assert manager.transition("replica_lag", "firing", "r1", message="lag again") is None
    assert manager.transition("replica_lag", "firing", "r2", message="lag") is not None
    assert [a.node for a in manager.firing()] == ["r1", "r2"]
    assert manager.transition("replica_lag", "resolved", "r1", message="ok") is not None
    assert manager.transition("replica_lag", "resolved", "r1", message="ok") is None
    assert manager.counts() == {("replica_lag", "r1", "firing"): 1, ("replica_lag", "r2", "firing"): 1,
                                ("replica_lag", "r1", "resolved"): 1}
    assert "replica_lag FIRING on r1, lag 400.0 ms / 10 bytes" in repr(first)


def test_event_kinds_map_to_rules():
    log = _core.EventLog(16)
    log.publish("lagging", "r1", lag_ms=900.0, lag_bytes=4096)
    log.publish("read_retry", "r1", attempt=1)
    log.publish("node_down", "r2", message="connection refused")
    log.publish("recovered", "r1", lag_ms=10.0, lag_bytes=0)
    manager = AlertManager({})
    got = [manager.on_event(e) for e in log.read(0, 16).events]
    assert [(a.rule, a.status, a.node) if a else None for a in got] == [
        ("replica_lag", "firing", "r1"), None, ("node_down", "firing", "r2"), ("replica_lag", "resolved", "r1")]
    assert got[0].lag_ms == 900.0 and got[0].lag_bytes == 4096 and got[2].lag_ms is None


def test_alert_command_gets_json_failures_and_timeouts_are_logged_not_fatal(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="replikit.alerts")
    out = tmp_path / "got.jsonl"
    ok = AlertManager({}, command=f'cat >> {out}; echo "$REPLIKIT_ALERT_RULE" >> {out}.env')
    ok.transition("node_down", "firing", "r2", message="down")
    ok.close()
    (sent,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (sent["rule"], sent["status"], sent["node"], sent["message"]) == ("node_down", "firing", "r2", "down")
    assert (tmp_path / "got.jsonl.env").read_text() == "node_down\n"
    assert ok.command_results() == {"ok": 1, "failed": 0, "timeout": 0, "dropped": 0}

    failing = AlertManager({}, command="echo broken >&2; exit 3")
    failing.transition("node_down", "firing", "r2", message="down")
    failing.close()
    assert failing.command_results()["failed"] == 1
    assert any("exited with status 3" in r.getMessage() and "broken" in r.getMessage() for r in caplog.records)

    hanging = AlertManager({}, command="sleep 30", command_timeout_ms=200.0)
    start = time.monotonic()
    hanging.transition("node_down", "firing", "r2", message="down")
    hanging.close()
    assert time.monotonic() - start < 10
    assert hanging.command_results()["timeout"] == 1
    assert any("killed after 200 ms" in r.getMessage() for r in caplog.records)


@pytest.mark.pg
def test_live_view_in_a_terminal_redraws_and_exits_cleanly_on_ctrl_c(cluster):
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "replikit", "monitor", "--dir", cluster.base_dir,
                             "--probe-interval-ms", "50"], stdin=slave, stdout=slave, stderr=slave,
                            env=dict(os.environ, COLUMNS="140", LINES="40", TERM="xterm"))
    os.close(slave)
    seen = bytearray()

    def read_some():
        import select

        while select.select([master], [], [], 0.05)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            seen.extend(chunk)

    try:
        wait_until(lambda: read_some() or seen.count(b"reads -> r1, r2") >= 5, 15, "five redraws of the view")
        proc.send_signal(signal.SIGINT)
        # Read on while it exits, as a terminal does: its last redraws must not block on a full pty.
        wait_until(lambda: read_some() or proc.poll() is not None, 15, "the monitor to exit on Ctrl-C")
        assert proc.returncode == 0
        read_some()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(master)
    text = seen.decode(errors="replace")
    assert "Traceback" not in text
    assert "primary" in text and "replica" in text and "alerts firing: none" in text


@pytest.mark.pg
def test_a_stopped_replica_is_down_alerted_and_reads_avoid_it(cluster, capsys):
    cluster.stop("r2")
    assert monitor_main(["--dir", cluster.base_dir, "--once", "--json", "--log-level", "ERROR"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    snapshot = json.loads(line)
    assert [(n["name"], n["state"]) for n in snapshot["nodes"]] == [("primary", "OK"), ("r1", "OK"), ("r2", "DOWN")]
    assert snapshot["reads"]["targets"] == ["r1"]
    (firing,) = snapshot["firing"]
    assert (firing["rule"], firing["node"], firing["status"]) == ("node_down", "r2", "firing")
    assert str(cluster.node("r2").port) in firing["message"]
