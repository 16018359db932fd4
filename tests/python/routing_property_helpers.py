"""The slow, obvious Python reference that the routing property tests check replikit against
(`from routing_property_helpers import ...`; test_routing_property.py and
test_routing_stateful.py): RefSession, RefLag, reference_decision and check_decision, the
router's expected counters, and the signer for each signing mode. What they check is described
in test_routing_property.py's docstring. CHECKED and REASONS_SEEN count what was checked (the
tests reset and report them).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Dict, List, Optional

import pytest
from conftest import node_name

import replikit
from replikit import Consistency, LagEventKind, LagState, Policy, Reason, Role, Session

MS = 1_000_000
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

CHECKED = {"decisions": 0, "lag_evaluations": 0, "session_ops": 0, "examples": 0, "last_replica": 0}
REASONS_SEEN: Dict[Reason, int] = {}


class CounterRecord:
    """What `router.counters()` must say: the decisions this test made, by node name and reason."""

    def __init__(self):
        self.by_node: Dict[str, int] = {}
        self.by_reason: Dict[str, int] = {}
        self.total = 0

    def note(self, decision) -> None:
        name = node_name(decision)
        if name is not None:
            self.by_node[name] = self.by_node.get(name, 0) + 1
        key = decision.reason.name.lower()
        self.by_reason[key] = self.by_reason.get(key, 0) + 1
        self.total += 1
        REASONS_SEEN[decision.reason] = REASONS_SEEN.get(decision.reason, 0) + 1

    def check(self, counters) -> None:
        got_reason = {str(k).lower(): v for k, v in counters["by_reason"].items() if v}
        got_node = {k: v for k, v in counters["by_node"].items() if v}
        assert (got_node, got_reason, counters["total"]) == (self.by_node, self.by_reason, self.total)


# =========================================================================== references


def llround(x: float) -> int:
    """C's llround for x >= 0: half away from zero."""
    return int(math.floor(x + 0.5))


def ns(ms: float) -> int:
    """A lag in ms back in ns (exact: lags are whole ns, well within a double's precision)."""
    return round(ms * MS)


def diff_bytes(a: int, b: int) -> int:
    """lsn_diff_bytes: a - b saturated to int64."""
    return max(INT64_MIN, min(INT64_MAX, a - b))


@dataclass
class RefSession:
    write: int = 0
    read: int = 0
    untracked: Optional[int] = None
    # Host-local (never in a token): (replica index, topology epoch, replay LSN seen there) of
    # the last read observed on a replica (router rule 5).
    last: Optional[tuple] = None

    def record_write(self, lsn: int, now: int) -> None:
        if lsn:
            self.write = max(self.write, lsn)
        elif self.untracked is None or now > self.untracked:
            self.untracked = now

    def observe(self, lsn: int) -> None:
        self.read = max(self.read, lsn)

    def observe_replica(self, lsn: int, index: int, epoch: int) -> None:
        self.observe(lsn)
        self.last = (index, epoch, lsn)

    def merge(self, other: "RefSession") -> None:
        self.write = max(self.write, other.write)
        self.read = max(self.read, other.read)
        if other.untracked is not None and (self.untracked is None or other.untracked > self.untracked):
            self.untracked = other.untracked

    def through_token(self) -> "RefSession":
        """What survives a token round trip: the unknown-write time in whole ms, rounded up."""
        u = None if self.untracked is None else min(-(-self.untracked // MS), (2**63 - 1) // MS) * MS
        return RefSession(self.write, self.read, u)

    def check(self, s: Session) -> None:
        assert (s.write_lsn.value, s.read_lsn.value, s.untracked_write_ns) == (self.write, self.read, self.untracked)
        assert s.last_replica_lsn.value == (self.last[2] if self.last else 0)


@dataclass
class RefReplica:
    known: bool = False
    receive: int = 0
    replay: int = 0
    sample_ns: int = 0
    lagging: bool = False


class RefLag:
    """The obvious LagTracker: a list of (lsn, first_ns, last_ns), exact rational interpolation."""

    def __init__(self, lag_ms_max, recover_ms, lag_bytes_max, recover_bytes, stale_sample_ms, history_capacity):
        self.max_ns = llround(lag_ms_max * 1e6)
        self.recover_ns = llround(recover_ms * 1e6)
        self.stale_ns = llround(stale_sample_ms * 1e6)
        self.bytes_max = lag_bytes_max
        self.recover_bytes = recover_bytes
        self.capacity = history_capacity
        self.reset()

    def reset(self, topology=None):
        """Forgets everything; each node of `topology` that was LAGGING recovers (routing takes
        it back), stamped with the last instant known: the last primary or replica sample."""
        pending = getattr(self, "expected_events", [])
        if topology is not None:
            replicas = getattr(self, "replicas", {})
            last = max([self.history[-1][2] if self.history else 0] + [r.sample_ns for r in replicas.values()])
            pending += [(node, LagEventKind.RECOVERED, last, 0, 0) for node, r in sorted(replicas.items())
                        if r.lagging and topology.info(node).role is not Role.REMOVED]
        self.history: List[List[int]] = []
        self.replicas: Dict[int, RefReplica] = {}
        self.expected_events: List[tuple] = pending

    def crossing(self, lsn: int):
        """When the primary first passed `lsn` (ns), whether that is a lower bound; None if not yet."""
        for k, (entry_lsn, first_ns, _last) in enumerate(self.history):
            if entry_lsn > lsn:
                if k == 0:
                    return first_ns, True
                b_lsn, _b_first, b_last = self.history[k - 1]
                if first_ns - b_last > self.stale_ns:  # an outage: the earliest moment, no interpolation
                    return b_last, False
                frac = Fraction(lsn + 1 - b_lsn, entry_lsn - b_lsn)
                return b_last + math.floor(frac * (first_ns - b_last)), False
        return None, False

    def fresh_as_of(self, node):
        """The instant replica `node` is known to hold every commit as of: the last primary sample
        at or below its replay LSN (no interpolation); None when unknown (no such sample)."""
        r = self.replicas.get(node)
        if r is None or not r.known:
            return None
        below = [last for entry_lsn, _first, last in self.history if entry_lsn <= r.replay]
        return below[-1] if below else None

    def primary_sample(self, now, lsn, topology):
        if self.history and self.history[-1][0] == lsn:
            self.history[-1][2] = now
        else:
            self.history.append([lsn, now, now])
            del self.history[: max(0, len(self.history) - self.capacity)]
        evaluated = []
        for i, r in sorted(self.replicas.items()):
            if r.known and topology.info(i).role is Role.REPLICA:
                at = now if now - r.sample_ns > self.stale_ns else r.sample_ns
                evaluated.append((i, at))
        return evaluated

    def replica_sample(self, node, now, receive, replay):
        r = self.replicas.setdefault(node, RefReplica())
        r.known, r.receive, r.replay, r.sample_ns = True, receive, replay, now
        return [(node, now)]

    def check_evaluations(self, evaluated, tracker, topology):
        """After a sample: each evaluated replica's lag matches, and its state follows the hysteresis rule."""
        primary_lsn = self.history[-1][0] if self.history else 0
        for node, at in evaluated:
            r = self.replicas[node]
            got = tracker.replica(node)
            assert got.known and got.node == topology.name(node)
            assert (got.replay_lsn.value, got.receive_lsn.value) == (r.replay, r.receive)
            assert got.lag_bytes == max(0, diff_bytes(primary_lsn, r.replay))
            assert got.receive_lag_bytes == max(0, diff_bytes(primary_lsn, r.receive))
            crossing, lower = self.crossing(r.replay) if self.history else (None, False)
            before_history = lower  # older than the kept history: its time lag is unknown
            measured = 0 if crossing is None else max(0, at - crossing)
            expected_ns = measured
            # A stale primary sample bounds the lag from below (fresh only as of that sample);
            # the state follows the measured lag.
            silent = at - self.history[-1][2] if self.history else 0
            if self.history and silent > self.stale_ns and silent > measured:
                expected_ns, lower = silent, True
            # Exact up to the floating-point interpolation in the core.
            assert abs(ns(got.lag_ms) - expected_ns) <= 1, (ns(got.lag_ms), expected_ns)
            assert got.lag_is_lower_bound == lower
            bytes_on = self.bytes_max > 0
            if r.lagging:
                # A zero threshold means "recover at zero lag" (as for bytes).
                recovered = (measured < self.recover_ns or (self.recover_ns == 0 and measured == 0)) and (
                    not bytes_on or got.lag_bytes < self.recover_bytes
                    or (self.recover_bytes == 0 and got.lag_bytes == 0))
                lagging = not recovered
            else:
                lagging = measured > self.max_ns or (bytes_on and got.lag_bytes > self.bytes_max)
            if lagging != r.lagging:
                kind = LagEventKind.BECAME_LAGGING if lagging else LagEventKind.RECOVERED
                self.expected_events.append((node, kind, at, ns(got.lag_ms), got.lag_bytes))
            r.lagging = lagging
            assert got.state is (LagState.LAGGING if lagging else LagState.OK)
            info = topology.info(node)
            assert info.lag_known is (not before_history) and info.lag_state is got.state
            assert info.replay_lsn == got.replay_lsn and info.lag_bytes == got.lag_bytes
            CHECKED["lag_evaluations"] += 1


def snapshot(topology, tracker, ref_lag):
    """The published state the router routes on: NodeInfo by index, exact lag_ns, and (from the
    reference) the instant each replica is known fresh as of (RefLag.fresh_as_of)."""
    nodes = {i.index: i for i in topology.nodes()}
    lag_ns = {}
    for idx, info in nodes.items():
        if info.role is Role.REPLICA:
            lag_ns[idx] = ns(tracker.replica(idx).lag_ms)
            assert info.lag_ms == pytest.approx(lag_ns[idx] / 1e6, abs=1e-9)
    fresh = {idx: ref_lag.fresh_as_of(idx) for idx in lag_ns}
    return nodes, lag_ns, fresh


@dataclass
class Expected:
    allowed: set            # node indexes the decision may choose (None: no node)
    reason: Reason
    required: int           # the LSN a replica had to cover
    eligible: list = field(default_factory=list)
    hinted: bool = False    # rule 5: the session's last replica, by what the session saw there


def within_bound(fresh, index, now, bound_ns) -> bool:
    """BOUNDED_STALENESS: known fresh as of an instant at most bound_ns before now (a safe upper
    bound of its staleness at now, not the interpolated lag of its last probe)."""
    return fresh.get(index) is not None and now - fresh[index] <= bound_ns


def reference_decision(nodes, lag_ns, session: RefSession, consistency, now, window_ns, max_staleness_ms,
                       epoch, *, fresh) -> Expected:
    primary = next(i for i in nodes.values() if i.role is Role.PRIMARY)
    at_primary = {primary.index if primary.up else None}
    if consistency is Consistency.STRONG:
        return Expected(at_primary, Reason.STRONG_READ, 0)
    # A write of unknown commit LSN: the primary until it is resolved, whatever the time.
    if consistency in (Consistency.READ_YOUR_WRITES, Consistency.CAUSAL) and session.untracked is not None:
        return Expected(at_primary, Reason.RECENT_WRITE, 0)
    required = {
        Consistency.EVENTUAL: 0,
        Consistency.READ_YOUR_WRITES: session.write,
        Consistency.MONOTONIC: session.read,
        Consistency.CAUSAL: max(session.write, session.read),
        Consistency.BOUNDED_STALENESS: 0,
    }[consistency]
    bound_ns = llround(max_staleness_ms * 1e6) if consistency is Consistency.BOUNDED_STALENESS else None
    replicas = [i for i in nodes.values() if i.role is Role.REPLICA]
    up = [i for i in replicas if i.up]
    healthy = [i for i in up if i.lag_state is LagState.OK]
    covering = [i for i in healthy if i.replay_lsn.value >= required]
    eligible = [i for i in covering if bound_ns is None or within_bound(fresh, i.index, now, bound_ns)]
    if eligible:
        if bound_ns is not None:
            reason = Reason.REPLICA_FRESH
        elif required:
            reason = Reason.REPLICA_CAUGHT_UP
        else:
            reason = Reason.REPLICA_AVAILABLE
        return Expected({i.index for i in eligible}, reason, required, eligible)
    if not up:
        reason = Reason.NO_REPLICA_UP
    elif not healthy:
        reason = Reason.ALL_REPLICAS_LAGGING
    elif not covering:
        reason = Reason.NO_REPLICA_CAUGHT_UP
        if session.last is not None:
            index, seen_epoch, seen = session.last
            info = nodes.get(index)
            if (info is not None and info.role is Role.REPLICA and info.up and info.lag_state is LagState.OK
                    and seen_epoch == epoch and seen >= required):
                return Expected({index}, Reason.REPLICA_CAUGHT_UP, required, [info], hinted=True)
    else:
        reason = Reason.NO_REPLICA_FRESH
    return Expected(at_primary, reason, required)


def check_decision(d, exp: Expected, nodes, lag_ns, session: RefSession, consistency, policy,
                   client_region, max_staleness_ms, epoch, sticky_reads=1, *, fresh, now):
    node = None if d.node is None else next(i for i, info in nodes.items() if info.name == d.node)
    assert node in exp.allowed, (d, exp.reason, sorted(x for x in exp.allowed if x is not None))
    assert d.reason is exp.reason, (d, exp.reason)
    assert d.epoch == epoch
    if exp.reason not in (Reason.STRONG_READ, Reason.RECENT_WRITE):
        assert d.required_lsn.value == exp.required
    if exp.eligible:
        # On a replica: check the guarantees directly, not only membership in the reference set.
        info = nodes[node]
        assert not d.to_primary and d.node == info.name
        assert info.role is Role.REPLICA and info.up and info.lag_state is LagState.OK
        # Replayed (by its probe, or by what the session saw there in this epoch) what it needs.
        replayed = session.last[2] if exp.hinted else info.replay_lsn.value
        if exp.hinted:
            assert session.last[0] == node and session.last[1] == epoch
            CHECKED["last_replica"] += 1
        if consistency in (Consistency.READ_YOUR_WRITES, Consistency.CAUSAL):
            assert replayed >= session.write  # read-your-writes
        if consistency in (Consistency.MONOTONIC, Consistency.CAUSAL):
            assert replayed >= session.read  # monotonic reads
        if consistency is Consistency.BOUNDED_STALENESS:
            assert within_bound(fresh, node, now, llround(max_staleness_ms * 1e6))
        others = [i for i in exp.eligible if i.index != node]
        if exp.hinted or (sticky_reads > 1 and policy is not Policy.NEAREST_REGION):
            pass  # a thread stays on a qualifying replica: only the guarantees above hold
        elif policy is Policy.LEAST_LAG:
            # Least known lag; a replica that never reported ranks after every known one.
            known = [lag_ns[i.index] for i in exp.eligible if i.lag_known]
            if known:
                assert info.lag_known and lag_ns[node] == min(known)
        elif policy is Policy.NEAREST_REGION and client_region:
            if any(i.region == client_region for i in exp.eligible):
                assert info.region == client_region
        elif policy is Policy.LEAST_OUTSTANDING and others:
            assert info.outstanding <= max(i.outstanding for i in others)
        elif policy is Policy.WEIGHTED and any(i.weight > 0 for i in exp.eligible):
            assert info.weight > 0
    else:
        assert d.to_primary
        if node is not None:
            assert nodes[node].role is Role.PRIMARY and nodes[node].up
    CHECKED["decisions"] += 1


def signer_for(mode):
    key = b"property-test-key-0123456789"
    if mode == "hmac" and hasattr(replikit, "HmacSigner"):
        return replikit.HmacSigner(key)
    if mode in ("hmac", "callable"):
        return lambda payload: hmac.new(key, payload, hashlib.sha256).digest()
    return None
