"""Where the monitor's nodes and settings come from: the command line, a config file (TOML or
JSON) or a ``replikit.testing`` cluster directory.

Every source ends as one ``MonitorSettings``: the nodes in order (the primary first) and the
settings, each flag overriding the config file's value of the same name.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

# The monitor's alert threshold: a replica more than 5 s behind fires; it recovers below half
# of that (LagConfig's rule when no recovery mark is given).
DEFAULT_ALERT_LAG_MS = 5000.0
DEFAULT_ALERT_TIMEOUT_MS = 10_000.0
DEFAULT_EVENTS_SHOWN = 10
MAX_EVENTS_SHOWN = 1000
MAX_NODES = 256

# Config-file keys and their checks: (kind, low, high). None: no bound on that side.
_NUMBERS: Dict[str, Tuple[type, float, Optional[float]]] = {
    "probe_interval_ms": (float, 1.0, 60_000.0),
    "probe_timeout_ms": (float, 1.0, 600_000.0),
    "connect_timeout_ms": (float, 1.0, 600_000.0),
    "refresh_ms": (float, 10.0, 3_600_000.0),
    "alert_lag_ms": (float, 0.001, None),
    "recover_lag_ms": (float, 0.0, None),
    "alert_lag_bytes": (int, 0, None),
    "recover_lag_bytes": (int, 0, None),
    "alert_timeout_ms": (float, 1.0, 3_600_000.0),
    "events": (int, 0, MAX_EVENTS_SHOWN),
    "prometheus_port": (int, 0, 65535),
}
_STRINGS = ("primary", "on_alert", "prometheus_addr")
KNOWN_KEYS = sorted(set(_NUMBERS) | set(_STRINGS) | {"nodes"})


class SettingsError(ValueError):
    """A bad flag, config file or cluster directory; the message says which and why."""


@dataclass
class NodeSpec:
    """One node to watch: its name, its libpq DSN, and optional routing attributes."""

    name: str
    dsn: str
    extra: Dict[str, Any] = field(default_factory=dict)

    def as_backend_node(self) -> Dict[str, Any]:
        return {"name": self.name, "dsn": self.dsn, **self.extra}


@dataclass
class MonitorSettings:
    """Everything the monitor needs; ``nodes[0]`` is the primary."""

    nodes: List[NodeSpec]
    probe_interval_ms: Optional[float] = None
    probe_timeout_ms: Optional[float] = None
    connect_timeout_ms: Optional[float] = None
    refresh_ms: Optional[float] = None
    alert_lag_ms: float = DEFAULT_ALERT_LAG_MS
    recover_lag_ms: Optional[float] = None
    alert_lag_bytes: int = 0
    recover_lag_bytes: Optional[int] = None
    on_alert: Optional[str] = None
    alert_timeout_ms: float = DEFAULT_ALERT_TIMEOUT_MS
    events: int = DEFAULT_EVENTS_SHOWN
    prometheus_port: Optional[int] = None
    prometheus_addr: str = "127.0.0.1"
    source: str = ""

    def database_options(self) -> Dict[str, Any]:
        """Keyword options of the monitor's ReplicatedDatabase: the alert thresholds are the
        lag tracker's own, so that alerts and routing turn at the same points."""
        options: Dict[str, Any] = {"max_lag_ms": self.alert_lag_ms,
                                   "max_lag_bytes": self.alert_lag_bytes,
                                   "pool_size": 1}
        for name in ("recover_lag_ms", "recover_lag_bytes", "probe_interval_ms",
                     "probe_timeout_ms", "connect_timeout_ms"):
            value = getattr(self, name)
            if value is not None:
                options[name] = value
        return options


def check_number(name: str, value: Any, where: str, label: Optional[str] = None) -> Any:
    """``value`` checked against the bounds of setting ``name`` (called ``label`` in the
    message, default the name); SettingsError otherwise."""
    kind, low, high = _NUMBERS[name]
    name = label or name
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(f"{where}{name}: expected a number, got {type(value).__name__}")
    if kind is int and not float(value).is_integer():
        raise SettingsError(f"{where}{name}: expected an integer, got {value!r}")
    value = kind(value)
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        bound = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise SettingsError(f"{where}{name}: expected a number {bound}, got {value!r}")
    return value


def parse_node(text: str, index: int, named: bool) -> NodeSpec:
    """``NAME=DSN`` (``--node``, split at the first ``=``) or a bare DSN / URI (positional),
    named primary, r1, r2... by its position."""
    where = f"--node {text!r}" if named else f"DSN {index + 1}"
    if named:
        name, sep, dsn = text.partition("=")
        name, dsn = name.strip(), dsn.strip()
        if not sep or not name or " " in name:
            raise SettingsError(f"{where}: expected NAME=DSN (e.g. pg1='host=10.0.0.1 dbname=postgres')")
    else:
        name, dsn = ("primary" if index == 0 else f"r{index}"), text.strip()
    if not dsn:
        raise SettingsError(f"{where}: empty DSN")
    return NodeSpec(name, dsn)


def load_config(path: str) -> Dict[str, Any]:
    """The config file as a dict (TOML when it ends in .toml, JSON otherwise)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise SettingsError(f"config {path}: cannot read it: {exc.strerror or exc}") from None
    try:
        if path.endswith(".toml"):
            import tomllib

            parsed: Any = tomllib.loads(data.decode("utf-8"))
        else:
            parsed = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, TOMLDecodeError
        kind = "TOML" if path.endswith(".toml") else "JSON"
        raise SettingsError(f"config {path}: not valid {kind}: {exc}") from None
    if not isinstance(parsed, dict):
        raise SettingsError(f"config {path}: expected an object/table at the top, got "
                            f"{type(parsed).__name__}")
    return parsed


def _config_nodes(value: Any, where: str) -> List[NodeSpec]:
    items: List[Tuple[Any, Any]]
    if isinstance(value, Mapping):
        items = [(name, {"dsn": dsn} if isinstance(dsn, str) else dsn) for name, dsn in value.items()]
    elif isinstance(value, list):
        items = [((v.get("name") if isinstance(v, Mapping) else None), v) for v in value]
    else:
        raise SettingsError(f"{where}nodes: expected a list of {{name, dsn}} or a table "
                            f"name = dsn, got {type(value).__name__}")
    nodes = []
    for i, (name, spec) in enumerate(items):
        if not isinstance(spec, Mapping):
            raise SettingsError(f"{where}nodes[{i}]: expected {{name, dsn}}, got {type(spec).__name__}")
        extra = {k: v for k, v in spec.items() if k not in ("name", "dsn")}
        unknown = sorted(set(extra) - {"region", "weight", "priority"})
        if unknown:
            raise SettingsError(f"{where}nodes[{i}]: unknown key(s) {', '.join(unknown)} "
                                "(known: name, dsn, region, weight, priority)")
        dsn = spec.get("dsn")
        if not isinstance(name, str) or not name:
            raise SettingsError(f"{where}nodes[{i}]: needs a name (a non-empty string)")
        if not isinstance(dsn, str) or not dsn.strip():
            raise SettingsError(f"{where}nodes[{i}] ({name}): needs a dsn (a non-empty string)")
        nodes.append(NodeSpec(name, dsn, extra))
    return nodes


def settings_from_config(config: Mapping[str, Any], path: str) -> Dict[str, Any]:
    """The config file's settings, checked: unknown keys and bad values are errors."""
    where = f"config {path}: "
    unknown = sorted(set(config) - set(KNOWN_KEYS))
    if unknown:
        raise SettingsError(f"{where}unknown key(s) {', '.join(unknown)} (known: {', '.join(KNOWN_KEYS)})")
    out: Dict[str, Any] = {}
    for key, value in config.items():
        if key == "nodes":
            out["nodes"] = _config_nodes(value, where)
        elif key in _STRINGS:
            if not isinstance(value, str):
                raise SettingsError(f"{where}{key}: expected a string, got {type(value).__name__}")
            out[key] = value
        else:
            out[key] = check_number(key, value, where)
    return out


def nodes_from_dir(base_dir: str) -> List[NodeSpec]:
    """The nodes of a ``replikit cluster up`` directory, its current primary first."""
    from ..testing import ClusterError, LocalCluster

    try:
        cluster = LocalCluster.attach(base_dir)
        primary = cluster.primary_name
        replicas = [n for n in cluster.replica_names if n != primary]
        return [NodeSpec(name, cluster.dsn(name)) for name in [primary] + replicas]
    except (ClusterError, OSError, ValueError, KeyError) as exc:
        raise SettingsError(f"--dir {base_dir}: not a replikit cluster directory ({exc})") from None


def order_nodes(nodes: List[NodeSpec], primary: Optional[str]) -> List[NodeSpec]:
    """The nodes with the primary first; checks that names are unique and there are some."""
    if not nodes:
        raise SettingsError("no nodes to watch: give DSNs, --node NAME=DSN, --config FILE or --dir DIR")
    if len(nodes) > MAX_NODES:
        raise SettingsError(f"too many nodes ({len(nodes)}; at most {MAX_NODES})")
    names = [n.name for n in nodes]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SettingsError(f"node name(s) given twice: {', '.join(dup)}")
    if primary is None:
        return nodes
    if primary not in names:
        raise SettingsError(f"--primary {primary}: no such node (nodes: {', '.join(names)})")
    return [nodes[names.index(primary)]] + [n for n in nodes if n.name != primary]


def resolve(dsns: List[str], node_args: List[str], config_path: Optional[str],
            base_dir: Optional[str], flags: Mapping[str, Any]) -> MonitorSettings:
    """One MonitorSettings from the command line's sources; flags (not None) win over the
    config file."""
    given = [bool(dsns or node_args), config_path is not None, base_dir is not None]
    if sum(given) > 1:
        raise SettingsError("give the nodes one way: DSNs / --node, or --config, or --dir")
    values: Dict[str, Any] = {}
    nodes: List[NodeSpec] = []
    source = ""
    if config_path is not None:
        values = settings_from_config(load_config(config_path), config_path)
        nodes = values.pop("nodes", [])
        source = f"config {os.path.abspath(config_path)}"
    elif base_dir is not None:
        nodes = nodes_from_dir(base_dir)
        source = f"cluster directory {os.path.abspath(base_dir)}"
    else:
        nodes = [parse_node(t, i, False) for i, t in enumerate(dsns)]
        nodes += [parse_node(t, len(nodes) + i, True) for i, t in enumerate(node_args)]
        source = "command line"
    for key, value in flags.items():
        if value is not None:
            flag = "--" + key.replace("_", "-")
            values[key] = check_number(key, value, "argument ", flag) if key in _NUMBERS else value
    primary = values.pop("primary", None)
    settings = MonitorSettings(nodes=order_nodes(nodes, primary), source=source, **values)
    _check_marks(settings)
    return settings


def _check_marks(s: MonitorSettings) -> None:
    if s.recover_lag_ms is not None and s.recover_lag_ms > s.alert_lag_ms:
        raise SettingsError(f"recover_lag_ms: must be <= alert_lag_ms ({s.alert_lag_ms:g}), "
                            f"got {s.recover_lag_ms:g}")
    if s.recover_lag_bytes is not None:
        if s.alert_lag_bytes == 0:
            raise SettingsError("recover_lag_bytes: needs alert_lag_bytes (the byte threshold) too")
        if s.recover_lag_bytes > s.alert_lag_bytes:
            raise SettingsError(f"recover_lag_bytes: must be <= alert_lag_bytes ({s.alert_lag_bytes}), "
                                f"got {s.recover_lag_bytes}")
