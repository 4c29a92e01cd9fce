r"""Posteriors from a learned likelihood (NLE) or likelihood ratio (NRE), drawn by MCMC.

Bayes' theorem with a per-event log-likelihood (ratio) ℓ̂(x | θ) — log p̂(x | θ) of a
:class:`~hepsbi.estimators.density.DensityEstimator`, or log r̂(x | θ, θ_ref) of any ratio estimator, whose θ-free
denominator cancels on normalising — summed over the events of one observation x_obs = {x_1 … x_N}:

.. math:: \log p(θ \mid x_\text{obs}) = \log π(θ) + \sum_{i=1}^{N} ℓ̂(x_i \mid θ) + \text{const},

with π the prior of the :class:`~hepsbi.space.ParameterSpace` (uniform or truncated normal on its box) or any
object with ``sample_prior(n, generator)`` and ``log_prior(θ)``. Draws come from emcee's affine-invariant ensemble
sampler (Goodman, Weare 2010; Foreman-Mackey et al., arXiv:1202.3665), every walker evaluated in one batch per
step. The walkers start at prior draws resampled in proportion to their likelihood (sampling–importance
resampling over ``init`` prior draws), so a multimodal posterior starts with walkers in every mode; the first
``burn`` steps are dropped.

Successive states of a walker are correlated over its integrated autocorrelation time τ (in steps; emcee's
estimator, Goodman & Weare's definition), so W walkers run for S steps carry about W S / τ independent draws.
With ``thin="auto"`` (the default) the chain is extended until W S / τ_max ≥ n, the number of draws asked for,
and then thinned evenly to n; draws that are correlated clump, which a two-sample classifier sees (the sbibm
SLCP task with its exact likelihood, 128 walkers: τ ≈ 150 steps; keeping every 10th step gives C2ST 0.59 against
the reference posterior, every 50th 0.53). An integer ``thin`` keeps every ``thin``-th step, n/W of them, whatever
τ is.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from hepsbi.errors import EstimatorError, HepsbiWarning

__all__ = ["BatchedLogLikelihood", "LikelihoodPosterior", "Prior"]

#: x (n, \*x_shape), θ (n, p) ↦ ℓ̂(x_i | θ_i) (n,): one θ per event row (e.g. ``DensityEstimator.log_prob`` or
#: ``RatioEstimator.log_ratio``)
BatchedLogLikelihood = Callable[[Tensor, Tensor], Any]


class Prior(Protocol):
    """A prior: draws (n, p) and log-densities (n,) (a :class:`~hepsbi.space.ParameterSpace` is one)."""

    def sample_prior(self, n: int, generator: torch.Generator) -> Tensor: ...

    def log_prior(self, theta: Tensor) -> Tensor: ...


class LikelihoodPosterior:
    r"""p(θ | x_obs) ∝ π(θ) Π_i exp ℓ̂(x_i | θ), sampled by MCMC (module docstring).

    Arguments:
        log_likelihood: a :data:`BatchedLogLikelihood`, or an estimator: its ``log_prob`` when it has one (a
            density), else its ``log_ratio``.
        prior: a :class:`Prior` (a ``ParameterSpace``, or any object with ``sample_prior`` and ``log_prior``).
        walkers: emcee walkers (at least 2 p + 2).  burn: steps dropped.
        thin: ``"auto"`` (run until the draws are about independent, module docstring) or keep every ``thin``-th
            step.
        init: prior draws for the importance-resampled start.
        max_steps: ``thin="auto"``: the most steps after the burn-in; reaching it warns that the draws are fewer
            than asked for (``effective_draws``). The chain is held in memory until it is thinned: at most
            walkers × max_steps × p × 8 bytes (256 × 20,000 × 2: 82 MB).

    Example:
        >>> from hepsbi.simulators import GaussianLatent
        >>> sim = GaussianLatent()
        >>> post = LikelihoodPosterior(sim.log_prob, sim.space, burn=50)
        >>> post.sample(torch.tensor([[0.2]]), 64, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([64, 1])
    """

    def __init__(self, log_likelihood: Any, prior: Prior, walkers: int = 256, burn: int = 300,
                 thin: int | str = "auto", init: int = 16_384, max_steps: int = 20_000):
        if callable(getattr(log_likelihood, "log_prob", None)):
            log_likelihood = log_likelihood.log_prob
        elif callable(getattr(log_likelihood, "log_ratio", None)):
            log_likelihood = log_likelihood.log_ratio
        if not callable(log_likelihood):
            raise EstimatorError(f"log_likelihood must be callable (x, theta) -> (n,) or an estimator (got "
                                 f"{type(log_likelihood).__name__})")
        if not (hasattr(prior, "sample_prior") and hasattr(prior, "log_prior")):
            raise EstimatorError("prior must have sample_prior(n, generator) and log_prior(theta) (a ParameterSpace)")
        if thin != "auto" and not (isinstance(thin, int) and thin >= 1):
            raise EstimatorError(f"thin must be 'auto' or an integer >= 1 (got {thin!r})")
        for name, value, least in (("walkers", walkers, 2), ("burn", burn, 0), ("init", init, 1),
                                   ("max_steps", max_steps, 1)):
            if int(value) < least:
                raise EstimatorError(f"{name} must be >= {least} (got {value})")
        self.log_likelihood = log_likelihood
        self.prior = prior
        self.walkers, self.burn, self.init, self.max_steps = int(walkers), int(burn), int(init), int(max_steps)
        self.thin = thin
        #: emcee's mean acceptance fraction of the last :meth:`sample` (0.2–0.5 is healthy)
        self.acceptance: float | None = None
        #: the last :meth:`sample`'s integrated autocorrelation time per parameter, (p,) steps
        self.autocorrelation: np.ndarray | None = None
        #: the last :meth:`sample`'s walkers × steps after burn-in / max τ: about how many independent draws it had
        self.effective_draws: float | None = None

    @staticmethod
    def _events(x_obs: Any) -> Tensor:
        x = torch.as_tensor(np.asarray(x_obs), dtype=torch.float64)
        return x.reshape(1, 1) if x.dim() == 0 else (x[None] if x.dim() == 1 else x)

    def log_prob_unnormalised(self, theta: Any, x_obs: Any) -> Tensor:
        """log π(θ) + Σ_i ℓ̂(x_i | θ) for θ (m, p) and the events x_obs (N, \\*x_shape): (m,) float64, −∞ outside the
        prior's support."""
        log_prior, log_likelihood = self._log_terms(theta, x_obs)
        return log_prior + log_likelihood

    def _log_terms(self, theta: Any, x_obs: Any) -> tuple[Tensor, Tensor]:
        """(log π(θ), Σ_i ℓ̂(x_i | θ)) for θ (m, p): two (m,) float64; the second is −∞ outside the prior's support
        and where it is not a number."""
        events = self._events(x_obs)
        th = torch.as_tensor(np.asarray(theta), dtype=torch.float64)
        th = th.reshape(-1, th.shape[-1] if th.dim() else 1)
        log_prior = torch.as_tensor(self.prior.log_prior(th), dtype=torch.float64).reshape(-1)
        out = torch.full((th.shape[0],), -math.inf, dtype=torch.float64)
        inside = torch.isfinite(log_prior)
        if bool(inside.any()):
            th_in = th[inside]
            m, n = th_in.shape[0], events.shape[0]
            x_rows = events.repeat(m, *([1] * (events.dim() - 1)))
            theta_rows = th_in.repeat_interleave(n, dim=0)
            with torch.no_grad():
                ll = torch.as_tensor(self.log_likelihood(x_rows, theta_rows), dtype=torch.float64).reshape(m, n)
            out[inside] = ll.sum(dim=1)
        return log_prior, torch.where(torch.isnan(out), torch.full_like(out, -math.inf), out)

    def _start(self, x_obs: Any, gen: torch.Generator) -> np.ndarray:
        """Walkers (walkers, p): prior draws resampled ∝ likelihood."""
        draws = torch.as_tensor(self.prior.sample_prior(self.init, gen), dtype=torch.float64)
        log_w = self._log_terms(draws, x_obs)[1]
        finite = torch.isfinite(log_w)
        if int(finite.sum()) < self.walkers:
            raise EstimatorError(f"only {int(finite.sum())} of {self.init} prior draws have a finite likelihood for "
                                 "this observation: it lies outside what the likelihood was trained on")
        weights = torch.softmax(torch.where(finite, log_w, torch.full_like(log_w, -math.inf)), dim=0)
        # without replacement where the weights allow it, so the walkers are distinct (emcee needs a spread ensemble)
        picked = torch.multinomial(weights + 1e-300 * finite, self.walkers,
                                   replacement=int((weights > 0).sum()) < self.walkers, generator=gen)
        return draws[picked].numpy()

    def sample(self, x_obs: Any, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws (n, p), float64, from p(θ | x_obs) for the events x_obs (N, \\*x_shape) (one event: (\\*x_shape)
        or (1, \\*x_shape))."""
        import emcee

        gen = generator if generator is not None else torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        start = self._start(x_obs, gen)
        p = start.shape[1]
        if self.walkers < 2 * p + 2:
            raise EstimatorError(f"walkers must be >= 2 p + 2 = {2 * p + 2} for {p} parameters (got {self.walkers})")

        def log_prob(theta: np.ndarray) -> np.ndarray:
            return self.log_prob_unnormalised(theta, x_obs).numpy()

        sampler = emcee.EnsembleSampler(self.walkers, p, log_prob, vectorize=True)
        sampler.random_state = np.random.RandomState(int(torch.randint(0, 2**31, (1,), generator=gen))).get_state()
        n = int(n)
        kept = math.ceil(n / self.walkers)  # states kept per walker
        state = sampler.run_mcmc(start, self.burn, progress=False) if self.burn else start
        sampler.reset()
        if self.thin != "auto":
            sampler.run_mcmc(state, kept * int(self.thin), progress=False)
            tau = self._autocorrelation(sampler)
        else:
            steps = 10 * kept  # a first stretch; then as long as ~n independent draws need
            while True:
                state = sampler.run_mcmc(state, steps, progress=False)
                tau = self._autocorrelation(sampler)
                need = math.ceil(1.1 * n * float(tau.max()) / self.walkers)
                done = sampler.iteration
                if done >= need or done >= self.max_steps:
                    break
                steps = min(need, self.max_steps) - done
            if self.walkers * done / float(tau.max()) < n:
                warnings.warn(f"MCMC: max_steps = {self.max_steps} reached with about {self.walkers * done / tau.max():.0f} "
                              f"independent draws of the {n} asked for (autocorrelation time {tau.max():.0f} steps): "
                              "raise max_steps or walkers", HepsbiWarning, stacklevel=2)
        self.acceptance = float(np.mean(sampler.acceptance_fraction))
        self.autocorrelation = tau
        self.effective_draws = float(self.walkers * sampler.iteration / max(float(tau.max()), 1.0))
        stride = max(sampler.iteration // kept, 1)
        chain = sampler.get_chain()[sampler.iteration - 1::-stride][:kept]  # (kept, walkers, p), the latest states
        return torch.as_tensor(chain.reshape(-1, p)[:n], dtype=torch.float64)

    @staticmethod
    def _autocorrelation(sampler: Any) -> np.ndarray:
        """τ per parameter (p,) of the chain after burn-in, at least 1 (emcee's estimator, its window c = 5), over the
        walkers that moved (a walker stuck at one state has no autocorrelation function; none moving: τ = the
        chain's length)."""
        import emcee

        chain = sampler.get_chain()  # (steps, walkers, p)
        tau = np.full(chain.shape[2], float(len(chain)))
        for k in range(chain.shape[2]):
            moving = chain[:, :, k].std(axis=0) > 0
            if moving.any():
                tau[k] = emcee.autocorr.integrated_time(chain[:, moving, k, None], tol=0, quiet=True)[0]
        return np.maximum(np.nan_to_num(tau, nan=float(len(chain))), 1.0)
