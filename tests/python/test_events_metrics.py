"""Backend events (log records on the `replikit.events` logger, db.on_event callbacks) and
replikit.metrics (the Prometheus collector and snapshot()), against a real cluster.

Each transition is reported exactly once: a paused replica turns LAGGING once however many
probes see it behind, and RECOVERED once after resume; a stopped replica is down once however
many probes fail, and up once after it restarts. The Prometheus text exposition is parsed with
prometheus_client's own parser.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from conftest import wait_until

import replikit

_core = replikit._core
if not getattr(_core, "HAVE_PG", False):  # pragma: no cover - depends on the build
    pytest.skip("replikit was built without the PostgreSQL backend", allow_module_level=True)

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

import replikit.metrics  # noqa: E402
from replikit.events import EventKind, EventLog, feed_of  # noqa: E402
from replikit.pg import database_for_cluster  # noqa: E402

MAX_LAG_MS = 300.0


def kinds_of(events, node=None):
    return [e.kind for e in events if node is None or e.node == node]


def records_of(caplog, kind, node):
    return [r for r in caplog.records
            if getattr(r, "replikit_event", None) is not None
            and r.replikit_event.kind == kind and r.replikit_event.node == node]


def scrape(db, **kwargs):
    """{(metric sample name, frozenset(labels)): value} from the text exposition of a
    registry holding only db's collector."""
    registry = prometheus_client.CollectorRegistry()
    collector = replikit.metrics.register(db, registry, **kwargs)
    text = prometheus_client.generate_latest(registry).decode()
    replikit.metrics.unregister(collector, registry)
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def sample(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


class Writer:
    """One small write every 20 ms (the primary's LSN must move for lag to grow)."""

    def __init__(self, db):
        self.db, self.stop, self.errors = db, threading.Event(), []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            try:
                self.db.execute("INSERT INTO rk_events_t (v) VALUES (1)")
            except replikit.Error as exc:  # pragma: no cover - reported by the assertion
                self.errors.append(exc)
            time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)


@pytest.fixture
def cluster(pg_cluster_reset):
    pg_cluster_reset.sql("primary", "CREATE TABLE IF NOT EXISTS rk_events_t (id bigserial PRIMARY KEY, v int)")
    pg_cluster_reset.wait_caught_up(timeout_ms=10_000)
    return pg_cluster_reset


def open_db(cluster, **options):
    db = database_for_cluster(cluster, probe_interval_ms=50, **options)
    assert db.wait_probes(2, 5000)
    return db


# ------------------------------------------------------------------ real cluster
@pytest.mark.pg
def test_paused_replica_lagging_once_then_recovered_once(cluster, caplog):
    caplog.set_level(logging.INFO, logger="replikit")
    with open_db(cluster, max_lag_ms=MAX_LAG_MS) as db:
        got = []
        assert db.on_event(got.append) == got.append
        with Writer(db) as writer:
            cluster.pause_replay("r1")
            wait_until(lambda: db.node("r1").lagging, 10, "r1 LAGGING")
            # Several more probes see r1 behind: still one LAGGING.
            assert db.wait_probes(5, 5000)
            samples = scrape(db)
            assert sample(samples, "replikit_node_lagging", node="r1") == 1.0
            assert sample(samples, "replikit_node_lagging", node="r2") == 0.0
            assert sample(samples, "replikit_node_lag_ms", node="r1") > MAX_LAG_MS
            assert sample(samples, "replikit_node_lag_bytes", node="r1") > 0
            snap = replikit.metrics.snapshot(db)
            assert snap["nodes"]["r1"]["lag_state"] == "lagging" and snap["nodes"]["r1"]["lag_ms"] > MAX_LAG_MS
            assert snap["nodes"]["r1"]["staleness_ms"] > MAX_LAG_MS and snap["nodes"]["r1"]["fresh_as_of_ns"] > 0
            assert snap["nodes"]["primary"]["staleness_ms"] is None
            # The same bound as a gauge: r1's as of its scrape, none for the primary.
            assert sample(samples, "replikit_node_staleness_ms", node="r1") > MAX_LAG_MS
            assert ("replikit_node_staleness_ms", frozenset({("node", "primary")})) not in samples
            cluster.resume_replay("r1")
            wait_until(lambda: not db.node("r1").lagging, 10, "r1 RECOVERED")
            assert db.wait_probes(5, 5000)
        assert not writer.errors
        assert db.event_feed.flush(5000)
        samples = scrape(db)
        assert sample(samples, "replikit_node_lagging", node="r1") == 0.0
        assert sample(samples, "replikit_events_total", kind="lagging") == 1.0
        assert sample(samples, "replikit_events_total", kind="recovered") == 1.0
    r1 = [e for e in got if e.node == "r1"]
    print(f"\n[events] r1: {r1}")
    assert kinds_of(r1) == [EventKind.LAGGING, EventKind.RECOVERED]
    lagging, recovered = r1
    assert lagging.lag_ms > MAX_LAG_MS and lagging.lag_bytes > 0
    assert recovered.lag_ms < MAX_LAG_MS and recovered.time_ns > lagging.time_ns
    assert recovered.sequence > lagging.sequence
    assert EventKind.NODE_DOWN not in kinds_of(got)
    # The logger: each once, LAGGING as a warning with the numbers, RECOVERED as info.
    (lag_record,) = records_of(caplog, EventKind.LAGGING, "r1")
    (rec_record,) = records_of(caplog, EventKind.RECOVERED, "r1")
    assert lag_record.levelno == logging.WARNING and lag_record.name == "replikit.events"
    assert "r1 LAGGING" in lag_record.getMessage() and " ms" in lag_record.getMessage()
    assert rec_record.levelno == logging.INFO and "r1 RECOVERED" in rec_record.getMessage()


@pytest.mark.pg
def test_stopped_replica_down_once_then_up_once(cluster, caplog):
    caplog.set_level(logging.INFO, logger="replikit")
    with open_db(cluster) as db:
        downs = []
        db.on_event(downs.append, kinds=["node_down"])
        everything = db.on_event(lambda e: None)
        cluster.stop("r2", "immediate")
        wait_until(lambda: not db.node("r2").up, 10, "r2 down")
        before = db.node("r2").probes_failed
        wait_until(lambda: db.node("r2").probes_failed >= before + 5, 10, "five more failed probes of r2")
        samples = scrape(db)
        assert sample(samples, "replikit_node_up", node="r2", role="replica") == 0.0
        assert sample(samples, "replikit_node_reachable", node="r2", role="replica") == 0.0
        assert sample(samples, "replikit_node_up", node="r1", role="replica") == 1.0
        assert sample(samples, "replikit_probes_total", node="r2", result="failed") >= before + 5
        cluster.start("r2")
        wait_until(lambda: db.node("r2").up, 20, "r2 up")
        assert db.wait_probes(3, 5000)
        assert db.event_feed.flush(5000)
        assert db.off_event(everything) and not db.off_event(everything)
        samples = scrape(db)
        assert sample(samples, "replikit_events_total", kind="node_down") == 1.0
        assert sample(samples, "replikit_events_total", kind="node_up") == 1.0
    assert [(e.kind, e.node) for e in downs] == [(EventKind.NODE_DOWN, "r2")]
    assert downs[0].message  # libpq's reason
    (down,) = records_of(caplog, EventKind.NODE_DOWN, "r2")
    (up,) = records_of(caplog, EventKind.NODE_UP, "r2")
    assert down.levelno == logging.WARNING and "node r2 down: " in down.getMessage()
    assert up.levelno == logging.INFO and up.created >= down.created
    assert not records_of(caplog, EventKind.NODE_DOWN, "r1")


@pytest.mark.pg
def test_read_that_loses_its_connection_reports_down_retry_and_up(cluster):
    # Only r1 as replica, so the read goes there on a pooled connection that the server ends.
    db = open_db_one_replica(cluster)
    with db:
        got = []
        db.on_event(got.append)
        assert db.query("SELECT 1", consistency="eventual").node == "r1"
        cluster.sql("r1", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = 'replikit'")
        time.sleep(0.2)  # the backend exits; the pooled connection was used < 1 s ago, so no idle check
        r = db.query("SELECT 1", consistency="eventual")
        assert r.node == "primary" and r.attempts == 2
        wait_until(lambda: db.node("r1").up, 10, "r1 up again")
        assert db.event_feed.flush(5000)
    r1 = [(e.kind, e.attempt) for e in got if e.node == "r1"]
    assert r1 == [(EventKind.NODE_DOWN, 0), (EventKind.READ_RETRY, 2), (EventKind.NODE_UP, 0)], got
    retry = next(e for e in got if e.kind == EventKind.READ_RETRY)
    assert "'primary'" in retry.message


def open_db_one_replica(cluster):
    db = replikit.pg.ReplicatedDatabase(("primary", cluster.dsn("primary")), [("r1", cluster.dsn("r1"))],
                                        probe_interval_ms=200)
    assert db.wait_probes(2, 5000)
    return db


@pytest.mark.pg
def test_swapped_roles_report_a_role_mismatch_once_per_node(pg_cluster, caplog):
    # The topology says r1 is the primary and the primary a replica: both servers disagree.
    caplog.set_level(logging.INFO, logger="replikit")
    db = replikit.pg.ReplicatedDatabase(("primary", pg_cluster.dsn("r1")), [("r1", pg_cluster.dsn("primary"))],
                                        probe_interval_ms=20)
    with db:
        got = []
        db.on_event(got.append)
        assert db.wait_probes(10, 5000)
        assert db.event_feed.flush(5000)
        samples = scrape(db)
        assert sample(samples, "replikit_node_role_mismatch", node="r1", role="replica") == 1.0
        assert sample(samples, "replikit_node_up", node="r1", role="replica") == 0.0  # kept out of routing
    mismatches = sorted((e.node, e.message) for e in got if e.kind == EventKind.ROLE_MISMATCH)
    assert mismatches == [("primary", "the primary is in recovery"), ("r1", "this replica is not in recovery")]
    assert EventKind.NODE_DOWN not in kinds_of(got)
    (record,) = records_of(caplog, EventKind.ROLE_MISMATCH, "r1")
    assert record.levelno == logging.WARNING


@pytest.mark.pg
def test_metrics_register_snapshot_and_routing_counts(cluster):
    with open_db(cluster) as db:
        for _ in range(6):
            db.query("SELECT 1", consistency="eventual")
        db.execute("INSERT INTO rk_events_t (v) VALUES (2)")
        snap = replikit.metrics.snapshot(db)
        assert set(snap) == {"nodes", "decisions", "stats", "events", "pools"}
        assert set(snap["nodes"]) == {"primary", "r1", "r2"}
        assert snap["nodes"]["primary"]["role"] == "primary" and snap["nodes"]["r1"]["role"] == "replica"
        assert snap["stats"]["reads"] == 6 and snap["stats"]["writes"] == 1
        assert snap["decisions"]["by_reason"]["replica_available"] == 6
        # A pool given as psycopg_pool exposes it (get_stats()), by node.
        class FakePool:
            def get_stats(self):
                return {"pool_size": 3, "pool_available": 2, "requests_waiting": 0}

        samples = scrape(db, pools={"primary": FakePool()}, labels={"cluster": "c1"})
        assert sample(samples, "replikit_reads_total", cluster="c1") == 6.0
        assert sample(samples, "replikit_writes_total", cluster="c1") == 1.0
        assert sample(samples, "replikit_route_reasons_total", cluster="c1", reason="replica_available") == 6.0
        assert sum(sample(samples, "replikit_route_decisions_total", cluster="c1", node=n) for n in ("r1", "r2")) == 6
        assert sample(samples, "replikit_route_decisions_total", cluster="c1", node="primary") == 1.0
        assert sample(samples, "replikit_pool_open_connections", cluster="c1", node="primary") >= 1
        assert sample(samples, "replikit_psycopg_pool_pool_available", cluster="c1", node="primary") == 2.0
        assert sample(samples, "replikit_probe_rtt_ms", cluster="c1", node="r1") > 0
        assert 0 <= sample(samples, "replikit_probe_age_ms", cluster="c1", node="r1") < 5000
        # Importing and snapshotting left the default registry alone; register() uses it when asked.
        assert prometheus_client.REGISTRY.get_sample_value("replikit_reads_total") is None
        collector = replikit.metrics.register(db)
        try:
            assert prometheus_client.REGISTRY.get_sample_value("replikit_reads_total") == 6.0
        finally:
            replikit.metrics.unregister(collector)
        assert prometheus_client.REGISTRY.get_sample_value("replikit_reads_total") is None


# ------------------------------------------------------------------ the ring and the feed
def test_event_log_overwrites_the_oldest_and_each_reader_counts_what_it_missed():
    log = EventLog(3)
    for i in range(5):
        assert log.publish("node_down", f"n{i}", message=str(i)) == i + 1
    batch = log.read(0)
    assert batch.missed == 2 and [e.node for e in batch.events] == ["n2", "n3", "n4"]
    assert batch.last_sequence == 5 and log.dropped == 2 and not batch.closed
    assert log.read(4).missed == 0 and [e.sequence for e in log.read(4).events] == [5]
    assert log.read(1, max_events=1).events[0].sequence == 3
    start = time.monotonic()
    assert log.wait(5, timeout_ms=50).events == [] and time.monotonic() - start >= 0.04
    log.close()
    assert log.wait(5, timeout_ms=10_000).closed  # at once
    with pytest.raises(replikit.InvalidArgument) as err:
        EventLog(0)
    assert err.value.argument == "event_capacity"
    with pytest.raises(replikit.InvalidArgument) as err:
        log.publish("nope", "n")
    assert err.value.argument == "kind"
    with pytest.raises(replikit.ArgumentTypeError) as err:
        log.read("x")
    assert err.value.argument == "after_sequence"


def test_feed_counts_overflow_as_dropped_and_survives_a_failing_callback(caplog):
    caplog.set_level(logging.INFO, logger="replikit")
    log = EventLog(2)
    feed = feed_of(log, new_database=True)
    entered, release = threading.Event(), threading.Event()
    seen = []

    def slow(event):
        seen.append(event.sequence)
        if event.sequence == 1:
            entered.set()
            release.wait(10)

    def broken(event):
        raise RuntimeError("callback bug")

    feed.add(slow)
    feed.add(broken, kinds="failover")
    log.publish("failover", "r1", message="switchover")
    assert entered.wait(10)
    for i in range(10):  # the feed is stuck in `slow`: the ring (2) keeps the last two
        log.publish("node_up", f"n{i}")
    release.set()
    assert feed.flush(5000)
    assert seen == [1, 10, 11] and feed.dropped == 8
    assert feed.callback_errors == 1 and feed.counts == {"failover": 1, "node_up": 2}
    messages = [r.getMessage() for r in caplog.records if r.name == "replikit.events"]
    assert any("8 event(s) dropped" in m for m in messages)
    assert any("callback" in m and "raised" in m for m in messages)
    assert any(m == "failover: r1 is the primary (switchover)" for m in messages)
    log.close()
    wait_until(lambda: not feed.running, 5, "the feed thread to end after close")
    with pytest.raises(replikit.InvalidArgument) as err:
        feed.add(slow, kinds=["lagging", "bogus"])
    assert err.value.argument == "kinds"
    with pytest.raises(replikit.ArgumentTypeError):
        feed.add(42)
