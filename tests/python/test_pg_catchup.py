"""wait_for_replica_ms="auto" against a real local cluster: healthy replicas absorb
read-after-write reads; a paused replica is not waited for beyond the bound; the setting
round-trips and bad values name the argument."""

from __future__ import annotations

import pytest

from conftest import wait_until

import replikit

pytestmark = pytest.mark.pg

_core = replikit._core
if not getattr(_core, "HAVE_PG", False):  # pragma: no cover - depends on the build
    pytest.skip("replikit was built without the PostgreSQL backend (libpqxx)", allow_module_level=True)

from replikit.pg import DatabaseOptions, database_for_cluster  # noqa: E402

AUTO_BOUND_MS = 50.0  # CatchUpWait::kAutoMaxWaitMs
WARMUP = 30
PAIRS = 100


@pytest.fixture(scope="module")
def tables(pg_cluster):
    pg_cluster.sql("primary", "CREATE TABLE IF NOT EXISTS rk_catchup (id bigserial PRIMARY KEY, v text)")
    pg_cluster.wait_caught_up(timeout_ms=10_000)
    return pg_cluster


@pytest.fixture
def cluster(pg_cluster_reset, tables):
    return pg_cluster_reset


def write_then_read(db, pairs: int, tag: str):
    """`pairs` write-then-read-back pairs of one session: (node, waited_ms, wait_reason) each."""
    session = replikit.Session()
    out = []
    for k in range(pairs):
        token = f"{tag}-{k}"
        w = db.execute("INSERT INTO rk_catchup (v) VALUES ($1) RETURNING id", [token], session=session)
        r = db.query("SELECT v FROM rk_catchup WHERE id = $1", [w.rows[0][0]], session=session,
                     consistency="read_your_writes")
        assert r.rows == [(token,)], (r, token)  # never a stale read
        out.append((r.node, r.waited_ms, r.wait_reason))
    return out


def test_auto_setting_round_trips_and_bad_values_name_the_argument():
    assert DatabaseOptions(wait_for_replica_ms="auto").wait_for_replica_ms == "auto"
    assert DatabaseOptions(wait_for_replica_ms=20).wait_for_replica_ms == 20.0
    with pytest.raises(replikit.InvalidArgument) as e:
        DatabaseOptions(wait_for_replica_ms="sometimes")
    assert e.value.argument == "wait_for_replica_ms"
    with pytest.raises(replikit.InvalidArgument) as e:
        DatabaseOptions(wait_for_replica_ms="\ud800")  # a lone surrogate: not text
    assert e.value.argument == "wait_for_replica_ms"
    with pytest.raises(replikit.ArgumentTypeError) as e:
        DatabaseOptions(wait_for_replica_ms=[1])
    assert e.value.argument == "wait_for_replica_ms"
    with pytest.raises(replikit.InvalidArgument) as e:
        DatabaseOptions(wait_for_replica_ms=1e9)
    assert e.value.argument == "wait_for_replica_ms"
    assert {m.name for m in replikit.CatchUpReason} == {
        "FIXED_WAIT", "REPLICA_EXPECTED", "NO_REPLICA_EXPECTED", "NO_DELAY_SAMPLES"}


def test_healthy_replicas_absorb_read_after_write_reads_with_auto(cluster):
    with database_for_cluster(cluster, probe_interval_ms=100, wait_for_replica_ms="auto") as db:
        assert db.wait_for_replica_ms == "auto"
        assert db.wait_probes(2, 5000)
        write_then_read(db, WARMUP, "warm")
        reads = write_then_read(db, PAIRS, "auto")
        primary = sum(1 for node, _, _ in reads if node == "primary")
        waited = sorted(w for _, w, _ in reads)
        reasons = {reason.name for _, w, reason in reads if w > 0}
        print(f"\n[auto] primary served {primary}/{PAIRS}, waits p50 {waited[len(waited) // 2]:.2f} ms "
              f"max {waited[-1]:.2f} ms, reasons {reasons}, tracker p99 "
              f"{[db.lag_tracker.replay_delay_ms(n) for n in cluster.replica_names]}")
        # Healthy replicas on loopback replay within a few ms: the primary serves few of them.
        assert primary <= PAIRS // 10, reads
        assert all(w <= AUTO_BOUND_MS + 25 for w in waited), waited  # the bound, plus scheduling slack
        assert any(db.lag_tracker.replay_delay_count(n) >= 8 for n in cluster.replica_names)


def test_a_paused_replica_is_not_waited_for_beyond_the_bound(cluster):
    with database_for_cluster(cluster, probe_interval_ms=100, wait_for_replica_ms="auto") as db:
        assert db.wait_probes(2, 5000)
        write_then_read(db, WARMUP, "warm")
        cluster.pause_replay("r1")
        wait_until(lambda: cluster.replay_pause_state("r1") == "paused", 5, "r1 paused")
        reads = write_then_read(db, PAIRS, "paused-r1")
        assert not any(node == "r1" for node, _, _ in reads)  # r1 replays nothing: never serves
        assert all(w <= AUTO_BOUND_MS + 25 for _, w, _ in reads), reads
        # With r1 paused and r2 stopped, no replica can cover a new write: once r1 is known to be
        # further behind than the bound, reads go to the primary at once.
        cluster.stop("r2")
        wait_until(lambda: not any(s.up for s in db.nodes() if s.name == "r2"), 10, "r2 marked down")
        wait_until(lambda: db.lag_tracker.replica("r1").lag_ms > AUTO_BOUND_MS * 2, 10, "r1 lag known")
        reads = write_then_read(db, 20, "paused-r1-down-r2")
        assert all(node == "primary" for node, _, _ in reads), reads
        assert all(w == 0 and reason.name == "NO_REPLICA_EXPECTED" for _, w, reason in reads), reads
