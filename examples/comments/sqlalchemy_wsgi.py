#!/usr/bin/env python3
"""The comments service on SQLAlchemy: replikit.sqlalchemy's routed sessions (one engine per
node) and replikit.web's WSGIMiddleware, the same HTTP API as the Django app and plain_wsgi.py
(client.py works against any of them, and a token from one is good in the others: all sign with
COMMENTS_TOKEN_KEY). Uses the table `manage.py migrate` made. Runs on 127.0.0.1:PORT; prints
"listening on PORT"."""

from typing import Any, Callable, Dict, List
from urllib.parse import parse_qs

from plain_wsgi import TOKEN_KEY, parse_post, respond, serve, setup
from sqlalchemy import text

import replikit.web
from replikit.sqlalchemy import RoutedEngines, routed_sessionmaker


def make_app(engines: RoutedEngines) -> Callable[..., Any]:
    Session = routed_sessionmaker(engines)

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        session = replikit.web.current_session()
        if environ["REQUEST_METHOD"] == "POST":
            try:
                values = dict(zip(("thread", "author", "text"), parse_post(environ)))
            except (ValueError, KeyError, TypeError) as exc:
                return respond(start_response, "400 Bad Request", {"error": f"expected thread, author, text: {exc}"})
            with Session(replikit_session=session) as db:
                new_id = db.execute(text("INSERT INTO comments_comment (thread, author, text, created) "
                                         "VALUES (:thread, :author, :text, now()) RETURNING id"), values).scalar_one()
                db.commit()  # on the primary; the commit LSN lands in `session`, so in the token
            return respond(start_response, "201 Created", {"id": new_id})
        thread = parse_qs(environ.get("QUERY_STRING", "")).get("thread", [""])[0]
        with Session(replikit_session=session) as db:  # read-your-writes by default
            rows = db.execute(text("SELECT id, author, text FROM comments_comment WHERE thread = :thread "
                                   "ORDER BY id DESC LIMIT 100"), {"thread": thread}).all()
        route = db.last_route  # this request's read (engines.last_route: any thread's latest)
        return respond(start_response, "200 OK", {
            "comments": [{"id": i, "author": a, "text": t} for i, a, t in rows],
            "node": route.node or "primary", "reason": route.reason.name.lower()})

    return replikit.web.WSGIMiddleware(app, TOKEN_KEY)


def main() -> None:
    port, primary, replicas, options = setup(__doc__ or "")
    with RoutedEngines(primary, replicas, **options) as engines:
        engines.wait_probes(2, 5000)
        serve(port, make_app(engines))


if __name__ == "__main__":
    main()
