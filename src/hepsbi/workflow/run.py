r"""Run a spec: simulate → train → evaluate → infer → report, writing everything under one directory.

Layout of the run directory::

    RUN_DIR/
      spec.yaml               the validated spec, defaults filled in
      data/training.h5        training data (hepsbi.TrainingData)
      models/<label>/         each trained estimator (weights.pt + estimator.json)
      results.json            MLE, intervals, scans, truth, provenance
      plots/*.png             log r learned vs exact, likelihood scan, training curves
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml
from rich.console import Console

from hepsbi.data.training import TrainingData
from hepsbi.errors import ParameterError, SimulatorError, SpecError
from hepsbi.estimators.ratio import RatioEstimator
from hepsbi.files import atomic_path
from hepsbi.inference.datasets import Dataset, asimov_dataset, observed_dataset
from hepsbi.inference.scan import ScanResult, likelihood_scan
from hepsbi.inference.validation import exact_log_ratio, log_ratio_comparison
from hepsbi.report.plots import plot_log_ratio, plot_scans, plot_training
from hepsbi.report.results import build_results, write_results
from hepsbi.report.summary import print_summary
from hepsbi.simulators.protocol import Simulator, has_exact_likelihood
from hepsbi.simulators.registry import build_simulator
from hepsbi.space import BenchmarkSampler, GridSampler, PriorSampler, ThetaSampler
from hepsbi.workflow.spec import RunSpec, spec_hash

__all__ = ["prepare", "run"]


@contextmanager
def _stage(name: str, timings: dict[str, float], console: Console) -> Iterator[None]:
    console.log(f"[bold cyan]{name}[/] …")
    start = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - start, 3)
    console.log(f"[bold cyan]{name}[/] done in {timings[name]:.1f} s")


def prepare(spec: RunSpec) -> tuple[Simulator, torch.Tensor]:
    """Build the simulator and the checked θ_true; errors name the spec key."""
    try:
        sim = build_simulator(spec.simulator.name, spec.simulator.options)
    except SimulatorError as exc:
        raise SpecError(f"simulator: {exc}") from None
    try:
        truth = sim.space.point(spec.inference.theta_true, what="inference.theta_true")
    except ParameterError as exc:
        raise SpecError(str(exc)) from None
    labels = [e.label or e.method for e in spec.training.estimators]
    for i, label in enumerate(labels):
        if labels.index(label) != i:
            raise SpecError(f"training.estimators.{i}.label: duplicate label {label!r}; give each estimator a label")
    if spec.data.theta_sampler == "benchmarks" and not sim.space.benchmarks:
        raise SpecError("data.theta_sampler: 'benchmarks' needs a simulator whose parameter space defines benchmarks")
    if sim.space.dim > 2:
        raise SpecError(f"simulator: grid scans support 1 or 2 parameters, {spec.simulator.name!r} has {sim.space.dim}")
    return sim, truth


def _sampler(spec: RunSpec, sim: Simulator) -> ThetaSampler:
    if spec.data.theta_sampler == "grid":
        return GridSampler(sim.space, spec.data.grid_points)
    if spec.data.theta_sampler == "benchmarks":
        return BenchmarkSampler(sim.space)
    return PriorSampler(sim.space)


def _dataset(spec: RunSpec, sim: Simulator, truth: torch.Tensor) -> Dataset:
    inf = spec.inference
    if inf.dataset == "asimov":
        return asimov_dataset(sim, truth, inf.n_events, inf.n_mc, inf.seed)
    return observed_dataset(sim, truth, int(round(inf.n_events)), inf.seed)


def run(spec: RunSpec, out: str | os.PathLike[str], progress: bool = True, console: Console | None = None) -> dict[str, Any]:
    """Execute ``spec`` into directory ``out``; returns the results document (also in ``results.json``)."""
    # Off a terminal (logs, CI) rich would assume 80 columns and squeeze the summary table.
    console = console or Console(quiet=not progress, log_path=False, width=None if sys.stdout.isatty() else 120)
    out = Path(out)
    sim, truth = prepare(spec)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "spec.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    timings: dict[str, float] = {}
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))))

    with _stage("simulate", timings, console):
        data = TrainingData.from_simulator(sim, spec.data.n_samples, _sampler(spec, sim), seed=spec.data.seed)
        data.save(out / "data" / "training.h5")

    estimators: dict[str, RatioEstimator] = {}
    with _stage("train", timings, console):
        for e in spec.training.estimators:
            label = e.label or e.method
            est = RatioEstimator(
                e.method, alpha=e.alpha, hidden=e.hidden, log_r_clip=e.log_r_clip, progress=progress,
                **e.training_options(),
            )
            estimators[label] = est.fit(data)
            est.save(out / "models" / label)

    extra: dict[str, dict[str, Any]] = {
        label: {"method": est.method, "training": {
            "epochs": len(est.history.train_loss),
            "best_epoch": est.history.best_epoch,
            "seconds": round(est.history.seconds, 3),
            "samples_per_second": round(est.history.samples_per_second, 1),
        }} for label, est in estimators.items()
    }
    exact_available = has_exact_likelihood(sim)
    comparison = None
    if exact_available:
        with _stage("evaluate", timings, console):
            test_points = sim.space.mesh(sim.space.grid(11 if sim.space.dim == 1 else 5))
            comparison = log_ratio_comparison(
                {label: est.log_ratio for label, est in estimators.items()},
                sim, test_points, spec.report.validation_events, seed=spec.data.seed + 1_000_003,
            )
            _, exact_lr, learned = comparison
            for label in estimators:
                extra[label]["log_ratio_mse"] = float(((learned[label] - exact_lr) ** 2).mean())

    with _stage("infer", timings, console):
        dataset = _dataset(spec, sim, truth)
        points = spec.inference.grid_points
        scans: dict[str, ScanResult] = {
            label: likelihood_scan(est.log_ratio, dataset, sim.space, points=points) for label, est in estimators.items()
        }
        exact_scan = likelihood_scan(exact_log_ratio(sim), dataset, sim.space, points=points) if exact_available else None

    truth_dict = sim.space.as_dict(truth)
    with _stage("report", timings, console):
        if spec.report.plots:
            plots = out / "plots"
            all_scans = dict(scans)
            if exact_scan is not None:
                all_scans["exact"] = exact_scan
            plot_scans(all_scans, truth_dict, plots / "likelihood_scan.png")
            plot_training({label: est.history for label, est in estimators.items()}, plots / "training.png")
            if comparison is not None:
                _, exact_lr, learned = comparison
                plot_log_ratio(exact_lr.numpy(), {k: v.numpy() for k, v in learned.items()}, plots / "log_ratio.png")
    provenance = {
        "spec_hash": spec_hash(spec),
        "spec_name": spec.name,
        "seeds": {
            "data": spec.data.seed,
            "inference": spec.inference.seed,
            "estimators": {label: est.config.seed for label, est in estimators.items()},
        },
        "timings_s": timings,
    }
    dataset_info = {"kind": dataset.kind, "n_events": spec.inference.n_events, "n_mc": len(dataset.weights)}
    primary = next(iter(estimators))
    results = build_results(primary, scans, truth_dict, provenance, extra, exact_scan, dataset_info)
    write_results(out / "results.json", results)
    print_summary(results, console)
    return results
