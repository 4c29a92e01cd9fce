r"""``hepsbi coverage SPEC``: do the intervals a spec produces cover the truth as often as they claim?

Simulate and train as :func:`hepsbi.workflow.run` does, then draw pseudo-experiments at θ_true and, for each
learned likelihood (and the exact or parton-level one when there is one), decide with two fits whether the
Wilks 68 % / 95 % region contains θ_true (see :mod:`hepsbi.inference.pseudo_experiments`):

* simulators with exact sampling (the toys): ``inference.n_events`` events per pseudo-experiment, drawn by
  the simulator; likelihood Σ_i log r(x_i | θ) of those events;
* weighted simulators (Drell–Yan): a Poisson bootstrap of the Asimov Monte Carlo events at the luminosity
  of the spec; the extended likelihood with ν(θ) by morphing and each ratio normalised on the Monte Carlo.

Writes ``coverage.json`` (per likelihood: coverage, binomial error, deviation from nominal in σ, every
toy's t) and ``plots/coverage.png`` (the t distributions against χ²).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from distributed import as_completed
from rich.console import Console
from rich.progress import track
from rich.table import Table
from torch import Tensor

from hepsbi.errors import SpecError
from hepsbi.files import inside, write_json
from hepsbi.inference.analysis import simulator_toys
from hepsbi.inference.pseudo_experiments import CoverageResult
from hepsbi.report.plots import plot_coverage
from hepsbi.simulators.protocol import is_weighted
from hepsbi.workflow.console import run_console, timed, use_thread_setting
from hepsbi.workflow.graph import build_and_run
from hepsbi.workflow.inputs import load_run, load_stages, prepare, weighted_analysis
from hepsbi.workflow.lock import disk_errors, run_lock
from hepsbi.workflow.placement import dask_client
from hepsbi.workflow.spec import RunSpec

__all__ = ["TOYS_PER_TASK", "run_coverage", "toy_batch"]

#: pseudo-experiments per Dask task when toys run on workers
TOYS_PER_TASK = 25


def _toy_statistics(spec: RunSpec, sim: Any, theta_true: Tensor, estimators: dict[str, Any], first: int, count: int,
                    progress: bool) -> dict[str, CoverageResult]:
    """Per likelihood, t(θ_true) of toys ``first`` … ``first + count − 1`` (toy k draws from inference.seed + 1 + k,
    so a batch gives the same numbers wherever and in whatever order it runs): Poisson-bootstrap toys of the
    weighted analysis, or toys drawn by the simulator (:mod:`hepsbi.inference.analysis`)."""
    inf = spec.inference
    ratios = {label: est.log_ratio_of_theta for label, est in estimators.items()}
    if is_weighted(sim):
        analysis = weighted_analysis(spec, sim, theta_true)
        return analysis.toys(analysis.models(ratios, parton_level=inf.parton_level), inf.seed, first, count, progress)
    return simulator_toys(sim, theta_true, ratios, int(round(inf.n_events)), inf.seed, first, count, progress=progress)


def toy_batch(document: dict[str, Any], merged: str, estimators: dict[str, list[str]], first: int,
              count: int) -> dict[str, CoverageResult]:
    """A Dask task: toys ``first`` … ``first + count − 1`` of the spec, with the estimators and the pool loaded
    from their stage directories."""
    spec = RunSpec.model_validate(document)
    sim, theta_true, _, loaded, _ = load_run(spec, merged, estimators, None)
    use_thread_setting()
    return _toy_statistics(spec, sim, theta_true, loaded, first, count, progress=False)


def run_coverage(spec: RunSpec, out: str | os.PathLike[str], n_toys: int = 300, progress: bool = True,
                 console: Console | None = None) -> dict[str, Any]:
    """Coverage study of ``spec`` with ``n_toys`` pseudo-experiments; returns the ``coverage.json`` document.
    The toys run where the spec's ``execution`` places the stages: in-process, or in batches of
    :data:`TOYS_PER_TASK` on Dask workers (the same numbers either way)."""
    console = console or run_console(progress)
    if n_toys < 1:
        raise SpecError(f"--toys must be at least 1 (got {n_toys})")
    out = Path(out)
    sim, theta_true = prepare(spec)
    with run_lock(out, "hepsbi coverage"), disk_errors(out):
        return _coverage_locked(spec, sim, theta_true, out, n_toys, progress, console)


def _coverage_locked(spec: RunSpec, sim: Any, theta_true: Tensor, out: Path, n_toys: int, progress: bool,
                     console: Console) -> dict[str, Any]:
    use_thread_setting()
    with timed("simulate + train", {}, console):
        stages = build_and_run(spec, out, progress, infer=False)
    with dask_client(spec) as client:
        if client is None:
            _, estimators, _ = load_stages(sim, stages["merged"], stages["estimators"], None, spec.execution.device)
            batches = [_toy_statistics(spec, sim, theta_true, estimators, 0, n_toys, progress)]
        else:
            document = spec.model_dump(mode="json")
            firsts = range(0, n_toys, TOYS_PER_TASK)
            futures = [client.submit(toy_batch, document, stages["merged"], stages["estimators"], k,
                                     min(TOYS_PER_TASK, n_toys - k), pure=False) for k in firsts]
            for _ in track(as_completed(futures), total=len(futures), description="toy batches", disable=not progress):
                pass
            batches = client.gather(futures)
    # batches in toy order; an error if every fit of a likelihood failed
    results = {label: CoverageResult.join([b[label] for b in batches]) for label in batches[0]}
    names = list(sim.space.names)
    document = {"spec_name": spec.name, "truth": sim.space.as_dict(theta_true), "n_toys": n_toys,
                "likelihoods": {label: r.to_dict() for label, r in results.items()}}
    write_json(inside(out, "coverage.json"), document)
    plot_coverage({label: r.t for label, r in results.items()}, len(names), inside(out, "plots", "coverage.png"))
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
