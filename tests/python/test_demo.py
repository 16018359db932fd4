"""The main demo (README's first command) does what it says: reads steered away from the
lagging replica and back, zero read-your-writes violations, and (against PostgreSQL) a
failover by replikit's FailoverManager after the primary's crash, with the other replica
following the new primary and no acknowledged write lost (semi-synchronous)."""

from __future__ import annotations

import io

import pytest

from replikit import demo


def test_in_process_demo_steers_reads_and_keeps_read_your_writes():
    out = io.StringIO()
    summary = demo.run_in_process(seconds=6.0, seed=11, out=out)
    assert summary["violations"] == 0
    kinds = [(node, kind) for _, node, kind, _ in summary["events"]]
    assert kinds == [("r2", "BECAME_LAGGING"), ("r2", "RECOVERED")]
    assert set(summary["per_node"]) == {"primary", "r1", "r2"}
    assert "read-your-writes violations: 0" in out.getvalue()


@pytest.mark.pg
def test_postgres_demo_steers_reads_and_keeps_read_your_writes():
    from replikit import _demo_pg

    if not _demo_pg.available():
        pytest.skip("PostgreSQL 15 or the PostgreSQL backend is not available")
    out = io.StringIO()
    summary = _demo_pg.run(users=50, seconds=4.0, pause_at_s=1.0, resume_at_s=2.5, out=out)
    print(out.getvalue())
    assert summary["violations"] == 0
    kinds = [(node, kind) for _, node, kind, _ in summary["events"]]
    assert ("r2", "BECAME_LAGGING") in kinds and ("r2", "RECOVERED") in kinds
    assert kinds.index(("r2", "BECAME_LAGGING")) < kinds.index(("r2", "RECOVERED"))
    assert summary["per_node"].get("r1", 0) > 0 and summary["per_node"].get("r2", 0) > 0
    failover = summary["failover"]
    assert "error" not in failover, failover
    new = failover["new_primary"]
    other = ({"r1", "r2"} - {new}).pop()
    assert failover["followers"] == [other]
    assert failover["following"] == {other: "streaming"}
    assert 0 <= failover["detected_s"] < failover["first_write_s"] < 30
    assert failover["promotion_ms"] > 0
    # Semi-synchronous: no acknowledged write lost, by the manager's account and by the reads.
    assert failover["lost_xids"] == [] and failover["lost_seen"] == 0
    text = out.getvalue()
    assert "a FailoverManager watches" in text
    assert f"first write acknowledged by {new}" in text
    assert "lost-write report (db.lost_writes()): 0 acknowledged write(s) lost" in text


@pytest.mark.pg
def test_postgres_demo_async_failover_shows_the_writes_it_lost():
    # --failover-mode async: the primary's WAL senders are stopped for the last 0.5 s before the
    # crash (real lag: what it acknowledges then is on no replica), so the report is not empty.
    from replikit import _demo_pg

    if not _demo_pg.available():
        pytest.skip("PostgreSQL 15 or the PostgreSQL backend is not available")
    out = io.StringIO()
    summary = _demo_pg.run(users=50, seconds=2.0, pause_at_s=0.5, resume_at_s=1.0, out=out,
                           failover_mode="async")
    print(out.getvalue())
    failover = summary["failover"]
    assert "error" not in failover, failover
    assert failover["new_primary"] in ("r1", "r2")
    assert failover["acked_in_stall"] > 0
    lost = failover["lost_xids"]
    assert lost, failover
    # Writes acknowledged before the stall had reached the replicas; the lost ones are those
    # the primary acknowledged while its WAL senders were stopped (with slack for commits the
    # senders had not sent yet when they stopped, on a loaded machine).
    before_ms = failover["lost_acked_ms_before_crash"]
    assert len(before_ms) == len(lost)
    assert 0 <= before_ms[0] and before_ms[-1] <= failover["stall_s"] * 1000 + 200, before_ms
    assert failover["survived"] > 0
    assert 0 <= failover["lost_seen"] <= len(lost)
    text = out.getvalue()
    assert "its WAL senders stop (SIGSTOP)" in text
    assert f"lost-write report (db.lost_writes()): {len(lost)} acknowledged write(s) lost (xids" in text
