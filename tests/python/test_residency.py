"""Data residency: a tagged session is never routed outside its cluster (property test over
core routers, every policy and consistency level, nodes up and down), typed refusals, and two
real clusters where EU data stays in the EU one."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import replikit
from replikit import Consistency, Node, Policy, Router, Session, Topology
from replikit.residency import Resident, ResidencyError, ResidencyRouter

REGIONS = ["eu-west", "eu-central", "us-east", "us-west", "asia"]


def _cluster(prefix, regions, down):
    nodes = [Node(f"{prefix}-{i}", region=region) for i, region in enumerate(regions)]
    topology = Topology(nodes[0], nodes[1:])
    for i in down:
        if 0 < i < len(nodes):
            topology.set_up(nodes[i].name, False)
    return topology


cluster_shape = st.tuples(st.lists(st.sampled_from(REGIONS), min_size=1, max_size=5),
                          st.sets(st.integers(0, 4)))


@settings(max_examples=300, deadline=None)
@given(shapes=st.lists(cluster_shape, min_size=2, max_size=3), policy=st.sampled_from(list(Policy)),
       consistency=st.sampled_from(list(Consistency)), client_region=st.sampled_from(REGIONS + [""]),
       tag_index=st.integers(0, 2), writes=st.lists(st.integers(1, 10**6), max_size=3), seed=st.integers(0, 2**32))
def test_a_tagged_session_never_leaves_its_cluster(shapes, policy, consistency, client_region, tag_index,
                                                   writes, seed):
    names = [f"c{i}" for i in range(len(shapes))]
    routers = {name: Router(_cluster(name, regions, down), policy=policy, seed=seed)
               for name, (regions, down) in zip(names, shapes)}
    router = ResidencyRouter(routers, residency={f"tag{i}": name for i, name in enumerate(names)})
    tag = f"tag{tag_index % len(names)}"
    home = names[tag_index % len(names)]
    session = Session()
    for lsn in writes:
        session.record_write(lsn, now_ns=1)
    user = router.tag(session, tag)
    kwargs = {"max_staleness_ms": 1000.0} if consistency is Consistency.BOUNDED_STALENESS else {}
    home_regions = {info.region for info in routers[home].topology.nodes()}
    # The client may sit in any region, also one of another jurisdiction's nodes (a router only
    # takes a region some node of its own has).
    region = client_region if client_region in home_regions else None
    for _ in range(5):
        cluster, decision = router.route_read(user, consistency, now_ns=10**12, region=region, **kwargs)
        assert cluster == home
        assert decision.node is None or decision.node in routers[home].topology.replica_names() + \
            [routers[home].topology.primary_name]
    cluster, decision = router.route_write(user)
    assert cluster == home and decision.node == routers[home].topology.primary_name


def test_refusals_are_typed_and_name_the_argument():
    routers = {"eu": Router(Topology(Node("eu-p"), [Node("eu-r")])),
               "us": Router(Topology(Node("us-p")))}
    router = ResidencyRouter(routers, residency={"de": "eu", "fr": "eu", "us": "us"})
    with pytest.raises(ResidencyError) as err:
        router.route_read(Session(), residency="br")
    assert err.value.argument == "residency" and "no cluster serves residency 'br'" in str(err.value)
    assert isinstance(err.value, replikit.InvalidArgument) and isinstance(err.value, ValueError)
    with pytest.raises(ResidencyError, match="no residency tag"):
        router.route_write(Session())
    with pytest.raises(ResidencyError, match="tagged 'de'"):
        router.route_read(router.tag(Session(), "de"), residency="us")
    with pytest.raises(ResidencyError):
        router.tag(Session(), "xx")
    with pytest.raises(TypeError):
        router.tag("token", "de")  # type: ignore[arg-type]
    with pytest.raises(ResidencyError) as err:
        ResidencyRouter(routers, residency={"de": "mars"})
    assert err.value.argument == "residency"
    with pytest.raises(ResidencyError) as err:
        ResidencyRouter(routers, residency={}, default="mars")
    assert err.value.argument == "default"
    with pytest.raises(ResidencyError):
        ResidencyRouter({}, residency={})
    open_router = ResidencyRouter(routers, residency={"de": "eu"}, default="us")
    assert open_router.route_write(Session())[0] == "us"
    assert "ResidencyRouter(clusters=['eu', 'us']" in repr(open_router)
    assert isinstance(router.tag(Session(), "fr"), Resident)


@pytest.fixture(scope="module")
def two_jurisdictions():
    import shutil

    from conftest import new_cluster_dir, require_pg_server
    from replikit.pg import database_for_cluster
    from replikit.testing import LocalCluster

    require_pg_server()
    clusters, dbs, parents = {}, {}, []
    try:
        for name in ("eu", "us"):
            parent, base_dir = new_cluster_dir(f"replikit-residency-{name}-")
            parents.append(parent)
            clusters[name] = LocalCluster(base_dir, replicas=1)
            clusters[name].sql("primary", "CREATE TABLE profile (id int PRIMARY KEY, who text)")
            clusters[name].wait_caught_up(timeout_ms=10_000)
            dbs[name] = database_for_cluster(clusters[name])
        yield clusters, dbs
    finally:
        for db in dbs.values():
            db.close()
        for cluster in clusters.values():
            cluster.close()
        for parent in parents:
            shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.pg
def test_eu_data_stays_in_the_eu_cluster(two_jurisdictions):
    clusters, dbs = two_jurisdictions
    router = ResidencyRouter(dbs, residency={"de": "eu", "us": "us"})
    anna = router.tag(Session(), "de")
    bob = router.tag(Session(), "us")
    router.execute("INSERT INTO profile VALUES ($1, $2)", [1, "anna"], anna)
    router.transaction([["INSERT INTO profile VALUES ($1, $2)", [2, "bob"]]], bob)
    assert clusters["eu"].sql("primary", "SELECT who FROM profile ORDER BY id") == [("anna",)]
    assert clusters["us"].sql("primary", "SELECT who FROM profile ORDER BY id") == [("bob",)]
    for _ in range(20):  # read-your-writes on EU nodes only, wherever they are served
        rows = router.query("SELECT who FROM profile ORDER BY id", session=anna).rows
        assert [tuple(r) for r in rows] == [("anna",)]
    # The EU cluster down: the EU user's write fails there; it never lands in the US cluster.
    clusters["eu"].stop("primary")
    try:
        with pytest.raises(replikit.Error):
            router.execute("INSERT INTO profile VALUES ($1, $2)", [3, "anna2"], anna)
        assert clusters["us"].sql("primary", "SELECT count(*) FROM profile WHERE who = 'anna2'") == [("0",)]
    finally:
        clusters["eu"].start("primary")
