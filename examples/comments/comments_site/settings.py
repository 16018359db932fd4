"""Settings of the comments example: one DATABASES alias per node of the cluster that
`replikit cluster up --dir DIR` started (DIR from REPLIKIT_CLUSTER_DIR, default
./.replikit-cluster), routed by replikit."""

import os

from replikit.testing import LocalCluster

CLUSTER_DIR = os.environ.get("REPLIKIT_CLUSTER_DIR", ".replikit-cluster")
_cluster = LocalCluster.attach(CLUSTER_DIR)


def _database(node: str) -> dict:
    return {"ENGINE": "django.db.backends.postgresql", "NAME": "postgres", "USER": "postgres",
            "HOST": _cluster.host, "PORT": str(_cluster.node(node).port), "CONN_MAX_AGE": 60}


SECRET_KEY = os.environ.get("COMMENTS_SECRET_KEY", "example only: set COMMENTS_SECRET_KEY in production")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["replikit.django", "comments"]
MIDDLEWARE = ["replikit.django.ReplikitMiddleware"]
ROOT_URLCONF = "comments_site.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES = {"default": _database("primary")}
DATABASES.update({name: _database(name) for name in _cluster.replica_names})
DATABASE_ROUTERS = ["replikit.django.ReplikitRouter"]
REPLIKIT = {
    # The same key as plain_wsgi.py's: a token from either app is good in the other.
    "SIGNING_KEY": os.environ.get("COMMENTS_TOKEN_KEY", "example only: set COMMENTS_TOKEN_KEY in production"),
    "PRIMARY": "default",
    "REPLICAS": list(_cluster.replica_names),
    "NODE_NAMES": {"default": "primary"},
    # A read that no replica covers yet waits up to this long for one before the primary.
    "WAIT_FOR_REPLICA_MS": float(os.environ.get("COMMENTS_WAIT_FOR_REPLICA_MS", "100")),
    # A replica further behind than this (in time) serves no reads until it recovers.
    "OPTIONS": {"max_lag_ms": float(os.environ.get("COMMENTS_MAX_LAG_MS", "1000"))},
}
