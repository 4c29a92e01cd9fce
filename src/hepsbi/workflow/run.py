r"""Run a spec: simulate → train → evaluate → infer → report, writing everything under one directory.

Layout of the run directory::

    RUN_DIR/
      spec.yaml               the validated spec, defaults filled in
      data/training.h5        training data (hepsbi.TrainingData)
      data/events.h5          weighted simulators: the generated event pool (hepsbi.Events)
      models/<label>/         each trained estimator (weights.pt + estimator.json)
      results.json            MLE, intervals, scans, truth, comparisons (deterministic: same spec, same bytes)
      provenance.json         versions, host, seeds, spec hash, wall times per stage, every stage's state
      stages/<stage>-<key>/   cached stage outputs with checksummed manifests (resume, see workflow.cache)
      plots/*.png             likelihood scans, log r learned vs exact (toys), training curves
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rich.console import Console

from hepsbi.data.events import Events
from hepsbi.errors import ParameterError, SimulatorError, SpecError
from hepsbi.estimators.ensemble import RatioEnsemble
from hepsbi.estimators.ratio import RatioEstimator
from hepsbi.estimators.score import ScoreEstimator
from hepsbi.files import atomic_path, write_json
from hepsbi.inference.datasets import (
    Dataset,
    asimov_dataset,
    asimov_expected_events,
    observed_dataset,
    reference_weights,
    weighted_asimov_dataset,
)
from hepsbi.inference.fisher import (
    binned_information,
    information_from_scores,
    information_summary,
    model_information,
    per_event_scores,
    profiled_information,
    rate_information,
    rate_score,
)
from hepsbi.inference.nuisance import NormSys, ShapeSys
from hepsbi.inference.profile import minimize, profile_scan
from hepsbi.inference.scan import ScanResult, likelihood_scan, scan_log_likelihood
from hepsbi.inference.templates import bin_index_edges, bin_index_quantiles, template_log_likelihood
from hepsbi.inference.unbinned import LinearRatio, UnbinnedModel
from hepsbi.inference.validation import (
    exact_log_ratio,
    joint_log_ratio_on_latent,
    log_ratio_comparison,
    normalised_log_ratio,
    normalised_log_ratio_of_theta,
)
from hepsbi.report.plots import (
    plot_information_ellipses,
    plot_log_ratio,
    plot_pulls,
    plot_scans,
    plot_training,
)
from hepsbi.report.results import build_results, environment, write_results
from hepsbi.report.summary import print_summary
from hepsbi.simulators.protocol import Simulator, has_exact_likelihood, is_weighted
from hepsbi.simulators.registry import build_simulator
from hepsbi.space import BenchmarkSampler, GridSampler, PriorSampler, ThetaSampler
from hepsbi.workflow.cache import run_stage, stage_records
from hepsbi.workflow.graph import build_and_run
from hepsbi.workflow.spec import HistogramSpec, ProfileSpec, RunSpec, spec_hash

__all__ = ["prepare", "run", "simulate_and_train", "unbinned_models"]

PB_PER_FB = 1000.0


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
        raise SpecError(
            f"simulator: grid scans support 1 or 2 parameters, {spec.simulator.name!r} has {sim.space.dim} "
            f"{list(sim.space.names)} (choose a subset, e.g. options.parameters for drell_yan)"
        )
    weighted = is_weighted(sim)
    if weighted and spec.inference.luminosity is None:
        raise SpecError("inference.luminosity: required for weighted simulators (fb^-1), e.g. 139")
    if not weighted and (spec.inference.histogram is not None or spec.training.sally is not None):
        raise SpecError("inference.histogram and training.sally need a weighted simulator (e.g. drell_yan)")
    names = list(getattr(sim, "observable_names", []))
    if spec.data.balance is not None and spec.data.balance not in names:
        raise SpecError(f"data.balance: {spec.data.balance!r} is not an observable of the simulator ({names})")
    systematics = spec.inference.systematics
    if systematics and not weighted:
        raise SpecError("inference.systematics: nuisance parameters need a weighted simulator (e.g. drell_yan)")
    seen = [s.name for s in systematics]
    for i, syst in enumerate(systematics):
        if syst.name in seen[:i] or syst.name in sim.space.names:
            raise SpecError(f"inference.systematics.{i}.name: {syst.name!r} is used twice (names must be unique and "
                            f"differ from the parameters {list(sim.space.names)})")
        if syst.kind == "shape" and syst.observable not in names:
            raise SpecError(f"inference.systematics.{i}.observable: {syst.observable!r} is not an observable of the "
                            f"simulator ({names})")
    if spec.inference.histogram is not None:
        missing = [o for o in spec.inference.histogram.observables if o not in names]
        if missing:
            raise SpecError(f"inference.histogram.observable: {missing[0]!r} is not an observable of the simulator ({names})")
    return sim, truth


def _sampler(spec: RunSpec, sim: Simulator) -> ThetaSampler:
    if spec.data.theta_sampler == "grid":
        return GridSampler(sim.space, spec.data.grid_points)
    if spec.data.theta_sampler == "benchmarks":
        return BenchmarkSampler(sim.space)
    return PriorSampler(sim.space)


def _dataset(spec: RunSpec, sim: Simulator, truth: torch.Tensor) -> Dataset:
    inf = spec.inference
    if is_weighted(sim):
        assert inf.luminosity is not None
        return weighted_asimov_dataset(sim, truth, inf.luminosity * PB_PER_FB, inf.n_mc, inf.seed)
    if inf.dataset == "asimov":
        return asimov_dataset(sim, truth, inf.n_events, inf.n_mc, inf.seed)
    return observed_dataset(sim, truth, int(round(inf.n_events)), inf.seed)


def simulate_and_train(
    spec: RunSpec, sim: Simulator, out: Path, timings: dict[str, float], console: Console, progress: bool
) -> tuple[Any, dict[str, Any], ScoreEstimator | None]:
    """The simulate, merge, training-data and train stages (a cached Dask graph, see
    :mod:`hepsbi.workflow.graph`): returns the event pool of a weighted simulator (now the simulator's pool)
    or None, the estimators and SALLY."""
    with _stage("simulate + train", timings, console):
        stages = build_and_run(spec, out, progress, infer=False)
    return _load_stages(sim, stages["merged"], stages["estimators"], stages.get("sally"))


def _load_stages(sim: Simulator, merged: str, estimators: dict[str, list[str]], sally: str | None
                 ) -> tuple[Any, dict[str, Any], ScoreEstimator | None]:
    """The pool (made the simulator's, weighted simulators only), the estimators (an ensemble where there are
    several members) and SALLY, from their stage directories."""
    pool = None
    if is_weighted(sim):
        pool = Events.load(Path(merged) / "events.h5")
        sim.use_events(pool)  # type: ignore[attr-defined]
    loaded: dict[str, Any] = {}
    for label, directories in estimators.items():
        members = [RatioEstimator.load(d) for d in directories]
        loaded[label] = members[0] if len(members) == 1 else RatioEnsemble(members)
    return pool, loaded, ScoreEstimator.load(sally) if sally else None


def _histogram_bins(sim: Simulator, x: np.ndarray, hist: HistogramSpec) -> tuple[np.ndarray, int]:
    columns = [list(sim.observable_names).index(o) for o in hist.observables]  # type: ignore[attr-defined]
    return bin_index_edges(x[:, columns], hist.edges)


def _comparisons(
    spec: RunSpec, sim: Simulator, truth: torch.Tensor, dataset: Dataset, sally: ScoreEstimator | None,
    scan: Callable[..., ScanResult],
    normalise: Callable[[Callable[..., Any], torch.Tensor], Callable[..., Any]],
) -> dict[str, ScanResult]:
    """Likelihoods to compare the learned ones with: exact (toys), parton-level truth, histogram, SALLY."""
    inf = spec.inference
    out: dict[str, ScanResult] = {}
    if has_exact_likelihood(sim):
        out["exact"] = scan(exact_log_ratio(sim), dataset)
    if inf.truth and dataset.z is not None:
        truth_ratio = normalise(joint_log_ratio_on_latent(sim), dataset.z)
        out["truth"] = scan(truth_ratio, Dataset(dataset.z, dataset.weights, dataset.truth, dataset.kind))
    luminosity_pb = (inf.luminosity or 0.0) * PB_PER_FB
    pool = getattr(sim, "events", None)
    if inf.histogram is not None and pool is not None:
        index, n_bins = _histogram_bins(sim, pool.x, inf.histogram)
        likelihood = template_log_likelihood(sim, index, n_bins, truth, luminosity_pb)
        out["histogram"] = scan_log_likelihood(likelihood, sim.space, points=inf.grid_points, zoom=inf.zoom)
    if sally is not None and pool is not None and spec.training.sally is not None:
        index, n_bins = bin_index_quantiles(sally.score(pool.x), spec.training.sally.bins, pool.weights)
        likelihood = template_log_likelihood(sim, index, n_bins, truth, luminosity_pb)
        out["sally"] = scan_log_likelihood(likelihood, sim.space, points=inf.grid_points, zoom=inf.zoom)
    return out


def unbinned_models(spec: RunSpec, sim: Simulator, dataset: Dataset, estimators: dict[str, RatioEstimator]) -> dict[str, UnbinnedModel]:
    """Extended unbinned models (:class:`~hepsbi.inference.UnbinnedModel`) on the Monte Carlo events of a
    weighted Asimov dataset, with the spec's systematics: each learned ratio and the parton-level truth (a
    :class:`~hepsbi.inference.unbinned.LinearRatio` with morphing), normalised on those events. ν(θ)
    reweights the same events; they are also the Monte Carlo of the yield corrections (weights at θ_ref)."""
    assert dataset.z is not None
    z = dataset.z
    w_ref = reference_weights(sim, dataset)
    columns = list(getattr(sim, "observable_names", []))
    norm = [NormSys(s.name, s.up, s.down) for s in spec.inference.systematics if s.kind == "norm"]  # type: ignore[arg-type]
    shape = [ShapeSys.tilt(s.name, dataset.x[:, columns.index(s.observable)].numpy(), s.size, w_ref.numpy())  # type: ignore[arg-type]
             for s in spec.inference.systematics if s.kind == "shape"]

    def nu(theta: torch.Tensor) -> torch.Tensor:
        return (w_ref * sim.weight_ratio(z, theta)).sum()  # type: ignore[attr-defined]

    ratios: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        label: normalised_log_ratio_of_theta(est.log_ratio_of_theta(dataset.x), w_ref) for label, est in estimators.items()
    }
    if spec.inference.truth and callable(getattr(sim, "morphing_coefficients", None)):
        coef = sim.morphing_coefficients(z)  # type: ignore[attr-defined]
        ratios["truth"] = LinearRatio(sim.morphing_basis, coef, (w_ref @ coef) / w_ref.sum())  # type: ignore[attr-defined]
    elif spec.inference.truth and callable(getattr(sim, "joint_log_prob", None)):
        ratios["truth"] = normalised_log_ratio_of_theta(lambda th: sim.joint_log_prob(z, th), w_ref)  # type: ignore[attr-defined]
    names = list(sim.space.names)
    return {label: UnbinnedModel(names, fn, dataset.weights, nu, norm=norm, shape=shape, mc_log_ratio=fn,
                                 mc_weights=w_ref, mc_shape=shape) for label, fn in ratios.items()}


def _profile(spec: RunSpec, sim: Simulator, truth: torch.Tensor, dataset: Dataset, estimators: dict[str, RatioEstimator],
             plain: dict[str, ScanResult], progress: bool = False) -> tuple[dict[str, ScanResult], dict[str, dict[str, dict[str, float]]], dict[str, np.ndarray]]:
    """Profile scans of every unbinned model over the plain scan's 95 % region widened ×1.5, the nuisance
    parameters' post-fit values and errors (pulls) of the global fit, and the Fisher information on θ with
    the nuisance parameters profiled (at θ_true, α = 0)."""
    scans: dict[str, ScanResult] = {}
    pulls: dict[str, dict[str, dict[str, float]]] = {}
    informations: dict[str, np.ndarray] = {}
    points = (spec.inference.profile or ProfileSpec()).grid_points
    limits = {p.name: (p.low, p.high) for p in sim.space.parameters}
    for label, model in unbinned_models(spec, sim, dataset, estimators).items():
        reference = plain.get(label)
        axes = {}
        for p in sim.space.parameters:
            if reference is not None:
                lo, hi = reference.intervals[p.name]["95"]
                centre, half = reference.mle[p.name], 0.75 * (hi - lo)
                axes[p.name] = np.linspace(max(p.low, centre - half), min(p.high, centre + half), points)
            else:
                axes[p.name] = np.linspace(p.low, p.high, points)
        start = truth.tolist() + [0.0] * len(model.nuisance)
        best = minimize(model.nll, model.names, start, limits)
        pulls[label] = {n: {"value": best.values[n], "error": best.errors[n]} for n in model.nuisance}
        scans[label] = profile_scan(model.nll, model.names, [best.values[n] for n in model.names], axes, limits,
                                    progress=f"profile scan: {label}" if progress else False)
        informations[label] = profiled_information(model_information(model, start), len(model.poi))
    return scans, pulls, informations


def _fisher_information(
    spec: RunSpec, sim: Simulator, truth: torch.Tensor, dataset: Dataset, estimators: dict[str, RatioEstimator],
    sally: ScoreEstimator | None, expected_events: Callable[[torch.Tensor], float] | None,
) -> dict[str, Any]:
    """Fisher information at θ_true of every likelihood the run compares (see hepsbi.inference.fisher), on the
    dataset's events: learned ratios, exact (toys), parton-level truth, rate only, histogram, SALLY score."""
    d = dataset.weights.to(torch.float64)
    rate = rate_score(expected_events, truth) if expected_events is not None else None
    infos: dict[str, Any] = {}
    w_ref = reference_weights(sim, dataset) if expected_events is not None else None
    for label, est in estimators.items():
        log_p = est.log_ratio_of_theta(dataset.x)
        if w_ref is not None:
            log_p = normalised_log_ratio_of_theta(log_p, w_ref)
        infos[label] = information_from_scores(per_event_scores(log_p, truth), d, rate)
    if has_exact_likelihood(sim):
        x = dataset.x.to(torch.float64)
        infos["exact"] = information_from_scores(per_event_scores(lambda t: sim.log_prob(x, t), truth), d, rate)  # type: ignore[attr-defined]
    if spec.inference.truth and dataset.z is not None and callable(getattr(sim, "joint_log_prob", None)):
        z = dataset.z
        infos["truth"] = information_from_scores(per_event_scores(lambda t: sim.joint_log_prob(z, t), truth), d, rate)  # type: ignore[attr-defined]
    if expected_events is not None:
        infos["rate"] = rate_information(expected_events, truth)
        luminosity_pb = (spec.inference.luminosity or 0.0) * PB_PER_FB
        pool = getattr(sim, "events", None)
        hist = spec.inference.histogram
        if hist is not None and pool is not None:
            index, n_bins = _histogram_bins(sim, pool.x, hist)
            infos["histogram"] = binned_information(sim.expected_counts(index, n_bins, luminosity_pb), truth)  # type: ignore[attr-defined]
        if sally is not None and torch.allclose(truth, sim.space.reference):  # SALLY's score is local to θ_ref
            infos["sally_score"] = information_from_scores(sally.score(dataset.x), d, rate)
    return infos


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

    with _stage("stages", timings, console):
        stages = build_and_run(spec, out, progress)
    results = json.loads((out / "results.json").read_text())
    timings |= json.loads((Path(stages["infer"]) / "timings.json").read_text())
    training = {}
    for label, directories in stages["estimators"].items():
        history = RatioEstimator.load(directories[0]).history
        training[label] = {"seconds": round(history.seconds, 3), "samples_per_second": round(history.samples_per_second, 1)}
    write_json(out / "provenance.json", {
        **environment(), **results["provenance"],
        "execution": {k: getattr(spec.execution, k) for k in ("chunks", "workers", "scheduler", "cluster")},
        "timings_s": timings,
        "training": training,
        "stages": stage_records(out),
    })
    print_summary(results, console)
    return results


def infer_stage(spec: RunSpec, run_dir: str | os.PathLike[str], merged: str, estimators: dict[str, list[str]],
                sally: str | None, key: str, progress: bool = True) -> Path:
    """The cached ``infer`` stage (evaluate, infer, report into results.json and plots/) from the merged stage
    and the trained estimators' stage directories; returns its directory."""
    console = Console(quiet=not progress, log_path=False, width=None if sys.stdout.isatty() else 120)
    inputs = [Path(merged).name, *(Path(d).name for dirs in estimators.values() for d in dirs), *([Path(sally).name] if sally else [])]

    def work(tmp: Path) -> None:
        sim, truth = prepare(spec)
        pool, loaded, score = _load_stages(sim, merged, estimators, sally)
        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))))
        timings: dict[str, float] = {}
        _infer_and_report(spec, sim, truth, pool, loaded, score, tmp, timings, console)
        write_json(tmp / "timings.json", timings)  # kept in the stage (provenance), not published

    return run_stage(run_dir, "infer", key, work, {"spec_hash": spec_hash(spec)}, inputs)


def _infer_and_report(spec: RunSpec, sim: Simulator, truth: torch.Tensor, pool: Any, estimators: dict[str, RatioEstimator],
                      sally: ScoreEstimator | None, out: Path, timings: dict[str, float], console: Console) -> dict[str, Any]:
    """Evaluate, infer and report into ``out`` (results.json, plots/): the body of the ``infer`` stage."""

    extra: dict[str, dict[str, Any]] = {
        label: {"method": est.method, "training": {
            "epochs": len(est.history.train_loss),
            "best_epoch": est.history.best_epoch,
        }} for label, est in estimators.items()
    }
    for label, est in estimators.items():
        if isinstance(est, RatioEnsemble):
            extra[label]["ensemble"] = len(est)
    comparison = None
    if has_exact_likelihood(sim):
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
        inf = spec.inference
        dataset = _dataset(spec, sim, truth)
        expected_events = None
        normalise: Callable[[Callable[..., Any], torch.Tensor], Callable[..., Any]] = lambda fn, _: fn  # noqa: E731
        if pool is not None:
            # Weighted Asimov: rate and shape from the same events. ν(θ) reweights them; every per-event ratio is
            # normalised on them at θ_ref, leaving the rate to ν(θ) (see normalised_log_ratio).
            expected_events = asimov_expected_events(sim, dataset)
            w_ref = reference_weights(sim, dataset)
            normalise = lambda fn, inputs: normalised_log_ratio(fn, inputs, w_ref)  # noqa: E731
        learned = {label: normalise(est.log_ratio, dataset.x) for label, est in estimators.items()}

        def scan(log_ratio: Callable[..., Any], data: Dataset) -> ScanResult:
            return likelihood_scan(log_ratio, data, sim.space, points=inf.grid_points,
                                   expected_events=expected_events, zoom=inf.zoom)

        scans = {label: scan(fn, dataset) for label, fn in learned.items()}
        comparisons = _comparisons(spec, sim, truth, dataset, sally, scan, normalise)
        informations = _fisher_information(spec, sim, truth, dataset, estimators, sally, expected_events)
        profiled: dict[str, ScanResult] = {}
        pulls: dict[str, dict[str, dict[str, float]]] = {}
        profiled_informations: dict[str, np.ndarray] = {}
        if inf.profile is not None or inf.systematics:
            profiled, pulls, profiled_informations = _profile(spec, sim, truth, dataset, estimators, {**scans, **comparisons},
                                                              progress=not console.quiet)

    truth_dict = sim.space.as_dict(truth)
    with _stage("report", timings, console):
        if spec.report.plots:
            plots = out / "plots"
            units = {p.name: p.unit for p in sim.space.parameters}
            plot_scans({**scans, **comparisons, **{f"{k} (profiled)": v for k, v in profiled.items()}}, truth_dict,
                       plots / "likelihood_scan.png", units)
            if pulls:
                first = next(iter(pulls))
                plot_pulls({n: (v["value"], v["error"]) for n, v in pulls[first].items()}, plots / "pulls.png")
            histories = {label: est.history for label, est in estimators.items()}
            if sally is not None:
                histories["sally"] = sally.history
            plot_training(histories, plots / "training.png")
            if sim.space.dim == 2 and informations:
                plot_information_ellipses(informations, truth_dict, plots / "fisher_information.png", units)
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
    }
    if pool is not None:
        provenance["generator"] = {k: pool.provenance.get(k) for k in ("generator", "pythia_version", "seed", "shower")}
    dataset_info = {"kind": dataset.kind, "n_events": float(dataset.weights.sum()), "n_mc": len(dataset.weights)}
    if inf.luminosity is not None:
        dataset_info["luminosity_fb"] = inf.luminosity
    primary = next(iter(estimators))
    results = build_results(primary, scans, truth_dict, provenance, extra, comparisons, dataset_info)
    names = list(sim.space.names)
    results["fisher_information"] = {label: information_summary(info, names) for label, info in informations.items()}
    if profiled:
        results["profiled"] = {label: {**scan.to_dict(), "nuisance_parameters": pulls[label]} for label, scan in profiled.items()}
        results["fisher_information_profiled"] = {label: information_summary(info, names)
                                                  for label, info in profiled_informations.items()}
        if sim.space.dim == 2:
            results["expected_contour_area_profiled"] = {label: scan.contour_area["68"] for label, scan in profiled.items()}
    write_results(out / "results.json", results)
    return results
