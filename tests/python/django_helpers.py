"""What the replikit.django tests (test_django*.py) share (`from django_helpers import ...`): the
comments example's settings over the session cluster, a request helper and a replay pause. Their
fixtures (`dj`, `rd`) are in conftest.py, so that Django is configured once per process whichever
of these modules runs first."""

from __future__ import annotations

import json
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "comments"
SECRET = "test secret key for replikit.django"
HEADER = "X-Replikit-Token"


def database(cluster, node):
    return {"ENGINE": "django.db.backends.postgresql", "NAME": "postgres", "USER": "postgres",
            "HOST": cluster.host, "PORT": str(cluster.node(node).port)}


def post(client, thread, text):
    from django.test import Client  # noqa: F401

    response = client.post("/comments", json.dumps({"thread": thread, "author": "a", "text": text}),
                           content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()["id"], response.headers[HEADER]


def pause_replicas(cluster):
    for name in cluster.replica_names:
        cluster.pause_replay(name)
