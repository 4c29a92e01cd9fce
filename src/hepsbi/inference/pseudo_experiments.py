r"""Pseudo-experiments: toy datasets, test-statistic distributions, toy-based (Neyman) intervals and coverage.

Toys of an :class:`~hepsbi.inference.unbinned.UnbinnedModel` are a Poisson bootstrap of its Monte Carlo
events: event j enters a toy n_j ~ Poisson(ν_j) times, with ν_j its expected events at the generating point
(θ, α) — a sample of the extended model when the Monte Carlo is large next to the expected events — and the
auxiliary data of the constraints are drawn from N(α, 1). Toys from a simulator are its own samples.

Coverage: the fraction of toys whose interval contains the truth. For the likelihood-ratio interval
{θ : t(θ) ≤ c} this is the fraction with t(θ_true) ≤ c, so one global and one constrained fit per toy
decide it without a scan. With c from Wilks' theorem (χ² quantiles) this checks the asymptotic intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from rich.progress import track
from torch import Tensor

from hepsbi.errors import InferenceError
from hepsbi.inference.profile import NLL, minimize
from hepsbi.inference.scan import CONFIDENCE_LEVELS, wilks_threshold
from hepsbi.inference.unbinned import UnbinnedModel

__all__ = [
    "CoverageResult",
    "coverage",
    "neyman_interval",
    "NeymanResult",
    "poisson_counts",
    "toy_statistics",
    "profile_statistic",
    "unbinned_coverage",
    "unbinned_toys",
]


def poisson_counts(expected: Tensor, generator: torch.Generator) -> Tensor:
    """n_j ~ Poisson(ν_j) for every event, (m,); negative expectations (negative-weight events) are an error,
    as a count cannot be drawn for them — reweight or use simulator toys."""
    expected = torch.as_tensor(expected, dtype=torch.float64)
    negative = int((expected < 0).sum())
    if negative:
        raise InferenceError(f"Poisson toys need non-negative expected events; {negative} events have ν_j < 0 "
                             "(negative weights): use toys from the simulator")
    return torch.poisson(expected, generator=generator)


def unbinned_toys(model: UnbinnedModel, params: Sequence[float] | Tensor, n_toys: int, seed: int = 0) -> Iterator[UnbinnedModel]:
    """``n_toys`` toy versions of ``model`` generated at ``params`` = (θ, α): Poisson counts of its Monte
    Carlo events and auxiliary data ~ N(α, 1)."""
    params = torch.as_tensor(params, dtype=torch.float64)
    expected = model.expected_per_event(params)
    alpha = params[len(model.poi):]
    gen = torch.Generator().manual_seed(int(seed))
    for _ in range(int(n_toys)):
        counts = poisson_counts(expected, gen)
        aux = alpha + torch.randn(len(alpha), generator=gen, dtype=torch.float64)
        yield model.with_data(counts, aux)


def profile_statistic(nll: NLL, names: Sequence[str], values: Mapping[str, float], start: Sequence[float],
                      limits: Mapping[str, tuple[float | None, float | None]] | None = None) -> tuple[float, dict[str, float]]:
    """t = 2 [NLL(values, profiled rest) − NLL_min] and the global best fit; ``values`` fixes some parameters
    (the POIs) at the tested point, every other one is minimised in both fits."""
    best = minimize(nll, names, start, limits, hesse=False)
    if len(values) == len(names):
        with torch.no_grad():
            at = float(nll(torch.tensor([values[n] for n in names], dtype=torch.float64)))
    else:
        at = minimize(nll, names, [best.values[n] for n in names], limits, fixed=dict(values), hesse=False).nll
    return max(0.0, 2.0 * (at - best.nll)), best.values


@dataclass
class CoverageResult:
    """Test statistic at the truth for every toy, and the coverage of Wilks' intervals it implies."""

    t: np.ndarray
    dof: int
    failed: int = 0
    best_fits: list[dict[str, float]] = field(default_factory=list)

    @property
    def n_toys(self) -> int:
        return len(self.t)

    def level(self, level: str) -> dict[str, float]:
        """Coverage of the ``level`` ("68" or "95") interval: fraction, binomial error, nominal and the
        deviation from nominal in binomial standard deviations of the nominal."""
        nominal = CONFIDENCE_LEVELS[level]
        n = self.n_toys
        fraction = float(np.mean(self.t <= wilks_threshold(level, self.dof)))
        return {
            "nominal": nominal,
            "coverage": fraction,
            "error": float(np.sqrt(max(fraction * (1 - fraction), 1.0 / n) / n)),
            "pull": float((fraction - nominal) / np.sqrt(nominal * (1 - nominal) / n)),
        }

    @classmethod
    def join(cls, parts: Sequence[CoverageResult]) -> CoverageResult:
        """The toys of ``parts`` (batches, in order) as one result; an error if no toy fit succeeded."""
        if not parts or not sum(p.n_toys for p in parts):
            raise InferenceError(f"every one of {sum(p.failed for p in parts)} toy fits failed")
        return cls(np.concatenate([p.t for p in parts]), parts[0].dof, sum(p.failed for p in parts),
                   [fit for p in parts for fit in p.best_fits])

    def to_dict(self) -> dict[str, Any]:
        return {"n_toys": self.n_toys, "dof": self.dof, "failed_fits": self.failed,
                "levels": {lv: self.level(lv) for lv in CONFIDENCE_LEVELS}, "t": [round(float(v), 6) for v in self.t]}


def toy_statistics(nlls: Iterable[NLL], names: Sequence[str], truth: Mapping[str, float], start: Sequence[float],
                   limits: Mapping[str, tuple[float | None, float | None]] | None = None,
                   n_toys: int | None = None, progress: bool = False, description: str = "toys") -> CoverageResult:
    """t(truth) of each toy, given as its NLL, with every parameter not in ``truth`` profiled; a toy whose fit
    fails is counted in ``failed`` and left out. May hold no toy at all (a batch of :meth:`CoverageResult.join`)."""
    t, fits, failed = [], [], 0
    iterator = track(nlls, total=n_toys, description=description) if progress else nlls
    for nll in iterator:
        try:
            value, best = profile_statistic(nll, names, truth, start, limits)
        except InferenceError:
            failed += 1
            continue
        t.append(value)
        fits.append(best)
    return CoverageResult(np.asarray(t, dtype=float), len(truth), failed, fits)


def coverage(nlls: Iterable[NLL], names: Sequence[str], truth: Mapping[str, float], start: Sequence[float],
             limits: Mapping[str, tuple[float | None, float | None]] | None = None,
             n_toys: int | None = None, progress: bool = False, description: str = "toys") -> CoverageResult:
    """Coverage of likelihood-ratio intervals over toys, given as their NLLs (see :func:`toy_statistics`)."""
    return CoverageResult.join([toy_statistics(nlls, names, truth, start, limits, n_toys, progress, description)])


def unbinned_coverage(model: UnbinnedModel, params: Sequence[float] | Tensor, n_toys: int, seed: int = 0,
                      progress: bool = False) -> CoverageResult:
    """Coverage of the profile-likelihood intervals of ``model``'s POIs with toys generated at ``params``."""
    params = torch.as_tensor(params, dtype=torch.float64)
    truth = {n: float(v) for n, v in zip(model.poi, params)}
    toys = (toy.nll for toy in unbinned_toys(model, params, n_toys, seed))
    return coverage(toys, model.names, truth, params.tolist(), n_toys=n_toys, progress=progress)


@dataclass
class NeymanResult:
    """A toy-based interval: the tested values, the observed t and the critical values from toys."""

    poi: str
    grid: np.ndarray
    t_observed: np.ndarray
    t_critical: np.ndarray
    level: float

    @property
    def accepted(self) -> np.ndarray:
        return self.t_observed <= self.t_critical

    @property
    def interval(self) -> tuple[float, float]:
        """[lowest, highest] accepted value; an error if the edge of the grid is accepted (open interval)."""
        inside = np.flatnonzero(self.accepted)
        if inside.size == 0:
            raise InferenceError(f"no value of {self.poi} on the grid is accepted at {self.level:.0%}")
        if inside[0] == 0 or inside[-1] == len(self.grid) - 1:
            raise InferenceError(f"the {self.level:.0%} Neyman interval of {self.poi} is open at the grid edge "
                                 f"[{self.grid[0]}, {self.grid[-1]}]; widen the grid")
        return float(self.grid[inside[0]]), float(self.grid[inside[-1]])


def neyman_interval(model: UnbinnedModel, poi: str, grid: Sequence[float], n_toys: int = 200, level: float = 0.6827,
                    seed: int = 0, progress: bool = False) -> NeymanResult:
    r"""Toy-based interval for ``poi`` with the profile likelihood ratio t_μ as ordering (Feldman–Cousins with
    nuisance parameters profiled, as ATLAS and CMS do): at each μ, toys are generated at (μ, \hat{\hat α}_μ) of
    the observed data, and μ is accepted if t_μ(observed) is below the ``level`` quantile of t_μ(toys)."""
    if poi not in model.poi:
        raise InferenceError(f"unknown parameter of interest {poi!r}; the model has {model.poi}")
    names = model.names
    best = minimize(model.nll, names, [0.0] * len(names), hesse=False)
    values = np.asarray(grid, dtype=float)
    t_obs, t_crit = np.empty(len(values)), np.empty(len(values))
    points: Callable[[], Iterable[int]] = lambda: track(range(len(values)), description=f"Neyman {poi}") if progress else range(len(values))  # noqa: E731
    for i in points():
        mu = float(values[i])
        at = minimize(model.nll, names, [best.values[n] for n in names], fixed={poi: mu}, hesse=False)
        t_obs[i] = max(0.0, 2.0 * (at.nll - best.nll))
        generating = [at.values[n] for n in names]
        toys = (toy.nll for toy in unbinned_toys(model, generating, n_toys, seed + i))
        result = coverage(toys, names, {poi: mu}, generating)
        t_crit[i] = float(np.quantile(result.t, level))
    return NeymanResult(poi, values, t_obs, t_crit, level)
