#!/usr/bin/env python3
"""The comments service without a framework: replikit.psycopg's ConnectionRouter and
replikit.web's WSGIMiddleware, the same HTTP API as the Django app (client.py works against
either, and a token from one is good in the other: both sign with COMMENTS_TOKEN_KEY). Uses the
table `manage.py migrate` made. Runs on 127.0.0.1:PORT; prints "listening on PORT"."""

import argparse
import json
import os
from socketserver import ThreadingMixIn
from typing import Any, Callable, Dict, List, Tuple
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import replikit.web
from replikit.psycopg import ConnectionRouter
from replikit.testing import LocalCluster

TOKEN_KEY = os.environ.get("COMMENTS_TOKEN_KEY", "example only: set COMMENTS_TOKEN_KEY in production")


def respond(start_response: Callable[..., Any], status: str, body: Dict[str, Any]) -> List[bytes]:
    start_response(status, [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


def parse_post(environ: Dict[str, Any]) -> Tuple[str, str, str]:
    """(thread, author, text) of a POST's JSON body; ValueError, KeyError or TypeError if bad."""
    body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
    return str(body["thread"]), str(body["author"]), str(body["text"])


def make_app(router: ConnectionRouter) -> Callable[..., Any]:
    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        session = replikit.web.current_session()
        if environ["REQUEST_METHOD"] == "POST":
            try:
                values = parse_post(environ)
            except (ValueError, KeyError, TypeError) as exc:
                return respond(start_response, "400 Bad Request", {"error": f"expected thread, author, text: {exc}"})
            with router.write(session) as conn:
                row = conn.execute("INSERT INTO comments_comment (thread, author, text, created) "
                                   "VALUES (%s, %s, %s, now()) RETURNING id", values).fetchone()
            return respond(start_response, "201 Created", {"id": row[0]})
        thread = parse_qs(environ.get("QUERY_STRING", "")).get("thread", [""])[0]
        with router.read(session) as conn:
            rows = conn.execute("SELECT id, author, text FROM comments_comment WHERE thread = %s "
                                "ORDER BY id DESC LIMIT 100", (thread,)).fetchall()
        route = router.last_route
        return respond(start_response, "200 OK", {
            "comments": [{"id": i, "author": a, "text": t} for i, a, t in rows],
            "node": route.node or "primary", "reason": route.reason.name.lower()})

    return replikit.web.WSGIMiddleware(app, TOKEN_KEY)  # the one line a framework needs


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - wsgiref's name
        pass


def setup(description: str) -> Tuple[int, Tuple[str, str], List[Tuple[str, str]], Dict[str, float]]:
    """The port from the command line, the nodes of the cluster in REPLIKIT_CLUSTER_DIR and the
    routing options from the environment."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    cluster = LocalCluster.attach(os.environ.get("REPLIKIT_CLUSTER_DIR", ".replikit-cluster"))
    replicas = [(name, cluster.dsn(name)) for name in cluster.replica_names]
    options = {"wait_for_replica_ms": float(os.environ.get("COMMENTS_WAIT_FOR_REPLICA_MS", "100")),
               "max_lag_ms": float(os.environ.get("COMMENTS_MAX_LAG_MS", "1000"))}
    return args.port, ("primary", cluster.dsn("primary")), replicas, options


def serve(port: int, app: Callable[..., Any]) -> None:
    with make_server("127.0.0.1", port, app, server_class=_Server, handler_class=_QuietHandler) as srv:
        print(f"listening on {port}", flush=True)
        srv.serve_forever()


def main() -> None:
    port, primary, replicas, options = setup(__doc__ or "")
    with ConnectionRouter(primary, replicas, **options) as router:
        router.wait_probes(2, 5000)
        serve(port, make_app(router))


if __name__ == "__main__":
    main()
