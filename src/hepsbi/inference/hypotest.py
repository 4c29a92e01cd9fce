r"""Hypothesis tests on an :class:`~hepsbi.inference.unbinned.UnbinnedModel`: the test statistics of
:mod:`hepsbi.inference.asymptotics` from profile fits, CLs with its expected band from the background-only
Asimov dataset, and upper limits.

The Asimov dataset follows arXiv:1007.1727 (sec. 5) and pyhf: fit the observed data with the tested
parameter at 0, then weight the Monte Carlo events to that fit's expected events and set the auxiliary data
of the constraints to its fitted nuisance parameters. q_A is the test statistic on that dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

from scipy.optimize import brentq

from hepsbi.errors import InferenceError
from hepsbi.inference.asymptotics import asymptotic_cls, likelihood_test_statistic
from hepsbi.inference.profile import FitResult, minimize
from hepsbi.inference.unbinned import UnbinnedModel

__all__ = ["HypotestResult", "hypotest", "upper_limit"]


@dataclass
class HypotestResult:
    """CLs at one tested value: observed, expected band (−2σ … +2σ, most excluding first), q and q_A."""

    mu: float
    cls_obs: float
    cls_exp: list[float]
    q_obs: float
    q_asimov: float
    best_fit: FitResult


def _statistic(model: UnbinnedModel, poi: str, mu: float, kind: str, start: list[float]) -> tuple[float, FitResult, FitResult]:
    """(q, global fit, fit at μ) of ``model``."""
    names = model.names
    best = minimize(model.nll, names, start, hesse=False)
    at_mu = minimize(model.nll, names, [best.values[n] for n in names], fixed={poi: mu}, hesse=False)
    nll_zero = None
    if kind == "qtilde" and best.values[poi] < 0:
        nll_zero = minimize(model.nll, names, [best.values[n] for n in names], fixed={poi: 0.0}, hesse=False).nll
    q = likelihood_test_statistic(kind, at_mu.nll, best.nll, mu, best.values[poi], nll_zero)
    return q, best, at_mu


def hypotest(model: UnbinnedModel, poi: str, mu: float, test_stat: str = "qtilde", start: list[float] | None = None) -> HypotestResult:
    """Asymptotic CLs for ``poi`` = ``mu`` (every other parameter profiled), as ``pyhf.infer.hypotest``.

    Arguments:
        model: the likelihood; it needs Monte Carlo events (``mc_log_ratio``, ``mc_weights``) for the Asimov dataset.
        poi: the tested parameter (a signal strength or a coupling whose value 0 is the background-only model).
        mu: tested value.  test_stat: ``"q"`` or ``"qtilde"``.  start: starting point of the fits.
    """
    if poi not in model.poi:
        raise InferenceError(f"unknown parameter of interest {poi!r}; the model has {model.poi}")
    names = model.names
    start = list(start) if start is not None else [0.0] * len(names)
    q_obs, best, _ = _statistic(model, poi, mu, test_stat, start)
    background = minimize(model.nll, names, [best.values[n] for n in names], fixed={poi: 0.0}, hesse=False)
    asimov = model.asimov([background.values[n] for n in names])
    q_asimov, _, _ = _statistic(asimov, poi, mu, test_stat, [background.values[n] for n in names])
    cls_obs, cls_exp = asymptotic_cls(q_obs, q_asimov, test_stat)
    return HypotestResult(float(mu), cls_obs, cls_exp, q_obs, q_asimov, best)


def upper_limit(model: UnbinnedModel, poi: str, bounds: tuple[float, float], level: float = 0.05,
                test_stat: str = "qtilde") -> tuple[float, list[float]]:
    """The observed and expected (−2σ … +2σ) upper limits on ``poi`` at CLs = ``level``, found by root finding
    inside ``bounds`` (an error when CLs does not cross ``level`` there). The lower bound must lie above the
    background-only value 0, where the test has no power (q_A = 0)."""
    lo, hi = bounds
    tested: dict[float, HypotestResult] = {}  # the six root searches share their hypothesis tests

    def test(v: float) -> HypotestResult:
        if v not in tested:
            tested[v] = hypotest(model, poi, v, test_stat)
        return tested[v]

    limits = []
    for k in range(6):  # observed, then the five expected quantiles
        values = [test(v).cls_obs if k == 0 else test(v).cls_exp[k - 1] for v in (lo, hi)]
        if not (values[0] > level > values[1]):
            raise InferenceError(f"CLs does not cross {level} between {poi} = {lo} and {hi} "
                                 f"({'observed' if k == 0 else f'expected {k}'}: {values}); widen bounds")

        def f(v: float, k: int = k) -> float:
            r = test(v)
            return (r.cls_obs if k == 0 else r.cls_exp[k - 1]) - level

        limits.append(float(brentq(f, lo, hi, xtol=1e-4 * (hi - lo))))
    return limits[0], limits[1:]

