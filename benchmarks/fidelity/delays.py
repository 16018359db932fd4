"""The kill scenario's replication delays: offset reads (visible or not at a known age) turned
into a delay distribution, and that distribution in the per-write form the simulator's in-order
replication link draws from. See fidelity/killreads.py (the probe) and fidelity/killtwins.py."""

from __future__ import annotations

import random
from typing import List, Sequence, Tuple

from fidelity.common import NOW_S, TABLE

# An offset read asks a replica, with the readers' own query, whether a row committed on the
# primary a known time before is visible: nothing on the replica watches, so nothing is slowed
# or noticed late (a plpgsql loop such as one_delay's is a busy process that the scheduler of
# a loaded machine preempts: it reports a row visible later than a plain read already saw it).
OFFSET_READ = (f"SELECT (SELECT max(id) FROM {TABLE}), EXISTS (SELECT 1 FROM {TABLE} WHERE id = %s), {NOW_S}")


def delay_quantiles(observations: Sequence[Tuple[float, bool]], count: int = 200) -> List[float]:
    """The commit -> visible delay's distribution (ms) from offset reads, as ``count`` evenly
    spaced quantiles (for LatencyDistribution.empirical).

    Each observation (age ms, visible) is one read of a row ``age`` ms after its commit instant
    (both from the servers' clock, as stale_at_execution compares them): visible says delay <=
    age, not visible delay > age (current-status data). The maximum-likelihood distribution is
    the isotonic regression of visible on age (pool adjacent violators); each of its steps is
    placed midway between the ages it lies between, and the share never seen visible at the
    oldest age at that age (a lower bound). Ages <= 0 (read before the commit) say nothing."""
    obs = sorted((float(a), bool(v)) for a, v in observations if a > 0)
    if not obs:
        raise ValueError("no offset read after its row's commit")
    blocks: List[List[float]] = []  # [visible, reads, first age, last age]
    for age, visible in obs:
        blocks.append([float(visible), 1.0, age, age])
        while len(blocks) > 1 and blocks[-2][0] * blocks[-1][1] >= blocks[-1][0] * blocks[-2][1]:
            v, n, _, last = blocks.pop()
            blocks[-1][0] += v
            blocks[-1][1] += n
            blocks[-1][3] = last
    steps: List[Tuple[float, float]] = []  # (cumulative share, where it is reached)
    previous_last = 0.0
    for v, n, first, last in blocks:
        if v > 0:
            steps.append((v / n, (previous_last + first) / 2.0))
        previous_last = last
    oldest = obs[-1][0]
    out = []
    for k in range(count):
        q = (k + 0.5) / count
        out.append(next((at for share, at in steps if share >= q), oldest))
    return out



# The NPMLE below puts the delay's mass on this grid (ms): fine where replication delays lie,
# coarser over the tail; EM_ITERATIONS bound its fixed-point iteration.
GRID_FINE_MS, GRID_FINE_UNTIL_MS, GRID_COARSE_MS = 0.05, 5.0, 0.5
EM_ITERATIONS = 2000


def sent_delay_quantiles(observations: Sequence[Tuple[float, bool]], latencies: Sequence[float],
                         count: int = 200) -> List[float]:
    """The commit -> visible delay's distribution (ms) as the simulator uses it, from offset
    reads taken by their SEND instant, as ``count`` evenly spaced quantiles.

    Each observation (x ms, stale) is one read sent x ms after the write's recorded instant (x
    may be negative) and whether it was stale by the readers' judgement (it ran there after the
    recorded instant and lacked the row). A read whose latency L (send -> run, ``latencies``:
    the probe reads' own, measured away from any write) does not depend on the write is stale
    when x + L falls in [0, delay): P(stale | x) = sum_j w_j P(0 <= x + L < d_j), and the weights
    w on a grid of delays d are its maximum-likelihood estimate (EM for a mixture with known
    components). The simulator's reads are such reads (their client latency is drawn
    independently): reads sent at any instant are then stale in a window of the delay's mean
    length per write, whatever their latency. The real read's run instant is not used: on a
    loaded machine it depends on the write (a read sent just after a commit waits for the CPU
    while the replication runs, and runs once the row is visible), which the simulator's
    independent latency cannot carry; the send instant is independent of the write, for the
    probe's reads and the readers' alike."""
    import numpy as np

    lat = np.sort(np.asarray([float(v) for v in latencies if v >= 0], dtype=float))
    if lat.size == 0:
        raise ValueError("no client latency")
    xs = np.asarray([float(x) for x, _ in observations], dtype=float)
    stale = np.asarray([bool(v) for _, v in observations], dtype=bool)
    if xs.size == 0:
        raise ValueError("no offset read")
    top = max(GRID_FINE_UNTIL_MS, float(xs.max()) + float(lat[-1])) + GRID_COARSE_MS
    grid = np.concatenate([np.arange(0.0, GRID_FINE_UNTIL_MS, GRID_FINE_MS),
                           np.arange(GRID_FINE_UNTIL_MS, top + GRID_COARSE_MS, GRID_COARSE_MS)])
    # P(-x <= L < d - x) for every read and grid delay, from the latencies' empirical distribution.
    low = np.searchsorted(lat, -xs, side="left")[:, None]
    high = np.searchsorted(lat, grid[None, :] - xs[:, None], side="left")
    p_stale = np.clip(high - low, 0, None) / lat.size
    like = np.where(stale[:, None], p_stale, 1.0 - p_stale)
    like = like[like.max(axis=1) > 0]  # a stale read the model cannot produce says nothing
    if like.shape[0] == 0:
        raise ValueError("no offset read the model can explain")
    w = np.full(grid.size, 1.0 / grid.size)
    for _ in range(EM_ITERATIONS):
        w = w * (like / (like @ w)[:, None]).mean(axis=0)
    cum = np.cumsum(w)
    idx = np.searchsorted(cum, (np.arange(count) + 0.5) / count * cum[-1], side="left")
    return [float(grid[min(i, grid.size - 1)]) for i in idx]



def in_order_delays(draws: Sequence[float], writes_per_s: float, count: int, seed: int) -> List[float]:
    """End-to-end delays (ms) of ``count`` writes committed as a Poisson stream at
    ``writes_per_s``, each drawn from ``draws`` and delivered in order (a write never arrives
    before the one committed before it), as the simulator's replication link delivers them."""
    rng = random.Random(seed)
    t = arrival = 0.0
    out = []
    for _ in range(count):
        t += rng.expovariate(writes_per_s / 1000.0)
        arrival = max(arrival, t + draws[rng.randrange(len(draws))])
        out.append(arrival - t)
    return out


def per_write_delays(delays: Sequence[float], writes_per_s: float, seed: int = 1, count: int = 20_000,
                     steps: int = 12) -> List[float]:
    """The simulator's per-write delays (ms) for delays measured end to end (``delays``) on a
    primary taking ``writes_per_s`` writes: a measured delay longer than the mean gap between two
    writes is in part a stall that held back the writes behind it too; drawn per write and
    delivered in order, it would hold them back once more (a stall counted twice, the more so the
    more writes). The draws above the gap are thinned (each kept with a share found by bisection,
    the rest replaced by draws below it, spread over their quantiles) until in-order delivery
    (in_order_delays) gives back the measured share above the gap; unchanged when none is above."""
    gap = 1000.0 / writes_per_s
    body = sorted(d for d in delays if d <= gap)
    tail = sorted(d for d in delays if d > gap)
    if not tail or not body:
        return list(delays)
    target = len(tail) / len(delays)

    def thinned(keep: float) -> List[float]:
        kept = round(keep * len(tail))
        rest = len(delays) - kept
        return ([tail[int(i * len(tail) / kept)] for i in range(kept)]
                + [body[int((i + 0.5) * len(body) / rest)] for i in range(rest)])

    def share(keep: float) -> float:
        out = in_order_delays(thinned(keep), writes_per_s, count, seed)
        return sum(d > gap for d in out) / len(out)

    if share(1.0) <= target:
        return list(delays)
    lo, hi = 0.0, 1.0
    for _ in range(steps):
        mid = (lo + hi) / 2.0
        if share(mid) > target:
            hi = mid
        else:
            lo = mid
    return thinned(lo)


def matched_per_write_delays(delays: Sequence[float], writes_per_s: float, seed: int = 1, count: int = 20_000,
                             steps: int = 12) -> List[float]:
    """The simulator's per-write delays (ms; same length as ``delays``, sorted) whose in-order
    delivery gives back the measured delays' mean, which the stale share of eventual reads follows,
    and their quantiles as far as draws of at least 0 can. per_write_delays matches only the share
    above the mean gap between writes, but a measured delay is held back below the gap too whenever
    a write just before it (a Poisson stream's gaps are often a fraction of the mean) arrived later
    than its own draw would: drawn per write and delivered in order again, those hold-backs count
    twice (on the 960 saved kills the twins' delivered mean was 1-5% above the measured one). Each
    step moves every draw by how far the in-order delays' same quantile lies from the measured one;
    the draws that cannot go below 0 (a held-back write measured at 0) leave some of the excess, which
    one factor on every draw then takes off the mean (bisection). One drawn stream throughout."""
    import numpy as np

    target = np.sort(np.asarray([float(d) for d in delays], dtype=float))
    if target.size == 0 or target.max() <= 0:
        return [float(d) for d in target]
    levels = (np.arange(target.size) + 0.5) / target.size
    rng = np.random.default_rng(seed)
    instants = np.cumsum(rng.exponential(1000.0 / writes_per_s, count))
    picks = rng.integers(0, target.size, count)

    def delivered(draws: "np.ndarray") -> "np.ndarray":
        return np.maximum.accumulate(instants + draws[picks]) - instants

    draws = target.copy()
    for _ in range(steps):
        draws = np.sort(np.clip(draws - (np.quantile(delivered(draws), levels) - target), 0.0, None))
    lo, hi = 0.5, 1.5
    for _ in range(steps):
        mid = (lo + hi) / 2.0
        if delivered(draws * mid).mean() > target.mean():
            hi = mid
        else:
            lo = mid
    return [float(d) for d in draws * ((lo + hi) / 2.0)]
