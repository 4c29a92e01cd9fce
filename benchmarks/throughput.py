"""Training and evaluation throughput of the default network, per method and device.

    python benchmarks/throughput.py                 # 2 threads, 40k events, 5 epochs; the CPU, and CUDA when present
    python benchmarks/throughput.py --threads 1 --batch-sizes 256 1024 --devices cpu cuda

Training: samples/s of the shared loop (TrainingHistory.samples_per_second), the median of ``--repeats``
trainings. Evaluation: events/s of log r̂(x | θ) at one θ (SALLY: t̂(x)) over ``--eval-events`` events, numpy in
and numpy out, so a GPU row includes the transfers (median of 5 passes after one warm-up). Target (issue 2): >= 50k training samples/s on 2 cores. Writes
throughput.json (benchmarks/out/, or benchmarks/results/ with HEPSBI_RECORD=1).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _table import report

from hepsbi import ScoreEstimator, TrainingData
from hepsbi.estimators import METHODS, LogRatioEstimator, build_estimator
from hepsbi.simulators import MultiParameterGaussian


def evaluation_rate(est, x, theta) -> float:  # noqa: ANN001
    """Events per second of one evaluation pass over x (numpy), the median of 5 after a warm-up."""
    def one() -> None:
        est.log_ratio(x, theta) if isinstance(est, LogRatioEstimator) else est.score(x)
        if est.device.type == "cuda":
            torch.cuda.synchronize()

    one()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        one()
        times.append(time.perf_counter() - start)
    return len(x) / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--eval-events", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[256, 1024])
    parser.add_argument("--devices", nargs="+", default=["cpu", *(["cuda"] if torch.cuda.is_available() else [])])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--repeats", type=int, default=3, help="trainings per cell; the median is reported")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    sim = MultiParameterGaussian()  # 5 observables, 2 parameters
    reference = sim.space.reference.reshape(1, -1).expand(args.eval_events, -1)
    toy = {"ratio": TrainingData.from_simulator(sim, args.events, seed=0),
           "local": TrainingData.local(sim, args.events, seed=0),
           "x": sim.sample(reference, torch.Generator().manual_seed(1))[0].float().numpy()}
    if "morphing" in args.methods:  # needs a simulator whose weights are quadratic in θ: Drell–Yan (c_LL, c_LR)
        from hepsbi.physics import DrellYanContact

        dy = DrellYanContact(parameters=["c_LL", "c_LR"], c_max=0.05, n_events=2 * args.events, seed=1)
        morphing = TrainingData.from_simulator(dy, args.events, seed=0)
        repeats = -(-args.eval_events // len(morphing))
        dy_x = morphing.x.float().repeat(repeats, 1)[: args.eval_events].numpy()

    def workload(method: str):  # noqa: ANN202
        """Training data, events to evaluate and θ for ``method``."""
        if method == "morphing":
            return morphing, dy_x, dy.space.reference.numpy()
        return toy["local" if METHODS[method].kind is ScoreEstimator else "ratio"], toy["x"], sim.space.reference.numpy()

    rows = []
    for device in args.devices:
        name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
        for batch in args.batch_sizes:
            options = dict(epochs=args.epochs, patience=10_000, batch_size=batch, progress=False, device=device)
            for method in args.methods:
                data, x, theta = workload(method)
                rates = []
                for _ in range(args.repeats):  # this machine's virtual CPUs are shared: single runs scatter ×3
                    est = build_estimator(method, **options).fit(data)
                    rates.append(est.history.samples_per_second)
                sps = statistics.median(rates)
                eps = evaluation_rate(est, x, theta)
                rows.append({"device": device, "method": method, "batch_size": batch, "samples_per_s": round(sps),
                             "eval_events_per_s": round(eps), "meets_50k": sps >= 50_000, "hardware": name})
                print(f"{device:5s} {method:8s} batch={batch:<5d} train {sps:,.0f} samples/s  "
                      f"evaluate {eps:,.0f} events/s", flush=True)
    report(
        "throughput",
        f"training and evaluation throughput, default network (64x64x64 SiLU), {args.threads} CPU threads",
        ["device", "method", "batch_size", "samples_per_s", "eval_events_per_s", "meets_50k"],
        rows,
        {"events": args.events, "eval_events": args.eval_events, "epochs": args.epochs, "repeats": args.repeats,
         "observables": 5, "parameters": 2,
         "devices": args.devices},
    )


if __name__ == "__main__":
    main()
