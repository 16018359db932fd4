"""Capacity planner: the brief's exercise, monotonicity in load, typed errors, the command
line, and the capacity probe against a real node."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import replikit
from replikit import plan as plan_module
from replikit.plan import CapacityPlan, PlanConstraint, measure_capacity, plan_capacity


def test_exercise_five_k_writes_fifty_k_reads():
    # The brief's exercise: 5K writes/s and 50K reads/s, read-backs a page load (200 ms) later.
    plan = plan_capacity(5000, 50000, read_back_delay_ms=200)
    assert isinstance(plan, CapacityPlan)
    assert plan.feasible and plan.replicas == 6 and plan.replicas_for_load == 5
    assert plan.binding is PlanConstraint.REPLICA_READ_CAPACITY
    assert plan.primary_read_share < 1e-6
    text = plan.explain()
    assert text.startswith("Plan: 6 replicas (bound by replica_read_capacity).")
    assert "4.76 replicas' worth" in text
    assert "CapacityPlan(feasible=True, replicas=6" in repr(plan)
    record = plan.to_dict()
    assert record["binding"] == "replica_read_capacity" and record["replicas"] == 6
    assert record["reasoning"] == plan.reasoning


def test_immediate_read_back_makes_the_primary_bind_and_names_the_wait():
    plan = plan_capacity(5000, 50000)  # read-backs at once, no wait: 10% of reads on the primary
    assert not plan.feasible and plan.binding is PlanConstraint.PRIMARY_CAPACITY
    assert plan.primary_read_share == pytest.approx(0.1)
    wait = plan.min_wait_for_replica_ms
    assert wait is not None and 0 < wait < 5
    fixed = plan_capacity(5000, 50000, wait_for_replica_ms=wait * 1.001)
    assert fixed.feasible and fixed.primary_utilization <= 0.7 + 1e-9


@settings(max_examples=200, deadline=None)
@given(writes=st.floats(0, 6000), reads=st.floats(0, 1e6), extra=st.floats(0, 1e5),
       ryw=st.floats(0, 1), delay=st.floats(0, 10))
def test_more_load_never_needs_fewer_replicas(writes, reads, extra, ryw, delay):
    kw = dict(ryw_share=ryw, read_back_delay_ms=delay, replica_apply_per_s=50000, write_capacity_per_s=20000)
    low = plan_capacity(writes, reads, **kw)
    high = plan_capacity(writes, reads + extra, **kw)
    if high.feasible:
        assert low.feasible and low.replicas <= high.replicas
    assert low.primary_utilization <= high.primary_utilization + 1e-9


@pytest.mark.parametrize("keyword,value", [
    ("read_capacity_per_s", 0), ("write_capacity_per_s", -1.0), ("replica_apply_per_s", float("inf")),
    ("headroom", 1.0), ("headroom", -0.01), ("spare_replicas", -1), ("ryw_share", 1.2),
    ("strong_share", float("nan")), ("read_back_delay_ms", -1), ("wait_for_replica_ms", float("nan")),
    ("network_ms", -0.1), ("replay_delay_ms", -3.0),
])
def test_impossible_inputs_are_refused_naming_the_argument(keyword, value):
    with pytest.raises(replikit.InvalidArgument) as err:
        plan_capacity(5000, 50000, **{keyword: value})
    assert err.value.argument == keyword


def test_negative_rates_and_wrong_types():
    for args, argument in [((-1, 10), "writes_per_s"), ((1, float("nan")), "reads_per_s")]:
        with pytest.raises(replikit.InvalidArgument) as err:
            plan_capacity(*args)
        assert err.value.argument == argument
    with pytest.raises(replikit.ArgumentTypeError) as err:
        plan_capacity("5000", 50000)
    assert err.value.argument == "writes_per_s"
    with pytest.raises(replikit.ArgumentTypeError) as err:
        plan_capacity(5000, 50000, spare_replicas=1.5)
    assert err.value.argument == "spare_replicas"
    with pytest.raises(TypeError):
        plan_capacity(5000, 50000, replicas=3)  # not a keyword of the planner


def test_command_line(capsys):
    assert plan_module.main(["--writes-per-s", "5000", "--reads-per-s", "50000",
                             "--read-back-delay-ms", "200"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Plan: 6 replicas")
    assert plan_module.main(["--writes-per-s", "5000", "--reads-per-s", "50000", "--json"]) == 1
    record = json.loads(capsys.readouterr().out)
    assert record["feasible"] is False and record["binding"] == "primary_capacity"
    assert plan_module.main(["--writes-per-s", "5000", "--reads-per-s", "50000", "--headroom", "1"]) == 2
    assert "argument --headroom: must be in [0, 1)" in capsys.readouterr().err


def test_replikit_plan_command_is_listed(capsys):
    from replikit import cli

    assert cli.main(["plan", "--writes-per-s", "100", "--reads-per-s", "1000"]) == 0
    assert "Plan: " in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "plan" in capsys.readouterr().out


def test_measure_capacity_refuses_bad_arguments():
    with pytest.raises(TypeError):
        measure_capacity(b"host=x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seconds"):
        measure_capacity("host=127.0.0.1", seconds=0)
    with pytest.raises(ValueError, match="clients"):
        measure_capacity("host=127.0.0.1", clients=0)


@pytest.mark.pg
def test_measure_capacity_on_a_real_cluster(pg_cluster):
    replica = measure_capacity(pg_cluster.dsn("r1"), seconds=1.0, clients=2)
    assert replica["read_capacity_per_s"] > 100
    primary = measure_capacity(pg_cluster.dsn("primary"), seconds=1.0, clients=2, writes=True)
    assert primary["write_capacity_per_s"] > 10
    with pytest.raises(ValueError, match="replica"):
        measure_capacity(pg_cluster.dsn("r1"), seconds=0.5, clients=1, writes=True)
    # The scratch table is gone afterwards.
    assert pg_cluster.sql("primary", "SELECT to_regclass('replikit_plan_probe') IS NULL") == [("t",)]


def _simulate_plan(replicas, read_back_delay_ms, seed=7):
    """The exercise in the simulator with the planner's capacities: one server per node serving
    15K reads/s or 10K writes/s, replicas applying 20K writes/s; 90% of reads eventual, the
    other 10% read-backs of every write (the planner's ryw_share 0.1), from 100K sessions so
    that a session does not write again before its read-back (the planner's model: a read-back
    needs the write it reads back, not a later one of its session)."""
    from replikit import LatencyDistribution, SimConfig, simulate

    print(f"seed {seed}")
    config = SimConfig(write_rate_per_s=5000, read_rate_per_s=45000, consistency_mix={"eventual": 1.0},
                       read_back_share=1.0, read_back_delay_ms=read_back_delay_ms, replicas=replicas,
                       servers_per_node=1, read_service=LatencyDistribution.exponential(15.0),
                       write_service=LatencyDistribution.exponential(10.0), apply_rate_per_s=20000,
                       duration_ms=3000, sessions=100_000)
    result = simulate(config, seed)
    assert result.conserved
    return result


def test_the_plan_meets_its_targets_in_the_simulator_and_one_replica_fewer_does_not():
    plan = plan_capacity(5000, 50000, read_back_delay_ms=200)
    target = 0.7 + 0.02  # the headroom target, plus the simulation's sampling noise (~1%)
    planned = _simulate_plan(plan.replicas_for_load, read_back_delay_ms=200)  # the spare down
    busy = {name: load["utilisation"] for name, load in planned.nodes.items()}
    assert max(busy.values()) <= target, busy
    replica_busy = [v for k, v in busy.items() if k != "primary"]
    assert sum(replica_busy) / len(replica_busy) == pytest.approx(plan.degraded_replica_utilization, abs=0.03)
    assert busy["primary"] == pytest.approx(plan.primary_utilization, abs=0.05)
    fewer = _simulate_plan(plan.replicas_for_load - 1, read_back_delay_ms=200)
    assert max(v for k, v in ((k, load["utilisation"]) for k, load in fewer.nodes.items()) if k != "primary") > target


def test_an_immediate_read_back_overloads_the_primary_in_the_simulator_too():
    plan = plan_capacity(5000, 50000)
    assert not plan.feasible and plan.binding is PlanConstraint.PRIMARY_CAPACITY
    result = _simulate_plan(6, read_back_delay_ms=0)
    assert result.nodes["primary"]["utilisation"] > 0.7
    assert result.nodes["primary"]["utilisation"] == pytest.approx(plan.primary_utilization, abs=0.05)
