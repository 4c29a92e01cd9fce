r"""The analysis layer: the statistics recipes of a run as functions of plain arguments.

Everything ``hepsbi run`` infers is built here from a simulator, a dataset, a mapping label → per-event
log-ratio function (:mod:`hepsbi.inference.ratios`), systematics and a luminosity — never from a spec — so the
same analysis runs in a notebook:

* :func:`scan_likelihoods`, :func:`fisher_informations` and :func:`simulator_toys` — for simulators that sample
  at any θ (the toys): likelihood Σ_i w_i log r(x_i | θ) of a dataset, its Fisher information, and
  pseudo-experiments drawn from the simulator;
* :class:`WeightedAnalysis` — for a :class:`~hepsbi.simulators.protocol.WeightedSimulator` (Drell–Yan): the
  weighted Asimov dataset at θ_true and luminosity L, ν(θ) from its own events, learned ratios normalised on
  them, extended unbinned models with nuisance parameters, the parton-level truth, histogram and score
  templates, Fisher informations, profile scans and Poisson-bootstrap toys;
* :func:`profile_scans` — profile-likelihood scans of any unbinned models.

Example (the Drell–Yan analysis of ``make demo``, without a spec)::

    analysis = WeightedAnalysis(sim, theta_true=[0.0, 0.0], luminosity_fb=139.0, n_mc=30_000, seed=1,
                                systematics=[NormSys("lumi", 1.017, 0.983), Tilt("mll_tilt", "m_ll", 0.02)])
    models = analysis.models({"alices": alices.log_ratio_of_theta}, parton_level=True)
    profiled = profile_scans(models, sim.space, analysis.theta_true, points=15)
    informations = analysis.fisher_information({"alices": alices.log_ratio_of_theta}, parton_level=True,
                                               histogram=(["m_ll"], [edges]))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hepsbi.errors import InferenceError
from hepsbi.inference.datasets import (
    Dataset,
    asimov_expected_events,
    observed_dataset,
    reference_weights,
    weighted_asimov_dataset,
)
from hepsbi.inference.fisher import (
    binned_information,
    information_from_scores,
    kept_information,
    model_information,
    per_event_scores,
    profiled_information,
    rate_information,
    rate_score,
)
from hepsbi.inference.nuisance import NormSys, ShapeSys
from hepsbi.inference.profile import NLL, minimize, profile_fit, profile_scan
from hepsbi.inference.pseudo_experiments import CoverageResult, poisson_counts, toy_statistics
from hepsbi.inference.ratios import (
    LogRatioOfTheta,
    PerEventLogRatio,
    exact_log_ratio,
    latent_log_ratio,
    normalised_log_ratio,
)
from hepsbi.inference.scan import ScanResult, likelihood_scan, scan_log_likelihood, wilks_threshold
from hepsbi.inference.templates import bin_index_edges, bin_index_quantiles, template_log_likelihood
from hepsbi.inference.unbinned import LinearRatio, UnbinnedModel
from hepsbi.inference.validation import ClosureHistogram, reliability_curve, reweighting_closure
from hepsbi.simulators.protocol import (
    Simulator,
    check_weighted_simulator,
    has_exact_likelihood,
    has_morphing,
    observable_names,
)
from hepsbi.space import ParameterSpace

__all__ = [
    "PB_PER_FB",
    "ShapeOnlyModel",
    "Systematic",
    "Tilt",
    "WeightVariation",
    "WeightedAnalysis",
    "closure_points",
    "correlation",
    "fisher_informations",
    "fits",
    "profile_scans",
    "sampled_closure",
    "scan_likelihoods",
    "simulator_toys",
    "window",
]

PB_PER_FB = 1000.0

#: a per-event statistic x (n, d_x) ↦ (n, k), e.g. ``ScoreEstimator.score`` (SALLY)
Statistic = Callable[[Any], Any]


@dataclass(frozen=True)
class Tilt:
    r"""A shape systematic α ~ N(0, 1) that tilts the distribution of one observable: every event's weight is
    multiplied by 1 ± ``size`` (2F(x) − 1) at α = ±1, with F the cumulative distribution of ``observable`` at
    θ_ref (:meth:`~hepsbi.inference.nuisance.ShapeSys.tilt`)."""

    name: str
    observable: str
    size: float


@dataclass(frozen=True)
class WeightVariation:
    r"""A shape systematic α ~ N(0, 1) from the generator's own weight variations (scale, PDF): every event's weight
    is multiplied by its up or down factor at α = ±1, code-4 interpolated between — the factors the simulator's
    ``variation(name, z)`` gives (:class:`~hepsbi.physics.LHEMorphed`)."""

    name: str


#: the nuisance parameters of an analysis: normalisation systematics, observable tilts, weight variations
Systematic = NormSys | Tilt | WeightVariation


# -- simulators that sample at any θ ---------------------------------------------------------------------------
def scan_likelihoods(ratios: Mapping[str, PerEventLogRatio], dataset: Dataset, space: ParameterSpace,
                     points: int = 101, zoom: int = 0,
                     expected_events: Callable[[Tensor], float] | None = None) -> dict[str, ScanResult]:
    """A likelihood scan (:func:`~hepsbi.inference.likelihood_scan`) of each per-event ratio of the dataset's
    events, label → :class:`~hepsbi.inference.ScanResult`; extended with ν(θ) = ``expected_events``."""
    return {label: likelihood_scan(fn, dataset, space, points=points, expected_events=expected_events, zoom=zoom)
            for label, fn in ratios.items()}


def fisher_informations(ratios: Mapping[str, PerEventLogRatio], dataset: Dataset, theta: Tensor,
                        rate: np.ndarray | None = None) -> dict[str, np.ndarray]:
    r"""Fisher information at θ of the dataset under each per-event ratio: Σ_i w_i u_i u_iᵀ with
    u_i = ``rate`` + ∇_θ log r(x_i | θ) (:func:`~hepsbi.inference.information_from_scores`), label → (p, p)."""
    d = dataset.weights.to(torch.float64)
    return {label: information_from_scores(per_event_scores(fn, theta), d, rate) for label, fn in ratios.items()}


def simulator_toys(sim: Simulator, theta_true: Tensor, ratios: Mapping[str, LogRatioOfTheta], n_events: int, seed: int,
                   first: int = 0, count: int = 100, exact: bool = True,
                   progress: bool = False) -> dict[str, CoverageResult]:
    """t(θ_true) of pseudo-experiments ``first`` … ``first + count − 1`` with ``n_events`` events drawn by the
    simulator at θ_true, per likelihood Σ_i log r(x_i | θ) (each label of ``ratios``, and with ``exact`` the
    exact one when the simulator has it). Toy k draws from seed + 1 + k, so batches of toys give the same
    numbers wherever and in whatever order they run."""
    names = list(sim.space.names)
    truth_dict = sim.space.as_dict(theta_true)
    limits = {p.name: (p.low, p.high) for p in sim.space.parameters}
    functions = dict(ratios)
    if exact and has_exact_likelihood(sim):
        functions["exact"] = exact_log_ratio(sim)
    per_label: dict[str, list[NLL]] = {label: [] for label in functions}
    for k in range(first, first + count):
        x = observed_dataset(sim, theta_true, n_events, seed=seed + 1 + k).x
        for label, of_events in functions.items():
            per_label[label].append(_sum_nll(of_events(x)))
    return {label: toy_statistics(nlls, names, truth_dict, theta_true.tolist(), limits, count, progress, f"toys: {label}")
            for label, nlls in per_label.items()}


def sampled_closure(sim: Simulator, ratios: Mapping[str, LogRatioOfTheta], points: Sequence[Sequence[float]],
                    n_events: int, seed: int, bins: int = 10) -> dict[str, list[dict[str, Any]]]:
    r"""Closure by reweighting for a simulator that samples at any θ: ``n_events`` drawn at θ_ref reweighted by
    each r̂(x | θ) against ``n_events`` drawn at θ, for each θ in ``points``
    (:func:`~hepsbi.inference.validation.reweighting_closure`, independent samples), with the classifier's
    calibration. Same rows as :meth:`WeightedAnalysis.reweighting_closure`."""
    space = sim.space
    gen = torch.Generator().manual_seed(seed)
    x_ref, _ = sim.sample(space.reference.expand(n_events, -1), gen)
    names = observable_names(sim, x_ref.shape[1])
    ones = torch.ones(n_events, dtype=torch.float64)
    at_ref = {label: fn(x_ref) for label, fn in ratios.items()}
    out: dict[str, list[dict[str, Any]]] = {label: [] for label in ratios}
    for point in points:
        theta = space.point(list(point), what="closure point")
        x_at, _ = sim.sample(theta.expand(n_events, -1), gen)
        for label, fn in ratios.items():
            with torch.no_grad():
                log_r_ref = torch.as_tensor(at_ref[label](theta), dtype=torch.float64)
                log_r_at = torch.as_tensor(fn(x_at)(theta), dtype=torch.float64)
            histograms = reweighting_closure(x_ref, ones, log_r_ref, x_at, ones, names, bins)
            out[label].append(_closure_row(theta, histograms, reliability_curve(log_r_at, ones, log_r_ref, ones)))
    return out


def closure_points(scan: ScanResult, theta_true: Tensor) -> list[list[float]]:
    """The default closure points: θ_true with each parameter in turn at the lower and the upper end of the scan's
    95 % interval (2p points where the data still has a say)."""
    points = []
    for k, name in enumerate(scan.intervals):  # every parameter, in θ order (a fit in N-D: more than the scanned pair)
        for end in scan.intervals[name]["95"]:
            point = theta_true.tolist()
            point[k] = float(end)
            points.append(point)
    return points


def _closure_row(theta: Tensor, histograms: Sequence[ClosureHistogram], reliability: dict[str, list[float]]) -> dict[str, Any]:
    return {"theta": theta.tolist(), "histograms": [h.to_dict() for h in histograms],
            "chi2": sum(h.chi2 for h in histograms), "ndf": sum(h.ndf for h in histograms), "reliability": reliability}


def _sum_nll(per_event: PerEventLogRatio) -> NLL:
    """θ ↦ −Σ_i log r(x_i | θ): the NLL of unweighted events up to a θ-independent constant."""
    return lambda theta: -per_event(theta).sum()


# -- profile scans -------------------------------------------------------------------------------------------
def _region_cut(scan: ScanResult, axis: int) -> tuple[bool, bool]:
    """Does the scan window cut the 95 % region along ``axis``, at its lower and at its upper face: an open end of
    the 95 % interval, or (several parameters) q below the joint 95 % threshold somewhere on that face?"""
    opened = scan.open_ends[scan.names[axis]]["95"]
    threshold = wilks_threshold("95", len(scan.names))
    q = np.asarray(scan.q)
    return (bool(opened[0] or q.take(0, axis=axis).min() < threshold),
            bool(opened[1] or q.take(-1, axis=axis).min() < threshold))


def _widened(axis: np.ndarray, cut: tuple[bool, bool], low: float, high: float) -> np.ndarray | None:
    """The window ``axis`` extended by its own width beyond each face that ``cut`` flags, within [low, high]; None
    when no flagged face can move (it already lies on the range's edge)."""
    width = axis[-1] - axis[0]
    start = max(low, axis[0] - width) if cut[0] else axis[0]
    stop = min(high, axis[-1] + width) if cut[1] else axis[-1]
    if start == axis[0] and stop == axis[-1]:
        return None
    return np.linspace(start, stop, len(axis))


#: how often a profile scan widens a window that cuts its 95 % region before it leaves the region cut
PROFILE_WIDENINGS = 5


def window(mle: float, interval: Sequence[float], low: float, high: float, points: int) -> np.ndarray:
    """``points`` nodes over a 95 % ``interval`` widened ×1.5 about the ``mle``, within [``low``, ``high``]: where a
    profile scan (or a comparison of likelihoods) looks."""
    half = 0.75 * (interval[1] - interval[0])
    return np.linspace(max(low, mle - half), min(high, mle + half), points)


def _grown_profile_scan(nll: NLL, names: Sequence[str], start: Sequence[float], axes: dict[str, np.ndarray],
                        limits: Mapping[str, tuple[float, float]], fixed: Mapping[str, float] | None,
                        progress: bool | str) -> ScanResult:
    """:func:`~hepsbi.inference.profile_scan` over ``axes`` whose window grows past each face that cuts the 95 %
    region (not a face on the parameter's range), by its width, up to :data:`PROFILE_WIDENINGS` times."""
    for _ in range(PROFILE_WIDENINGS + 1):
        scan = profile_scan(nll, names, start, axes, limits, progress=progress, fixed=fixed)
        wider = {n: _widened(axes[n], _region_cut(scan, j), *limits[n]) for j, n in enumerate(axes)}
        if all(w is None for w in wider.values()):
            break
        axes = axes | {n: w for n, w in wider.items() if w is not None}
    return scan


def profile_scans(models: Mapping[str, UnbinnedModel], space: ParameterSpace, theta_true: Tensor, points: int = 15,
                  around: Mapping[str, ScanResult] | None = None, progress: bool = False) -> dict[str, dict[str, Any]]:
    """Per model: the profile scan (``scan``) on ``points`` nodes per parameter over the 95 % region of the
    model's plain scan in ``around`` widened ×1.5 (the whole parameter range without one; a window that cuts the
    profiled 95 % interval or region grows by its width past each cut face, up to :data:`PROFILE_WIDENINGS` times,
    within the range), the nuisance
    parameters' post-fit values and errors of the global fit (``pulls``), and the Fisher information on θ with
    the nuisance parameters profiled, at θ_true and α = 0 (``information``)."""
    out: dict[str, dict[str, Any]] = {}
    limits = {p.name: (p.low, p.high) for p in space.parameters}
    for label, model in models.items():
        reference = (around or {}).get(label)
        axes = {p.name: window(reference.mle[p.name], reference.intervals[p.name]["95"], p.low, p.high, points)
                if reference is not None else np.linspace(p.low, p.high, points) for p in space.parameters}
        start = theta_true.tolist() + [0.0] * len(model.nuisance)
        best = minimize(model.nll, model.names, start, limits)
        scan = _grown_profile_scan(model.nll, model.names, [best.values[n] for n in model.names], axes, limits, None,
                                   f"profile scan: {label}" if progress else False)
        out[label] = {
            "pulls": {n: {"value": best.values[n], "error": best.errors[n]} for n in model.nuisance},
            "scan": scan,
            "information": profiled_information(model_information(model, start), len(model.poi)),
            "correlation": correlation(model.names, best.covariance),
        }
    return out


def correlation(names: Sequence[str], covariance: np.ndarray | None) -> dict[str, Any] | None:
    """The correlation matrix ρ_ij = C_ij / √(C_ii C_jj) of a fit's covariance, with its parameter ``names``
    (None without a covariance)."""
    if covariance is None:
        return None
    sigma = np.sqrt(np.clip(np.diag(covariance), 1e-300, None))
    return {"names": list(names), "matrix": (covariance / np.outer(sigma, sigma)).tolist()}


@dataclass
class ShapeOnlyModel:
    """The NLL −Σ_i w_i log r(x_i | θ) of weighted events (no rate term, no nuisance parameters): what
    :func:`fits` needs of a model, for a simulator without a pool (the toys)."""

    names: list[str]
    log_ratio: PerEventLogRatio
    weights: Tensor
    nuisance: tuple[str, ...] = ()

    def nll(self, params: Tensor) -> Tensor:
        return -(self.weights.to(torch.float64) * self.log_ratio(params)).sum()


def fits(models: Mapping[str, Any], space: ParameterSpace, theta_true: Tensor, pair: Sequence[str], points: int = 15,
         profile_nuisance: bool = True, progress: bool = False) -> dict[str, dict[str, Any]]:
    r"""Inference in any number of parameters (no grid over all of them): per model, the MLE and every parameter's
    profile-likelihood interval at 68 % and 95 % with the others free (:func:`~hepsbi.inference.profile_fit`,
    MINOS), and the 2-D profile contour of ``pair`` (every other parameter minimised at each of points × points
    nodes over the pair's 95 % intervals widened ×1.5; a window that cuts the joint 95 % region grows past each cut
    face, up to :data:`PROFILE_WIDENINGS` times).

    Arguments:
        models: label → a model with ``nll``, ``names`` (θ first, then nuisance parameters) and ``nuisance``
            (:class:`~hepsbi.inference.UnbinnedModel`, :class:`ShapeOnlyModel`).
        pair: the two parameters of the contour.  profile_nuisance: free nuisance parameters (else fixed at 0).

    Returns:
        label → ``scan``: a :class:`~hepsbi.inference.scan.ScanResult` of the pair whose ``mle``, ``intervals`` and
        ``open_ends`` cover every parameter (from the fit); with free nuisance parameters also ``pulls`` and the
        profiled Fisher ``information`` at θ_true.
    """
    limits = {p.name: (p.low, p.high) for p in space.parameters}
    names = list(space.names)
    out: dict[str, dict[str, Any]] = {}
    for label, model in models.items():
        nuisance = list(model.nuisance)
        fixed = {} if profile_nuisance else {n: 0.0 for n in nuisance}
        start = theta_true.tolist() + [0.0] * len(nuisance)
        fit = profile_fit(model.nll, model.names, start, pois=names, limits=limits, fixed=fixed)
        axes = {n: window(fit.mle[n], fit.intervals[n]["95"], *limits[n], points) for n in pair}
        scan = _grown_profile_scan(model.nll, model.names, [fit.mle[n] for n in model.names], axes, limits, fixed,
                                   f"profile contour: {label}" if progress else False)
        scan.mle = {n: fit.mle[n] for n in names}
        scan.intervals = {n: fit.intervals[n] for n in names}
        scan.open_ends = {n: fit.open_ends[n] for n in names}
        out[label] = {"scan": scan}
        if profile_nuisance and nuisance:
            cov = fit.covariance
            errors = np.sqrt(np.clip(np.diag(cov), 0, None)) if cov is not None else np.full(len(model.names), np.nan)
            out[label]["pulls"] = {n: {"value": fit.mle[n], "error": float(errors[model.names.index(n)])}
                                   for n in nuisance}
            out[label]["information"] = profiled_information(model_information(model, start), len(names))
            out[label]["correlation"] = correlation(model.names, cov)
    return out


# -- weighted simulators ---------------------------------------------------------------------------------------
class WeightedAnalysis:
    r"""The expected (Asimov) analysis of a weighted simulator at θ_true and luminosity L.

    The dataset is the simulator's pool reweighted to θ_true, each event carrying its expected number of events
    (:func:`~hepsbi.inference.weighted_asimov_dataset`; ``n_mc`` of them, chosen with ``seed``, carry the same
    total). Rate and shape come from those very events: ν(θ) = Σ_i w_i^ref r_i(θ) with the simulator's weight
    ratio, and every per-event ratio is normalised on them at θ_ref (:func:`normalised_log_ratio`), so every
    expected likelihood peaks at θ_true by construction.

    Arguments:
        sim: a :class:`~hepsbi.simulators.protocol.WeightedSimulator` (its pool generated or set).
        theta_true: θ_true, (p,) or a mapping name → value (missing names take the reference).
        luminosity_fb: integrated luminosity in fb⁻¹ (the pool's weights are in pb).
        n_mc: pool events behind the dataset (all by default).
        seed: seeds the choice of those events.
        systematics: nuisance parameters of :meth:`models` (:class:`~hepsbi.inference.NormSys`, :class:`Tilt`,
            :class:`WeightVariation`).
    """

    def __init__(self, sim: Simulator, theta_true: Tensor | Sequence[float] | Mapping[str, float],
                 luminosity_fb: float, n_mc: int | None = None, seed: int = 0, systematics: Sequence[Systematic] = ()):
        self.sim = check_weighted_simulator(sim)
        if not luminosity_fb > 0:
            raise InferenceError(f"luminosity_fb must be positive (got {luminosity_fb})")
        self.theta_true = sim.space.point(theta_true, what="theta_true")
        self.luminosity_fb = float(luminosity_fb)
        self.seed = int(seed)
        self.dataset = weighted_asimov_dataset(sim, self.theta_true, self.luminosity_pb, n_mc, seed)
        self.w_ref = reference_weights(sim, self.dataset)
        self.expected_events = asimov_expected_events(sim, self.dataset)
        self.systematics = list(systematics)
        names = [s.name for s in self.systematics]
        clash = [n for i, n in enumerate(names) if n in names[:i] or n in sim.space.names]
        if clash:
            raise InferenceError(f"systematic {clash[0]!r}: names must be unique and differ from the parameters "
                                 f"{list(sim.space.names)}")
        observables = list(self.sim.observable_names)
        for s in self.systematics:
            if isinstance(s, Tilt) and s.observable not in observables:
                raise InferenceError(f"systematic {s.name!r}: {s.observable!r} is not an observable of the simulator "
                                     f"({observables})")
            if isinstance(s, WeightVariation) and s.name not in getattr(sim, "variation_names", []):
                raise InferenceError(f"systematic {s.name!r}: the simulator has no weight variation of that name "
                                     f"({getattr(sim, 'variation_names', [])})")

    @property
    def luminosity_pb(self) -> float:
        return self.luminosity_fb * PB_PER_FB

    @property
    def space(self) -> ParameterSpace:
        return self.sim.space

    # -- per-event ratios ------------------------------------------------------------------------------------
    def normalised(self, ratio: LogRatioOfTheta) -> PerEventLogRatio:
        """θ ↦ log r̂(x_i | θ) − log Z(θ) on the dataset's events, Z from the same events at θ_ref."""
        return normalised_log_ratio(ratio(self.dataset.x), self.w_ref)

    def parton_level_ratio(self) -> PerEventLogRatio:
        """The parton-level likelihood ratio of the dataset's latent records, normalised on them."""
        assert self.dataset.z is not None
        return normalised_log_ratio(latent_log_ratio(self.sim)(self.dataset.z), self.w_ref)

    # -- scans -------------------------------------------------------------------------------------------------
    def scans(self, ratios: Mapping[str, LogRatioOfTheta], points: int = 31, zoom: int = 0,
              parton_level: bool = False) -> dict[str, ScanResult]:
        """Extended unbinned likelihood scans of each learned ratio (normalised), and with ``parton_level`` of
        the parton-level likelihood (label ``truth``)."""
        functions = {label: self.normalised(fn) for label, fn in ratios.items()}
        out = scan_likelihoods(functions, self.dataset, self.space, points, zoom, self.expected_events)
        if parton_level:
            latent = Dataset(self.dataset.z, self.dataset.weights, self.dataset.theta_true, self.dataset.kind)  # type: ignore[arg-type]
            out["truth"] = likelihood_scan(self.parton_level_ratio(), latent, self.space, points=points,
                                           expected_events=self.expected_events, zoom=zoom)
        return out

    def histogram_bins(self, observables: Sequence[str], edges: Sequence[Sequence[float]]) -> tuple[np.ndarray, int]:
        """Bin index of every pool event (−1 outside) in the k-D histogram of ``observables`` with one list of
        ``edges`` each, row-major, and the number of bins."""
        names = list(self.sim.observable_names)
        missing = [o for o in observables if o not in names]
        if missing:
            raise InferenceError(f"histogram: {missing[0]!r} is not an observable of the simulator ({names})")
        columns = [names.index(o) for o in observables]
        return bin_index_edges(self.sim.events.x[:, columns], [list(e) for e in edges])

    def statistic_bins(self, statistic: Statistic, bins: int) -> tuple[np.ndarray, int]:
        """Quantile bins (``bins`` per component, equal expected content at θ_ref) of a per-event statistic of
        the pool events, e.g. SALLY's score (:func:`~hepsbi.inference.bin_index_quantiles`)."""
        pool = self.sim.events
        return bin_index_quantiles(np.asarray(statistic(pool.x)), bins, pool.weights)

    def binned_scan(self, bin_index: np.ndarray, n_bins: int, points: int = 31, zoom: int = 0) -> ScanResult:
        """Scan of the Poisson template likelihood of the Asimov counts at θ_true in the pool bins ``bin_index``
        (from :meth:`histogram_bins` or :meth:`statistic_bins`)."""
        likelihood = template_log_likelihood(self.sim, bin_index, n_bins, self.theta_true, self.luminosity_pb)
        return scan_log_likelihood(likelihood, self.space, points=points, zoom=zoom)

    # -- unbinned models ---------------------------------------------------------------------------------------
    def models(self, ratios: Mapping[str, LogRatioOfTheta], parton_level: bool = False) -> dict[str, UnbinnedModel]:
        """Extended unbinned models (:class:`~hepsbi.inference.UnbinnedModel`) of the dataset with the
        analysis' systematics: each learned ratio and, with ``parton_level``, the parton-level one (label ``truth``;
        a :class:`~hepsbi.inference.LinearRatio` when the simulator has a morphing basis), all normalised on
        the dataset's events. ν(θ) reweights the same events; they are also the Monte Carlo of the yield
        corrections (weights at θ_ref)."""
        z, w_ref = self.dataset.z, self.w_ref
        assert z is not None
        columns = list(self.sim.observable_names)
        norm = [s for s in self.systematics if isinstance(s, NormSys)]
        shape = [ShapeSys.tilt(s.name, self.dataset.x[:, columns.index(s.observable)].numpy(), s.size, w_ref.numpy())
                 if isinstance(s, Tilt) else ShapeSys(s.name, *self.sim.variation(s.name, z))  # type: ignore[attr-defined]
                 for s in self.systematics if isinstance(s, (Tilt, WeightVariation))]
        sim = self.sim

        def nu(theta: Tensor) -> Tensor:
            return (w_ref * sim.weight_ratio(z, theta)).sum()

        functions: dict[str, PerEventLogRatio] = {label: self.normalised(fn) for label, fn in ratios.items()}
        if parton_level and has_morphing(sim):
            coef = sim.morphing_coefficients(z)  # type: ignore[attr-defined]
            functions["truth"] = LinearRatio(sim.morphing_basis, coef, (w_ref @ coef) / w_ref.sum())  # type: ignore[attr-defined]
        elif parton_level:
            functions["truth"] = self.parton_level_ratio()
        names = list(self.space.names)
        return {label: UnbinnedModel(names, fn, self.dataset.weights, nu, norm=norm, shape=shape, mc_log_ratio=fn,
                                     mc_weights=w_ref, mc_shape=shape) for label, fn in functions.items()}

    # -- Fisher information --------------------------------------------------------------------------------------
    def scores(self, ratios: Mapping[str, LogRatioOfTheta], parton_level: bool = False) -> dict[str, Tensor]:
        r"""Per-event scores at θ_true, label → (n, p), float64: ∇_θ log r̂(x_i | θ) of each learned ratio
        (normalised on the dataset's events) and, with ``parton_level``, the joint score ∇_θ log p(z_i | θ) of
        the latent records (label ``truth``)."""
        out = {label: per_event_scores(self.normalised(fn), self.theta_true) for label, fn in ratios.items()}
        if parton_level:
            z, sim = self.dataset.z, self.sim
            out["truth"] = per_event_scores(lambda t: sim.joint_log_prob(z, t), self.theta_true)  # type: ignore[arg-type]
        return out

    def fisher_information(self, ratios: Mapping[str, LogRatioOfTheta], parton_level: bool = False, rate: bool = False,
                           histogram: tuple[Sequence[str], Sequence[Sequence[float]]] | None = None,
                           score: Statistic | None = None) -> dict[str, np.ndarray]:
        r"""Fisher information at θ_true of the extended likelihoods (see :mod:`hepsbi.inference.fisher`),
        label → (p, p): each learned ratio (normalised), and optionally the ``parton_level`` one (label ``truth``), the ``rate``
        alone, the ``histogram`` (observables, edges) of expected counts and SALLY's ``score`` statistic
        (label ``sally_score``; its score is local to θ_ref, so only at θ_true = θ_ref)."""
        rate_part = rate_score(self.expected_events, self.theta_true)
        d = self.dataset.weights.to(torch.float64)
        infos = {label: information_from_scores(scores, d, rate_part)
                 for label, scores in self.scores(ratios, parton_level).items()}
        if rate:
            infos["rate"] = rate_information(self.expected_events, self.theta_true)
        if histogram is not None:
            index, n_bins = self.histogram_bins(*histogram)
            infos["histogram"] = binned_information(self.sim.expected_counts(index, n_bins, self.luminosity_pb), self.theta_true)
        if score is not None and torch.allclose(self.theta_true, self.space.reference):
            infos["sally_score"] = information_from_scores(score(self.dataset.x), d, rate_part)
        return infos

    def kept_information(self, ratios: Mapping[str, LogRatioOfTheta], statistics: Mapping[str, Statistic] | None = None,
                         replicas: int = 20, seed: int = 0) -> dict[str, dict[str, Any]]:
        r"""The information each learned likelihood's score, and each per-event ``statistics`` (e.g. SALLY's score),
        *keeps* at θ_true (:func:`~hepsbi.inference.fisher.kept_information`, with the joint scores of this
        analysis' events): a lower bound on what the observables carry, valid at any θ_true. Use an analysis of
        events no estimator was trained on (a second pool). The parton-level truth keeps all it claims (label
        ``truth``).

        Returns label → ``information`` (p, p) and ``replicas``: the same on ``replicas`` Poisson bootstrap replicas
        of the events (their spread is the statistical error)."""
        scores = self.scores(ratios, parton_level=True)
        truth = scores["truth"]
        per_event = {**scores, **{label: torch.as_tensor(np.asarray(fn(self.dataset.x)), dtype=torch.float64)
                                  for label, fn in (statistics or {}).items()}}
        nu = self.dataset.weights.to(torch.float64)
        rate = rate_score(self.expected_events, self.theta_true)
        gen = torch.Generator().manual_seed(seed)
        draws = [torch.poisson(torch.ones(len(nu), dtype=torch.float64), generator=gen) for _ in range(replicas)]
        out = {}
        for label, values in per_event.items():
            if values.dim() == 1:
                values = values[:, None]
            out[label] = {"information": kept_information(values, truth, nu, rate),
                          "replicas": [kept_information(values, truth, nu * b, rate) for b in draws]}
        return out

    # -- closure away from the reference ----------------------------------------------------------------------------
    def closure(self, ratios: Mapping[str, LogRatioOfTheta], points: Sequence[Sequence[float]], scan_points: int = 21,
                zoom: int = 2) -> list[dict[str, Any]]:
        r"""Asimov closure: for each θ_true in ``points``, the extended likelihood scan of each ratio on this
        analysis' events reweighted to θ_true (same luminosity, Monte Carlo size and seed), and the parton-level
        one. A correct likelihood's MLE is θ_true; one whose θ-dependence is too weak lands between θ_true and
        θ_ref — which an Asimov dataset at θ_ref, and toys there, cannot show.

        Returns one row per (point, likelihood): ``theta_true``, ``likelihood``, ``mle`` and ``half_width_68``
        (half the 68 % interval of each parameter), in parameter order."""
        rows = []
        for point in points:
            away = WeightedAnalysis(self.sim, list(point), self.luminosity_fb, len(self.dataset.weights), self.seed)
            for label, scan in away.scans(ratios, points=scan_points, zoom=zoom, parton_level=True).items():
                rows.append({"theta_true": [float(v) for v in point], "likelihood": label,
                             "mle": [scan.mle[n] for n in scan.names],
                             "half_width_68": [(scan.intervals[n]["68"][1] - scan.intervals[n]["68"][0]) / 2
                                               for n in scan.names]})
        return rows

    def reweighting_closure(self, ratios: Mapping[str, LogRatioOfTheta], points: Sequence[Sequence[float]],
                            bins: int = 10) -> dict[str, list[dict[str, Any]]]:
        r"""Closure by reweighting at each θ in ``points``: this analysis' events at θ_ref (weights w_i^ref)
        reweighted by each learned r̂(x_i | θ) against the same events with their true weights w_i^ref r(z_i | θ),
        in every observable (:func:`~hepsbi.inference.validation.reweighting_closure`, paired), and the
        calibration of the classifier between θ and θ_ref (:func:`~hepsbi.inference.validation.reliability_curve`).

        Returns label → one row per point: ``theta``, ``histograms`` (per observable: edges, learned, target,
        error, chi2, ndf, p_value), ``chi2`` and ``ndf`` summed over observables (they share events, so read the
        sum as a summary, not a test), ``reliability``."""
        x, z, w_ref = self.dataset.x, self.dataset.z, self.w_ref
        assert z is not None
        names = list(self.sim.observable_names)
        out: dict[str, list[dict[str, Any]]] = {label: [] for label in ratios}
        of_events = {label: self.normalised(fn) for label, fn in ratios.items()}  # ratios of densities
        for point in points:
            theta = self.space.point(list(point), what="closure point")
            w_true = w_ref * self.sim.weight_ratio(z, theta)
            for label, fn in of_events.items():
                with torch.no_grad():
                    log_r = torch.as_tensor(fn(theta), dtype=torch.float64)
                histograms = reweighting_closure(x, w_ref, log_r, x, w_true, names, bins, paired=True)
                out[label].append(_closure_row(theta, histograms, reliability_curve(log_r, w_true, log_r, w_ref)))
        return out

    # -- pseudo-experiments --------------------------------------------------------------------------------------
    def toys(self, models: Mapping[str, UnbinnedModel], seed: int, first: int = 0, count: int = 100,
             progress: bool = False) -> dict[str, CoverageResult]:
        """t(θ_true) of toys ``first`` … ``first + count − 1`` for each model: a Poisson bootstrap of the
        dataset's events (counts ~ Poisson(expected events)) and auxiliary data ~ N(0, 1), shared by every
        model; toy k draws from seed + 1 + k (:func:`~hepsbi.inference.pseudo_experiments.toy_statistics`)."""
        if not models:
            return {}
        model = next(iter(models.values()))
        truth_dict = self.space.as_dict(self.theta_true)
        start = self.theta_true.tolist() + [0.0] * len(model.nuisance)

        def draw(k: int) -> tuple[Tensor, Tensor]:
            gen = torch.Generator().manual_seed(seed + 1 + k)
            return poisson_counts(model.weights, gen), torch.randn(len(model.nuisance), generator=gen, dtype=torch.float64)

        results = {}
        for label, m in models.items():
            nlls: Iterator[NLL] = (m.with_data(*draw(k)).nll for k in range(first, first + count))
            results[label] = toy_statistics(nlls, model.names, truth_dict, start, None, count, progress, f"toys: {label}")
        return results
