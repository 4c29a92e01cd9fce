"""Training throughput (samples/s) of the default network, per method.

    python benchmarks/throughput.py                 # 2 threads, 40k events, 5 epochs
    python benchmarks/throughput.py --threads 1 --batch-sizes 256 1024

Target (issue 2): >= 50k samples/s on 2 cores. Writes benchmarks/results/throughput.json.
"""

from __future__ import annotations

import argparse

import torch
from _table import report

from hepsbi import ScoreEstimator, TrainingData
from hepsbi.estimators import METHODS, build_estimator
from hepsbi.simulators import MultiParameterGaussian


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[256, 1024])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    sim = MultiParameterGaussian()  # 5 observables, 2 parameters
    data = TrainingData.from_simulator(sim, args.events, seed=0)
    local = TrainingData.local(sim, args.events, seed=0)
    rows = []
    for batch in args.batch_sizes:
        options = dict(epochs=args.epochs, patience=10_000, batch_size=batch, progress=False)
        for method in METHODS:
            est = build_estimator(method, **options).fit(local if METHODS[method].kind is ScoreEstimator else data)
            sps = est.history.samples_per_second
            rows.append({"method": method, "batch_size": batch, "samples_per_s": round(sps), "meets_50k": sps >= 50_000})
            print(f"{method:7s} batch={batch:<5d} {sps:,.0f} samples/s", flush=True)
    report(
        "throughput",
        f"training throughput, default network (64x64x64 SiLU), {args.threads} threads",
        ["method", "batch_size", "samples_per_s", "meets_50k"],
        rows,
        {"events": args.events, "epochs": args.epochs, "observables": 5, "parameters": 2},
    )


if __name__ == "__main__":
    main()
