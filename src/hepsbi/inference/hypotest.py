r"""Hypothesis tests on an :class:`~hepsbi.inference.unbinned.UnbinnedModel`: the test statistics of
:mod:`hepsbi.inference.asymptotics` from profile fits, CLs with its expected band from the background-only
Asimov dataset, and upper limits.

The Asimov dataset follows arXiv:1007.1727 (sec. 5) and pyhf: fit the observed data with the tested
parameter at 0, then weight the Monte Carlo events to that fit's expected events and set the auxiliary data
of the constraints to its fitted nuisance parameters. q_A is the test statistic on that dataset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy.optimize import brentq

from hepsbi.errors import InferenceError
from hepsbi.inference.asymptotics import asymptotic_cls, likelihood_test_statistic
from hepsbi.inference.profile import FitResult, minimize
from hepsbi.inference.unbinned import UnbinnedModel

__all__ = ["HypotestResult", "Hypotester", "hypotest", "hypotests", "upper_limit"]


@dataclass
class HypotestResult:
    """CLs at one tested value: observed, expected band (−2σ … +2σ, most excluding first), q and q_A."""

    mu: float
    cls_obs: float
    cls_exp: list[float]
    q_obs: float
    q_asimov: float
    best_fit: FitResult


Limits = Mapping[str, tuple[float | None, float | None]]


class Hypotester:
    """CLs of one model at any tested value of ``poi``. The fits that do not depend on it — the global fit, the
    fit at 0, the Asimov dataset built from it and that dataset's two fits — are made once, in the constructor,
    and every tested value is remembered, so a CLs scan and the upper-limit search on the same tester share them
    (``hepsbi limits`` draws its Brazil band and finds its limits with one).

    Arguments: as :func:`hypotest` (``test_stat`` ``"q"`` or ``"qtilde"``; ``start`` the fits' starting point;
    ``limits`` ``{name: (low, high)}`` bounding them)."""

    def __init__(self, model: UnbinnedModel, poi: str, test_stat: str = "qtilde", start: list[float] | None = None,
                 limits: Limits | None = None):
        if poi not in model.poi:
            raise InferenceError(f"unknown parameter of interest {poi!r}; the model has {model.poi}")
        self.model, self.poi, self.kind, self.limits = model, poi, test_stat, limits
        names = model.names
        first = list(start) if start is not None else [0.0] * len(names)
        self.best = minimize(model.nll, names, first, limits, hesse=False)
        self.background = minimize(model.nll, names, self._values(self.best), limits, fixed={poi: 0.0}, hesse=False)
        self.asimov = model.asimov(self._values(self.background))
        self.best_asimov = minimize(self.asimov.nll, names, self._values(self.background), limits, hesse=False)
        self.background_asimov = minimize(self.asimov.nll, names, self._values(self.background), limits,
                                          fixed={poi: 0.0}, hesse=False)
        self._tested: dict[float, HypotestResult] = {}

    def _values(self, fit: FitResult) -> list[float]:
        return [fit.values[n] for n in self.model.names]

    def _q(self, model: UnbinnedModel, best: FitResult, zero: FitResult, mu: float) -> float:
        at_mu = minimize(model.nll, model.names, self._values(best), self.limits, fixed={self.poi: mu}, hesse=False)
        nll_zero = zero.nll if self.kind == "qtilde" and best.values[self.poi] < 0 else None
        return likelihood_test_statistic(self.kind, at_mu.nll, best.nll, mu, best.values[self.poi], nll_zero)

    def __call__(self, mu: float) -> HypotestResult:
        """The test at ``poi`` = ``mu``: two fits (at mu, on the data and on the Asimov dataset), once per value."""
        mu = float(mu)
        if mu not in self._tested:
            q_obs = self._q(self.model, self.best, self.background, mu)
            q_asimov = self._q(self.asimov, self.best_asimov, self.background_asimov, mu)
            cls_obs, cls_exp = asymptotic_cls(q_obs, q_asimov, self.kind)
            self._tested[mu] = HypotestResult(mu, cls_obs, cls_exp, q_obs, q_asimov, self.best)
        return self._tested[mu]

    def upper_limit(self, bounds: tuple[float, float], level: float = 0.05) -> tuple[float, list[float]]:
        """The observed and expected (−2σ … +2σ) upper limits at CLs = ``level`` inside ``bounds``: see
        :func:`upper_limit`. The six root searches share their tests with each other and with earlier calls."""
        lo, hi = bounds
        found: list[float] = []
        for k in range(6):  # observed, then the five expected quantiles
            values = [self(v).cls_obs if k == 0 else self(v).cls_exp[k - 1] for v in (lo, hi)]
            if not (values[0] > level > values[1]):
                raise InferenceError(f"CLs does not cross {level} between {self.poi} = {lo} and {hi} "
                                     f"({'observed' if k == 0 else f'expected {k}'}: {values}); widen bounds")

            def f(v: float, k: int = k) -> float:
                r = self(v)
                return (r.cls_obs if k == 0 else r.cls_exp[k - 1]) - level

            found.append(float(brentq(f, lo, hi, xtol=1e-4 * (hi - lo))))
        return found[0], found[1:]


def hypotest(model: UnbinnedModel, poi: str, mu: float, test_stat: str = "qtilde", start: list[float] | None = None,
             limits: Limits | None = None) -> HypotestResult:
    """Asymptotic CLs for ``poi`` = ``mu`` (every other parameter profiled), as ``pyhf.infer.hypotest``.

    Arguments:
        model: the likelihood; it needs Monte Carlo events (``mc_log_ratio``, ``mc_weights``) for the Asimov dataset.
        poi: the tested parameter (a signal strength or a coupling whose value 0 is the background-only model).
        mu: tested value.  test_stat: ``"q"`` or ``"qtilde"``.  start: starting point of the fits.
        limits: ``{name: (low, high)}`` for the fits (e.g. the range a learned likelihood was trained on).
    """
    return Hypotester(model, poi, test_stat, start, limits)(mu)


def hypotests(model: UnbinnedModel, poi: str, mus: Sequence[float], test_stat: str = "qtilde",
              start: list[float] | None = None, limits: Limits | None = None) -> list[HypotestResult]:
    """:func:`hypotest` at each of ``mus``, sharing the fits that do not depend on the tested value (two fits per
    value instead of six)."""
    tester = Hypotester(model, poi, test_stat, start, limits)
    return [tester(float(mu)) for mu in mus]


def upper_limit(model: UnbinnedModel, poi: str, bounds: tuple[float, float], level: float = 0.05,
                test_stat: str = "qtilde", limits: Limits | None = None) -> tuple[float, list[float]]:
    """The observed and expected (−2σ … +2σ) upper limits on ``poi`` at CLs = ``level``, found by root finding
    inside ``bounds`` (an error when CLs does not cross ``level`` there). The lower bound must lie above the
    background-only value 0, where the test has no power (q_A = 0). ``limits`` bound the fits."""
    return Hypotester(model, poi, test_stat, None, limits).upper_limit(bounds, level)
