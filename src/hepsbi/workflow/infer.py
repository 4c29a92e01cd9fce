r"""The inference stages of a run: one ``infer`` task per likelihood group, then ``report``.

* ``infer_<i>`` — estimator i of the spec: its likelihood scan, its Fisher information and, with nuisance
  parameters, its profile scan, post-fit nuisance parameters and profiled information.
* ``infer_comparisons`` — the likelihoods the learned ones are compared with: exact (toys), parton-level
  truth (with its profile), histogram, SALLY (binned; its score's information), rate only.
* ``report`` — evaluates the learned log r against the exact one (toys), gathers the groups in spec order
  into ``results.json`` and draws ``plots/``.

The groups are independent Dask tasks, so on several workers they run side by side (the learned scans
dominate). Each group's output is a pickle of its scans and matrices inside its checksummed stage directory;
only ``report`` writes what users read.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from hepsbi.estimators.ensemble import RatioEnsemble
from hepsbi.estimators.ratio import RatioEstimator
from hepsbi.estimators.score import ScoreEstimator
from hepsbi.files import write_json
from hepsbi.inference.datasets import Dataset, asimov_expected_events, reference_weights
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
from hepsbi.inference.templates import bin_index_quantiles, template_log_likelihood
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
from hepsbi.report.results import build_results, write_results
from hepsbi.simulators.protocol import Simulator, has_exact_likelihood, is_weighted
from hepsbi.workflow.cache import run_stage
from hepsbi.workflow.inputs import PB_PER_FB, histogram_bins, inference_dataset, load_run
from hepsbi.workflow.spec import ProfileSpec, RunSpec, spec_hash

__all__ = [
    "COMPARISONS", "infer_group", "infer_stage", "report", "report_stage", "run_console", "stage_timings", "timed",
    "unbinned_models", "use_thread_setting",
]

#: the group of likelihoods that are not learned (exact, truth, histogram, SALLY, rate); a reserved label
COMPARISONS = "comparisons"
_OUTPUT = "inference.pkl"


@contextmanager
def timed(name: str, timings: dict[str, float], console: Console) -> Iterator[None]:
    """Log the start and the end of a phase and record its wall time in ``timings[name]``."""
    console.log(f"[bold cyan]{name}[/] …")
    start = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - start, 3)
    console.log(f"[bold cyan]{name}[/] done in {timings[name]:.1f} s")


def run_console(progress: bool) -> Console:
    """The console of a run's logs and tables (quiet without ``progress``)."""
    # Off a terminal (logs, CI) rich would assume 80 columns and squeeze the tables.
    return Console(quiet=not progress, log_path=False, width=None if sys.stdout.isatty() else 120)


def use_thread_setting() -> None:
    """torch threads = OMP_NUM_THREADS where it is set (a worker process gets 1 from its cluster)."""
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))))


# -- the likelihoods of one group ----------------------------------------------------------------------------
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
        index, n_bins = histogram_bins(sim, pool.x, inf.histogram)
        likelihood = template_log_likelihood(sim, index, n_bins, truth, luminosity_pb)
        out["histogram"] = scan_log_likelihood(likelihood, sim.space, points=inf.grid_points, zoom=inf.zoom)
    if sally is not None and pool is not None and spec.training.sally is not None:
        index, n_bins = bin_index_quantiles(sally.score(pool.x), spec.training.sally.bins, pool.weights)
        likelihood = template_log_likelihood(sim, index, n_bins, truth, luminosity_pb)
        out["sally"] = scan_log_likelihood(likelihood, sim.space, points=inf.grid_points, zoom=inf.zoom)
    return out


def unbinned_models(spec: RunSpec, sim: Simulator, dataset: Dataset, estimators: dict[str, RatioEstimator],
                    truth: bool | None = None) -> dict[str, UnbinnedModel]:
    """Extended unbinned models (:class:`~hepsbi.inference.UnbinnedModel`) on the Monte Carlo events of a
    weighted Asimov dataset, with the spec's systematics: each learned ratio and (``truth``, by default
    ``inference.truth``) the parton-level truth (a :class:`~hepsbi.inference.unbinned.LinearRatio` with
    morphing), normalised on those events. ν(θ) reweights the same events; they are also the Monte Carlo of
    the yield corrections (weights at θ_ref)."""
    assert dataset.z is not None
    truth = spec.inference.truth if truth is None else truth
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
    if truth and callable(getattr(sim, "morphing_coefficients", None)):
        coef = sim.morphing_coefficients(z)  # type: ignore[attr-defined]
        ratios["truth"] = LinearRatio(sim.morphing_basis, coef, (w_ref @ coef) / w_ref.sum())  # type: ignore[attr-defined]
    elif truth and callable(getattr(sim, "joint_log_prob", None)):
        ratios["truth"] = normalised_log_ratio_of_theta(lambda th: sim.joint_log_prob(z, th), w_ref)  # type: ignore[attr-defined]
    names = list(sim.space.names)
    return {label: UnbinnedModel(names, fn, dataset.weights, nu, norm=norm, shape=shape, mc_log_ratio=fn,
                                 mc_weights=w_ref, mc_shape=shape) for label, fn in ratios.items()}


def _profile(spec: RunSpec, sim: Simulator, truth: torch.Tensor, dataset: Dataset, models: dict[str, UnbinnedModel],
             plain: dict[str, ScanResult], progress: bool = False) -> dict[str, dict[str, Any]]:
    """Per model: the profile scan over the plain scan's 95 % region widened ×1.5 (``scan``), the nuisance
    parameters' post-fit values and errors of the global fit (``pulls``), and the Fisher information on θ with
    the nuisance parameters profiled, at θ_true and α = 0 (``information``)."""
    out: dict[str, dict[str, Any]] = {}
    points = (spec.inference.profile or ProfileSpec()).grid_points
    limits = {p.name: (p.low, p.high) for p in sim.space.parameters}
    for label, model in models.items():
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
        out[label] = {
            "pulls": {n: {"value": best.values[n], "error": best.errors[n]} for n in model.nuisance},
            "scan": profile_scan(model.nll, model.names, [best.values[n] for n in model.names], axes, limits,
                                 progress=f"profile scan: {label}" if progress else False),
            "information": profiled_information(model_information(model, start), len(model.poi)),
        }
    return out


def _fisher_information(
    spec: RunSpec, sim: Simulator, truth: torch.Tensor, dataset: Dataset, estimators: dict[str, RatioEstimator],
    sally: ScoreEstimator | None, expected_events: Callable[[torch.Tensor], float] | None, comparisons: bool,
) -> dict[str, Any]:
    """Fisher information at θ_true on the dataset's events (see hepsbi.inference.fisher): of each learned ratio
    in ``estimators``, and with ``comparisons`` of the exact (toys), parton-level truth, rate-only, histogram
    and SALLY-score likelihoods."""
    d = dataset.weights.to(torch.float64)
    rate = rate_score(expected_events, truth) if expected_events is not None else None
    infos: dict[str, Any] = {}
    w_ref = reference_weights(sim, dataset) if expected_events is not None else None
    for label, est in estimators.items():
        log_p = est.log_ratio_of_theta(dataset.x)
        if w_ref is not None:
            log_p = normalised_log_ratio_of_theta(log_p, w_ref)
        infos[label] = information_from_scores(per_event_scores(log_p, truth), d, rate)
    if not comparisons:
        return infos
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
            index, n_bins = histogram_bins(sim, pool.x, hist)
            infos["histogram"] = binned_information(sim.expected_counts(index, n_bins, luminosity_pb), truth)  # type: ignore[attr-defined]
        if sally is not None and torch.allclose(truth, sim.space.reference):  # SALLY's score is local to θ_ref
            infos["sally_score"] = information_from_scores(sally.score(dataset.x), d, rate)
    return infos


def infer_group(spec: RunSpec, sim: Simulator, truth: torch.Tensor, estimators: dict[str, RatioEstimator],
                sally: ScoreEstimator | None, group: str, progress: bool = False) -> dict[str, Any]:
    """One group of likelihoods (``group`` = an estimator's label, or :data:`COMPARISONS`) on the run's
    dataset: ``scans`` (label → ScanResult), ``informations`` (label → (p, p) Fisher matrix), with nuisance
    parameters ``profiled`` (label → {scan, pulls, information}), and ``dataset`` (kind and size)."""
    inf = spec.inference
    dataset = inference_dataset(spec, sim, truth)
    expected_events = None
    normalise: Callable[[Callable[..., Any], torch.Tensor], Callable[..., Any]] = lambda fn, _: fn
    if is_weighted(sim):
        # Weighted Asimov: rate and shape from the same events. ν(θ) reweights them; every per-event ratio is
        # normalised on them at θ_ref, leaving the rate to ν(θ) (see normalised_log_ratio).
        expected_events = asimov_expected_events(sim, dataset)
        w_ref = reference_weights(sim, dataset)
        normalise = lambda fn, inputs: normalised_log_ratio(fn, inputs, w_ref)

    def scan(log_ratio: Callable[..., Any], data: Dataset) -> ScanResult:
        return likelihood_scan(log_ratio, data, sim.space, points=inf.grid_points, expected_events=expected_events,
                               zoom=inf.zoom)

    learned = {} if group == COMPARISONS else {group: estimators[group]}
    if group == COMPARISONS:
        scans = _comparisons(spec, sim, truth, dataset, sally, scan, normalise)
    else:
        scans = {group: scan(normalise(estimators[group].log_ratio, dataset.x), dataset)}
    out: dict[str, Any] = {
        "scans": scans,
        "informations": _fisher_information(spec, sim, truth, dataset, learned, sally, expected_events,
                                            comparisons=group == COMPARISONS),
        "profiled": {},
        "dataset": {"kind": dataset.kind, "n_events": float(dataset.weights.sum()), "n_mc": len(dataset.weights)},
    }
    if inf.profile is not None or inf.systematics:
        models = unbinned_models(spec, sim, dataset, learned, truth=inf.truth and group == COMPARISONS)
        out["profiled"] = _profile(spec, sim, truth, dataset, models, scans, progress)
    return out


# -- the report ------------------------------------------------------------------------------------------------
def report(spec: RunSpec, sim: Simulator, truth: torch.Tensor, pool: Any, estimators: dict[str, RatioEstimator],
           sally: ScoreEstimator | None, groups: list[dict[str, Any]], out: Path, timings: dict[str, float],
           console: Console) -> dict[str, Any]:
    """Evaluate the learned ratios (toys), gather the inference ``groups`` (estimators in spec order, then the
    comparisons) into ``out/results.json`` and draw ``out/plots``; returns the results document."""
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
        with timed("evaluate", timings, console):
            test_points = sim.space.mesh(sim.space.grid(11 if sim.space.dim == 1 else 5))
            comparison = log_ratio_comparison(
                {label: est.log_ratio for label, est in estimators.items()},
                sim, test_points, spec.report.validation_events, seed=spec.data.seed + 1_000_003,
            )
            _, exact_lr, learned = comparison
            for label in estimators:
                extra[label]["log_ratio_mse"] = float(((learned[label] - exact_lr) ** 2).mean())

    *learned_groups, others = groups
    scans = {label: s for g in learned_groups for label, s in g["scans"].items()}
    comparisons = others["scans"]
    informations = {label: i for g in groups for label, i in g["informations"].items()}
    profiled = {label: p for g in groups for label, p in g["profiled"].items()}

    truth_dict = sim.space.as_dict(truth)
    with timed("report", timings, console):
        if spec.report.plots:
            plots = out / "plots"
            units = {p.name: p.unit for p in sim.space.parameters}
            plot_scans({**scans, **comparisons, **{f"{k} (profiled)": v["scan"] for k, v in profiled.items()}},
                       truth_dict, plots / "likelihood_scan.png", units)
            if profiled:
                first = next(iter(profiled.values()))["pulls"]
                plot_pulls({n: (v["value"], v["error"]) for n, v in first.items()}, plots / "pulls.png")
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
    dataset_info = dict(others["dataset"])
    if spec.inference.luminosity is not None:
        dataset_info["luminosity_fb"] = spec.inference.luminosity
    primary = next(iter(estimators))
    results = build_results(primary, scans, truth_dict, provenance, extra, comparisons, dataset_info)
    names = list(sim.space.names)
    results["fisher_information"] = {label: information_summary(info, names) for label, info in informations.items()}
    if profiled:
        results["profiled"] = {label: {**p["scan"].to_dict(), "nuisance_parameters": p["pulls"]}
                               for label, p in profiled.items()}
        results["fisher_information_profiled"] = {label: information_summary(p["information"], names)
                                                  for label, p in profiled.items()}
        if sim.space.dim == 2:
            results["expected_contour_area_profiled"] = {label: p["scan"].contour_area["68"]
                                                         for label, p in profiled.items()}
    write_results(out / "results.json", results)
    return results


# -- the cached stages -------------------------------------------------------------------------------------------
def _input_names(merged: str, estimators: dict[str, list[str]], sally: str | None) -> list[str]:
    """The input stage directories' names, for the manifest: merged pool, estimator members, SALLY."""
    return [Path(merged).name, *(Path(d).name for dirs in estimators.values() for d in dirs),
            *([Path(sally).name] if sally else [])]


def infer_stage(spec: RunSpec, run_dir: str | Path, merged: str, estimators: dict[str, list[str]], sally: str | None,
                group: str, name: str, key: str, progress: bool = True) -> Path:
    """The cached stage ``name`` that infers with one ``group`` of likelihoods (:func:`infer_group`) from the
    merged stage, the group's estimator (its members' stage directories in ``estimators``) and SALLY."""
    console = run_console(progress)

    def work(tmp: Path) -> None:
        sim, truth, _, loaded, score = load_run(spec, merged, estimators, sally)
        use_thread_setting()
        timings: dict[str, float] = {}
        with timed(f"infer: {group}", timings, console):
            result = infer_group(spec, sim, truth, loaded, score, group, progress=not console.quiet)
        result["timings"] = timings
        with open(tmp / _OUTPUT, "wb") as f:  # inside the stage directory: checksummed by its manifest
            pickle.dump(result, f, protocol=4)

    return run_stage(run_dir, name, key, work, {"group": group, "spec_hash": spec_hash(spec)},
                     _input_names(merged, estimators, sally))


def report_stage(spec: RunSpec, run_dir: str | Path, merged: str, estimators: dict[str, list[str]], sally: str | None,
                 groups: list[str], key: str, progress: bool = True) -> Path:
    """The cached ``report`` stage: results.json and plots/ from the inference groups' stage directories
    (estimators in spec order, then the comparisons); ``timings.json`` keeps every phase's wall time."""
    console = run_console(progress)

    def work(tmp: Path) -> None:
        sim, truth, pool, loaded, score = load_run(spec, merged, estimators, sally)
        use_thread_setting()
        parts = []
        for directory in groups:
            with open(Path(directory) / _OUTPUT, "rb") as f:
                parts.append(pickle.load(f))
        timings = {name: seconds for part in parts for name, seconds in part["timings"].items()}
        report(spec, sim, truth, pool, loaded, score, parts, tmp, timings, console)
        write_json(tmp / "timings.json", timings)  # kept in the stage (provenance), not published

    return run_stage(run_dir, "report", key, work, {"spec_hash": spec_hash(spec)},
                     [*_input_names(merged, estimators, sally), *(Path(g).name for g in groups)])


def stage_timings(report_dir: str | Path) -> dict[str, float]:
    """Wall time of every inference phase of a run, from its report stage."""
    return json.loads((Path(report_dir) / "timings.json").read_text())
