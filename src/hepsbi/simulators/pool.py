r"""A weighted simulator's event pool whose weights are quadratic in θ: everything but the generation.

A pool of N events generated (or read) once at θ_ref carries, per event i, weights w_i (pb, any sign) and the
coefficients a_i (K,) of its weight ratio in the quadratic monomials m of u = θ − θ_ref (Brehmer et al.,
arXiv:1907.10621, "morphing"):

.. math:: r_i(θ) = \frac{w_i(θ)}{w_i(θ_\text{ref})} = a_i \cdot m(θ - θ_\text{ref}), \qquad a_{i0} = 1,

(or, with :attr:`MorphedPool.morphing_order` 1, only the constant and linear monomials, K = 1 + p: a signal
strength, an interference term), so σ_fid(θ) = Σ_i w_i r_i(θ) = (Σ_i w_i a_i) · m, the exact joint log-likelihood is
log p(z_i | θ) = log r_i(θ) − log σ_fid(θ)/σ_fid(θ_ref), binned expectations are one matrix product and any θ is
reached by reweighting or by rejection sampling. :class:`MorphedPool` implements those members of
:class:`~hepsbi.simulators.protocol.WeightedSimulator` and :class:`~hepsbi.simulators.protocol.Morphing`; a
simulator adds ``space``, ``observable_names``, ``generate`` and :meth:`MorphedPool.morphing_coefficients`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from torch import Tensor

from hepsbi.errors import SimulatorError
from hepsbi.simulators.gold import as_rows
from hepsbi.simulators.protocol import quadratic_monomials, quadratic_size
from hepsbi.space import ParameterSpace

if TYPE_CHECKING:
    from hepsbi.data.events import Events

__all__ = ["CrossSection", "MorphedPool", "one_point"]


class CrossSection(NamedTuple):
    """A fiducial cross section (events passing the detector selection) and its Monte Carlo error, pb."""

    fiducial_pb: float
    error_pb: float


def one_point(theta: Tensor | Sequence[float]) -> Tensor:
    """θ as (p,) when it is one point — given as (p,), as (1, p), or as rows that all share one point's memory
    (``expand``, e.g. ``as_rows``: stride 0) — else the rows (n, p) unchanged."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    if theta.dim() == 2 and (theta.shape[0] == 1 or theta.stride(0) == 0):
        return theta[0]
    return theta


class MorphedPool:
    """The pool members of a weighted simulator with quadratic morphing (module docstring).

    Subclasses set :attr:`space`, implement :meth:`morphing_coefficients` (a (n, K) from latent records z) and
    ``generate``, and hand every new pool to :meth:`use_events`.
    """

    space: ParameterSpace
    #: the degree of the weights in θ: 2 (quadratic, K = 1 + p + p(p+1)/2) or 1 (linear, K = 1 + p)
    morphing_order: int = 2
    _events: Events | None = None
    _sigma_coefficients: Tensor | None = None
    _coefficient_cache: tuple[Tensor, int, Tensor] | None = None

    def morphing_coefficients(self, z: Tensor | np.ndarray) -> Tensor:
        """a (n, K) of the latent records z (n, d_z): r(θ) = a · m(θ − θ_ref)."""
        raise NotImplementedError

    def generate(self, n_events: int | None = None, seed: int | None = None) -> Events:
        raise NotImplementedError

    def check_events(self, events: Events) -> None:
        """Raise a :class:`~hepsbi.errors.SimulatorError` when ``events`` cannot be this simulator's pool."""

    def use_events(self, events: Events) -> None:
        """Make ``events`` (generated at θ_ref, e.g. loaded from an EventStore file) the event pool."""
        self.check_events(events)
        self._events = events
        self._sigma_coefficients = torch.from_numpy(events.weights) @ self.morphing_coefficients(events.z)  # (K,)

    @property
    def events(self) -> Events:
        """The event pool (generated on first use)."""
        if self._events is None:
            self.use_events(self.generate())
        assert self._events is not None
        return self._events

    @property
    def n_components(self) -> int:
        """K, the number of monomials: 1 + p + p(p+1)/2 (order 1: 1 + p)."""
        p = self.space.dim
        return quadratic_size(p) if self.morphing_order == 2 else 1 + p

    def morphing_basis(self, theta: Tensor | Sequence[float]) -> Tensor:
        """m(θ − θ_ref): (K,) for θ (p,), (n, K) for θ (n, p), K = 1 + p + p(p+1)/2 (order 1: 1 + p);
        differentiable in θ."""
        theta = torch.as_tensor(theta, dtype=torch.float64)
        m = quadratic_monomials(theta - torch.as_tensor(self.space.reference, dtype=torch.float64))
        return m if self.morphing_order == 2 else m[..., : 1 + self.space.dim]

    @property
    def sigma_coefficients(self) -> Tensor:
        """ā, (K,): the fiducial cross section relative to θ_ref is ā · m(θ − θ_ref) (from the event pool)."""
        _ = self.events
        assert self._sigma_coefficients is not None
        return self._sigma_coefficients / self._sigma_coefficients[0]

    def cross_section(self, theta: Tensor | Sequence[float]) -> CrossSection:
        """The fiducial cross section at θ — after the detector selection, Σ w_i r_i(θ) over the pool — and its Monte
        Carlo error, in pb."""
        events = self.events
        w = events.weights * self.weight_ratio(torch.from_numpy(events.z), one_point(theta)).numpy()
        return CrossSection(float(w.sum()), float(np.sqrt((w**2).sum())))

    def _coefficients(self, z: Tensor) -> Tensor:
        """:meth:`morphing_coefficients` of z, kept for the last z tensor while torch's version counter says it is
        unchanged: a fit evaluates ν(θ) on the same events thousands of times."""
        cached = self._coefficient_cache
        if cached is not None and cached[0] is z and cached[1] == z._version:
            return cached[2]
        coefficients = self.morphing_coefficients(z)
        self._coefficient_cache = (z, z._version, coefficients) if isinstance(z, Tensor) else None
        return coefficients

    def weight_ratio(self, z: Tensor, theta: Tensor) -> Tensor:
        """r_i(θ) = a_i · m(θ − θ_ref) per event, (n,), at one θ (p,) — one matrix-vector product — or one θ per
        event (n, p)."""
        coefficients = self._coefficients(z)
        theta = one_point(theta)
        if theta.dim() == 1:
            return coefficients @ self.morphing_basis(theta)
        return (coefficients * self.morphing_basis(as_rows(theta, len(coefficients)))).sum(dim=1)

    def _log_sigma_ratio(self, theta: Tensor) -> Tensor:
        return torch.log(self.morphing_basis(one_point(theta)) @ self.sigma_coefficients)

    def joint_log_prob(self, z: Tensor, theta: Tensor) -> Tensor:
        """log p(z | θ) up to a θ-independent constant, (n,), at one θ (p,) or one per event (n, p);
        differentiable in θ."""
        return torch.log(self.weight_ratio(z, theta)) - self._log_sigma_ratio(theta)

    def expected_counts(self, bin_index: np.ndarray, n_bins: int, luminosity_pb: float) -> Callable[[Tensor], np.ndarray]:
        """Expected events per bin as a function of θ, exact through morphing: ``bin_index`` (N,) assigns every
        pool event to a bin in [0, n_bins) (−1 = outside); returns θ (p,) → (n_bins,) = L Σ_{i∈b} w_i r_i(θ)."""
        events = self.events
        index = np.asarray(bin_index)
        if index.shape != (len(events),):
            raise SimulatorError(f"bin_index must give one bin per pool event ({len(events)}), got shape {index.shape}")
        inside = index >= 0
        coef = events.weights[inside, None] * self.morphing_coefficients(events.z[inside]).numpy()
        per_bin = np.zeros((n_bins, coef.shape[1]))
        np.add.at(per_bin, index[inside], coef)
        per_bin_t = torch.from_numpy(per_bin * luminosity_pb)

        def counts(theta: Tensor) -> np.ndarray:
            return (per_bin_t @ self.morphing_basis(theta)).numpy()

        return counts

    def asimov(self, theta_true: Tensor, luminosity_pb: float) -> tuple[Tensor, Tensor, Tensor]:
        """The pool reweighted to θ_true and scaled to L: x (N, d_x), z (N, d_z), expected events per event (N,),
        summing to L σ_fid(θ_true)."""
        events = self.events
        z = torch.from_numpy(events.z)
        w = torch.from_numpy(events.weights) * self.weight_ratio(z, torch.as_tensor(theta_true, dtype=torch.float64))
        return torch.from_numpy(events.x), z, w * luminosity_pb

    def sample_weighted(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """``n`` distinct events of the pool with weights rescaled so that Σ w stays σ_fid(θ_ref)."""
        events = self.events
        if n > len(events):
            raise SimulatorError(f"asked for {n} events but the pool holds {len(events)} after cuts; raise n_events")
        index = torch.randperm(len(events), generator=generator)[:n].numpy()
        w = events.weights[index] * (events.weights.sum() / events.weights[index].sum())
        return torch.from_numpy(events.x[index]), torch.from_numpy(events.z[index]), torch.from_numpy(w)

    def sample(self, theta: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """One event per row of θ (n, p), resampled from the pool.

        Event j is proposed with probability ∝ |w_j| R_j and accepted with probability r_j(θ)/R_j, where R_j
        bounds r_j over the parameter box (the largest value at its corners, ≥ 1: exact for the convex quadratics
        of squared matrix elements); accepted events are then distributed ∝ |w_j| r_j(θ), i.e. as at θ when the
        weights are positive."""
        events = self.events
        theta = torch.as_tensor(theta, dtype=torch.float64).reshape(-1, self.space.dim)
        self.space.check(theta)
        n = theta.shape[0]
        coef = self.morphing_coefficients(events.z)
        corners = self.space.mesh([torch.stack([lo, hi]) for lo, hi in zip(self.space.low, self.space.high)])
        bound = (coef @ self.morphing_basis(corners).T).max(dim=1).values.clamp_min(1.0)  # (N,)
        proposal = torch.from_numpy(np.abs(events.weights)) * bound
        chosen = torch.full((n,), -1, dtype=torch.long)
        todo = torch.arange(n)
        for _ in range(10_000):
            if len(todo) == 0:
                break
            cand = torch.multinomial(proposal, len(todo), replacement=True, generator=generator)
            r = (coef[cand] * self.morphing_basis(theta[todo])).sum(dim=1)
            accept = torch.rand(len(todo), generator=generator, dtype=torch.float64) * bound[cand] < r
            chosen[todo[accept]] = cand[accept]
            todo = todo[~accept]
        if len(todo):
            raise SimulatorError("resampling did not converge: the parameter box is too wide for the event pool")
        return torch.from_numpy(events.x[chosen.numpy()]), torch.from_numpy(events.z[chosen.numpy()])
