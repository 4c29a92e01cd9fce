"""Coverage of the Drell–Yan example's likelihoods at θ_true away from the reference, with and without its
nuisance parameters profiled.

    python benchmarks/coverage.py                          # the demo's run, 200 toys, 3 points, plain and profiled
    python benchmarks/coverage.py --toys 50 --points 0,0 --run runs/drell_yan_contact

Runs (or resumes) `examples/drell_yan_contact.yaml` into --run, loads its pool and learned estimators, and for
each θ_true draws Poisson-bootstrap pseudo-experiments of the analysis' Monte Carlo events at θ_true and 139 fb⁻¹
(WeightedAnalysis.toys: toy k from seed 1 + 1 + k, the same toys for every likelihood), fits each extended
unbinned likelihood — ALICES, the morphing-aware estimator, the parton-level truth — and counts how often the
Wilks 68 % / 95 % region contains θ_true. "profiled" adds the spec's luminosity and m_ℓℓ-tilt nuisance
parameters (constrained, toys draw their auxiliary data). A likelihood whose θ-dependence is too weak or biased
shows up away from θ_ref; at θ_ref it cannot. Writes benchmarks/results/coverage.json.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from _table import report  # noqa: E402

from hepsbi.data.events import Events  # noqa: E402
from hepsbi.estimators import load_estimator  # noqa: E402
from hepsbi.inference import WeightedAnalysis  # noqa: E402
from hepsbi.workflow.inputs import prepare, weighted_analysis  # noqa: E402
from hepsbi.workflow.run import run  # noqa: E402
from hepsbi.workflow.spec import load_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default=str(ROOT / "examples" / "drell_yan_contact.yaml"))
    parser.add_argument("--run", default=str(ROOT / "runs" / "drell_yan_contact"), help="run directory (resumed)")
    parser.add_argument("--toys", type=int, default=200)
    parser.add_argument("--points", nargs="+", default=["0,0", "0.006,0", "0,0.006"], help="θ_true as c_LL,c_LR")
    args = parser.parse_args()
    torch.set_num_threads(1)

    spec = load_spec(args.spec)
    start = time.perf_counter()
    run(spec, args.run, progress=False)
    sim, _ = prepare(spec)
    sim.use_events(Events.load(Path(args.run) / "data" / "events.h5"))  # type: ignore[attr-defined]
    labels = [e.label or e.method for e in spec.training.estimators]
    ratios = {label: load_estimator(Path(args.run) / "models" / label).log_ratio_of_theta for label in labels}
    inf = spec.inference
    assert inf.luminosity is not None
    rows = []
    for text in args.points:
        theta = torch.tensor([float(v) for v in text.split(",")], dtype=torch.float64)
        for case in ("plain", "profiled"):
            analysis = weighted_analysis(spec, sim, theta) if case == "profiled" else \
                WeightedAnalysis(sim, theta, inf.luminosity, inf.n_mc, inf.seed)
            models = analysis.models(ratios, parton_level=True)
            for label, model in models.items():
                began = time.perf_counter()
                result = analysis.toys({label: model}, inf.seed, 0, args.toys)[label]
                seconds = time.perf_counter() - began
                levels = {lv: result.level(lv) for lv in ("68", "95")}
                rows.append({
                    "theta_true": text, "case": case, "likelihood": label, "toys": result.n_toys,
                    "failed": result.failed,
                    "coverage_68": levels["68"]["coverage"], "error_68": levels["68"]["error"],
                    "pull_68": levels["68"]["pull"],
                    "coverage_95": levels["95"]["coverage"], "error_95": levels["95"]["error"],
                    "pull_95": levels["95"]["pull"],
                    "mean_t": float(result.t.mean()), "seconds": round(seconds, 1),
                })
                print(f"θ=({text}) {case:8s} {label:9s} 68%: {levels['68']['coverage']:.3f}  "
                      f"95%: {levels['95']['coverage']:.3f}  {seconds:.0f}s", flush=True)
    report(
        "coverage",
        f"Drell–Yan coverage of Wilks' 68 % / 95 % regions, {args.toys} Poisson-bootstrap toys per point at 139 fb⁻¹",
        ["theta_true", "case", "likelihood", "toys", "failed", "coverage_68", "error_68", "pull_68", "coverage_95",
         "error_95", "pull_95", "mean_t", "seconds"],
        rows,
        {"spec": Path(args.spec).name, "toys": args.toys, "seconds": round(time.perf_counter() - start)},
    )


if __name__ == "__main__":
    main()
