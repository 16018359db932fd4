"""Python-side helpers for the quorum area: a vectorised numpy reference of the PBS WARS
Monte Carlo (used to cross-check and benchmark the C++ core) and DataFrame conveniences.

The compiled core (``replikit.WarsSimulation``) is the fast path; :func:`wars_numpy` draws
exactly (numpy's own generators, no lookup table) and is meant as an independent reference.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np

from . import _core

__all__ = [
    "sample_numpy",
    "wars_margins_numpy",
    "wars_numpy",
    "quorum_dataframe",
    "PAPER_PBS_RESULTS",
]

# Published by Bailis et al. (VLDB 2012; same figures in the CACM 2014 version, whose LaTeX
# is in github.com/pbailis/paper-repo-cacm-pbs-research-highlight): N = 3, W = 1.
# p0: probability of a consistent read right after commit (R = 1 only);
# t_ms: time after commit for a 99.9 % probability of consistent reads.
PAPER_PBS_RESULTS: List[Dict[str, Any]] = [
    {"model": "LNKD-SSD", "r": 1, "p0": 0.974, "t_ms": 1.85},
    {"model": "LNKD-SSD", "r": 2, "p0": None, "t_ms": 0.0},
    {"model": "LNKD-DISK", "r": 1, "p0": 0.439, "t_ms": 45.5},
    {"model": "LNKD-DISK", "r": 2, "p0": None, "t_ms": 13.6},
    {"model": "YMMR", "r": 1, "p0": 0.893, "t_ms": 1364.0},
    {"model": "YMMR", "r": 2, "p0": None, "t_ms": 202.0},
]


def sample_numpy(dist: "_core.LatencyDistribution", size: int, rng: np.random.Generator) -> np.ndarray:
    """Exact samples of ``dist`` (a LatencyDistribution) drawn with numpy's generator."""
    spec = dist.to_dict()
    return _sample_spec(spec, int(size), rng)


def _sample_spec(spec: Dict[str, Any], size: int, rng: np.random.Generator) -> np.ndarray:
    kind = spec["kind"]
    if kind == "constant":
        return np.full(size, spec["value_ms"], dtype=float)
    if kind == "exponential":
        rate_per_ms: float = spec["rate_per_ms"]
        return rng.exponential(1.0 / rate_per_ms, size)
    if kind == "pareto":
        # Inverse CDF of the classical Pareto: scale * U**(-1/shape), U in (0, 1].
        scale_ms: float = spec["scale_ms"]
        shape: float = spec["shape"]
        u = 1.0 - rng.random(size)
        return scale_ms * u ** (-1.0 / shape)
    if kind == "empirical":
        samples: np.ndarray = spec["samples_ms"]
        return samples[rng.integers(0, len(samples), size)]
    if kind == "mixture":
        which = rng.choice(len(spec["weights"]), size=size, p=np.asarray(spec["weights"]) / np.sum(spec["weights"]))
        out = np.empty(size, dtype=float)
        for i, comp in enumerate(spec["components"]):
            mask = which == i
            out[mask] = _sample_spec(comp, int(mask.sum()), rng)
        return out
    raise ValueError(f"unknown distribution kind {kind!r}")


def wars_margins_numpy(n: int, w: int, r: int, model: "_core.WarsModel", trials: int, seed: int,
                       chunk: int = 1_000_000) -> np.ndarray:
    """Per-trial staleness margins of the WARS model, vectorised with numpy.

    A read issued t ms after the write commits is consistent iff margin <= t. Same model as
    ``WarsSimulation.staleness_margins_ms`` (commit at the W-th fastest W+A; the R replicas
    with the fastest R+S answer; consistent if one of them had the write: W <= commit + t + R).
    """
    for name, value in (("w", w), ("r", r)):
        if not (1 <= value <= n):
            err = _core.InvalidArgument(f"{name}: must be in [1, n={n}], got {value}")
            err.argument = name
            raise err
    rng = np.random.default_rng(seed)
    out = np.empty(int(trials), dtype=float)
    done = 0
    while done < trials:
        m = min(chunk, trials - done)
        ws = sample_numpy(model.w, m * n, rng).reshape(m, n)
        wl = ws + sample_numpy(model.a, m * n, rng).reshape(m, n)
        rs = sample_numpy(model.r, m * n, rng).reshape(m, n)
        rl = rs + sample_numpy(model.s, m * n, rng).reshape(m, n)
        commit = np.partition(wl, w - 1, axis=1)[:, w - 1]
        fastest = np.argsort(rl, axis=1, kind="stable")[:, :r]
        margin = np.take_along_axis(ws, fastest, 1) - commit[:, None] - np.take_along_axis(rs, fastest, 1)
        out[done:done + m] = margin.min(axis=1)
        done += m
    return out


def wars_numpy(n: int, w: int, r: int, model: "_core.WarsModel", times_ms: Sequence[float], trials: int,
               seed: int) -> np.ndarray:
    """P(consistent read) at each of ``times_ms`` from the numpy reference implementation."""
    margins = np.sort(wars_margins_numpy(n, w, r, model, trials, seed))
    return np.searchsorted(margins, np.asarray(times_ms, dtype=float), side="right") / float(trials)


def quorum_dataframe(n: int, p_up: float = 0.99) -> Any:
    """``quorum_table(n, p_up)`` as a pandas DataFrame when pandas is installed, else the records."""
    records = _core.quorum_table(n, p_up)
    try:
        import pandas as pd  # type: ignore[import-untyped]  # optional, untyped
    except ImportError:  # pragma: no cover - depends on the environment
        return records
    return pd.DataFrame.from_records(records)
