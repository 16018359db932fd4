"""replikit.django against the session's real cluster: a Django project (the comments example's
app, settings built here) with the primary and two replicas as DATABASES aliases, driven through
Django's test client (middleware, router, token) and the ORM. The two-process handoff through
the header is in test_example_comments.py."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import wait_until

import replikit

pytest.importorskip("django")
pytest.importorskip("psycopg_pool")

from django.conf import settings  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402

pytestmark = pytest.mark.pg

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "comments"
SECRET = "test secret key for replikit.django"
HEADER = "X-Replikit-Token"


def database(cluster, node):
    return {"ENGINE": "django.db.backends.postgresql", "NAME": "postgres", "USER": "postgres",
            "HOST": cluster.host, "PORT": str(cluster.node(node).port)}


@pytest.fixture(scope="module")
def dj(pg_cluster):
    """Django set up once for this process (settings can be configured once)."""
    import django
    from django.core.management import call_command

    if settings.configured:
        pytest.skip("Django was configured by another test module")
    sys.path.insert(0, str(EXAMPLE))
    settings.configure(
        SECRET_KEY=SECRET, USE_TZ=True, ALLOWED_HOSTS=["testserver"], DEBUG=False,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        DATABASES={"default": database(pg_cluster, "primary"), "r1": database(pg_cluster, "r1"),
                   "r2": database(pg_cluster, "r2")},
        INSTALLED_APPS=["replikit.django", "comments"],
        MIDDLEWARE=["replikit.django.ReplikitMiddleware"], ROOT_URLCONF="comments_site.urls",
        DATABASE_ROUTERS=["replikit.django.ReplikitRouter"],
        REPLIKIT={"PRIMARY": "default", "REPLICAS": ["r1", "r2"], "NODE_NAMES": {"default": "primary"},
                  "WAIT_FOR_REPLICA_MS": 300.0,
                  "OPTIONS": {"probe_interval_ms": 20.0, "max_lag_ms": 500.0, "recover_lag_ms": 200.0}})
    django.setup()
    call_command("migrate", "comments", database="default", verbosity=0)
    pg_cluster.wait_caught_up(timeout_ms=10_000)
    import replikit.django as rd
    yield rd
    rd.reset_state()
    from django.db import connections
    connections.close_all()


@pytest.fixture
def rd(dj, pg_cluster_reset):
    """replikit.django with fresh probes of a cluster in its normal state."""
    from django.db import connections
    connections.close_all()
    state = dj.get_state()
    assert state.wait_probes(2, 5000)
    wait_until(lambda: all(n["up"] for n in state.nodes()), 5, "every node up")
    yield dj
    connections.close_all()


def post(client, thread, text):
    from django.test import Client  # noqa: F401

    response = client.post("/comments", json.dumps({"thread": thread, "author": "a", "text": text}),
                           content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()["id"], response.headers[HEADER]


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

    cluster = pg_cluster_reset
    for name in cluster.replica_names:
        cluster.pause_replay(name)
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


# ---- ASGI: the middleware is sync and async; async views run without a thread hop
ASYNC_URLS = "replikit_test_async_urls"


def async_urls():
    """A URLconf with the example's (sync) view and an async twin of it, as a module of its own."""
    import types

    from django.http import JsonResponse
    from django.urls import path

    from comments import views
    from comments.models import Comment

    async def comments_async(request):
        if request.method == "POST":
            body = json.loads(request.body)
            comment = await Comment.objects.acreate(thread=body["thread"], author=body["author"], text=body["text"])
            return JsonResponse({"id": comment.id}, status=201)
        found = [{"id": c.id} async for c in Comment.objects.filter(thread=request.GET["thread"]).order_by("-id")]
        route = replikit.django.last_route()
        return JsonResponse({"comments": found, "node": route.node or "primary",
                             "session_is_the_requests": replikit.django.current_session() is request.replikit_session})

    module = types.ModuleType(ASYNC_URLS)
    module.urlpatterns = [path("comments", views.comments), path("async/comments", comments_async)]
    sys.modules[ASYNC_URLS] = module
    return module


def test_async_and_sync_views_under_asgi_read_their_writes(rd, pg_cluster_reset, monkeypatch):
    """Django's AsyncClient (the ASGI handler): the middleware runs on the event loop (no thread
    hop before an async view), and with r1's replay paused every read after a write, async view
    or sync view, with the token header only, sees the write and is never served by r1; the
    autocommit write of an async view has its LSN read before the response. The session the
    view sees is the request's, and the cookie carries it too."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient, override_settings

    cluster = pg_cluster_reset
    state = rd.get_state()
    on_loop = []
    read_token = state.transport.session_from

    def spy(*args):
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return read_token(*args)

    monkeypatch.setattr(state.transport, "session_from", spy)
    async_urls()
    paths = [("async/comments", "async/comments"), ("comments", "async/comments"), ("async/comments", "comments"),
             ("comments", "comments")]

    async def scenario():
        stale, nodes = 0, []
        for k in range(6):
            for write_path, read_path in paths:
                thread = f"asgi-{k}-{write_path}-{read_path}"
                response = await AsyncClient().post(
                    "/" + write_path, json.dumps({"thread": thread, "author": "a", "text": "x"}),
                    content_type="application/json")
                assert response.status_code == 201, response.content
                new_id, token = response.json()["id"], response.headers[HEADER]
                body = (await AsyncClient().get("/" + read_path, {"thread": thread},
                                                headers={HEADER: token})).json()
                stale += new_id not in [c["id"] for c in body["comments"]]
                nodes.append(body["node"])
                assert body.get("session_is_the_requests", True)
        client = AsyncClient()  # the cookie carries the session between requests too
        response = await client.post("/async/comments", json.dumps({"thread": "asgi-cookie", "author": "a",
                                                                    "text": "x"}), content_type="application/json")
        body = (await client.get("/async/comments", {"thread": "asgi-cookie"})).json()
        assert response.json()["id"] in [c["id"] for c in body["comments"]]
        return stale, nodes

    cluster.pause_replay("r1")
    with override_settings(ROOT_URLCONF=ASYNC_URLS):
        stale, nodes = async_to_sync(scenario)()
    print(f"\n[django asgi] {len(nodes)} pairs: stale {stale}, served by {sorted(set(nodes))}, {state.stats()}")
    assert stale == 0
    assert "r1" not in nodes and "r2" in nodes
    assert on_loop and all(on_loop), on_loop


def test_the_middleware_is_sync_and_async_capable(dj):
    """As Django's docs ask: both capabilities declared, and an instance over an async
    get_response is a coroutine function (what the middleware around it checks), over a sync one not."""
    from asgiref.sync import iscoroutinefunction

    assert dj.ReplikitMiddleware.sync_capable and dj.ReplikitMiddleware.async_capable

    async def async_view(request):
        return None

    def sync_view(request):
        return None

    assert iscoroutinefunction(dj.ReplikitMiddleware(async_view))
    assert not iscoroutinefunction(dj.ReplikitMiddleware(sync_view))


def test_use_session_in_async_code(rd):
    """``async with use_session()``: an async autocommit write's LSN is recorded when the block
    ends (that is a query: made through sync_to_async, not on the event loop); the scope is the
    block's only; a sync ``with`` stays as it was."""
    from asgiref.sync import async_to_sync
    from comments.models import Comment

    async def scenario():
        async with rd.use_session(consistency="monotonic") as session:
            assert rd.current_session() is session
            await Comment.objects.acreate(thread="async-scope", author="a", text="x")
            assert not session.write_lsn.valid()  # autocommit: its LSN is read at the end
        assert rd.current_session() is not session
        with pytest.raises(RuntimeError):
            async with rd.use_session(session):
                raise RuntimeError("no LSN to read")
        return session

    session = async_to_sync(scenario)()
    assert session.write_lsn.valid()
    with rd.use_session(session) as same:
        assert same is session
        assert Comment.objects.filter(thread="async-scope").count() >= 1


# ---- per-caller state: each asyncio task (and each thread) its own consistency and session
def pause_replicas(cluster):
    for name in cluster.replica_names:
        cluster.pause_replay(name)


def test_consistency_outside_a_request_is_per_asyncio_task(rd, pg_cluster_reset):
    """An async script (asyncio.run, no request), replicas paused after a row is written: task A
    holds ``consistency("strong")`` and task B ``consistency("eventual")``, both open while each
    reads the row in turn. A's read must go to the primary and see it, B's to a replica; each
    task has its own session (A's write afterwards is in A's only) and its own last_route()."""
    import contextvars

    from asgiref.sync import sync_to_async
    from comments.models import Comment
    from django.db import connections

    pause_replicas(pg_cluster_reset)
    row = Comment.objects.create(thread="tasks", author="someone", text="else's").id

    async def scenario():
        a_in, b_read, a_read = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def task_a():
            with rd.consistency("strong"):
                a_in.set()
                await b_read.wait()  # B's eventual block is open, until A has read
                found = await Comment.objects.filter(id=row).aexists()
                route = rd.last_route()
                a_read.set()
            await Comment.objects.acreate(thread="tasks-a", author="a", text="mine")
            assert await Comment.objects.filter(thread="tasks-a").aexists()  # its LSN is read first
            return found, route, rd.current_session()

        async def task_b():
            await a_in.wait()
            with rd.consistency("eventual"):
                found = await Comment.objects.filter(id=row).aexists()
                route = rd.last_route()
                b_read.set()
                await a_read.wait()
            return found, route, rd.current_session()

        try:
            return await asyncio.gather(task_a(), task_b())
        finally:
            await sync_to_async(connections.close_all)()

    # A fresh context, as a script's asyncio.run has (this thread's own state is not inherited).
    (a_found, a_route, a_session), (b_found, b_route, b_session) = contextvars.Context().run(
        asyncio.run, scenario())
    print(f"\n[django tasks] A: {a_found} by {a_route}; B: {b_found} by {b_route}")
    assert a_found, "task A's strong read was not strong: a stale read"
    assert a_route.node == "primary" and a_route.reason == replikit.Reason.STRONG_READ
    assert not b_found and b_route.node in ("r1", "r2") and b_route.reason == replikit.Reason.REPLICA_AVAILABLE
    assert a_session is not b_session and a_session.write_lsn.valid() and not b_session.write_lsn.valid()


def test_a_requests_tasks_each_have_their_consistency(rd, pg_cluster_reset):
    """An async view gathers two tasks over the request's session: A reads the request's write
    at read-your-writes while B holds ``consistency("eventual")`` open. Replicas paused: A is
    served by the primary and sees the write, B by a replica; both share the request's session."""
    import types

    from asgiref.sync import async_to_sync
    from django.http import JsonResponse
    from django.test import AsyncClient, override_settings
    from django.urls import path

    from comments.models import Comment

    async def levels(request):
        c = await Comment.objects.acreate(thread="request-tasks", author="a", text="x")
        b_in, a_read = asyncio.Event(), asyncio.Event()

        async def task_a():
            await b_in.wait()
            found = await Comment.objects.filter(id=c.id).aexists()
            a_read.set()
            return found, rd.last_route(), rd.current_session()

        async def task_b():
            with rd.consistency("eventual"):
                found = await Comment.objects.filter(id=c.id).aexists()
                route = rd.last_route()
                b_in.set()
                await a_read.wait()
            return found, route, rd.current_session()

        results = await asyncio.gather(task_a(), task_b())
        return JsonResponse({name: {"found": found, "node": route.node, "reason": route.reason.name.lower(),
                                    "requests_session": session is request.replikit_session}
                             for name, (found, route, session) in zip("ab", results)})

    module = types.ModuleType("replikit_test_task_urls")
    module.urlpatterns = [path("levels", levels)]
    sys.modules[module.__name__] = module
    pause_replicas(pg_cluster_reset)
    with override_settings(ROOT_URLCONF=module.__name__):
        body = async_to_sync(AsyncClient().get)("/levels").json()
    print(f"\n[django request tasks] {body}")
    a, b = body["a"], body["b"]
    assert a["found"] and a["node"] == "primary" and a["reason"] != "replica_available" and a["requests_session"]
    assert not b["found"] and b["node"] in ("r1", "r2") and b["reason"] == "replica_available"
    assert b["requests_session"]


def test_consistency_and_session_outside_a_request_are_per_thread(rd, pg_cluster_reset):
    """Sync code in two threads, no request: one holds ``consistency("strong")`` and the other
    ``consistency("eventual")``, their reads interleaved; each read runs at its thread's level,
    and each thread has a session of its own (the writer's write is in its session only)."""
    from comments.models import Comment
    from django.db import connections

    pause_replicas(pg_cluster_reset)
    barrier = threading.Barrier(2, timeout=20)
    results = {}

    def worker(name, level):
        try:
            with rd.consistency(level):
                barrier.wait()  # both blocks open
                if name == "strong":
                    Comment.objects.create(thread="threads", author=name, text="x")
                barrier.wait()
                routes = []
                for _ in range(5):
                    Comment.objects.filter(thread="threads").exists()
                    routes.append((rd.last_route().reason, rd.last_route().node))
                    barrier.wait()  # one read each per round
            results[name] = (routes, rd.current_session())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=a) for a in (("strong", "strong"), ("eventual", "eventual"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    strong, eventual = results["strong"], results["eventual"]
    assert strong[0] == [(replikit.Reason.STRONG_READ, "primary")] * 5
    assert {reason for reason, _ in eventual[0]} == {replikit.Reason.REPLICA_AVAILABLE}
    assert {node for _, node in eventual[0]} <= {"r1", "r2"}
    assert strong[1] is not eventual[1] and strong[1].write_lsn.valid() and not eventual[1].write_lsn.valid()
    assert rd.current_session() is not strong[1] and rd.current_session() is not eventual[1]


def test_consistency_block_applies_to_its_own_session(rd):
    """consistency() is for the session it was entered in: a use_session block inside it reads at
    its own level, and the outer level is back after it."""
    from comments.models import Comment

    with rd.consistency("strong"):
        with rd.use_session(consistency="eventual"):
            Comment.objects.filter(thread="nested").exists()
            assert rd.last_route().reason == replikit.Reason.REPLICA_AVAILABLE
        Comment.objects.filter(thread="nested").exists()
        assert rd.last_route().reason == replikit.Reason.STRONG_READ
    with rd.use_session(consistency="eventual"):
        with rd.consistency("strong"):
            Comment.objects.filter(thread="nested").exists()
            assert rd.last_route().reason == replikit.Reason.STRONG_READ
        Comment.objects.filter(thread="nested").exists()
        assert rd.last_route().reason == replikit.Reason.REPLICA_AVAILABLE


def test_blocks_in_a_generator_resumed_through_sync_to_async(rd):
    """A generator's consistency() (or use_session()) block begun in one sync_to_async call and
    ended in another (each runs in its own copy of the task's context) ends without an error, and
    the task's reads are back at its own level and session after it."""
    from asgiref.sync import sync_to_async
    from comments.models import Comment

    def read_reason():
        Comment.objects.filter(thread="gen").exists()
        return rd.last_route().reason

    def strong_rows():
        with rd.consistency("strong"):
            yield read_reason()
            yield read_reason()

    def session_rows(session):
        with rd.use_session(session):
            yield rd.current_session()
            yield rd.current_session()

    async def main():
        gen = strong_rows()
        assert await sync_to_async(next)(gen) == replikit.Reason.STRONG_READ
        await sync_to_async(gen.close)()  # the block ends in another context than it began in
        after = await sync_to_async(read_reason)()
        own = await sync_to_async(rd.current_session)()
        scoped = replikit.Session()
        rows = session_rows(scoped)
        assert await sync_to_async(next)(rows) is scoped
        await sync_to_async(rows.close)()
        return after, own, await sync_to_async(rd.current_session)()

    after, own, own_after = asyncio.run(main())
    assert after != replikit.Reason.STRONG_READ
    assert own_after is own
