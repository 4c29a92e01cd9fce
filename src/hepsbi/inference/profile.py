r"""Maximum likelihood with nuisance parameters: iminuit (MIGRAD, HESSE, MINOS) on a torch negative
log-likelihood with analytic gradients, and profile-likelihood scans.

The NLL is any function of the full parameter vector (parameters of interest and nuisance parameters) that
torch can differentiate; Minuit gets its value and gradient. A fit that MIGRAD does not declare valid is an
:class:`~hepsbi.errors.InferenceError` that says why, never a silently used result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from hepsbi.errors import InferenceError
from hepsbi.inference.scan import ScanResult, summarise_scan

__all__ = ["FitResult", "minimize", "profile_scan"]

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
    cache: dict[str, object] = {}

    def evaluate(x: np.ndarray) -> tuple[float, np.ndarray]:
        key = np.asarray(x, dtype=float).tobytes()
        if cache.get("key") != key:
            t = torch.as_tensor(np.asarray(x, dtype=float)).requires_grad_(True)
            with torch.enable_grad():
                value = nll(t)
                (grad,) = torch.autograd.grad(value, t)
            cache.update(key=key, value=float(value.detach()), grad=grad.detach().numpy().astype(float))
        return cache["value"], cache["grad"]  # type: ignore[return-value]

    return (lambda x: evaluate(x)[0]), (lambda x: evaluate(x)[1])


def minimize(
    nll: NLL,
    names: Sequence[str],
    start: Sequence[float],
    limits: Mapping[str, tuple[float | None, float | None]] | None = None,
    fixed: Mapping[str, float] | None = None,
    minos: Sequence[str] = (),
    hesse: bool = True,
) -> FitResult:
    """Minimise ``nll(params (p,)) -> scalar`` with MIGRAD (+ HESSE, + MINOS for ``minos`` parameters).

    Arguments:
        nll: negative log-likelihood of the full parameter vector, differentiable by torch.
        names: parameter names, in vector order.  start: starting values.
        limits: ``{name: (low, high)}`` (None for open).  fixed: ``{name: value}`` held constant.
        minos: parameters to get asymmetric MINOS intervals for (Δ NLL = 0.5).
    """
    from iminuit import Minuit

    fcn, grad = _value_and_grad(nll)
    start = np.asarray(start, dtype=float).copy()
    unknown = set(limits or {}) | set(fixed or {}) | set(minos)
    unknown -= set(names)
    if unknown:
        raise InferenceError(f"unknown parameter(s) {sorted(unknown)}; the model has {list(names)}")
    for name, value in (fixed or {}).items():
        start[list(names).index(name)] = value
    m = Minuit(fcn, start, grad=grad, name=list(names))
    m.errordef = Minuit.LIKELIHOOD
    for name, (lo, hi) in (limits or {}).items():
        m.limits[name] = (lo, hi)
    for name in fixed or {}:
        m.fixed[name] = True
    m.migrad()
    if not m.valid:
        fmin = m.fmin
        reasons = [k for k in ("is_above_max_edm", "has_reached_call_limit", "has_posdef_covar", "hesse_failed")
                   if getattr(fmin, k, False) is (k != "has_posdef_covar")]
        raise InferenceError(
            f"the fit did not converge (MIGRAD invalid: {', '.join(reasons) or 'see EDM'}; EDM {fmin.edm:.3g}, "
            f"NLL {fmin.fval:.6g} at {dict(zip(names, np.round(m.values, 6)))})"
        )
    if hesse:
        m.hesse()
    intervals: dict[str, tuple[float, float]] = {}
    if minos:
        m.minos(*minos)
        for name in minos:
            me = m.merrors[name]
            if not me.is_valid:
                raise InferenceError(f"MINOS failed for {name}: lower valid {me.lower_valid}, upper valid {me.upper_valid}")
            intervals[name] = (float(m.values[name] + me.lower), float(m.values[name] + me.upper))
    return FitResult(
        names=list(names),
        values={n: float(v) for n, v in zip(names, m.values)},
        errors={n: float(e) for n, e in zip(names, m.errors)},
        nll=float(m.fval),
        covariance=np.asarray(m.covariance) if m.covariance is not None else None,
        minos=intervals,
        n_calls=int(m.nfcn),
    )


def profile_scan(
    nll: NLL,
    names: Sequence[str],
    start: Sequence[float],
    axes: Mapping[str, Sequence[float]],
    limits: Mapping[str, tuple[float | None, float | None]] | None = None,
) -> ScanResult:
    r"""Profile likelihood on a grid of 1 or 2 parameters of interest: at each node the POIs are fixed and
    every other parameter is minimised (warm-started from the previous node), q = 2 [NLL_prof − NLL_min].

    Arguments:
        axes: ``{poi: values}`` for one or two POIs.
    """
    pois = list(axes)
    if len(pois) not in (1, 2):
        raise InferenceError(f"profile scans take 1 or 2 parameters of interest (got {pois})")
    best = minimize(nll, names, start, limits)
    grid_axes = [np.asarray(axes[p], dtype=float) for p in pois]
    shape = tuple(len(a) for a in grid_axes)
    profiled = np.empty(shape)
    current = [best.values[n] for n in names]
    for index in np.ndindex(*shape):
        fixed = {p: float(grid_axes[k][index[k]]) for k, p in enumerate(pois)}
        fit = minimize(nll, names, current, limits, fixed=fixed, hesse=False)
        profiled[index] = fit.nll
        current = [fit.values[n] for n in names]
    q = np.clip(2.0 * (profiled - best.nll), 0.0, None)
    return summarise_scan(pois, grid_axes, q, -profiled, {p: best.values[p] for p in pois})
