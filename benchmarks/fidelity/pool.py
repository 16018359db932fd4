"""The kill scenario's window comparison pooled over several saved runs: every kill with reads of
each ``sim_fidelity.py --scenario kill --json`` file, measured against its twin's prediction, per
window (before the kill, the outage, after the recovery) and figure (stale eventual reads, reads
the primary served, reads failed, read-your-writes stale, tracked lag mean), with the error's 95%
bootstrap interval over the kills (fidelity.windowstats: the table the kill scenario prints), all
modes pooled and per mode, and per figure how many kills the measured figure's spread implies for
a 95% interval of +-10%.

    .venv/bin/python benchmarks/fidelity/pool.py run1.json [run2.json ...] [--repredict [--sim-runs N] [--seed S]
                                                                             [--set FIELD=VALUE ...]
                                                                             [--twin OPTION=VALUE ...]
                                                                             [--read-shifts file|held-out|halves]]

By default each kill's twin counts are those saved with it. ``--repredict`` simulates every
kill's twin again with the current code from the inputs saved with it (fidelity.killtwins:
``--sim-runs`` seeds from ``--seed``; by default each file's own, so unchanged code gives back the
saved counts); progress goes to stderr; ``--set FIELD=VALUE`` sets a SimConfig field on every
twin (VALUE as JSON, else a string; e.g. ``--set mode_after_promotion=null``: what-if figures);
``--twin OPTION=VALUE`` passes an option of fidelity.killtwins.sim_run_counts (align, after,
at_switch, dither_ms, offsets_after, read_shifts, replay, rounds, scale, shift_after; e.g.
``--twin align=false``; ``--twin dither_ms=0 --set apply_rate_per_s=100000`` gives the twins
before killtwins.dithered_reads and APPLY_RATE_PER_S; ``--twin at_switch=false`` those before
killswitch.promote_at_switch, and is needed for a ``--set promote_ms=...`` to stand; ``--twin
shift_after=false`` those whose reads after the recovery kept their scheduled instants).
``--rematch`` gives every saved kill's twin the per-write delays of
fidelity.delays.matched_per_write_delays (what real_reads now saves, with delays_matched and the
measured delays), taking the saved ones of a kill saved before
(per_write_delays' thinned draws) for the measured ones: only the measured delays' mean was
saved then (in the run's log), within 1% of the saved draws' on the 960 saved kills.
``--gap-excess`` (a what-if for kills saved with the probe rows' INSERT -> COMMIT) takes the mean
by which the probe rows' exceeds the session writer's rows' off the delays before the kill
(gap_corrected). With several files it also prints the stale share before the kill per file and whether the files'
errors differ by more than their kills' sampling (file_errors: Cochran's Q).
``--read-shifts`` gives the twins the readers' measured lateness around the session writes
(fidelity.readshift; the twins' eventual reads before the crash drawn from it instead of dithered):
``file`` pooled over every kill of the kill's own file (in sample), ``held-out`` over the kills of
the other files, ``halves`` over the other half of its own file's kills (even against odd). Without
it, the kills' twins keep whatever the file saved (none before readshift: the dithered twin).
``--progress LOG`` reads the load average of each file from
a campaign log ("run K seed S start T load a b c" / "run K rc R end T load a b c" lines, matched
to files named runK.json) where the file did not save it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fidelity import killtwins, windowstats  # noqa: E402

Counts = Dict[str, Dict[str, float]]
# killtwins.sim_run_counts' options
TWIN_OPTIONS = {"align", "after", "at_switch", "dither_ms", "offsets_after", "read_shifts", "rounds", "replay", "scale",
                "shift_after"}
READ_SHIFTS = ("file", "held-out", "halves")


def rematched(run: Dict[str, Any]) -> Dict[str, Any]:
    """A saved kill with the per-write delays of matched_per_write_delays (see ``--rematch``),
    before the kill and after the recovery, at the write rates its twin delivers them at."""
    from fidelity.delays import matched_per_write_delays
    from fidelity.killreads import SESSION_WRITE_RATE

    if run.get("delays_matched"):  # saved by real_reads with these already
        return run
    out = dict(run)
    for key, rate in (("delays", run["background_per_s"][0]), ("delays_after", run["background_per_s"][1])):
        if run.get(key):
            out[key] = matched_per_write_delays(run[key], SESSION_WRITE_RATE + rate)
    return out


def campaign_loads(path: Optional[str]) -> Dict[str, Dict[str, List[float]]]:
    """Per run number (as a string): the load averages its campaign log recorded at its start and end."""
    loads: Dict[str, Dict[str, List[float]]] = {}
    if not path:
        return loads
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            found = re.match(r"run (\d+) .*\b(start|end) \S+ load ([\d.]+) ([\d.]+) ([\d.]+)", line)
            if found:
                loads.setdefault(found.group(1), {})[found.group(2)] = [float(v) for v in found.group(3, 4, 5)]
    return loads


def load_text(saved: Dict[str, Any], path: str, campaign: Dict[str, Dict[str, List[float]]]) -> str:
    load = saved.get("load")
    if load is None:
        number = re.search(r"run(\d+)\.json$", Path(path).name)
        load = campaign.get(number.group(1)) if number else None
    if not load:
        return "load not saved"
    return "load average (1/5/15 min) " + ", ".join(
        f"{when} {'/'.join(f'{v:.2f}' for v in load[when])}" for when in ("start", "end") if when in load)


def setting(text: str) -> Tuple[str, Any]:
    """``--set``'s FIELD=VALUE: VALUE as JSON (null, numbers, lists), else the string itself."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected FIELD=VALUE")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def repredicted(saved: Dict[str, Any], mode: str, promotion_ms: float, run: Dict[str, Any], seed: Optional[int],
                sim_runs: Optional[int], overrides: Optional[Dict[str, Any]] = None,
                options: Optional[Dict[str, Any]] = None) -> Counts:
    """A kill's twin counts simulated again by the current code (its saved inputs)."""
    settings = saved["settings"]
    first = settings["seed"] if seed is None else seed
    seeds = range(first, first + (settings["sim_runs"] if sim_runs is None else sim_runs))
    return killtwins.sim_run_counts(settings["preset"], mode, promotion_ms, seeds, run, overrides=overrides,
                                    **(options or {}))["windows"]


def pooled_kills(paths: List[str], repredict: bool, seed: Optional[int], sim_runs: Optional[int],
                 progress: Optional[str] = None, log: Any = print,
                 overrides: Optional[Dict[str, Any]] = None,
                 options: Optional[Dict[str, Any]] = None, rematch: bool = False,
                 gap_excess: bool = False, read_shifts: Optional[str] = None) -> List[Dict[str, Any]]:
    """Every kill of the files: its file, mode, measured counts and predicted counts."""
    campaign = campaign_loads(progress)
    rows: List[Dict[str, Any]] = []
    started = time.monotonic()
    files = {}
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            saved = json.load(fh)
        if saved.get("scenario") != "kill":
            raise SystemExit(f"{path}: not a saved kill scenario (sim_fidelity.py --scenario kill --json)")
        files[path] = saved
    tables = shift_tables(files, read_shifts, log) if repredict and read_shifts else {}
    for path, saved in files.items():
        kills = list(killtwins.saved_kills(saved))
        modes = {m: sum(k[0] == m for k in kills) for m in dict.fromkeys(k[0] for k in kills)}
        log(f"{path}: {len(kills)} kills ({', '.join(f'{m} {n}' for m, n in modes.items())}), seed "
            f"{saved['settings']['seed']}, {saved['settings']['sim_runs']} twin runs per kill saved; "
            f"{load_text(saved, path, campaign)}")
        for i, (mode, promotion_ms, run, twin) in enumerate(kills):
            sim = twin["windows"]
            if repredict:
                inputs = rematched(run) if rematch else run
                if (path, i) in tables:
                    inputs = dict(inputs, read_shifts=tables[path, i])
                sim = repredicted(saved, mode, promotion_ms, gap_corrected(inputs) if gap_excess else inputs, seed,
                                  sim_runs, overrides, options)
                print(f"  {path}: kill {i + 1}/{len(kills)} ({mode}) re-predicted, "
                      f"{time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
            rows.append({"file": path, "mode": mode, "real": run["counts"], "sim": sim})
    return rows


def shift_tables(files: Dict[str, Dict[str, Any]], how: str, log: Any = print) -> Dict[Tuple[str, int], Any]:
    """Per (file, kill index): the table of the readers' measured lateness around the session
    writes its twin draws from (fidelity.readshift.pooled; ``--read-shifts``)."""
    from fidelity import readshift

    kills = {path: [run for _, _, run, _ in killtwins.saved_kills(saved)] for path, saved in files.items()}
    out: Dict[Tuple[str, int], Any] = {}
    for path, runs in kills.items():
        if how == "file":
            tables = [readshift.pooled(runs)] * len(runs)
        elif how == "held-out":
            tables = [readshift.pooled(run for other, more in kills.items() if other != path for run in more)] * len(runs)
        else:
            halves = [readshift.pooled(runs[1::2]), readshift.pooled(runs[0::2])]
            tables = [halves[i % 2] for i in range(len(runs))]
        for i, table in enumerate(tables):
            out[path, i] = table
        counts = sorted({sum(len(b) for b in table["shifts_ms"]) for table in tables})
        log(f"{path}: read shifts ({how}) from {', '.join(map(str, counts))} measured reads"
            + ("" if all(readshift.usable(t) for t in tables) else " (too few: dithered twins)"))
    return out


def gap_corrected(run: Dict[str, Any]) -> Dict[str, Any]:
    """A kill with its per-write delays before the kill scaled so that their mean drops by the mean
    INSERT -> COMMIT of the offset probe's rows over that of the session writer's (both measured
    from the primary's WAL; runs saved without the probe rows' are left): a read sent in a row's
    INSERT -> COMMIT is stale against it, so the probe's delays carry its own rows' gap where the
    readers' reads meet the session rows'. A what-if (``--gap-excess``), not the twins' input."""
    import statistics

    probe, session, delays = run.get("probe_commit_lag_ms"), run.get("commit_lag_ms"), run.get("delays")
    if not probe or not session or not delays or statistics.fmean(delays) <= 0:
        return run
    excess = max(0.0, statistics.fmean(probe) - statistics.fmean(session))
    factor = max(0.0, 1.0 - excess / statistics.fmean(delays))
    return dict(run, delays=[d * factor for d in delays])


def file_errors(rows: List[Dict[str, Any]], window: str = "before", num: str = "eventual_stale",
                den: str = "eventual", boot: int = 2000, seed: int = 1) -> Dict[str, Any]:
    """Per file, a figure's relative error (predicted / measured - 1; default: the stale share of
    eventual reads before the kill) with its bootstrap spread over that file's kills, and whether
    the files differ by more than that spread: Cochran's Q of the log errors (weights 1 / their
    bootstrap variance) against a chi-square of files - 1 degrees of freedom (the p-value by the
    Wilson-Hilferty approximation). A small p: the error moves between runs (load, code); a large
    one: the files' errors differ as much as their kills' sampling does."""
    import numpy as np

    rng = np.random.default_rng(seed)
    files: List[Dict[str, Any]] = []
    for path in dict.fromkeys(r["file"] for r in rows):
        chosen = [r for r in rows if r["file"] == path]
        m_num, m_den, p_num, p_den = (np.array([r[side][window][key] for r in chosen], dtype=float)
                                      for side, key in (("real", num), ("real", den), ("sim", num), ("sim", den)))
        if m_num.sum() <= 0 or p_num.sum() <= 0:
            continue
        error = math.log((p_num.sum() / p_den.sum()) / (m_num.sum() / m_den.sum()))
        picks = rng.integers(0, len(chosen), size=(boot, len(chosen)))
        with np.errstate(divide="ignore", invalid="ignore"):
            boot_e = np.log((p_num[picks].sum(1) / p_den[picks].sum(1)) / (m_num[picks].sum(1) / m_den[picks].sum(1)))
        boot_e = boot_e[np.isfinite(boot_e)]
        files.append({"file": path, "kills": len(chosen), "log_error": error,
                      "sd": float(boot_e.std()) if boot_e.size > 1 else float("nan"),
                      "measured": float(m_num.sum() / m_den.sum()), "predicted": float(p_num.sum() / p_den.sum())})
    usable = [f for f in files if f["sd"] > 0]
    out: Dict[str, Any] = {"files": files, "q": float("nan"), "df": max(0, len(usable) - 1), "p": float("nan")}
    if len(usable) >= 2:
        w = np.array([1.0 / f["sd"] ** 2 for f in usable])
        e = np.array([f["log_error"] for f in usable])
        mean = float((w * e).sum() / w.sum())
        q, k = float((w * (e - mean) ** 2).sum()), len(usable) - 1
        z = ((q / k) ** (1.0 / 3.0) - (1.0 - 2.0 / (9.0 * k))) / math.sqrt(2.0 / (9.0 * k))
        out.update(q=q, p=0.5 * math.erfc(z / math.sqrt(2.0)), pooled_log_error=mean)
    return out


def print_file_errors(found: Dict[str, Any], log: Any = print) -> None:
    log("stale eventual reads up to the kill, per file: measured vs predicted, error +- its bootstrap sd over the "
        "file's kills")
    for f in found["files"]:
        log(f"  {f['file']}: {f['kills']} kills, {f['measured']:.4f} vs {f['predicted']:.4f}, "
            f"{math.expm1(f['log_error']) * 100:+.1f}% +- {f['sd'] * 100:.1f}%")
    log(f"  between the files: Q = {found['q']:.1f} on {found['df']} degrees of freedom, p = {found['p']:.3f} "
        f"(small: the error moves between runs by more than their kills' sampling)")


def main(argv: Any = None, log: Any = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("json", nargs="+", help="saved kill runs (their kills pooled)")
    parser.add_argument("--repredict", action="store_true", help="simulate every kill's twin again (current code)")
    parser.add_argument("--sim-runs", type=int, default=None, help="with --repredict: seeds per kill (default: saved)")
    parser.add_argument("--seed", type=int, default=None, help="with --repredict: first seed (default: saved)")
    parser.add_argument("--set", type=setting, action="append", default=[], metavar="FIELD=VALUE",
                        help="with --repredict: a SimConfig field set on every twin (VALUE as JSON)")
    parser.add_argument("--twin", type=setting, action="append", default=[], metavar="OPTION=VALUE",
                        help="with --repredict: an option of killtwins.sim_run_counts (align, after, ...)")
    parser.add_argument("--rematch", action="store_true",
                        help="with --repredict: per-write delays from matched_per_write_delays (see above)")
    parser.add_argument("--gap-excess", action="store_true",
                        help="with --repredict: delays less the probe rows' INSERT -> COMMIT excess (gap_corrected)")
    parser.add_argument("--read-shifts", choices=READ_SHIFTS, default=None,
                        help="with --repredict: the readers' measured lateness around the writes (see above)")
    parser.add_argument("--progress", help="a campaign log with each run's load average")
    args = parser.parse_args(argv)
    if args.sim_runs is not None and not 1 <= args.sim_runs <= 1000:
        parser.error("--sim-runs must be in [1, 1000]")
    if (args.set or args.twin or args.rematch or args.gap_excess or args.read_shifts) and not args.repredict:
        parser.error("--set, --twin, --rematch, --gap-excess and --read-shifts need --repredict")
    if args.read_shifts == "held-out" and len(args.json) < 2:
        parser.error("--read-shifts held-out needs two or more files")
    unknown = {name for name, _ in args.twin} - TWIN_OPTIONS
    if unknown:
        parser.error(f"--twin: unknown option(s) {', '.join(sorted(unknown))} "
                     f"(one of {', '.join(sorted(TWIN_OPTIONS))})")
    rows = pooled_kills(args.json, args.repredict, args.seed, args.sim_runs, args.progress, log, dict(args.set),
                        dict(args.twin), args.rematch, args.gap_excess, args.read_shifts)
    if not rows:
        raise SystemExit("no kills with reads in these files")
    source = "re-predicted by the current twins" if args.repredict else "twins as saved"
    if args.set or args.twin or args.rematch or args.gap_excess or args.read_shifts:
        source += " with " + ", ".join([f"{name}={value!r}" for name, value in args.set + args.twin]
                                       + ([f"read shifts {args.read_shifts}"] if args.read_shifts else [])
                                       + (["rematched per-write delays"] if args.rematch else [])
                                       + (["the probe rows' commit gap excess off the delays"] if args.gap_excess else []))
    if len(args.json) > 1:
        print_file_errors(file_errors(rows), log)
    groups = [("all modes pooled", rows)] + [(mode, [r for r in rows if r["mode"] == mode])
                                             for mode in dict.fromkeys(r["mode"] for r in rows)]
    for title, chosen in groups:
        table = windowstats.compare([r["real"] for r in chosen], [r["sim"] for r in chosen], 1)
        windowstats.print_table(f"{title} ({len(chosen)} kills from {len(args.json)} files, {source})", table, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
