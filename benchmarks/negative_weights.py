"""Signed density ratios on the camel example (hepsbi.simulators.signed.camel): REVERT, the signed mixture models
and cross-entropy, against the exact ratio.

    python benchmarks/negative_weights.py                           # 1e4, 1e5 (3 data seeds each), 1e6 (one)
    python benchmarks/negative_weights.py --sizes 10000 --seeds 0 1 2 3 4

Per method and size (events per sample; as many again for testing):
- sign: the share of the region where r = p₁/p₀ < 0 (the disk |x| < 1.216, a uniform 261² grid) where r̂ < 0;
- error: mean |r̂ − r| / mean |r| over the source's test events;
- SW±: the extended sliced-Wasserstein distance (50 directions) between the test source reweighted by r̂ and the
  test target — beside it the same with no reweighting and with the exact r (the samples' own noise floor).
Training: default network and schedule, batch 256 / 1024 / 4096 at 1e4 / 1e5 / 1e6 (--batch-sizes), 20 epochs
instead of 50 at 1e6 (--large-epochs; still 7,800 steps). Writes
negative_weights.json (benchmarks/out/, or benchmarks/results/ with HEPSBI_RECORD=1).

Published (Drnevich, Jiggins, Cranmer, arXiv:2512.19913, code mdkdrnevich/QuasiDRE): the SW± values quoted in
BENCHMARKS.md (no reweighting 13.8, MLP-REVERT 0.25, SMM 1.46) come from their SMEFT example, in its physical
units, not from the camel toy; compare the ratios after/before, not the numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _table import report

from hepsbi.estimators.two_sample import TWO_SAMPLE_METHODS, TwoSampleRatio
from hepsbi.inference.distances import extended_sliced_wasserstein
from hepsbi.simulators.signed import camel


def sign_grid(source, target) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """The grid points of the negative region and the exact ratio there."""
    u = torch.linspace(-1.3, 1.3, 261, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    r = target.density(grid) / source.density(grid)
    return grid[r < 0], r[r < 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[256, 1024, 4096])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="data seeds (1e6: the first only)")
    parser.add_argument("--methods", nargs="+", default=list(TWO_SAMPLE_METHODS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--large-epochs", type=int, default=20, help="epochs at 1e6 events (default schedule: 50)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    source, target = camel()
    negative_region, _ = sign_grid(source, target)
    rows = []
    for size, batch in zip(args.sizes, args.batch_sizes):
        seeds = args.seeds if size < 1_000_000 else args.seeds[:1]
        cells: dict[str, list[dict[str, float]]] = {m: [] for m in args.methods}
        references = []
        for seed in seeds:
            gen = torch.Generator().manual_seed(seed)
            x0, w0, x1, w1 = (*source.sample(size, gen), *target.sample(size, gen))
            t0, tw0, t1, tw1 = (*source.sample(size, gen), *target.sample(size, gen))
            exact = target.density(t0) / source.density(t0)
            references.append({"none": extended_sliced_wasserstein((t0, tw0), (t1, tw1)),
                               "exact": extended_sliced_wasserstein((t0, tw0 * exact), (t1, tw1))})
            for method in args.methods:
                start = time.perf_counter()
                epochs = args.large_epochs if size >= 1_000_000 else None  # default schedule: 50 epochs
                est = TwoSampleRatio(method, batch_size=batch, epochs=epochs, progress=False, seed=seed).fit(x0, w0, x1, w1)
                r = est.ratio(t0)
                cells[method].append({
                    "sign": float((est.ratio(negative_region) < 0).double().mean()),
                    "error": float((r - exact).abs().mean() / exact.abs().mean()),
                    "sw": extended_sliced_wasserstein((t0, tw0 * r), (t1, tw1)),
                    "seconds": time.perf_counter() - start, "c": est.c})
                last = cells[method][-1]
                print(f"n={size:<8d} seed={seed} {method:6s} sign {last['sign']:.3f} error {last['error']:.3f} "
                      f"SW± {last['sw']:.4f} (none {references[-1]['none']:.4f}, exact {references[-1]['exact']:.4f}) "
                      f"{last['seconds']:.0f} s", flush=True)
        for method, runs in cells.items():
            row: dict[str, object] = {"events": size, "method": method, "seeds": len(runs)}
            for key in ("sign", "error", "sw"):
                values = [run[key] for run in runs]
                row[key] = statistics.mean(values)
                row[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
            row["sw_none"] = statistics.mean(r["none"] for r in references)
            row["sw_exact"] = statistics.mean(r["exact"] for r in references)
            row["sign_95"] = row["sign"] >= 0.95  # type: ignore[operator]
            row["seconds"] = statistics.mean(run["seconds"] for run in runs)
            rows.append(row)
    report("negative_weights", f"camel example: signed ratios, {args.threads} threads",
           ["events", "method", "seeds", "sign", "sign_sd", "error", "sw", "sw_none", "sw_exact", "sign_95", "seconds"],
           rows, {"sizes": args.sizes, "batch_sizes": args.batch_sizes, "data_seeds": args.seeds})


if __name__ == "__main__":
    main()
