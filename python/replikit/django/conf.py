"""The REPLIKIT settings dict, checked once: every mistake is an ImproperlyConfigured naming
the key."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from typing import Any, Dict, List, Mapping, Optional, Tuple

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from .. import _core
from .._core import Consistency, DatabaseOptions

DEFAULT_HEADER = "X-Replikit-Token"
DEFAULT_COOKIE = "replikit_token"
_KEYS = ("PRIMARY", "REPLICAS", "NODE_NAMES", "CONSISTENCY", "SIGNING_KEY", "HEADER", "COOKIE",
         "COOKIE_PATH", "COOKIE_SAMESITE", "COOKIE_SECURE", "COOKIE_DOMAIN", "COOKIE_MAX_AGE_MS", "OPTIONS",
         "WAIT_FOR_REPLICA_MS")
_ENGINES = ("django.db.backends.postgresql",)
_KDF_SALT = b"replikit.django.token"


@dataclasses.dataclass(frozen=True)
class Config:
    """The REPLIKIT settings, checked: aliases, node names, defaults and the token transport."""

    primary: str
    replicas: Tuple[str, ...]
    node_of: Dict[str, str]          # alias -> node name
    alias_of: Dict[str, str]         # node name -> alias
    consistency: Consistency
    signing_key: bytes
    transport: Dict[str, Any]        # TokenTransport keywords (header, cookie, cookie_*)
    options: DatabaseOptions


def _bad(key: str, message: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"REPLIKIT['{key}']: {message}")


def _alias(value: Any, key: str, databases: Mapping[str, Any]) -> str:
    if not isinstance(value, str):
        raise _bad(key, f"expected a DATABASES alias (str), got {type(value).__name__}")
    if value not in databases:
        raise _bad(key, f"{value!r} is not in DATABASES (aliases: {', '.join(sorted(databases))})")
    engine = databases[value].get("ENGINE", "")
    if engine not in _ENGINES and not str(engine).startswith(_ENGINES[0]):
        raise _bad(key, f"DATABASES[{value!r}] uses {engine!r}; replikit routes PostgreSQL "
                        f"({_ENGINES[0]}) aliases")
    return value


def _level(value: Any) -> Consistency:
    if isinstance(value, Consistency):
        return value
    names = {c.name.lower(): c for c in Consistency}
    if isinstance(value, str) and value.lower() in names:
        return names[value.lower()]
    raise _bad("CONSISTENCY", f"unknown consistency {value!r} (one of {', '.join(names)})")


def _signing_key(value: Any) -> bytes:
    if value is None:
        secret = getattr(django_settings, "SECRET_KEY", "")
        if not secret:
            raise _bad("SIGNING_KEY", "not set and settings.SECRET_KEY is empty: tokens must be signed")
        # A key of its own, derived from SECRET_KEY: a token MAC never equals another use's.
        return hmac.new(str(secret).encode(), _KDF_SALT, hashlib.sha256).digest()
    if isinstance(value, str):
        value = value.encode()
    if not isinstance(value, bytes):
        raise _bad("SIGNING_KEY", f"expected bytes or str, got {type(value).__name__}")
    if len(value) < 16:
        raise _bad("SIGNING_KEY", f"must be at least 16 bytes, got {len(value)}")
    return value


def _options(raw: Any, wait: Any) -> DatabaseOptions:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise _bad("OPTIONS", f"expected a dict of replikit.DatabaseOptions fields, got {type(raw).__name__}")
    raw = dict(raw)
    if wait is not None:
        raw["wait_for_replica_ms"] = wait
    known = {k for k in dir(DatabaseOptions()) if not k.startswith("_")}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise _bad("OPTIONS", f"unknown option(s) {', '.join(map(repr, unknown))} (see replikit.DatabaseOptions)")
    try:
        return DatabaseOptions().replace(**raw)
    except (_core.InvalidArgument, TypeError) as exc:
        named = wait is not None and getattr(exc, "argument", "") == "wait_for_replica_ms"
        raise _bad("WAIT_FOR_REPLICA_MS" if named else "OPTIONS", str(exc)) from exc


def _replicas(value: Any, primary: str, databases: Mapping[str, Any]) -> Tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise _bad("REPLICAS", f"expected a list of DATABASES aliases, got {type(value).__name__}")
    out: List[str] = []
    for alias in value:
        _alias(alias, "REPLICAS", databases)
        if alias == primary or alias in out:
            raise _bad("REPLICAS", f"{alias!r} is listed twice (or is the primary)")
        out.append(alias)
    return tuple(out)


def _names(raw: Any, aliases: Tuple[str, ...]) -> Dict[str, str]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise _bad("NODE_NAMES", "expected a dict {alias: node name} of str")
    stray = sorted(set(raw) - set(aliases))
    if stray:
        raise _bad("NODE_NAMES", f"{', '.join(map(repr, stray))} is not PRIMARY or in REPLICAS")
    names = {alias: raw.get(alias, alias) for alias in aliases}
    if len(set(names.values())) != len(names):
        raise _bad("NODE_NAMES", f"node names must differ, got {names}")
    return names


def load(raw: Optional[Mapping[str, Any]] = None) -> Config:
    """The checked Config of settings.REPLIKIT (or of `raw`)."""
    if raw is None:
        raw = getattr(django_settings, "REPLIKIT", None)
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured("settings.REPLIKIT must be a dict (at least {'REPLICAS': [aliases]}), "
                                   f"got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise ImproperlyConfigured(f"settings.REPLIKIT: unknown key(s) {', '.join(map(repr, unknown))} "
                                   f"(known: {', '.join(_KEYS)})")
    databases = django_settings.DATABASES
    primary = _alias(raw.get("PRIMARY", "default"), "PRIMARY", databases)
    if "REPLICAS" not in raw:
        raise _bad("REPLICAS", "required: the DATABASES aliases of the replicas (may be [])")
    replicas = _replicas(raw["REPLICAS"], primary, databases)
    node_of = _names(raw.get("NODE_NAMES"), (primary,) + replicas)
    transport = {"header": raw.get("HEADER", DEFAULT_HEADER), "cookie": raw.get("COOKIE", DEFAULT_COOKIE),
                 "cookie_path": raw.get("COOKIE_PATH", "/"), "cookie_samesite": raw.get("COOKIE_SAMESITE", "Lax"),
                 "cookie_secure": raw.get("COOKIE_SECURE", False), "cookie_domain": raw.get("COOKIE_DOMAIN"),
                 "cookie_max_age_ms": raw.get("COOKIE_MAX_AGE_MS")}
    key = _signing_key(raw.get("SIGNING_KEY"))
    try:
        from ..web import TokenTransport
        TokenTransport(key, **transport)  # checks the names and cookie attributes
    except (_core.InvalidArgument, TypeError) as exc:
        where = getattr(exc, "argument", "HEADER").upper()
        raise _bad(where if where in _KEYS else "HEADER", str(exc)) from exc
    return Config(primary=primary, replicas=replicas, node_of=node_of,
                  alias_of={v: k for k, v in node_of.items()},
                  consistency=_level(raw.get("CONSISTENCY", Consistency.READ_YOUR_WRITES)),
                  signing_key=key, transport=transport,
                  options=_options(raw.get("OPTIONS"), raw.get("WAIT_FOR_REPLICA_MS")))
