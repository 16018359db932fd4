#!/usr/bin/env python3
"""Runs the comments app on 127.0.0.1:PORT (one app process; start two to see the token carry
a write from one to the other). Prints "listening on PORT" once it accepts requests."""

import argparse
import os
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - wsgiref's name
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "comments_site.settings")
    from comments_site.wsgi import application

    with make_server("127.0.0.1", args.port, application, server_class=_Server, handler_class=_QuietHandler) as srv:
        print(f"listening on {args.port}", flush=True)
        srv.serve_forever()


if __name__ == "__main__":
    main()
