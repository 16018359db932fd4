"""Events at a promotion, against a cluster of its own: a switchover by the FailoverManager
publishes FAILOVER for the new primary and ROLE_MISMATCH for the deposed one (it leaves routing
until it rejoins as a replica; before, it left with no event at all), and the old primary's
rejoin as a replica publishes ROLE_RESTORED before routing takes it back. The alerts follow.
(The order against routing at the moment of publication is checked in C++: tests/cpp/pg/
test_event_order.cpp.)
"""

from __future__ import annotations

import pytest

from conftest import require_pg_server, wait_until

from replikit import _core
from replikit.monitor.alerts import AlertManager
from replikit.pg import database_for_cluster
from replikit.testing import LocalCluster

pytestmark = pytest.mark.pg

WAIT_S = 60


def test_a_switchover_announces_the_new_primary_and_the_deposed_one_until_it_rejoins():
    require_pg_server()
    with LocalCluster(replicas=1, mode="async") as cluster:
        db = database_for_cluster(cluster, probe_interval_ms=50, probe_timeout_ms=500)
        got = []
        alerts = AlertManager({})
        try:
            db.on_event(got.append)
            db.on_event(alerts.on_event)
            assert db.wait_probes(2, 5000)
            manager = _core.FailoverManager(db, detector=_core.DetectorConfig(interval_ms=50, missed_threshold=3),
                                            state_interval_ms=50)
            report = manager.switchover("r1")
            assert report.promoted == "r1", report
            assert not db.node("primary").up
            assert db.event_feed.flush(5000)
            # Once: by the manager ("switchover from 'primary'"), or by the prober when it saw the
            # promoted r1 on its newer timeline first.
            failover = [e for e in got if e.kind == _core.EventKind.FAILOVER]
            assert [e.node for e in failover] == ["r1"], got
            deposed = [e for e in got if e.kind == _core.EventKind.ROLE_MISMATCH and e.node == "primary"]
            assert len(deposed) == 1 and "deposed: 'r1' is the primary now" in deposed[0].message, got
            assert [(a.rule, a.node) for a in alerts.firing()] == [("role_mismatch", "primary")]
            assert db.node("primary").role_mismatch

            cluster.adopt_promotion("r1")
            cluster.rejoin("primary", "r1")
            wait_until(lambda: db.node("primary").up, WAIT_S, "the old primary back in routing")
            assert db.event_feed.flush(5000)
            restored = [e for e in got if e.kind == _core.EventKind.ROLE_RESTORED and e.node == "primary"]
            assert len(restored) == 1, got
            assert alerts.firing() == []
            assert not db.node("primary").role_mismatch
            assert [e.kind for e in got].count(_core.EventKind.ROLE_MISMATCH) == 1
        finally:
            db.close()
            alerts.close()
