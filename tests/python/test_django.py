"""replikit.django against the session's real cluster: a Django project (the comments example's
app, settings built in conftest.py) with the primary and two replicas as DATABASES aliases,
driven through Django's test client (middleware, router, token) and the ORM. The two-process
handoff through the header is in test_example_comments.py; ASGI and async views in
test_django_asgi.py; each task's and thread's own consistency and session in
test_django_per_caller.py."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest

from conftest import wait_until

import replikit

pytest.importorskip("django")
pytest.importorskip("psycopg_pool")

from django.conf import settings  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402

from django_helpers import HEADER, pause_replicas, post  # noqa: E402

pytestmark = pytest.mark.pg


def test_read_your_writes_with_a_paused_replica(rd, pg_cluster_reset):
    """r1's replay paused: every read after a write (a fresh client carrying only the token
    header) sees it, never from r1; r2 serves some. Once r1 is resumed and caught up, reads go
    to replicas again, r1 included."""
    from django.test import Client

    cluster = pg_cluster_reset
    cluster.pause_replay("r1")
    stale, nodes = 0, []
    for k in range(30):
        new_id, token = post(Client(), f"ryw-{k}", f"hello {k}")
        body = Client().get("/comments", {"thread": f"ryw-{k}"}, headers={HEADER: token}).json()
        stale += new_id not in [c["id"] for c in body["comments"]]
        nodes.append(body["node"])
    print(f"\n[django ryw] 30 pairs: stale {stale}, served by {sorted(set(nodes))}, {rd.get_state().stats()}")
    assert stale == 0
    assert "r1" not in nodes and "r2" in nodes
    cluster.resume_replay("r1")
    cluster.wait_caught_up(timeout_ms=10_000)
    lag = rd.get_state().core.lag
    wait_until(lambda: lag.replica("r1").state != replikit.LagState.LAGGING, 10, "r1 no longer LAGGING")
    after = []
    for k in range(30):
        new_id, token = post(Client(), "ryw-after", f"again {k}")
        # Let one probe round see the write on both replicas first: a read that has to wait
        # takes the first replica whose probe sees it, and under load that is always the same
        # prober thread; this half checks that r1 is routed to again once caught up.
        rd.get_state().prober.wait(1, 2.0)
        body = Client().get("/comments", {"thread": "ryw-after"}, headers={HEADER: token}).json()
        assert new_id in [c["id"] for c in body["comments"]]
        after.append(body["node"])
    print(f"[django ryw] after resume: served by {sorted(set(after))}")
    assert "r1" in after


def test_cookie_carries_the_session_between_requests(rd):
    """The same browser (Django's client keeps cookies) reads its write; the cookie is signed."""
    from django.test import Client

    client = Client()
    new_id, token = post(client, "cookie", "mine")
    assert client.cookies["replikit_token"].value == token
    body = client.get("/comments", {"thread": "cookie"}).json()
    assert new_id in [c["id"] for c in body["comments"]]
    # A tampered cookie is ignored: the request runs with an empty session (no error).
    client.cookies["replikit_token"] = token[:-3] + "AAA"
    assert client.get("/comments", {"thread": "cookie"}).status_code == 200
    assert rd.get_state().transport.rejected >= 1


def test_commit_lsn_captured_for_atomic_and_autocommit_writes(rd, pg_cluster_reset):
    """An atomic block's commit and an autocommit write each record an LSN at or after the
    commit; a rolled-back block records nothing."""
    from comments.models import Comment
    from django.db import transaction

    cluster = pg_cluster_reset
    before = replikit.Lsn(cluster.sql("primary", "SELECT pg_current_wal_insert_lsn()")[0][0])
    with rd.use_session() as session:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                Comment.objects.create(thread="lsn", author="a", text="rolled back")
                raise RuntimeError("roll back")
    assert not session.write_lsn.valid()
    with rd.use_session() as session:
        with transaction.atomic():
            Comment.objects.create(thread="lsn", author="a", text="atomic")
            Comment.objects.create(thread="lsn", author="a", text="atomic 2")
            assert not session.write_lsn.valid()  # not committed yet
        # Recorded by the commit itself (its own round trip), nothing left pending.
        assert session.write_lsn > before and not rd.get_state().context().pending
        after_commit = replikit.Lsn(cluster.sql("primary", "SELECT pg_current_wal_insert_lsn()")[0][0])
        assert session.write_lsn <= after_commit
    # A manual commit (autocommit off) is captured the same way.
    with rd.use_session() as manual:
        transaction.set_autocommit(False)
        try:
            Comment.objects.create(thread="lsn-manual", author="a", text="manual")
            transaction.commit()
        finally:
            transaction.set_autocommit(True)
        assert manual.write_lsn > before
    atomic_lsn = session.write_lsn
    with rd.use_session(session):
        Comment.objects.create(thread="lsn", author="a", text="autocommit")
        # Read back at once (read-your-writes): the LSN is read before this read is routed.
        assert Comment.objects.filter(thread="lsn").count() == 2 + 1
    assert session.write_lsn > atomic_lsn
    assert rd.last_route() is None  # outside the block: this thread's own context, no read yet


def test_token_at_a_wal_page_boundary_is_reached_by_replicas(rd, pg_cluster_reset):
    """A write whose commit record ends exactly at a WAL page boundary: the insert LSN then says
    boundary + 24, the replicas say the boundary. The session's token is the boundary, so its
    reads go to the caught-up replicas (test_wal_boundary_tokens.py has the other paths)."""
    import psycopg
    from comments.models import Comment
    from conftest import node_name
    from django.db import connections, transaction
    from wal_boundary import EMIT_SQL, drive_to_boundary, insert_lsn, layout_of, lsn_text

    cluster = pg_cluster_reset

    def write(n):
        with transaction.atomic():
            with connections["default"].cursor() as cur:
                cur.execute(EMIT_SQL.format(n=n))
            rd.mark_write()

    with psycopg.connect(cluster.dsn("primary"), autocommit=True) as primary:
        layout = layout_of(primary)
        for _ in range(3):  # again when background WAL moved the insert position meanwhile
            with rd.use_session() as session:
                boundary, raw = drive_to_boundary(primary, layout, write)
                want = replikit.Lsn(lsn_text(boundary))
                wait_until(lambda: all(replikit.Lsn(cluster.sql(r, "SELECT pg_last_wal_replay_lsn()")[0][0]) == want
                                       for r in cluster.replica_names), 5, "replicas replayed up to the boundary")
                rd.get_state().prober.wait(2, 2.0)
                nodes = []
                for _ in range(5):
                    Comment.objects.filter(thread="boundary").count()
                    nodes.append(node_name(rd.last_route()))
            if insert_lsn(primary) == raw:
                break
    print(f"\n[django boundary] {lsn_text(boundary)}, insert LSN {lsn_text(raw)}, token {session.write_lsn}, "
          f"reads on {nodes}")
    assert session.write_lsn == want
    assert "primary" not in nodes, nodes


def test_lagging_replica_excluded_and_back(rd, pg_cluster_reset):
    """r1 applies WAL 1.5 s late under a steady write load: it turns LAGGING and eventual reads
    avoid it; with the delay gone it recovers and serves reads again."""
    from comments.models import Comment
    from django.db import connections

    cluster = pg_cluster_reset
    state = rd.get_state()
    stop = threading.Event()

    def writer():
        try:
            with rd.use_session():
                while not stop.is_set():
                    Comment.objects.create(thread="lag", author="w", text="tick")
                    time.sleep(0.01)
        finally:
            connections.close_all()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        cluster.set_apply_delay("r1", 1500)
        wait_until(lambda: state.core.lag.replica("r1").state == replikit.LagState.LAGGING, 15, "r1 LAGGING")
        with rd.use_session(consistency="eventual"):
            during = []
            for _ in range(40):
                Comment.objects.filter(thread="nothing").exists()
                during.append(rd.last_route().node)
        cluster.clear_apply_delay("r1")
        wait_until(lambda: state.core.lag.replica("r1").state != replikit.LagState.LAGGING, 20, "r1 recovered")
        with rd.use_session(consistency="eventual"):
            after = []
            for _ in range(40):
                Comment.objects.filter(thread="nothing").exists()
                after.append(rd.last_route().node)
    finally:
        stop.set()
        thread.join(10)
    print(f"\n[django lag] during: {sorted(set(during))}, after: {sorted(set(after))}")
    assert "r1" not in during and set(during) <= {"r2", "primary"}
    assert "r1" in after


def test_primary_loss_is_djangos_operational_error(rd, pg_cluster_reset):
    """With the primary killed a write raises django.db.utils.OperationalError (through the
    test client too); eventual reads go on on the replicas."""
    from comments.models import Comment
    from django.db import OperationalError, connections
    from django.test import Client

    cluster = pg_cluster_reset
    Comment.objects.create(thread="loss", author="a", text="before")  # the connection is open
    cluster.kill("primary")
    with pytest.raises(OperationalError):
        Comment.objects.create(thread="loss", author="a", text="after")
    connections.close_all()
    with pytest.raises(OperationalError):
        post(Client(), "loss", "after")
    wait_until(lambda: not rd.get_state().core.topology.info("primary").up, 5, "primary marked down")
    with rd.use_session(consistency="eventual"):
        assert Comment.objects.filter(thread="loss").count() >= 0
        assert rd.last_route().node in ("r1", "r2")


def test_replikit_status_command(rd):
    from django.core.management import call_command

    out = io.StringIO()
    call_command("replikit_status", stdout=out)
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["alias", "node", "role", "up"]
    rows = {line.split()[0]: line.split() for line in lines[1:4]}
    assert rows["default"][1:4] == ["primary", "primary", "yes"]
    assert rows["r1"][1:4] == ["r1", "replica", "yes"] and rows["r2"][1:4] == ["r2", "replica", "yes"]
    out = io.StringIO()
    call_command("replikit_status", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["probes_complete"] and [n["alias"] for n in data["nodes"]] == ["default", "r1", "r2"]


@pytest.mark.parametrize("change, key", [
    ({"REPLICAS": "r1"}, "REPLICAS"),
    ({"REPLICAS": ["r1", "nope"]}, "REPLICAS"),
    ({"REPLICAS": ["r1", "r1"]}, "REPLICAS"),
    ({"REPLICAS": ["default"]}, "REPLICAS"),
    ({"PRIMARY": "missing"}, "PRIMARY"),
    ({"PRIMARY": 3}, "PRIMARY"),
    ({"CONSISTENCY": "read-your-writes"}, "CONSISTENCY"),
    ({"SIGNING_KEY": b"short"}, "SIGNING_KEY"),
    ({"SIGNING_KEY": 5}, "SIGNING_KEY"),
    ({"OPTIONS": {"max_lag_msec": 1}}, "OPTIONS"),
    ({"OPTIONS": {"max_lag_ms": -5.0}}, "OPTIONS"),
    ({"OPTIONS": []}, "OPTIONS"),
    ({"NODE_NAMES": {"r9": "x"}}, "NODE_NAMES"),
    ({"NODE_NAMES": {"r1": "r2"}}, "NODE_NAMES"),
    ({"HEADER": "bad header"}, "HEADER"),
    ({"COOKIE_SAMESITE": "sometimes"}, "COOKIE_SAMESITE"),
    ({"WAIT_FOR_REPLICA_MS": "soon"}, "WAIT_FOR_REPLICA_MS"),
    ({"TYPO": 1}, "TYPO"),
])
def test_bad_settings_are_improperly_configured(dj, change, key):
    from replikit.django import conf

    raw = dict(settings.REPLIKIT)
    raw.update(change)
    with pytest.raises(ImproperlyConfigured) as info:
        conf.load(raw)
    assert key in str(info.value)
    with pytest.raises(ImproperlyConfigured, match="REPLICAS"):
        conf.load({"PRIMARY": "default"})
    with pytest.raises(ImproperlyConfigured, match="must be a dict"):
        conf.load(["r1"])  # type: ignore[arg-type]


def test_monotonic_reads_never_go_back(rd, pg_cluster_reset):
    """A monotonic session counting a thread's comments while a writer adds them, r2 applying
    WAL 300 ms late: the count never decreases, whichever node serves each read."""
    from comments.models import Comment
    from django.db import connections

    cluster = pg_cluster_reset
    cluster.set_apply_delay("r2", 300)
    stop = threading.Event()

    def writer():
        try:
            with rd.use_session():
                while not stop.is_set():
                    Comment.objects.create(thread="mono", author="w", text="tick")
                    time.sleep(0.005)
        finally:
            connections.close_all()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    counts, nodes = [], []
    try:
        with rd.use_session(consistency="monotonic") as session:
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                counts.append(Comment.objects.filter(thread="mono").count())
                nodes.append(rd.last_route().node)
    finally:
        stop.set()
        thread.join(10)
    went_back = sum(1 for a, b in zip(counts, counts[1:]) if b < a)
    print(f"\n[django monotonic] {len(counts)} reads, by {sorted(set(nodes))}, went back {went_back}")
    assert went_back == 0 and len(counts) > 20 and counts[-1] > counts[0]
    assert session.read_lsn.valid()  # what the reads saw is in the session (and its token)
    assert {"r1", "r2"} & set(nodes)


def test_bad_arguments_name_the_argument(rd):
    with pytest.raises(replikit.InvalidArgument) as info:
        with rd.consistency("read-your-writes"):
            pass
    assert info.value.argument == "consistency"
    with pytest.raises(replikit.ArgumentTypeError) as info:
        with rd.use_session("1.0.0.0"):
            pass
    assert info.value.argument == "session"


def test_reads_inside_a_transaction_stay_on_the_primary(rd, pg_cluster_reset):
    """Both replicas paused: inside an atomic block a read sees the block's own uncommitted
    write (on the primary); after the commit, read-your-writes still sees it."""
    from comments.models import Comment
    from django.db import transaction

    pause_replicas(pg_cluster_reset)
    with rd.use_session():
        with transaction.atomic():
            c = Comment.objects.create(thread="in-tx", author="a", text="uncommitted")
            assert Comment.objects.filter(id=c.id).exists()
            assert rd.last_route().node == "primary"
        assert Comment.objects.filter(id=c.id).exists()  # committed: RYW, replicas paused
        assert rd.last_route().node == "primary"
        # Outside a transaction an eventual read goes to a (paused) replica that lacks the row.
        with rd.consistency("eventual"):
            assert not Comment.objects.filter(id=c.id).exists()
            assert rd.last_route().node in ("r1", "r2")


def test_mark_write_counts_a_write_that_does_not_look_like_one(rd, pg_cluster_reset):
    from django.db import connections, transaction

    assert rd.is_write("INSERT INTO t VALUES (1)") and rd.is_write(" with x as (delete from t) select 1")
    assert not rd.is_write("SELECT 1") and not rd.is_write(b"  savepoint s1") and not rd.is_write("SHOW x")
    # A SELECT that writes (a sequence) is one: its commit LSN is captured.
    assert rd.is_write("SELECT nextval('comments_id_seq')") and rd.is_write("select pg_advisory_lock(1)")
    with rd.use_session() as session:
        with transaction.atomic():
            with connections["default"].cursor() as cur:
                cur.execute("SELECT txid_current()")  # assigns an xid: a commit record, not seen
            rd.mark_write()
        assert session.write_lsn.valid()


def test_a_connection_opened_before_the_state_still_records_commits(rd):
    """A thread whose primary connection was opened before replikit's State existed (no
    connection_created signal reaches it then) still gets its commit LSN recorded."""
    from comments.models import Comment
    from django.db import connections, transaction

    rd.reset_state()
    opened, made = threading.Event(), threading.Event()
    result = {}

    def worker():
        try:
            connections["default"].ensure_connection()
            opened.set()
            assert made.wait(10)
            with rd.use_session() as session:
                with transaction.atomic():
                    Comment.objects.create(thread="early", author="a", text="x")
                result["valid"] = session.write_lsn.valid()
        finally:
            connections.close_all()

    thread = threading.Thread(target=worker)
    thread.start()
    assert opened.wait(10)
    rd.get_state().wait_probes(1, 5000)
    made.set()
    thread.join(20)
    assert result == {"valid": True}
