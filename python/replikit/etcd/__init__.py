"""etcd v3 for replikit's coordination across application hosts.

``EtcdClient`` talks to etcd (3.4 or later) through its v3 JSON gateway (``/v3/kv/range``,
``/v3/kv/txn``, ``/v3/lease/...``, ``/v3/watch``; keys and values base64), with the standard
library only::

    from replikit.etcd import EtcdClient

    client = EtcdClient(["http://10.0.0.1:2379", "http://10.0.0.2:2379"], timeout_ms=1000)
    lease = client.grant(5)
    created, revision = client.create("/replikit/c1/leader", b"host-a", lease=lease)

Every call is bounded by ``timeout_ms`` over all the endpoints it tries; when none answers
(or the one that answers has lost quorum) it raises ``CoordinationUnavailable`` (a
``replikit.ConnectionError``); any other refusal by etcd is ``EtcdError``. TLS files and
credentials come from the constructor's options; neither a password nor a token is ever
shown in a repr, an error or a log record.
"""

from __future__ import annotations

from ._client import EtcdClient, KeyValue, WatchEvent
from ._errors import CoordinationUnavailable, EtcdError
from ._watch import Watch

__all__ = ["CoordinationUnavailable", "EtcdClient", "EtcdError", "KeyValue", "Watch", "WatchEvent"]
