"""The comments example (examples/comments) as a user runs it: `replikit cluster up`, `manage.py
migrate` and `replikit_status`, two app processes (serve.py), and client.py posting through one
and reading back through the other with the token in the header, with both replicas' replay
paused: every read with the token sees its comment, every read without it misses it. Then the
same between a Django process, the framework-free one (plain_wsgi.py) and the SQLAlchemy one
(sqlalchemy_wsgi.py), both ways."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import new_cluster_dir, require_pg_server

pytest.importorskip("django")
pytest.importorskip("psycopg_pool")

pytestmark = pytest.mark.pg

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "comments"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(args, env, timeout=120):
    done = subprocess.run(args, cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}: rc {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def start_app(port, env, program="serve.py"):
    proc = subprocess.Popen([sys.executable, program, str(port)], cwd=EXAMPLE, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # bounded: serve.py prints it or exits (then readline returns "")
    if line.strip() != f"listening on {port}":
        proc.kill()
        raise AssertionError(f"serve.py {port} did not start: {line}{proc.stderr.read()}")
    return proc


def check_handoff(port_a, port_b, rounds, env):
    out = run([sys.executable, "client.py", f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}",
               "--rounds", str(rounds)], env)
    print(out)
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[-1] == {"rounds": rounds, "seen_with_token": rounds, "seen_without_token": 0}
    for step in lines[:-1]:
        assert step["with_token"] == {"seen": True, "node": "primary"}
        assert step["without_token"]["node"] in ("r1", "r2")
        assert step["token"].count(".") >= 4  # signed


def test_comments_example_two_app_processes_hand_off_through_the_token():
    require_pg_server()
    from replikit.testing import LocalCluster

    parent, cluster_dir = new_cluster_dir("rk-example-")
    env = dict(os.environ, REPLIKIT_CLUSTER_DIR=cluster_dir, COMMENTS_WAIT_FOR_REPLICA_MS="0",
               # The replicas stay paused for the whole test: not excluded as lagging (the
               # point here is the token; exclusion is test_django.py's).
               COMMENTS_MAX_LAG_MS="600000",
               PYTHONPATH=os.pathsep.join(filter(None, [str(EXAMPLE), os.environ.get("PYTHONPATH")])))
    apps = []
    try:
        run([sys.executable, "-m", "replikit", "cluster", "up", "--dir", cluster_dir], env)
        run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], env)
        status = run([sys.executable, "manage.py", "replikit_status"], env)
        print(f"\n{status}")
        assert [line.split()[:4] for line in status.splitlines()[1:4]] == [
            ["default", "primary", "primary", "yes"], ["r1", "r1", "replica", "yes"], ["r2", "r2", "replica", "yes"]]
        ports = [free_port(), free_port()]
        apps = [start_app(port, env) for port in ports]
        cluster = LocalCluster.attach(cluster_dir)
        for name in cluster.replica_names:
            cluster.pause_replay(name)
        check_handoff(ports[0], ports[1], 5, env)
        # The framework-free app (replikit.web + replikit.psycopg) takes the Django app's token
        # and the other way round.
        plain = free_port()
        apps.append(start_app(plain, env, "plain_wsgi.py"))
        check_handoff(ports[0], plain, 3, env)
        check_handoff(plain, ports[1], 3, env)
        # The SQLAlchemy app (replikit.web + replikit.sqlalchemy) likewise, both ways.
        orm = free_port()
        apps.append(start_app(orm, env, "sqlalchemy_wsgi.py"))
        check_handoff(ports[0], orm, 3, env)
        check_handoff(orm, plain, 3, env)
    finally:
        for proc in apps:
            proc.kill()
            proc.wait(10)
        subprocess.run([sys.executable, "-m", "replikit", "cluster", "down", "--dir", cluster_dir],
                       capture_output=True, timeout=60)
        shutil.rmtree(parent, ignore_errors=True)
