"""The comments example (examples/comments) as a user runs it: `replikit cluster up`, `manage.py
migrate` and `replikit_status`, two app processes (serve.py), and client.py posting through one
and reading back through the other with the token in the header, with both replicas' replay
paused: every read with the token sees its comment, every read without it misses it."""

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


def start_app(port, env):
    proc = subprocess.Popen([sys.executable, "serve.py", str(port)], cwd=EXAMPLE, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # bounded: serve.py prints it or exits (then readline returns "")
    if line.strip() != f"listening on {port}":
        proc.kill()
        raise AssertionError(f"serve.py {port} did not start: {line}{proc.stderr.read()}")
    return proc


def test_comments_example_two_app_processes_hand_off_through_the_token():
    require_pg_server()
    from replikit.testing import LocalCluster

    parent, cluster_dir = new_cluster_dir("rk-example-")
    env = dict(os.environ, REPLIKIT_CLUSTER_DIR=cluster_dir, COMMENTS_WAIT_FOR_REPLICA_MS="0",
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
        out = run([sys.executable, "client.py", f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}",
                   "--rounds", "5"], env)
        print(out)
        lines = [json.loads(line) for line in out.splitlines()]
        assert lines[-1] == {"rounds": 5, "seen_with_token": 5, "seen_without_token": 0}
        for step in lines[:-1]:
            assert step["with_token"] == {"seen": True, "node": "primary"}
            assert step["without_token"]["node"] in ("r1", "r2")
            assert step["token"].count(".") >= 4  # signed
    finally:
        for proc in apps:
            proc.kill()
            proc.wait(10)
        subprocess.run([sys.executable, "-m", "replikit", "cluster", "down", "--dir", cluster_dir],
                       capture_output=True, timeout=60)
        shutil.rmtree(parent, ignore_errors=True)
