r"""Maximum likelihood with nuisance parameters: iminuit (MIGRAD, HESSE, MINOS) on a torch negative
log-likelihood with analytic gradients, and profile-likelihood scans.

The NLL is any function of the full parameter vector (parameters of interest and nuisance parameters) that
torch can differentiate; Minuit gets its value and gradient. A fit that MIGRAD does not declare valid is an
:class:`~hepsbi.errors.InferenceError` that says why, never a silently used result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hepsbi.errors import InferenceError
from hepsbi.inference.scan import CONFIDENCE_LEVELS, ScanResult, summarise_scan, wilks_threshold

__all__ = ["FitResult", "ProfileFit", "hessian", "minimize", "profile_fit", "profile_scan"]

NLL = Callable[[Tensor], Tensor]


@dataclass
class FitResult:
    """Best-fit values, HESSE errors, covariance, MINOS intervals (when asked) and the NLL at the minimum."""

    names: list[str]
    values: dict[str, float]
    errors: dict[str, float]
    nll: float
    covariance: np.ndarray | None
    minos: dict[str, tuple[float, float]] = field(default_factory=dict)
    n_calls: int = 0


def _value_and_grad(nll: NLL) -> tuple[Callable[[np.ndarray], float], Callable[[np.ndarray], np.ndarray]]:
    """Minuit's fcn and grad: a value alone is computed without autograd (MIGRAD's line searches ask for
    many), a gradient with it; both are cached for the last point."""
    cache: dict[str, object] = {}

    def value(x: np.ndarray) -> float:
        key = np.asarray(x, dtype=float).tobytes()
        if cache.get("key") != key:
            with torch.no_grad():
                v = float(nll(torch.as_tensor(np.asarray(x, dtype=float))))
            cache.clear()
            cache.update(key=key, value=v)
        return cache["value"]  # type: ignore[return-value]

    def gradient(x: np.ndarray) -> np.ndarray:
        key = np.asarray(x, dtype=float).tobytes()
        if cache.get("key") != key or "grad" not in cache:
            t = torch.as_tensor(np.asarray(x, dtype=float)).requires_grad_(True)
            with torch.enable_grad():
                v = nll(t)
                (g,) = torch.autograd.grad(v, t)
            cache.update(key=key, value=float(v.detach()), grad=g.detach().numpy().astype(float))
        return cache["grad"]  # type: ignore[return-value]

    return value, gradient


def hessian(nll: NLL, point: Sequence[float] | np.ndarray) -> np.ndarray:
    """The exact matrix of second derivatives of ``nll`` at ``point`` by automatic differentiation, (p, p)."""
    x = torch.as_tensor(np.asarray(point, dtype=float))
    with torch.enable_grad():
        h = torch.autograd.functional.hessian(nll, x)
    return h.detach().numpy()


def _covariance(nll: NLL, values: np.ndarray, free: np.ndarray) -> np.ndarray | None:
    """Covariance of the free parameters (zero rows/columns for fixed ones) from the exact Hessian, or None
    when it is not positive definite."""
    h = hessian(nll, values)[np.ix_(free, free)]
    try:
        chol = np.linalg.cholesky(h)
    except np.linalg.LinAlgError:
        return None
    inv_chol = np.linalg.inv(chol)
    cov = np.zeros((len(values), len(values)))
    cov[np.ix_(free, free)] = inv_chol.T @ inv_chol
    return cov


@contextlib.contextmanager
def _quiet(m: Any) -> Iterator[Any]:
    """Minuit ``m`` with its C++ messages silenced: they go straight to the terminal, through any progress bar
    ("VariableMetricBuilder Initial matrix not pos.def." when a first step meets negative curvature, which the fit
    then recovers from). Whether a fit is valid is checked here, and an invalid one is an InferenceError naming why.
    Minuit's print level is global to the process: it is restored on leaving."""
    level = m.print_level
    m.print_level = -1
    try:
        yield m
    finally:
        m.print_level = level


def _migrad(nll: NLL, names: Sequence[str], start: Sequence[float],
            limits: Mapping[str, tuple[float | None, float | None]] | None = None,
            fixed: Mapping[str, float] | None = None, strategy: int = 0) -> Any:
    """A Minuit object after a valid MIGRAD (retried once with the next strategy), or an InferenceError that
    says why the fit did not converge."""
    from iminuit import Minuit

    fcn, grad = _value_and_grad(nll)
    initial = np.asarray(start, dtype=float).copy()
    unknown = (set(limits or {}) | set(fixed or {})) - set(names)
    if unknown:
        raise InferenceError(f"unknown parameter(s) {sorted(unknown)}; the model has {list(names)}")
    for name, value in (fixed or {}).items():
        initial[list(names).index(name)] = value
    m = Minuit(fcn, initial, grad=grad, name=list(names))
    m.errordef = Minuit.LIKELIHOOD
    m.strategy = strategy
    for name, (lo, hi) in (limits or {}).items():
        m.limits[name] = (lo, hi)
    for name in fixed or {}:
        m.fixed[name] = True
    with _quiet(m):
        m.migrad()
        if not m.valid and strategy < 2:  # one retry, more careful (numerical second derivatives along the way)
            m.strategy = strategy + 1
            m.migrad()
    if not m.valid:
        fmin = m.fmin
        reasons = [k for k in ("is_above_max_edm", "has_reached_call_limit", "has_posdef_covar", "hesse_failed")
                   if getattr(fmin, k, False) is (k != "has_posdef_covar")]
        raise InferenceError(
            f"the fit did not converge (MIGRAD invalid: {', '.join(reasons) or 'see EDM'}; EDM {fmin.edm:.3g}, "
            f"NLL {fmin.fval:.6g} at {dict(zip(names, np.round(m.values, 6)))})"
        )
    return m


def minimize(
    nll: NLL,
    names: Sequence[str],
    start: Sequence[float],
    limits: Mapping[str, tuple[float | None, float | None]] | None = None,
    fixed: Mapping[str, float] | None = None,
    minos: Sequence[str] = (),
    hesse: bool = True,
    strategy: int = 0,
) -> FitResult:
    """Minimise ``nll(params (p,)) -> scalar`` with MIGRAD (+ covariance, + MINOS for ``minos`` parameters).

    The covariance is the inverse of the exact Hessian (torch, second derivatives), not Minuit's numerical
    HESSE: exact, and a few gradient evaluations instead of ~p² function calls. MIGRAD runs with strategy 0
    by default, as is usual when the gradient is analytic (pyhf does the same), and once more with the next
    strategy if that minimum is not valid.

    Arguments:
        nll: negative log-likelihood of the full parameter vector, differentiable by torch (twice, for the
            covariance).
        names: parameter names, in vector order.  start: starting values.
        limits: ``{name: (low, high)}`` (None for open).  fixed: ``{name: value}`` held constant.
        minos: parameters to get asymmetric MINOS intervals for (Δ NLL = 0.5).
        hesse: compute errors and covariance.  strategy: Minuit strategy (0, 1 or 2).
    """
    unknown = set(minos) - set(names)
    if unknown:
        raise InferenceError(f"unknown parameter(s) {sorted(unknown)}; the model has {list(names)}")
    m = _migrad(nll, names, start, limits, fixed, strategy)
    values = np.asarray(m.values, dtype=float)
    covariance, errors = None, np.asarray(m.errors, dtype=float)
    if hesse:
        free = np.array([not m.fixed[n] for n in names])
        covariance = _covariance(nll, values, free)
        if covariance is None:  # not positive definite: fall back on Minuit's numerical HESSE (which corrects it)
            with _quiet(m):
                m.hesse()
            covariance = np.asarray(m.covariance)
        errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    intervals: dict[str, tuple[float, float]] = {}
    if minos:
        with _quiet(m):
            m.hesse()  # MINOS starts from Minuit's own error matrix
            m.minos(*minos)
        for name in minos:
            me = m.merrors[name]
            if not me.is_valid:
                raise InferenceError(f"MINOS failed for {name}: lower valid {me.lower_valid}, upper valid {me.upper_valid}")
            intervals[name] = (float(m.values[name] + me.lower), float(m.values[name] + me.upper))
    return FitResult(
        names=list(names),
        values={n: float(v) for n, v in zip(names, values)},
        errors={n: float(e) for n, e in zip(names, errors)},
        nll=float(m.fval),
        covariance=covariance,
        minos=intervals,
        n_calls=int(m.nfcn),
    )


@dataclass
class ProfileFit:
    """A fit of any number of parameters: the MLE, and per parameter of interest its profile-likelihood interval at
    each level (every other parameter free), ``open_ends`` marking an end that stopped at the parameter's limit
    (the interval is then only known to reach at least that far)."""

    names: list[str]
    mle: dict[str, float]
    intervals: dict[str, dict[str, list[float]]]
    open_ends: dict[str, dict[str, list[bool]]]
    nll: float
    covariance: np.ndarray | None


def profile_fit(
    nll: NLL,
    names: Sequence[str],
    start: Sequence[float],
    pois: Sequence[str] | None = None,
    limits: Mapping[str, tuple[float | None, float | None]] | None = None,
    levels: Sequence[str] = ("68", "95"),
    fixed: Mapping[str, float] | None = None,
) -> ProfileFit:
    r"""Profile-likelihood intervals in any number of dimensions: MIGRAD for the MLE, then MINOS for each parameter
    of interest at each confidence level, every other parameter (the other POIs and the nuisance parameters)
    minimised at each point. MINOS finds where the profiled NLL rises by ½ χ²₁(CL) — 0.5 at 68.27 %, 1.92 at
    95 % (Wilks; 1 degree of freedom) — so no grid is scanned: the cost grows with the number of parameters, not
    exponentially as a grid's does.

    Arguments:
        nll: negative log-likelihood of the full parameter vector (torch-differentiable).
        names: its parameter names.  start: starting values.
        pois: the parameters to give intervals for (default: all but ``fixed``).  limits: ``{name: (low, high)}``.
        levels: keys of :data:`~hepsbi.inference.scan.CONFIDENCE_LEVELS`.  fixed: ``{name: value}`` held constant.
    """
    pois = list(pois or [n for n in names if n not in (fixed or {})])
    unknown = [p for p in pois if p not in names] + [lv for lv in levels if lv not in CONFIDENCE_LEVELS]
    if unknown:
        raise InferenceError(f"profile_fit: unknown parameter(s) or level(s) {unknown}; parameters {list(names)}, "
                             f"levels {list(CONFIDENCE_LEVELS)}")
    m = _migrad(nll, names, start, limits, fixed)
    mle = {n: float(m.values[n]) for n in names}
    covariance = _covariance(nll, np.asarray(m.values, dtype=float), np.array([n not in (fixed or {}) for n in names]))
    with _quiet(m):
        m.hesse()  # MINOS starts from Minuit's own error matrix
    intervals: dict[str, dict[str, list[float]]] = {p: {} for p in pois}
    open_ends: dict[str, dict[str, list[bool]]] = {p: {} for p in pois}
    best = [mle[n] for n in names]
    for level in levels:
        try:
            with _quiet(m):
                m.minos(*pois, cl=float(CONFIDENCE_LEVELS[level]))
        except RuntimeError:  # MINOS gave up on every parameter: each end by bisection below
            pass
        for p in pois:
            me = m.merrors[p] if p in m.merrors else None
            ends, opened = [], []
            for side, sign in ((0, -1.0), (1, 1.0)):
                valid = me is not None and (me.lower_valid if side == 0 else me.upper_valid)
                at_limit = me is not None and bool(me.at_lower_limit if side == 0 else me.at_upper_limit)
                if me is not None and (valid or at_limit):
                    ends.append(mle[p] + float(me.lower if side == 0 else me.upper))
                    opened.append(at_limit)
                else:  # MINOS failed on this side (an irregular profile): bisection on the profiled NLL itself
                    end, at = _profile_end(nll, names, best, p, sign, float(m.fval) + 0.5 * wilks_threshold(level, 1),
                                           float(m.errors[p]), limits, fixed)
                    ends.append(end)
                    opened.append(at)
            intervals[p][level] = ends
            open_ends[p][level] = opened
    return ProfileFit(list(names), {p: mle[p] for p in names}, intervals, open_ends, float(m.fval), covariance)


def _profile_end(nll: NLL, names: Sequence[str], best: Sequence[float], poi: str, sign: float, target: float,
                 step: float, limits: Mapping[str, tuple[float | None, float | None]] | None,
                 fixed: Mapping[str, float] | None) -> tuple[float, bool]:
    """Where the profiled NLL of ``poi`` reaches ``target`` on the ``sign`` side of the MLE: steps of growing size
    until it does (or the parameter's limit: then the limit, open), then bisection; (end, stopped at the limit)."""
    j = list(names).index(poi)
    low, high = (limits or {}).get(poi, (None, None))
    bound = (low if sign < 0 else high)
    start = float(best[j])

    def profiled(value: float) -> float:
        return minimize(nll, names, best, limits, fixed=dict(fixed or {}) | {poi: value}, hesse=False).nll

    step = step if np.isfinite(step) and step > 0 else 1e-3 * max(1.0, abs(start))
    inner, outer = start, start + sign * step
    for _ in range(40):
        if bound is not None and sign * (outer - bound) >= 0:
            outer = float(bound)
            if profiled(outer) < target:
                return outer, True
            break
        if profiled(outer) >= target:
            break
        inner, outer = outer, start + sign * 2 * abs(outer - start)
    for _ in range(40):
        middle = 0.5 * (inner + outer)
        if profiled(middle) < target:
            inner = middle
        else:
            outer = middle
        if abs(outer - inner) < 1e-4 * step:
            break
    return 0.5 * (inner + outer), False


def profile_scan(
    nll: NLL,
    names: Sequence[str],
    start: Sequence[float],
    axes: Mapping[str, Sequence[float] | np.ndarray],
    limits: Mapping[str, tuple[float | None, float | None]] | None = None,
    progress: bool | str = False,
    fixed: Mapping[str, float] | None = None,
) -> ScanResult:
    r"""Profile likelihood on a grid of 1 or 2 parameters of interest: at each node the POIs are fixed and
    every other parameter is minimised (warm-started from the previous node), q = 2 [NLL_prof − NLL_min].

    Arguments:
        axes: ``{poi: values}`` for one or two POIs.
        progress: show a progress bar over the nodes (a string is its description).
        fixed: ``{name: value}`` held constant throughout (e.g. nuisance parameters at their nominal values).
    """
    pois = list(axes)
    if len(pois) not in (1, 2):
        raise InferenceError(f"profile scans take 1 or 2 parameters of interest (got {pois})")
    best = minimize(nll, names, start, limits, fixed=fixed, hesse=False)
    grid_axes = [np.asarray(axes[p], dtype=float) for p in pois]
    shape = tuple(len(a) for a in grid_axes)
    profiled = np.empty(shape)
    current = [best.values[n] for n in names]
    nodes: Iterable[tuple[int, ...]] = list(np.ndindex(*shape))
    if progress:
        from rich.progress import track

        nodes = track(nodes, description=progress if isinstance(progress, str) else "profile scan")
    for index in nodes:
        node = dict(fixed or {}) | {p: float(grid_axes[k][index[k]]) for k, p in enumerate(pois)}
        fit = minimize(nll, names, current, limits, fixed=node, hesse=False)
        profiled[index] = fit.nll
        current = [fit.values[n] for n in names]
    q = np.clip(2.0 * (profiled - best.nll), 0.0, None)
    return summarise_scan(pois, grid_axes, q, -profiled, {p: best.values[p] for p in pois})
