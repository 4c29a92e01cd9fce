r"""The extended unbinned likelihood with nuisance parameters, as a torch NLL for :mod:`hepsbi.inference.profile`.

For events x_i with weights d_i (1 for observed data, expected counts for Asimov), parameters of interest θ
and nuisance parameters α (unit Gaussian constraints),

.. math::
    -\log L(θ, α) = ν(θ, α) - \sum_i d_i \Big[\log ν_0(θ) + \sum_k \log κ_k(α_k) + \log g_i(α)
                    + \log r(x_i \mid θ)\Big] + \tfrac12 \sum_k α_k^2 + \text{const},

    ν(θ, α) = ν_0(θ)\, \prod_k κ_k(α_k)\, Z(θ, α), \qquad
    Z(θ, α) = \frac{\sum_j w_j\, r(x_j \mid θ)\, g_j(α)}{\sum_j w_j\, r(x_j \mid θ)} ,

where r is the (normalised) likelihood ratio to θ_ref — learned or exact —, κ_k are normalisation
systematics (:class:`~hepsbi.inference.nuisance.NormSys`) and g(α) = Π_k of per-event shape factors
(:class:`~hepsbi.inference.nuisance.ShapeSys`), whose effect on the yield Z is estimated on Monte Carlo
events j drawn at θ_ref with weights w_j (the data events themselves for an Asimov dataset).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from hepsbi.errors import InferenceError
from hepsbi.inference.nuisance import NormSys, ShapeSys, gaussian_constraint

__all__ = ["UnbinnedModel"]

PerEvent = Callable[[Tensor], Tensor]


class UnbinnedModel:
    r"""Extended unbinned likelihood; ``nll(params)`` takes (θ..., α...) in the order of :attr:`names`.

    Arguments:
        poi: names of the parameters of interest θ.
        log_ratio: θ (p,) → log r(x_i | θ) for the data events, (n,); differentiable in θ.
        weights: d_i, (n,).
        expected: θ (p,) → ν_0(θ), the nominal expected number of events (scalar tensor).
        norm: normalisation systematics.
        shape: shape systematics with per-event factors for the data events.
        mc_log_ratio, mc_weights, mc_shape: Monte Carlo events at θ_ref for Z(θ, α) (required with ``shape``;
            for an Asimov dataset pass the data's own).
    """

    def __init__(
        self,
        poi: Sequence[str],
        log_ratio: PerEvent,
        weights: Tensor,
        expected: Callable[[Tensor], Tensor],
        norm: Sequence[NormSys] = (),
        shape: Sequence[ShapeSys] = (),
        mc_log_ratio: PerEvent | None = None,
        mc_weights: Tensor | None = None,
        mc_shape: Sequence[ShapeSys] = (),
    ):
        self.poi = list(poi)
        self.norm, self.shape = list(norm), list(shape)
        self.nuisance = [s.name for s in self.norm] + [s.name for s in self.shape]
        names = self.poi + self.nuisance
        if len(set(names)) != len(names):
            raise InferenceError(f"parameter names must be unique (got {names})")
        self.log_ratio, self.expected = log_ratio, expected
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        if self.shape:
            if mc_log_ratio is None or mc_weights is None or [s.name for s in mc_shape] != [s.name for s in self.shape]:
                raise InferenceError("shape systematics need Monte Carlo events at θ_ref with the same systematics")
        self.mc_log_ratio = mc_log_ratio
        self.mc_weights = None if mc_weights is None else torch.as_tensor(mc_weights, dtype=torch.float64)
        self.mc_shape = list(mc_shape)

    @property
    def names(self) -> list[str]:
        """Parameter order of :meth:`nll`: the POIs, then the normalisation and shape nuisance parameters."""
        return self.poi + self.nuisance

    def nll(self, params: Tensor) -> Tensor:
        """−log L(θ, α) up to a constant (scalar tensor)."""
        p = len(self.poi)
        theta, alpha = params[:p], params[p:]
        a_norm, a_shape = alpha[: len(self.norm)], alpha[len(self.norm):]
        nu0 = torch.as_tensor(self.expected(theta), dtype=torch.float64)
        log_kappa = sum((torch.log(s.factor(a)) for s, a in zip(self.norm, a_norm)), torch.zeros((), dtype=torch.float64))
        per_event = self.log_ratio(theta).to(torch.float64) + log_kappa + torch.log(nu0)
        z = torch.ones((), dtype=torch.float64)
        if self.shape:
            log_g = sum(torch.log(s.factor(a)) for s, a in zip(self.shape, a_shape))
            per_event = per_event + log_g
            assert self.mc_log_ratio is not None and self.mc_weights is not None
            r_mc = self.mc_weights * torch.exp(self.mc_log_ratio(theta).to(torch.float64))
            g_mc = torch.exp(sum(torch.log(s.factor(a)) for s, a in zip(self.mc_shape, a_shape)))
            z = (r_mc * g_mc).sum() / r_mc.sum()
        nu = nu0 * torch.exp(log_kappa) * z
        if not torch.isfinite(nu) or nu <= 0:
            raise InferenceError(f"expected number of events is {float(nu)} at {params.tolist()}")
        return nu - (self.weights * per_event).sum() + gaussian_constraint(alpha)
