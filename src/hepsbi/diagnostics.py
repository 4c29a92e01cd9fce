r"""Is a posterior calibrated? Simulation-based calibration, TARP expected coverage and posterior predictive checks,
for any posterior with ``sample(x_obs, n, generator=...)`` — a :class:`~hepsbi.estimators.posterior.PosteriorEstimator`
(NPE), a :class:`~hepsbi.inference.sampling.LikelihoodPosterior` (NLE or NRE by MCMC), or an exact one.

All three check the posterior against the simulator itself, over pairs (θ_i, x_i) with θ_i drawn from the prior and
x_i from the simulator at θ_i — never against a reference posterior, which real problems do not have.

* **SBC** (Talts, Betancourt, Simpson, Vehtari, Gelman, arXiv:1804.06788): for a posterior q that equals the true
  one, the rank of θ_i,k among L draws θ_ij,k ~ q(θ | x_i),

  .. math:: r_{ik} = \#\{j : θ_{ij,k} < θ_{i,k}\} \in \{0, …, L\},

  is uniform on {0, …, L} for every parameter k. Too narrow a posterior piles ranks at both ends (a ∪), too wide
  one in the middle (a ∩), a biased one on one side. The test here: Pearson's χ² of the ranks' histogram against
  the uniform one, one p-value per parameter.
* **TARP** (Lemos, Coogan, Hezaveh, Perreault-Levasseur, arXiv:2302.03026): with a random reference point θ_r,i
  per pair (uniform over the box of the draws, after scaling each parameter to unit range),

  .. math:: f_i = \frac{1}{L}\sum_j 1\big[\lVert θ_{ij} − θ_{r,i}\rVert < \lVert θ_i − θ_{r,i}\rVert\big],
            \qquad \mathrm{ECP}(α) = \frac{1}{m}\sum_i 1[f_i < α],

  and the posterior is calibrated if and only if ECP(α) = α for every α (for every distribution of θ_r) — a test
  of the joint posterior, where SBC tests each marginal. ``f`` is uniform on [0, 1] then, so the Kolmogorov–Smirnov
  distance of f from the uniform law is ``max |ECP(α) − α|`` and has a p-value.
* **Posterior predictive check**: θ drawn from q(θ | x_obs), x from the simulator at θ; the share of the predictive
  x below x_obs in each observable (a p-value near 0 or 1 says the model, fitted, does not reproduce x_obs).

Plots: :func:`hepsbi.report.plots.plot_sbc_ranks`, :func:`~hepsbi.report.plots.plot_tarp`,
:func:`~hepsbi.report.plots.plot_posterior`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from hepsbi.errors import EstimatorError

__all__ = ["PosteriorSampler", "PredictiveCheck", "SBCResult", "TARPResult", "posterior_predictive",
           "posterior_samples", "sbc", "sbc_ranks", "tarp", "tarp_coverage"]


class PosteriorSampler(Protocol):
    """Anything that draws from a posterior: ``sample(x_obs, n, generator) -> (n, p)``."""

    def sample(self, x_obs: Any, n: int, generator: torch.Generator | None = None) -> Tensor: ...


def posterior_samples(posterior: PosteriorSampler, x: Any, n: int, seed: int = 0, progress: bool = False) -> Tensor:
    """n draws from q(θ | x_i) for every observation: (m, n, p) for x (m, \\*x_shape), seeded by ``seed``."""
    xs = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    if xs.dim() == 1:
        xs = xs[:, None]
    gen = torch.Generator().manual_seed(int(seed))
    rows: Iterable[int] = range(xs.shape[0])
    if progress:
        from rich.progress import track

        rows = track(rows, description="posterior draws", transient=True)
    return torch.stack([torch.as_tensor(posterior.sample(xs[i:i + 1], int(n), generator=gen), dtype=torch.float64)
                        for i in rows])


def _pairs(samples: Any, theta: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(samples, dtype=np.float64)
    t = np.asarray(theta, dtype=np.float64)
    if t.ndim == 1:
        t = t[:, None]
    if s.ndim == 2:
        s = s[:, :, None]
    if s.ndim != 3 or t.ndim != 2 or s.shape[0] != t.shape[0] or s.shape[2] != t.shape[1]:
        raise EstimatorError(f"samples must be (m, n, p) and theta (m, p) with the same m and p (got {s.shape} and "
                             f"{t.shape})")
    if s.shape[0] < 2 or s.shape[1] < 1:
        raise EstimatorError(f"calibration needs at least 2 simulations and 1 draw each (got {s.shape[:2]})")
    if not (np.isfinite(s).all() and np.isfinite(t).all()):
        raise EstimatorError("samples and theta must be finite")
    return s, t


# -- simulation-based calibration -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SBCResult:
    """SBC ranks and their uniformity test.

    Attributes:
        ranks: (m, p) rank of each true θ among its posterior's draws, 0 … ``draws``.
        draws: L, the posterior draws per simulation.  bins: histogram bins of the χ² test.
        p_values: (p,) χ² p-value of uniform ranks, per parameter.  chi2: (p,) the statistics.
    """

    ranks: np.ndarray
    draws: int
    bins: int
    p_values: np.ndarray
    chi2: np.ndarray

    def calibrated(self, level: float = 0.01) -> bool:
        """Whether no parameter's ranks reject uniformity at ``level`` (Bonferroni over the parameters)."""
        return bool((self.p_values >= level / len(self.p_values)).all())

    def histogram(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(edges (bins + 1,), counts (bins, p), expected counts (bins,)) of the ranks."""
        return _rank_histogram(self.ranks, self.draws, self.bins)

    def to_dict(self) -> dict[str, Any]:
        return {"draws": self.draws, "bins": self.bins, "simulations": int(len(self.ranks)),
                "p_values": self.p_values.tolist(), "chi2": self.chi2.tolist(), "calibrated": self.calibrated()}


def _rank_histogram(ranks: np.ndarray, draws: int, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(edges (bins + 1,), counts (bins, p), expected counts (bins,)) of ranks (m, p) in 0..draws: a rank is
    uniform on the draws + 1 values under calibration."""
    edges = np.linspace(0, draws + 1, bins + 1)
    counts = np.stack([np.histogram(ranks[:, k], edges)[0] for k in range(ranks.shape[1])], axis=1)
    per_bin = np.histogram(np.arange(draws + 1), edges)[0]
    return edges, counts, len(ranks) * per_bin / (draws + 1)


def sbc_ranks(samples: Any, theta: Any, bins: int | None = None) -> SBCResult:
    r"""SBC from draws already made: samples (m, L, p) of q(θ | x_i), theta (m, p) the true θ_i.

    ``bins`` (default: about m/10 expected per bin, between 2 and 20, at most L + 1) sets the χ² histogram."""
    s, t = _pairs(samples, theta)
    m, draws, _ = s.shape
    ranks = (s < t[:, None, :]).sum(axis=1)
    if bins is None:
        bins = int(np.clip(m // 10, 2, 20))
    bins = int(min(max(bins, 2), draws + 1))
    _, counts, expected = _rank_histogram(ranks, draws, bins)
    chi2 = ((counts - expected[:, None]) ** 2 / expected[:, None]).sum(axis=0)
    p_values = stats.chi2.sf(chi2, df=bins - 1)
    return SBCResult(ranks, draws, bins, np.asarray(p_values), np.asarray(chi2))


def sbc(posterior: PosteriorSampler, theta: Any, x: Any, draws: int = 100, bins: int | None = None, seed: int = 0,
        samples: Any = None, progress: bool = False) -> SBCResult:
    """Simulation-based calibration of ``posterior`` on prior draws θ (m, p) and their simulations x (m, \\*x_shape):
    ``draws`` posterior draws per simulation (module docstring). Pass ``samples`` (m, L, p) to reuse draws."""
    if samples is None:
        samples = posterior_samples(posterior, x, draws, seed, progress)
    return sbc_ranks(samples, theta, bins)


# -- TARP -----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TARPResult:
    """TARP expected coverage.

    Attributes:
        alpha: (k,) credibility levels.  ecp: (k,) expected coverage probability at each.
        f: (m,) the share of draws closer to the reference point than the truth, per simulation.
        distance: max |ECP − α| (the KS distance of f from uniform).  p_value: its KS p-value.
    """

    alpha: np.ndarray
    ecp: np.ndarray
    f: np.ndarray
    distance: float
    p_value: float

    def calibrated(self, level: float = 0.01) -> bool:
        """Whether the KS test of f against uniform does not reject at ``level``."""
        return self.p_value >= level

    def to_dict(self) -> dict[str, Any]:
        return {"simulations": int(len(self.f)), "distance": self.distance, "p_value": self.p_value,
                "calibrated": self.calibrated(), "alpha": self.alpha.tolist(), "ecp": self.ecp.tolist()}


def tarp_coverage(samples: Any, theta: Any, seed: int = 0, references: Any = None, levels: int = 51) -> TARPResult:
    r"""TARP from draws already made: samples (m, L, p), theta (m, p); ``references`` (m, p) the points θ_r
    (default: uniform over the box of all draws and truths). Each parameter is scaled to unit range first."""
    s, t = _pairs(samples, theta)
    low = np.minimum(s.min(axis=(0, 1)), t.min(axis=0))
    span = np.maximum(s.max(axis=(0, 1)), t.max(axis=0)) - low
    span = np.where(span > 0, span, 1.0)
    s, t = (s - low) / span, (t - low) / span
    if references is None:
        refs = np.random.default_rng(seed).uniform(size=t.shape)
    else:
        refs = (np.asarray(references, dtype=np.float64).reshape(t.shape) - low) / span
    d_draws = np.linalg.norm(s - refs[:, None, :], axis=2)
    d_true = np.linalg.norm(t - refs, axis=1)
    f = (d_draws < d_true[:, None]).mean(axis=1)
    alpha = np.linspace(0.0, 1.0, levels)
    ecp = (f[None, :] < alpha[:, None]).mean(axis=1)
    test = stats.kstest(f, "uniform")
    return TARPResult(alpha, ecp, f, float(test.statistic), float(test.pvalue))


def tarp(posterior: PosteriorSampler, theta: Any, x: Any, draws: int = 100, seed: int = 0, references: Any = None,
         samples: Any = None, progress: bool = False) -> TARPResult:
    """TARP expected coverage of ``posterior`` on prior draws θ (m, p) and simulations x (m, \\*x_shape) (module
    docstring). Pass ``samples`` (m, L, p) to reuse draws (e.g. those of :func:`sbc`)."""
    if samples is None:
        samples = posterior_samples(posterior, x, draws, seed, progress)
    return tarp_coverage(samples, theta, seed, references)


# -- posterior predictive check -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PredictiveCheck:
    """Posterior predictive draws and where the observation falls among them.

    Attributes:
        x: (n, \\*x_shape) simulations at θ ~ q(θ | x_obs).  theta: (n, p) those θ.
        x_obs: (\\*x_shape) the observation.  p_values: (x_shape) share of predictive x ≤ x_obs per observable.
    """

    x: np.ndarray
    theta: np.ndarray
    x_obs: np.ndarray
    p_values: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"draws": int(len(self.x)), "p_values": self.p_values.tolist()}


def posterior_predictive(posterior: PosteriorSampler, simulator: Any, x_obs: Any, n: int = 1000,
                         seed: int = 0) -> PredictiveCheck:
    """θ ~ q(θ | x_obs), x ~ simulator(θ) (its ``sample(theta, generator)``), n times (module docstring)."""
    gen = torch.Generator().manual_seed(int(seed))
    obs = torch.as_tensor(np.asarray(x_obs), dtype=torch.float64)
    theta = torch.as_tensor(posterior.sample(obs.reshape(1, *obs.shape) if obs.dim() else obs.reshape(1, 1), int(n),
                                             generator=gen), dtype=torch.float64)
    x, _ = simulator.sample(theta, gen)
    xs = x.detach().cpu().numpy()
    o = obs.reshape(xs.shape[1:]).numpy()
    return PredictiveCheck(xs, theta.numpy(), o, (xs <= o[None]).mean(axis=0))
