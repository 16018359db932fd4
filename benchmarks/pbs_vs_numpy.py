"""PBS WARS Monte Carlo: replikit's C++ core against a vectorised numpy implementation of the
same model, measured in the same run on one core. Prints trials/s of each and their ratio.

    python benchmarks/pbs_vs_numpy.py [--trials 2000000] [--repeats 5]

The C++ call releases the GIL and is single-threaded; numpy is asked for one thread through
the usual environment variables (set before numpy is imported).
"""

from __future__ import annotations

import argparse
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import statistics  # noqa: E402
import time  # noqa: E402

import replikit as rk  # noqa: E402
from replikit.quorum import wars_margins_numpy  # noqa: E402


def _median_rate(fn, trials: int, repeats: int) -> float:
    rates = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        rates.append(trials / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    models = {"LNKD-SSD": rk.WarsModel.lnkd_ssd(), "LNKD-DISK": rk.WarsModel.lnkd_disk(), "YMMR": rk.WarsModel.ymmr()}
    print(f"{'model':10} {'N':>2} {'R':>2} {'C++ trials/s':>14} {'numpy trials/s':>15} {'ratio':>7}")
    for name, model in models.items():
        for n, r in ((3, 1), (3, 2)):
            sim = rk.WarsSimulation(n, 1, r, model)
            cpp = _median_rate(lambda i: sim.consistency_probability([0.0], args.trials, i), args.trials, args.repeats)
            ref = _median_rate(lambda i: wars_margins_numpy(n, 1, r, model, args.trials, i), args.trials,
                               max(1, args.repeats // 2))
            print(f"{name:10} {n:>2} {r:>2} {cpp:>14.3e} {ref:>15.3e} {cpp / ref:>7.1f}")


if __name__ == "__main__":
    main()
