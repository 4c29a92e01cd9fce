"""Accuracy of every ratio method against the exact likelihood, per training size.

    python benchmarks/accuracy.py                       # Galton board, all methods, 1e3 1e4 1e5
    python benchmarks/accuracy.py --toy gaussian --sizes 2000 20000 100000
    python benchmarks/accuracy.py --methods scandal nde alices --sizes 10000 --flow maf

The methods are those of the registry that learn log r on a toy (every ratio method, ``revert`` and ``smm``, and
the densities ``nde`` and ``scandal``; ``morphing`` needs a morphing simulator). The densities dequantise the Galton
board's integer slot (``dequantise=True``).

MSE(log r̂ − log r) is averaged over a grid of 11 test points θ_g spanning the parameter range, with
5000 held-out events drawn at each θ_g (hepsbi.inference.log_ratio_mse). Writes
benchmarks/results/accuracy_<toy>.json.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from _table import report  # noqa: E402

from hepsbi import TrainingData  # noqa: E402
from hepsbi.estimators import METHODS, RATIO_METHODS, DensityEstimator, build_estimator  # noqa: E402
from hepsbi.inference import log_ratio_mse  # noqa: E402
from hepsbi.simulators import GaltonBoard, GaussianLatent  # noqa: E402

TOYS = {"galton": GaltonBoard, "gaussian": GaussianLatent}
#: the registry's methods that train on a toy's TrainingData (morphing needs a morphing simulator)
TOY_METHODS = [m for m in RATIO_METHODS if "morphing" not in METHODS[m].needs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--toy", choices=sorted(TOYS), default="galton")
    parser.add_argument("--methods", nargs="+", default=TOY_METHODS, choices=TOY_METHODS)
    parser.add_argument("--sizes", nargs="+", type=int, default=[1_000, 10_000, 100_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--flow", default="nsf", help="the densities' flow (nsf, maf, realnvp)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    sim = TOYS[args.toy]()
    grid = torch.linspace(float(sim.space.low[0]), float(sim.space.high[0]), 11, dtype=torch.float64).unsqueeze(1)
    rows = []
    for n in args.sizes:
        data = TrainingData.from_simulator(sim, n, seed=args.seed + 1)
        for method in args.methods:
            dense = METHODS[method].kind is DensityEstimator
            options = {"dequantise": args.toy == "galton", "flow": args.flow} if dense else {}
            est = build_estimator(method, seed=args.seed, progress=False, **options).fit(data)
            mse = log_ratio_mse(est.log_ratio_of_theta, sim, grid, n_events=5000, seed=args.seed + 777)
            h = est.history
            rows.append({
                "method": f"{method} ({args.flow})" if dense else method,
                "n_train": n,
                "mse": mse,
                "train_s": round(h.seconds, 2),
                "epochs": len(h.train_loss),
                "samples_per_s": round(h.samples_per_second),
            })
            print(f"{rows[-1]['method']:14s} n={n:<7d} MSE={mse:.5f}  {h.seconds:.1f}s", flush=True)
    report(
        f"accuracy_{args.toy}",
        f"MSE(log r̂ − log r) on the {args.toy} toy",
        ["method", "n_train", "mse", "train_s", "epochs", "samples_per_s"],
        rows,
        {"toy": args.toy, "flow": args.flow, "theta_range": [float(sim.space.low[0]), float(sim.space.high[0])], "test_points": 11,
         "events_per_test_point": 5000},
    )


if __name__ == "__main__":
    main()
