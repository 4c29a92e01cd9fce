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
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from hepsbi.data.events import Events
from hepsbi.estimators.ensemble import RatioEnsemble
from hepsbi.estimators.score import ScoreEstimator
from hepsbi.files import write_json
from hepsbi.inference.analysis import (
    ShapeOnlyModel,
    WeightedAnalysis,
    closure_points,
    fisher_informations,
    fits,
    profile_scans,
    sampled_closure,
    scan_likelihoods,
    window,
)
from hepsbi.inference.ratios import exact_log_ratio
from hepsbi.inference.scan import likelihood_scan
from hepsbi.inference.validation import log_ratio_comparison
from hepsbi.report.plots import plot_weights
from hepsbi.report.results import write_results
from hepsbi.report.run_report import write_run_report
from hepsbi.simulators.protocol import Simulator, has_exact_likelihood, is_weighted
from hepsbi.workflow.cache import run_stage
from hepsbi.workflow.console import run_console, timed, use_thread_setting
from hepsbi.workflow.inputs import held_out_analysis, inference_dataset, load_run, weighted_analysis
from hepsbi.workflow.spec import ProfileSpec, RunSpec, spec_hash

__all__ = ["COMPARISONS", "focus_box", "infer_group", "infer_stage", "report", "report_stage", "stage_timings"]

#: the group of likelihoods that are not learned (exact, truth, histogram, SALLY, rate); a reserved label
COMPARISONS = "comparisons"
_OUTPUT = "inference.pkl"


# -- the likelihoods of one group ----------------------------------------------------------------------------
def infer_group(spec: RunSpec, sim: Simulator, theta_true: torch.Tensor, estimators: dict[str, Any],
                sally: ScoreEstimator | None, group: str, progress: bool = False,
                held: WeightedAnalysis | None = None) -> dict[str, Any]:
    """One group of likelihoods (``group`` = an estimator's label, or :data:`COMPARISONS`) on the run's
    dataset: ``scans`` (label → ScanResult), ``informations`` (label → (p, p) Fisher matrix), with nuisance
    parameters ``profiled`` (label → {scan, pulls, information}), with a ``held`` analysis of a second pool
    (:func:`~hepsbi.workflow.inputs.held_out_analysis`) the information each statistic keeps there (``kept``: label → {information, replicas}; SALLY's score and
    the truth in the comparisons), for an ensemble each member's Fisher information (``members``: label → list of
    (p, p)), for an estimator its reweighting ``closure`` (label → rows,
    :mod:`hepsbi.inference.analysis`), and ``dataset`` (kind and size). The
    statistics are :mod:`hepsbi.inference.analysis`'s; this function only reads the spec."""
    inf = spec.inference
    comparisons = group == COMPARISONS
    learned = {} if comparisons else {group: estimators[group].log_ratio_of_theta}
    profiled: dict[str, Any] = {}
    if sim.space.dim > 2:  # no grid over every parameter: MINOS intervals and the profile contour of a pair
        return _infer_group_nd(spec, sim, theta_true, learned, sally, group, progress, held)
    if is_weighted(sim):
        analysis = weighted_analysis(spec, sim, theta_true)
        dataset = analysis.dataset
        scans = analysis.scans(learned, inf.grid_points, inf.zoom, parton_level=comparisons and inf.parton_level)
        hist = inf.histogram if comparisons else None
        score = sally.score if comparisons and sally is not None and spec.training.sally is not None else None
        if hist is not None:
            scans["histogram"] = analysis.binned_scan(*analysis.histogram_bins(hist.observables, hist.edges),
                                                      points=inf.grid_points, zoom=inf.zoom)
        if score is not None:
            assert spec.training.sally is not None
            scans["sally"] = analysis.binned_scan(*analysis.statistic_bins(score, spec.training.sally.bins),
                                                  points=inf.grid_points, zoom=inf.zoom)
        informations = analysis.fisher_information(
            learned, parton_level=comparisons and inf.parton_level, rate=comparisons,
            histogram=(hist.observables, hist.edges) if hist is not None else None,
            score=sally.score if comparisons and sally is not None else None)
        if inf.profile is not None or inf.systematics:
            models = analysis.models(learned, parton_level=inf.parton_level and comparisons)
            points = (inf.profile or ProfileSpec()).grid_points
            profiled = profile_scans(models, sim.space, theta_true, points, around=scans, progress=progress)
    else:
        dataset = inference_dataset(spec, sim, theta_true)
        ratios = {label: fn(dataset.x) for label, fn in learned.items()}
        if comparisons and has_exact_likelihood(sim):
            ratios["exact"] = exact_log_ratio(sim)(dataset.x)
        scans = scan_likelihoods(ratios, dataset, sim.space, inf.grid_points, inf.zoom)
        informations = fisher_informations(ratios, dataset, theta_true)
    members: dict[str, list[Any]] = {}
    disagreement: dict[str, Any] = {}
    ensemble = None if comparisons else estimators[group]
    if isinstance(ensemble, RatioEnsemble) and len(ensemble) > 1:  # how far its members agree where it matters
        member_ratios = {f"member{m}": e.log_ratio_of_theta for m, e in enumerate(ensemble.members)}
        if is_weighted(sim):
            per_member = analysis.fisher_information(member_ratios)
        else:
            per_member = fisher_informations({k: fn(dataset.x) for k, fn in member_ratios.items()}, dataset,
                                             theta_true)
        members[group] = [per_member[k] for k in member_ratios]
        if sim.space.dim == 2:
            window = _window(scans[group], sim.space)
            member_scans = {k: likelihood_scan(analysis.normalised(fn) if is_weighted(sim) else fn(dataset.x),
                                               dataset, sim.space, axes=window, refine=False,
                                               expected_events=analysis.expected_events if is_weighted(sim) else None)
                            for k, fn in member_ratios.items()}
            q = np.stack([np.asarray(m.q) for m in member_scans.values()])
            disagreement[group] = {"axes": [a.tolist() for a in window], "q_spread": q.std(axis=0).tolist(),
                                   "q_mean": q.mean(axis=0).tolist()}
    return {
        "scans": scans,
        "informations": informations,
        "profiled": profiled,
        "kept": _kept(spec, held, learned, sally, comparisons),
        "members": members,
        "disagreement": disagreement,
        "closure": _closure(spec, sim, theta_true, analysis if is_weighted(sim) else None, learned, scans, group),
        "dataset": {"kind": dataset.kind, "n_events": float(dataset.weights.sum()), "n_mc": len(dataset.weights)},
    }


def _kept(spec: RunSpec, held: WeightedAnalysis | None, learned: dict[str, Any], sally: ScoreEstimator | None,
          comparisons: bool) -> dict[str, Any]:
    """The information each statistic keeps on the held-out pool (the comparisons: SALLY's score and the truth)."""
    if held is None:
        return {}
    statistics = {"sally_score": sally.score} if comparisons and sally is not None else {}
    kept = held.kept_information(learned, statistics, seed=spec.inference.seed)
    if not comparisons:
        kept.pop("truth")
    return kept


def _closure(spec: RunSpec, sim: Simulator, theta_true: torch.Tensor, analysis: WeightedAnalysis | None,
             learned: dict[str, Any], scans: dict[str, Any], group: str) -> dict[str, Any]:
    """The learned ratio's closure at ``inference.closure.points`` (by default: θ_true with each parameter at both
    ends of its 95 % interval): by reweighting the pool (``analysis``), or against events simulated at each θ."""
    inf = spec.inference
    if not learned or inf.closure is None:
        return {}
    closure_at = [sim.space.point({**sim.space.as_dict(theta_true), **p}).tolist() for p in inf.closure.points] or \
        closure_points(scans[group], theta_true)  # (points checked by prepare)
    if analysis is not None:
        return analysis.reweighting_closure(learned, closure_at, inf.closure.bins)
    return sampled_closure(sim, learned, closure_at, inf.closure.events, inf.seed + 2_000_003, inf.closure.bins)


def _infer_group_nd(spec: RunSpec, sim: Simulator, theta_true: torch.Tensor, learned: dict[str, Any],
                    sally: ScoreEstimator | None, group: str, progress: bool,
                    held: WeightedAnalysis | None) -> dict[str, Any]:
    """:func:`infer_group` for more than two parameters (:func:`hepsbi.inference.analysis.fits`): per likelihood the
    MLE and MINOS intervals of every parameter with the others free and the profile contour of
    ``inference.pair``; the systematics fixed (``scans``) and profiled (``profiled``). Binned likelihoods (histogram,
    SALLY's bins) give their Fisher information only."""
    inf = spec.inference
    comparisons = group == COMPARISONS
    pair = inf.pair or list(sim.space.names[:2])
    points = (inf.profile or ProfileSpec()).grid_points
    profiled: dict[str, Any] = {}
    analysis = None
    if is_weighted(sim):
        analysis = weighted_analysis(spec, sim, theta_true)
        dataset = analysis.dataset
        models = analysis.models(learned, parton_level=comparisons and inf.parton_level)
        hist = inf.histogram if comparisons else None
        informations = analysis.fisher_information(
            learned, parton_level=comparisons and inf.parton_level, rate=comparisons,
            histogram=(hist.observables, hist.edges) if hist is not None else None,
            score=sally.score if comparisons and sally is not None else None)
        scans = {label: r["scan"] for label, r in fits(models, sim.space, theta_true, pair, points,
                                                          profile_nuisance=False, progress=progress).items()}
        if inf.systematics:
            profiled = fits(models, sim.space, theta_true, pair, points, profile_nuisance=True, progress=progress)
    else:
        dataset = inference_dataset(spec, sim, theta_true)
        ratios = {label: fn(dataset.x) for label, fn in learned.items()}
        if comparisons and has_exact_likelihood(sim):
            ratios["exact"] = exact_log_ratio(sim)(dataset.x)
        shape_only = {label: ShapeOnlyModel(list(sim.space.names), fn, dataset.weights) for label, fn in ratios.items()}
        scans = {label: r["scan"] for label, r in fits(shape_only, sim.space, theta_true, pair, points,
                                                          progress=progress).items()}
        informations = fisher_informations(ratios, dataset, theta_true)
    return {"scans": scans, "informations": informations, "profiled": profiled,
            "kept": _kept(spec, held, learned, sally, comparisons), "members": {},
            "closure": _closure(spec, sim, theta_true, analysis, learned, scans, group),
            "dataset": {"kind": dataset.kind, "n_events": float(dataset.weights.sum()), "n_mc": len(dataset.weights)}}


# -- training rounds ---------------------------------------------------------------------------------------------
def focus_box(spec: RunSpec, sim: Simulator, theta_true: torch.Tensor, estimator: Any, label: str) -> dict[str, Any]:
    """The θ box of the next training round (``training.rounds``): the scan of ``estimator`` on the run's dataset,
    and per parameter [m − w (m − lo), m + w (hi − m)] with m its MLE, [lo, hi] its 95 % interval and
    w = ``training.focus_width``, within the prior (a box at least 1 % of the prior wide)."""
    inf = spec.inference
    learned = {label: estimator.log_ratio_of_theta}
    if is_weighted(sim):
        scan = weighted_analysis(spec, sim, theta_true).scans(learned, inf.grid_points, inf.zoom)[label]
    else:
        dataset = inference_dataset(spec, sim, theta_true)
        scan = scan_likelihoods({label: estimator.log_ratio_of_theta(dataset.x)}, dataset, sim.space,
                                inf.grid_points, inf.zoom)[label]
    width = spec.training.focus_width
    low, high = [], []
    for p in sim.space.parameters:
        lo, hi = scan.intervals[p.name]["95"]
        mle = scan.mle[p.name]
        a, b = max(p.low, mle - width * (mle - lo)), min(p.high, mle + width * (hi - mle))
        floor = 0.01 * (p.high - p.low)
        if b - a < floor:  # a degenerate interval (a scan that found no constraint on the grid)
            a, b = max(p.low, mle - floor), min(p.high, mle + floor)
        low.append(float(a))
        high.append(float(b))
    return {"estimator": label, "mle": scan.mle, "interval_95": {n: scan.intervals[n]["95"] for n in scan.names},
            "focus_width": width, "low": low, "high": high}


def _window(scan: Any, space: Any, points: int = 11) -> list[torch.Tensor]:
    """An ``points``-node grid per parameter over a scan's 95 % intervals widened ×1.5 (within the prior): where
    an ensemble's members are compared."""
    return [torch.from_numpy(window(scan.mle[p.name], scan.intervals[p.name]["95"], p.low, p.high, points))
            for p in space.parameters]


def _caption(spec: RunSpec, sim: Simulator) -> str | None:
    """"√s = 13 TeV, 139 fb⁻¹" (a collider simulator and a luminosity), or the toy's expected number of events."""
    energy = getattr(getattr(sim, "run", None), "energy", None)  # GeV (a Pythia run)
    parts = [f"√s = {energy / 1000:g} TeV"] if isinstance(energy, int | float) else []
    if spec.inference.luminosity is not None:
        parts.append(f"{spec.inference.luminosity:g} fb⁻¹")
    elif spec.inference.dataset == "asimov":
        parts.append(f"Asimov, {spec.inference.n_events:g} events")
    return ", ".join(parts) or None


def _trained_range(estimator: Any, names: Sequence[str]) -> dict[str, list[float]] | None:
    """Parameter → [low, high] of the θ an estimator (an ensemble: its first member) was trained on."""
    first = estimator.members[0] if isinstance(estimator, RatioEnsemble) else estimator
    if first.theta_range is None:
        return None
    low, high = first.theta_range
    return {n: [lo, hi] for n, lo, hi in zip(names, low, high)}


# -- the report ------------------------------------------------------------------------------------------------
def report(spec: RunSpec, sim: Simulator, theta_true: torch.Tensor, pool: Any, estimators: dict[str, Any],
           sally: ScoreEstimator | None, groups: list[dict[str, Any]], out: Path, timings: dict[str, float],
           console: Console) -> dict[str, Any]:
    """Evaluate the learned ratios against the exact one (toys), then write ``out/results.json`` and
    ``out/plots`` from the inference ``groups`` (:func:`hepsbi.report.run_report.write_run_report`)."""
    extra: dict[str, dict[str, Any]] = {
        label: {"method": est.method, "training": {
            "epochs": len(est.history.train_loss),
            "best_epoch": est.history.best_epoch,
            "theta_range": _trained_range(est, sim.space.names),
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
                {label: est.log_ratio_of_theta for label, est in estimators.items()},
                sim, test_points, spec.report.validation_events, seed=spec.data.seed + 1_000_003,
            )
            _, exact_lr, learned = comparison
            for label in estimators:
                extra[label]["log_ratio_mse"] = float(((learned[label] - exact_lr) ** 2).mean())
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
    dataset_info = dict(groups[-1]["dataset"])
    if spec.inference.luminosity is not None:
        dataset_info["luminosity_fb"] = spec.inference.luminosity
    histories = {label: est.history for label, est in estimators.items()}
    if sally is not None:
        histories["sally"] = sally.history
    with timed("report", timings, console):
        results = write_run_report(out, sim.space, theta_true, groups, extra, provenance, dataset_info, histories,
                                   comparison, plots=spec.report.plots, caption=_caption(spec, sim))
        if pool is not None and spec.report.plots:
            plot_weights(_reweighted(sim, pool, groups), out / "plots" / "weights.png",
                         str(pool.provenance.get("weight_unit", "")))
        return results


def _reweighted(sim: Simulator, pool: Any, groups: list[dict[str, Any]]) -> dict[str, Any]:
    """The pool's weights at θ_ref and reweighted, w r(z | θ), to the first learned likelihood's closure points."""
    weights = torch.as_tensor(pool.weights, dtype=torch.float64)
    z = torch.as_tensor(pool.z, dtype=torch.float64)
    out = {"pool at θ_ref": weights.numpy()}
    rows: list[dict[str, Any]] = next((rows for g in groups[:-1] for rows in g.get("closure", {}).values()), [])
    for row in rows:
        theta = torch.as_tensor(row["theta"], dtype=torch.float64)
        label = "θ = (" + ", ".join(f"{v:.3g}" for v in theta.tolist()) + ")"
        out[label] = (weights * sim.weight_ratio(z, theta)).numpy()  # type: ignore[attr-defined]
    return out


# -- the cached stages -------------------------------------------------------------------------------------------
def _input_names(merged: str, estimators: dict[str, list[str]], sally: str | None, held: str | None = None
                 ) -> list[str]:
    """The input stage directories' names, for the manifest: merged pool, estimator members, SALLY, held-out pool."""
    return [Path(merged).name, *(Path(d).name for dirs in estimators.values() for d in dirs),
            *([Path(sally).name] if sally else []), *([Path(held).name] if held else [])]


def infer_stage(spec: RunSpec, run_dir: str | Path, merged: str, estimators: dict[str, list[str]], sally: str | None,
                group: str, name: str, key: str, progress: bool = True, held_out: str | None = None) -> Path:
    """The cached stage ``name`` that infers with one ``group`` of likelihoods (:func:`infer_group`) from the
    merged stage, the group's estimator (its members' stage directories in ``estimators``), SALLY and the
    ``held_out`` stage's pool."""
    console = run_console(progress)

    def work(tmp: Path) -> None:
        sim, theta_true, _, loaded, score = load_run(spec, merged, estimators, sally)
        use_thread_setting()
        held = held_out_analysis(spec, theta_true, Events.load(Path(held_out) / "events.h5")) if held_out else None
        timings: dict[str, float] = {}
        with timed(f"infer: {group}", timings, console):
            result = infer_group(spec, sim, theta_true, loaded, score, group, progress=not console.quiet, held=held)
        result["timings"] = timings
        with open(tmp / _OUTPUT, "wb") as f:  # inside the stage directory: checksummed by its manifest
            pickle.dump(result, f, protocol=4)

    return run_stage(run_dir, name, key, work, {"group": group, "spec_hash": spec_hash(spec)},
                     _input_names(merged, estimators, sally, held_out))


def report_stage(spec: RunSpec, run_dir: str | Path, merged: str, estimators: dict[str, list[str]], sally: str | None,
                 groups: list[str], key: str, progress: bool = True, posterior: str | None = None) -> Path:
    """The cached ``report`` stage: results.json and plots/ from the inference groups' stage directories
    (estimators in spec order, then the comparisons) and, with ``posterior`` (its stage directory), the posterior's
    summary as ``results["posterior"]``; ``timings.json`` keeps every phase's wall time."""
    console = run_console(progress)

    def work(tmp: Path) -> None:
        sim, theta_true, pool, loaded, score = load_run(spec, merged, estimators, sally)
        use_thread_setting()
        parts = []
        for directory in groups:
            with open(Path(directory) / _OUTPUT, "rb") as f:
                parts.append(pickle.load(f))
        timings = {name: seconds for part in parts for name, seconds in part["timings"].items()}
        results = report(spec, sim, theta_true, pool, loaded, score, parts, tmp, timings, console)
        if posterior is not None:
            results["posterior"] = json.loads((Path(posterior) / "posterior.json").read_text())
            write_results(tmp / "results.json", results)
        write_json(tmp / "timings.json", timings)  # kept in the stage (provenance), not published

    return run_stage(run_dir, "report", key, work, {"spec_hash": spec_hash(spec)},
                     [*_input_names(merged, estimators, sally), *(Path(g).name for g in groups),
                      *([Path(posterior).name] if posterior else [])])


def stage_timings(report_dir: str | Path) -> dict[str, float]:
    """Wall time of every inference phase of a run, from its report stage."""
    return json.loads((Path(report_dir) / "timings.json").read_text())
