"""The initdb template: ``initdb`` runs once into a cache; every node is a copy of it.

A cleanly stopped template copied with ``cp -a`` is how bring-up stays fast: three copies
take about 0.1 s on tmpfs, where three ``initdb`` runs take seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from typing import Dict, Optional

from .tools import ServerTools

# Settings baked into the template's postgresql.conf (they are part of the template's
# cache key). Per-node settings go into postgresql.auto.conf instead.
TEMPLATE_SETTINGS: Dict[str, str] = {
    "fsync": "off",  # a throwaway test cluster: durability is not the point
    "wal_level": "replica",
    "wal_log_hints": "on",  # lets pg_rewind rejoin an old primary
    "max_wal_senders": "16",
    "max_replication_slots": "16",
    "hot_standby": "on",
    "wal_retrieve_retry_interval": "'100ms'",  # replicas reconnect fast after a restart
    "wal_receiver_status_interval": "'1s'",
    "shared_buffers": "'32MB'",
    "unix_socket_directories": "''",  # TCP on loopback only; no socket files to clash
    "logging_collector": "off",
    "log_line_prefix": "'%m [%p] %q%a '",
    "log_min_messages": "warning",
}
INITDB_ARGS = ("--no-sync", "-k", "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C")


def cache_dir(chosen: Optional[str] = None) -> str:
    """Where templates are cached: ``chosen``, ``$REPLIKIT_PG_TEMPLATE_DIR`` or the temp dir."""
    return chosen or os.environ.get("REPLIKIT_PG_TEMPLATE_DIR") or tempfile.gettempdir()


def template_dir(tools: ServerTools, cache: str) -> str:
    """The cache entry for these binaries, initdb arguments, settings and server user."""
    key = json.dumps({"bin": os.path.realpath(tools.bin_dir), "initdb": INITDB_ARGS,
                      "settings": TEMPLATE_SETTINGS}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    major = re.search(r"/(\d+)/bin/?$", tools.bin_dir)
    version = major.group(1) if major else "x"
    return os.path.join(cache, f"replikit-pg-template-{version}-{tools.run_as_name}-{digest}")


def ensure_template(tools: ServerTools, cache: str, private_dir: str) -> str:
    """Return the data directory of a cleanly stopped initdb template, building it if needed.

    A cached template owned by someone else is not trusted: a private one is built under
    ``private_dir`` instead.
    """
    final = template_dir(tools, cache)
    data = os.path.join(final, "data")
    if os.path.exists(os.path.join(final, "template.json")):
        if os.stat(final).st_uid == tools.owner_uid and os.stat(data).st_uid == tools.owner_uid:
            return data
        final = os.path.join(private_dir, "template")
        data = os.path.join(final, "data")
        if os.path.exists(os.path.join(final, "template.json")):
            return data
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=os.path.basename(final) + ".tmp-", dir=parent)
    try:
        _build(tools, staging)
        try:
            os.rename(staging, final)  # atomic: concurrent builders race safely
        except OSError:
            if not os.path.exists(os.path.join(final, "template.json")):
                raise
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging, ignore_errors=True)
    return data


def _build(tools: ServerTools, staging: str) -> None:
    tools.chown(staging)
    staging_data = os.path.join(staging, "data")
    tools.run([tools.initdb, "-D", staging_data, *INITDB_ARGS], timeout_s=120, cwd=staging)
    with open(os.path.join(staging_data, "postgresql.conf"), "a", encoding="utf-8") as handle:
        handle.write("\n# replikit LocalCluster template settings\n")
        for key, value in TEMPLATE_SETTINGS.items():
            handle.write(f"{key} = {value}\n")
    tools.write_file(os.path.join(staging, "template.json"), json.dumps(
        {"initdb": INITDB_ARGS, "settings": TEMPLATE_SETTINGS, "pg_bin_dir": tools.bin_dir},
        indent=1), mode=0o644)
    os.chmod(staging, 0o755)
