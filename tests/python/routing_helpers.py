"""What the routing unit tests share (`from routing_helpers import ...`): ns per ms and a
topology with its router."""

from __future__ import annotations

from replikit import Router, Topology

MS = 1_000_000  # ns per ms


def make(replicas=("r1", "r2"), primary="p", **router_kwargs):
    topology = Topology(primary, list(replicas))
    return topology, Router(topology, **router_kwargs)
