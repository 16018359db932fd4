"""Figures per time window pooled over runs, with bootstrap intervals, measured against
predicted (fidelity/killtwins.py's comparison).

Each real run comes with its prediction (its simulated twin's counts summed over seeds). A figure
is a ratio of sums over the runs (e.g. stale eventual reads / eventual reads of all runs). The
95% intervals come from a bootstrap over runs: B resamples of the runs with replacement, real
run and twin together, so the interval of the measured figure carries the binomial noise of its
reads and the run-to-run drift of the machine, and the interval of the relative error
(predicted / measured - 1) also the prediction's own inputs, measured in each run.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from fidelity.common import TOLERANCE

BOOTSTRAP = 4000
WINDOW_LABELS = {"before": "before the kill", "outage": "kill -> recovery", "after": "after the recovery"}
# key, label, numerator, denominator, kind. "relative": held to the 10% target; "absolute": near 0
# on both sides (a few reads per run), compared by difference against ABSOLUTE_TOLERANCE;
# "measured": no simulated counterpart (printed).
FIGURES = [
    ("stale_eventual", "stale eventual reads (share)", "eventual_stale", "eventual", "relative"),
    ("stale_eventual_acked", "  measured only: missed an acked write", "eventual_stale_acked", "eventual", "measured"),
    ("stale_read_your_writes", "stale read-your-writes reads (share)", "read_your_writes_stale", "read_your_writes",
     "absolute"),
    ("primary_share", "reads the primary served (share)", "primary", "answered", "relative"),
    ("failed_share", "reads failed (share of those sent)", "failed", "sent", "absolute"),
    ("lag_mean", "replica tracked lag, mean (ms)", "lag_sum_ms", "lag_samples", "relative"),
]
ABSOLUTE_TOLERANCE = {"stale_read_your_writes": 0.005, "failed_share": 0.02}
Z95 = (2.5, 97.5)


def _arrays(runs: Sequence[Dict[str, Dict[str, float]]], window: str, key: str) -> np.ndarray:
    if key == "sent":
        return np.array([r[window]["answered"] + r[window]["failed"] for r in runs], dtype=float)
    return np.array([r[window][key] for r in runs], dtype=float)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def kills_for_tolerance(num: Sequence[float], den: Sequence[float], tolerance: float = TOLERANCE) -> float:
    """Kills for the 95% interval of the pooled ratio sum(num) / sum(den) to be +-``tolerance``
    (relative), from its spread over these kills (one num, den per kill): the ratio estimator's
    standard error scales as 1/sqrt(kills). nan with fewer than 2 kills or a ratio of 0."""
    k = len(num)
    total_num, total_den = float(sum(num)), float(sum(den))
    if k < 2 or total_den <= 0 or total_num <= 0:
        return float("nan")
    ratio, per_kill = total_num / total_den, total_den / k
    resid = sum((n - ratio * d) ** 2 for n, d in zip(num, den))
    relative_se = math.sqrt(resid / (k - 1) / k) / per_kill / ratio
    return k * (1.96 * relative_se / tolerance) ** 2


def figure_row(real: Sequence[Dict[str, Dict[str, float]]], sim: Sequence[Dict[str, Dict[str, float]]],
               window: str, figure: Tuple[str, str, str, str, str], seed: int) -> Dict[str, Any]:
    """One figure of one window: pooled measured and predicted, bootstrap intervals, verdict."""
    key, _, num, den, kind = figure
    m_num, m_den = _arrays(real, window, num), _arrays(real, window, den)
    p_num, p_den = _arrays(sim, window, num), _arrays(sim, window, den)
    measured = float(_ratio(m_num.sum(), m_den.sum()))
    predicted = float(_ratio(p_num.sum(), p_den.sum()))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(real), size=(BOOTSTRAP, len(real)))
    boot_m = _ratio(m_num[picks].sum(axis=1), m_den[picks].sum(axis=1))
    boot_p = _ratio(p_num[picks].sum(axis=1), p_den[picks].sum(axis=1))
    boot_e = _ratio(boot_p - boot_m, boot_m)
    boot_e = boot_e[np.isfinite(boot_e)]
    ci = [float(v) for v in np.nanpercentile(boot_m, Z95)] if np.isfinite(boot_m).any() else [float("nan")] * 2
    row: Dict[str, Any] = {"window": window, "kind": kind, "measured": measured, "measured_ci": ci,
                           "measured_count": float(m_num.sum()), "measured_of": float(m_den.sum()),
                           "predicted": predicted if kind != "measured" else None,
                           "kills_for_tolerance": kills_for_tolerance(m_num, m_den)}
    if kind == "measured":
        return row
    error = (predicted - measured) / measured if measured else (0.0 if predicted == 0 else float("inf"))
    half_width = (ci[1] - ci[0]) / 2.0 / measured if measured else float("inf")
    row.update({"relative_error": error, "absolute_error": abs(predicted - measured),
                "error_ci": [float(v) for v in np.percentile(boot_e, Z95)] if boot_e.size else [float("nan")] * 2,
                "half_width": half_width, "resolved": half_width <= TOLERANCE,
                "predicted_in_ci": bool(ci[0] <= predicted <= ci[1])})
    if kind == "absolute":
        row["within_tolerance"] = row["absolute_error"] <= ABSOLUTE_TOLERANCE[key]
    else:
        row["within_tolerance"] = abs(error) <= TOLERANCE
    return row


def lag_max_row(real: Sequence[Dict[str, Dict[str, float]]], sim: Sequence[Dict[str, Dict[str, float]]],
                window: str) -> Dict[str, Any]:
    """The largest tracked lag any run saw in the window (one late probe or a reconnection)."""
    return {"window": window, "kind": "max", "measured": max(r[window]["lag_max_ms"] for r in real),
            "predicted": max(s[window]["lag_max_ms"] for s in sim)}


def compare(real: List[Dict[str, Dict[str, float]]], sim: List[Dict[str, Dict[str, float]]],
            seed: int, fitted: Sequence[str] = ()) -> Dict[str, Dict[str, Any]]:
    """Every figure of every window, keyed '<figure>_<window>' (and 'lag_max_<window>'); the keys
    in ``fitted`` are marked as such (an input was fitted to make them agree: no prediction)."""
    table: Dict[str, Dict[str, Any]] = {}
    for i, window in enumerate(WINDOW_LABELS):
        for k, figure in enumerate(FIGURES):
            key = f"{figure[0]}_{window}"
            table[key] = figure_row(real, sim, window, figure, seed * 100 + i * 10 + k)
            table[key]["fitted"] = key in fitted
        table[f"lag_max_{window}"] = lag_max_row(real, sim, window)
    return table


def _pct(v: float) -> str:
    return f"{v * 100:+.1f}%" if np.isfinite(v) else "n/a"


def _kills(row: Dict[str, Any]) -> str:
    needed = row.get("kills_for_tolerance", float("nan"))
    return f"; ~{needed:.0f} kills for +-{TOLERANCE:.0%}" if np.isfinite(needed) else ""


def print_table(title: str, table: Dict[str, Dict[str, Any]], log: Any) -> None:
    log(f"{title}: measured [95% interval] vs predicted; relative error [95% interval]; interval half-width")
    for window, label in WINDOW_LABELS.items():
        log(f"  {label}:")
        for key, name, _, _, kind in FIGURES:
            row = table[f"{key}_{window}"]
            lo, hi = row["measured_ci"]
            text = f"    {name:40s} {row['measured']:9.4f} [{lo:.4f}, {hi:.4f}]"
            if kind == "measured":
                log(text)
                continue
            elo, ehi = row["error_ci"]
            if kind == "absolute" or not row["measured"] > 0:
                tolerance = ABSOLUTE_TOLERANCE.get(key)
                verdict = "" if tolerance is None else (
                    f"(tolerance {tolerance:.3f}) " + ("ok" if row["within_tolerance"] else "NO"))
                log(f"{text} {row['predicted']:9.4f}  diff {row['absolute_error']:.4f} {verdict}{_kills(row)}")
                continue
            verdict = ("within 10%" if row["within_tolerance"] else "NOT within 10%") + (
                "" if row["resolved"] else f", interval +-{row['half_width'] * 100:.0f}% > 10%")
            if row["fitted"]:
                verdict = "(fitted: agrees by construction)"
            log(f"{text} {row['predicted']:9.4f}  {_pct(row['relative_error'])} [{_pct(elo)}, {_pct(ehi)}] "
                f"+-{row['half_width'] * 100:.0f}%  {verdict}{_kills(row)}")
        row = table[f"lag_max_{window}"]
        log(f"    {'replica tracked lag, max over runs (ms)':40s} {row['measured']:9.2f} {'':18s} {row['predicted']:9.2f}")
