"""Does more training data make every joint-ratio estimator better? MSE(log r̂ − log r) against the exact ratio
per training size, over several seeds, on a toy with an exact likelihood.

    python benchmarks/training_size.py                                   # Galton board, 2k 20k 100k 300k, 3 seeds
    python benchmarks/training_size.py --toy gaussian --sizes 2000 20000 --seeds 0 1 2 --methods alices
    python benchmarks/training_size.py --methods alice --sizes 100000 --batch-size 2048 --name batch2048

Each (method, size, seed) trains on its own simulated data (seed) with the library's default training loop and
is scored on the same held-out events (11 test points θ_g spanning the range, 5000 events each). The table gives
mean ± standard error over seeds, the seed-to-seed spread (the run-to-run noise), and per method whether the
MSE never rose from one size to the next by more than twice the combined standard error ("monotone"); the JSON
keeps the MSE at each test point too (``mse_per_theta``, mean over seeds: where in θ the error sits).
Writes benchmarks/results/training_size_<toy>[_<name>].json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from _table import report  # noqa: E402

from hepsbi import RatioEstimator, TrainingData  # noqa: E402
from hepsbi.estimators.losses import RATIO_LOSSES  # noqa: E402
from hepsbi.estimators.training import TrainingConfig  # noqa: E402
from hepsbi.inference.validation import log_ratio_comparison  # noqa: E402
from hepsbi.simulators import GaltonBoard, GaussianLatent  # noqa: E402

TOYS = {"galton": GaltonBoard, "gaussian": GaussianLatent}
#: the methods that regress on the joint ratio log r(x, z)
JOINT_RATIO_METHODS = [name for name, loss in RATIO_LOSSES.items() if "log_r_xz" in loss.needs]


def monotone(points: list[tuple[int, float, float]]) -> bool:
    """(size, mean, standard error) in increasing size: no rise beyond twice the combined standard error."""
    return all(m1 <= m0 + 2 * (e0**2 + e1**2) ** 0.5 for (_, m0, e0), (_, m1, e1) in zip(points, points[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--toy", choices=sorted(TOYS), default="galton")
    parser.add_argument("--methods", nargs="+", default=JOINT_RATIO_METHODS, choices=list(RATIO_LOSSES))
    parser.add_argument("--sizes", nargs="+", type=int, default=[2_000, 20_000, 100_000, 300_000])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=TrainingConfig.batch_size)
    parser.add_argument("--name", default="", help="suffix of the JSON file (a non-default setting)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    sim = TOYS[args.toy]()
    grid = torch.linspace(float(sim.space.low[0]), float(sim.space.high[0]), 11, dtype=torch.float64).unsqueeze(1)
    start = time.perf_counter()
    runs: dict[tuple[str, int], list[tuple[float, float, list[float]]]] = {}
    for n in args.sizes:
        for seed in args.seeds:
            data = TrainingData.from_simulator(sim, n, seed=1000 * seed + 1)
            for method in args.methods:
                est = RatioEstimator(method, seed=seed, progress=False, batch_size=args.batch_size).fit(data)
                _, exact, learned = log_ratio_comparison({method: est.log_ratio_of_theta}, sim, grid, 5000, 777)
                per_theta = ((learned[method] - exact) ** 2).reshape(len(grid), -1).mean(dim=1)
                mse = float(per_theta.mean())
                runs.setdefault((method, n), []).append((mse, est.history.seconds, per_theta.tolist()))
                print(f"{method:7s} n={n:<7d} seed={seed} MSE={mse:.2e}  {est.history.seconds:.0f}s", flush=True)

    rows, curves = [], {}
    for (method, n), values in runs.items():
        mses = [v[0] for v in values]
        spread = statistics.stdev(mses) if len(mses) > 1 else 0.0
        mean, error = statistics.fmean(mses), spread / len(mses) ** 0.5
        curves.setdefault(method, []).append((n, mean, error))
        rows.append({"method": method, "n_train": n, "mse": mean, "mse_error": error, "seed_spread": spread,
                     "mses": mses, "train_s": round(statistics.fmean(v[1] for v in values), 1),
                     "mse_per_theta": [statistics.fmean(col) for col in zip(*(v[2] for v in values))]})
    verdict = {method: monotone(sorted(points)) for method, points in curves.items()}
    for row in rows:
        row["monotone"] = verdict[row["method"]]
    report(
        f"training_size_{args.toy}" + (f"_{args.name}" if args.name else ""),
        f"MSE(log r̂ − log r) on the {args.toy} toy against training size (mean over {len(args.seeds)} seeds)",
        ["method", "n_train", "mse", "mse_error", "seed_spread", "train_s", "monotone"],
        rows,
        {"toy": args.toy, "seeds": args.seeds, "test_points": grid[:, 0].tolist(), "events_per_test_point": 5000,
         "batch_size": args.batch_size,
         "seconds": round(time.perf_counter() - start)},
    )


if __name__ == "__main__":
    main()
