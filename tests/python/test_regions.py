"""Multi-region model from Python: the three placements on the default regions, a custom
map, the multi-leader conflict rate against the simulated count, and typed errors."""

from __future__ import annotations

import pytest

import replikit
from replikit import Placement, default_regions, model_regions


def test_default_regions():
    names, rtt = default_regions()
    assert names == ["us", "eu", "asia"]
    assert rtt[0][1] == rtt[1][0] == 80 and all(rtt[i][i] == 1 for i in range(3))


def test_single_leader_remote_writes_local_reads():
    report = model_regions("single_leader", primary_region="eu")
    by_region = {r.region: r for r in report.regions}
    assert by_region["eu"].write_ms == 1 and by_region["asia"].write_ms == 230
    assert all(r.read_ms == 1 for r in report.regions)
    assert report.placement is Placement.SINGLE_LEADER
    assert report.stored_in == ["us", "eu", "asia"]
    records = report.to_records()
    assert records[2]["region"] == "asia" and records[2]["read_your_writes_from"] == "asia"
    assert "RegionReport(placement=<Placement.SINGLE_LEADER" in repr(report)


def test_multi_leader_conflicts_match_the_simulated_count():
    names, rtt = default_regions()
    model = model_regions("multi_leader", writes_per_s=[200, 200, 200], keys=50)
    assert all(r.write_ms == 1 for r in model.regions)
    assert 0 < model.regions[0].conflict_probability < model.regions[2].conflict_probability < 1
    delays = [[0 if i == j else rtt[i][j] / 2 for j in range(3)] for i in range(3)]
    seed = 7
    print(f"seed {seed}")
    sim = replikit.run_multileader_workload([200, 200, 200], keys=50, duration_ms=20000, seed=seed,
                                            replication_delay_ms=delays)
    assert sim["total_conflicts"] / 20.0 == pytest.approx(model.conflicts_per_s, rel=0.08)


def test_leaderless_and_a_custom_map():
    report = model_regions("leaderless", regions=["a", "b"], rtt_ms=[[2, 50], [50, 2]],
                           replicas_per_region=[2, 1], write_quorum=2, read_quorum=2)
    assert report.strong
    a, b = report.regions
    assert a.write_ms == 2 and b.write_ms == 50 and b.read_ms == 50


@pytest.mark.parametrize("kwargs,error,argument", [
    (dict(primary_region="mars"), replikit.NotFound, "primary_region"),
    (dict(placement="ring"), replikit.InvalidArgument, "placement"),
    (dict(sync_standbys=9), replikit.InvalidArgument, "sync_standbys"),
    (dict(regions=["x"]), replikit.InvalidArgument, "rtt_ms"),
    (dict(regions=["x", "y"], rtt_ms=[[1, 2], [3, 1]]), replikit.InvalidArgument, "rtt_ms"),
    (dict(regions=["x", "x"], rtt_ms=[[1, 2], [2, 1]]), replikit.InvalidArgument, "regions"),
    (dict(replicas_per_region=[1]), replikit.InvalidArgument, "replicas_per_region"),
    (dict(placement="leaderless", read_quorum=0), replikit.InvalidArgument, "read_quorum"),
    (dict(placement="multi_leader", writes_per_s=[1, -1, 1]), replikit.InvalidArgument, "writes_per_s"),
    (dict(replay_ms=float("nan")), replikit.InvalidArgument, "replay_ms"),
    (dict(regions="us"), replikit.ArgumentTypeError, "regions"),
    (dict(keys="many"), replikit.ArgumentTypeError, "keys"),
])
def test_bad_input_names_the_argument(kwargs, error, argument):
    with pytest.raises(error) as err:
        model_regions(**kwargs)
    assert err.value.argument == argument
