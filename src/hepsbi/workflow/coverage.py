r"""``hepsbi coverage SPEC``: do the intervals a spec produces cover the truth as often as they claim?

Simulate and train as :func:`hepsbi.workflow.run` does, then draw pseudo-experiments at θ_true and, for each
learned likelihood (and the exact or parton-level one when there is one), decide with two fits whether the
Wilks 68 % / 95 % region contains θ_true (see :mod:`hepsbi.inference.toys`):

* simulators with exact sampling (the toys): ``inference.n_events`` events per pseudo-experiment, drawn by
  the simulator; likelihood Σ_i log r(x_i | θ) of those events;
* weighted simulators (Drell–Yan): a Poisson bootstrap of the Asimov Monte Carlo events at the luminosity
  of the spec; the extended likelihood with ν(θ) by morphing and each ratio normalised on the Monte Carlo.

Writes ``coverage.json`` (per likelihood: coverage, binomial error, deviation from nominal in σ, every
toy's t) and ``plots/coverage.png`` (the t distributions against χ²).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor

from hepsbi.errors import SpecError
from hepsbi.files import write_json
from hepsbi.inference.datasets import observed_dataset
from hepsbi.inference.profile import NLL
from hepsbi.inference.toys import CoverageResult, coverage, poisson_counts
from hepsbi.report.plots import plot_coverage
from hepsbi.simulators.protocol import has_exact_likelihood, is_weighted
from hepsbi.workflow.infer import unbinned_models
from hepsbi.workflow.inputs import inference_dataset, prepare
from hepsbi.workflow.run import simulate_and_train
from hepsbi.workflow.spec import RunSpec

__all__ = ["run_coverage"]

PerEvent = Callable[[Tensor], Tensor]


def _toy_nlls_unweighted(spec: RunSpec, sim: Any, truth: Tensor, ratios: Callable[[Tensor], dict[str, PerEvent]],
                         n_toys: int) -> dict[str, list[NLL]]:
    """Per likelihood, lazily built NLLs of simulator pseudo-experiments (fixed number of events)."""
    n = int(round(spec.inference.n_events))
    per_label: dict[str, list[NLL]] = {}
    for k in range(n_toys):
        x = observed_dataset(sim, truth, n, seed=spec.inference.seed + 1 + k).x
        for label, lr in ratios(x).items():
            per_label.setdefault(label, []).append(lambda th, lr=lr: -lr(th).sum())
    return per_label


def run_coverage(spec: RunSpec, out: str | os.PathLike[str], n_toys: int = 300, progress: bool = True,
                 console: Console | None = None) -> dict[str, Any]:
    """Coverage study of ``spec`` with ``n_toys`` pseudo-experiments; returns the ``coverage.json`` document."""
    console = console or Console(quiet=not progress, log_path=False, width=None if sys.stdout.isatty() else 120)
    if n_toys < 1:
        raise SpecError(f"--toys must be at least 1 (got {n_toys})")
    out = Path(out)
    sim, truth = prepare(spec)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))))
    timings: dict[str, float] = {}
    _, estimators, _ = simulate_and_train(spec, sim, out, timings, console, progress)
    names = list(sim.space.names)
    truth_dict = sim.space.as_dict(truth)
    limits = {p.name: (p.low, p.high) for p in sim.space.parameters}
    start = truth.tolist()
    results: dict[str, CoverageResult] = {}

    if is_weighted(sim):
        models = unbinned_models(spec, sim, inference_dataset(spec, sim, truth), estimators)
        first = next(iter(models.values()))
        gen = torch.Generator().manual_seed(spec.inference.seed + 1)
        # the same pseudo-experiments (counts, auxiliary data) for every likelihood
        toys = [(poisson_counts(first.weights, gen), torch.randn(len(first.nuisance), generator=gen, dtype=torch.float64))
                for _ in range(n_toys)]
        start = start + [0.0] * len(first.nuisance)
        for label, model in models.items():
            nlls: Iterator[NLL] = (model.with_data(c, aux).nll for c, aux in toys)
            results[label] = coverage(nlls, first.names, truth_dict, start, None, n_toys, progress, f"toys: {label}")
    else:
        ref = sim.space.reference

        def ratios(x: Tensor) -> dict[str, PerEvent]:
            fns: dict[str, PerEvent] = {label: est.log_ratio_of_theta(x) for label, est in estimators.items()}
            if has_exact_likelihood(sim):
                x64, log_p_ref = x.to(torch.float64), sim.log_prob(x.to(torch.float64), ref)  # type: ignore[attr-defined]
                fns["exact"] = lambda th: sim.log_prob(x64, th) - log_p_ref  # type: ignore[attr-defined]
            return fns

        for label, nlls in _toy_nlls_unweighted(spec, sim, truth, ratios, n_toys).items():
            results[label] = coverage(nlls, names, truth_dict, start, limits, n_toys, progress, f"toys: {label}")

    document = {"spec_name": spec.name, "truth": truth_dict, "n_toys": n_toys,
                "likelihoods": {label: r.to_dict() for label, r in results.items()}}
    write_json(out / "coverage.json", document)
    plot_coverage({label: r.t for label, r in results.items()}, len(names), out / "plots" / "coverage.png")
    console.print(coverage_table(document))
    return document


def coverage_table(document: dict[str, Any]) -> Table:
    """Coverage per likelihood and level, with binomial errors and the deviation from nominal."""
    table = Table(title=f"coverage of Wilks intervals over {document['n_toys']} toys")
    for column in ("likelihood", "68% (nominal 68.3%)", "σ from nominal", "95%", "σ from nominal", "failed fits"):
        table.add_column(column, no_wrap=True)
    for label, block in document["likelihoods"].items():
        lv = block["levels"]
        table.add_row(label, f"{lv['68']['coverage']:.3f} ± {lv['68']['error']:.3f}", f"{lv['68']['pull']:+.1f}",
                      f"{lv['95']['coverage']:.3f} ± {lv['95']['error']:.3f}", f"{lv['95']['pull']:+.1f}",
                      str(block["failed_fits"]))
    return table
