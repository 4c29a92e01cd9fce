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
        # The Monte Carlo for Z is often the data itself (Asimov): evaluate it once per call then.
        self._mc_is_data = mc_log_ratio is log_ratio and all(a is b for a, b in zip(mc_shape, self.shape))
        self._shape_table = _ShapeTable(self.shape) if self.shape else None
        self._mc_table = self._shape_table if self._mc_is_data else (_ShapeTable(self.mc_shape) if self.mc_shape else None)

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
        log_r = self.log_ratio(theta).to(torch.float64)
        data_term = (self.weights * log_r).sum() + self.weights.sum() * (log_kappa + torch.log(nu0))
        z = torch.ones((), dtype=torch.float64)
        if self._shape_table is not None:
            assert self.mc_log_ratio is not None and self.mc_weights is not None and self._mc_table is not None
            g = self._shape_table.factor(a_shape)
            data_term = data_term + (self.weights * torch.log(g)).sum()
            if self._mc_is_data:
                r_mc, g_mc = self.mc_weights * torch.exp(log_r), g
            else:
                r_mc = self.mc_weights * torch.exp(self.mc_log_ratio(theta).to(torch.float64))
                g_mc = self._mc_table.factor(a_shape)
            z = (r_mc * g_mc).sum() / r_mc.sum()
        nu = nu0 * torch.exp(log_kappa) * z
        if not torch.isfinite(nu) or nu <= 0:
            raise InferenceError(f"expected number of events is {float(nu)} at {params.tolist()}")
        return nu - data_term + gaussian_constraint(alpha)


class _ShapeTable:
    """All shape systematics of a set of events at once: κ_ik(α_k) for n events and K systematics,
    multiplied over k, with the code-4 polynomial evaluated by Horner's rule on an (n, K, 6) table."""

    def __init__(self, systematics: Sequence[ShapeSys]):
        self.coef = torch.stack([s._coef for s in systematics], dim=1)  # (n, K, 6)
        self.log_up = torch.stack([torch.log(s.up) for s in systematics], dim=1)  # (n, K)
        self.log_down = torch.stack([torch.log(s.down) for s in systematics], dim=1)

    def factor(self, alpha: Tensor) -> Tensor:
        """Π_k κ_ik(α_k), (n,)."""
        inner = alpha.clamp(-1.0, 1.0)
        poly = self.coef[..., 5]
        for i in range(4, -1, -1):
            poly = poly * inner + self.coef[..., i]
        poly = 1.0 + poly * inner
        high = torch.exp(alpha.clamp(min=1.0) * self.log_up)
        low = torch.exp(-alpha.clamp(max=-1.0) * self.log_down)
        kappa = torch.where(alpha >= 1.0, high, torch.where(alpha <= -1.0, low, poly))
        return kappa.prod(dim=1)
