r"""The extended unbinned likelihood with nuisance parameters, as a torch NLL for :mod:`hepsbi.inference.profile`.

For events x_i with weights d_i (1 for observed data, expected counts for Asimov), parameters of interest θ
and nuisance parameters α (unit Gaussian constraints),

.. math::
    -\log L(θ, α) = ν(θ, α) - \sum_i d_i \Big[\log ν_0(θ) + \sum_k \log κ_k(α_k) + \sum_k \log g_{ik}(α_k)
                    + \log r(x_i \mid θ)\Big] + \tfrac12 \sum_k α_k^2 + \text{const},

    ν(θ, α) = ν_0(θ)\, \prod_k κ_k(α_k)\, \prod_k Z_k(θ, α_k), \qquad
    Z_k(θ, α_k) = \frac{\sum_j w_j\, r(x_j \mid θ)\, g_{jk}(α_k)}{\sum_j w_j\, r(x_j \mid θ)} ,

where r is the (normalised) likelihood ratio to θ_ref — learned or exact —, κ_k are normalisation
systematics (:class:`~hepsbi.inference.nuisance.NormSys`) and g_{ik} per-event shape factors
(:class:`~hepsbi.inference.nuisance.ShapeSys`), whose effect on the yield Z_k is estimated on Monte Carlo
events j drawn at θ_ref with weights w_j (the data events themselves for an Asimov dataset).

The yield correction is a product over systematics, as HistFactory (and pyhf) combine the rate effects of
nuisance parameters: exact for one systematic and to first order in every α. It is what makes a fit cost
independent of the number of events where the model allows it:

* the data term of each shape systematic, Σ_i d_i log g_ik(α_k), is a function of one variable, exactly
  linear for |α_k| ≥ 1 and tabulated inside by Chebyshev interpolation checked to 1e-9 of Σ d_i;
* with a :class:`LinearRatio` (event weights linear in fixed functions of θ, as with morphing) each Z_k is,
  for |α_k| ≤ 1, a ratio of polynomials in α_k with θ-dependent coefficients summed once over the Monte
  Carlo; only the data term Σ_i d_i log r(x_i | θ) is left per call, one (n, C) @ (C,) product.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from hepsbi.errors import InferenceError
from hepsbi.inference.nuisance import NormSys, ShapeSys, gaussian_constraint

__all__ = ["LinearRatio", "UnbinnedModel", "negated"]

PerEvent = Callable[[Tensor], Tensor]


class LinearRatio:
    r"""Likelihood ratios of events whose weight is linear in fixed functions m(θ) of the parameters, as with
    morphing: w_i(θ)/w_i(θ_ref) = a_i · m(θ), and σ(θ)/σ(θ_ref) = ā · m(θ) with ā the cross-section-weighted
    mean of the a_i. Calling it gives log r(x_i | θ) = log(a_i · m(θ)) − log(ā · m(θ)), (n,).

    Arguments:
        basis: θ (p,) → m(θ) (C,), differentiable (e.g. the quadratic monomials).
        coefficients: a_i, (n, C).  mean: ā, (C,).
    """

    def __init__(self, basis: Callable[[Tensor], Tensor], coefficients: Tensor, mean: Tensor):
        self.basis = basis
        self.coefficients = torch.as_tensor(coefficients, dtype=torch.float64)
        self.mean = torch.as_tensor(mean, dtype=torch.float64)
        if self.coefficients.ndim != 2 or self.mean.shape != self.coefficients.shape[1:]:
            raise InferenceError(f"coefficients (n, C) and mean (C,) do not match: {tuple(self.coefficients.shape)}, "
                                 f"{tuple(self.mean.shape)}")

    def __call__(self, theta: Tensor) -> Tensor:
        m = self.basis(theta)
        return torch.log(self.coefficients @ m) - torch.log(self.mean @ m)


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
            for an Asimov dataset pass the data's own). ``log_ratio`` and ``mc_log_ratio`` may be
            :class:`LinearRatio` objects, which makes every sum over Monte Carlo events a precomputation.
        aux: auxiliary data (global observables) a_k of the constraints ½ Σ (α_k − a_k)²; zeros by default,
            the fitted α for an Asimov dataset (:meth:`asimov`) or random for toys.
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
        aux: Sequence[float] | Tensor | None = None,
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
        self.aux = torch.zeros(len(self.nuisance), dtype=torch.float64) if aux is None else torch.as_tensor(aux, dtype=torch.float64)
        if self.aux.shape != (len(self.nuisance),):
            raise InferenceError(f"aux must hold one value per nuisance parameter {self.nuisance} (got shape {tuple(self.aux.shape)})")
        self._cache: tuple[bytes, Tensor] = (b"", torch.zeros(0))
        self._data_shape = _DataShapeTerm(self.shape, self.weights) if self.shape else None
        self._yield: _YieldCorrection | None = None
        if self.shape:
            assert self.mc_log_ratio is not None and self.mc_weights is not None
            self._yield = _YieldCorrection(self.mc_shape, self.mc_weights, self.mc_log_ratio)

    @property
    def names(self) -> list[str]:
        """Parameter order of :meth:`nll`: the POIs, then the normalisation and shape nuisance parameters."""
        return self.poi + self.nuisance

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        p = len(self.poi)
        theta, alpha = params[:p], params[p:]
        return theta, alpha, alpha[: len(self.norm)], alpha[len(self.norm):]

    def _log_nu(self, theta: Tensor, a_norm: Tensor, a_shape: Tensor, mc_log_r: Tensor | None) -> tuple[Tensor, Tensor]:
        """(log ν(θ, α), log ν_0(θ) + Σ_k log κ_k(α_k)): the expected yield, and its part without Z."""
        nu0 = torch.as_tensor(self.expected(theta), dtype=torch.float64)
        log_kappa = sum((torch.log(s.factor(a)) for s, a in zip(self.norm, a_norm)), torch.zeros((), dtype=torch.float64))
        log_z = torch.zeros((), dtype=torch.float64)
        if self._yield is not None:
            log_z = self._yield.log_z(theta, a_shape, mc_log_r)
        return torch.log(nu0) + log_kappa + log_z, torch.log(nu0) + log_kappa

    def expected_events(self, params: Tensor) -> Tensor:
        """ν(θ, α), the expected number of events (scalar tensor)."""
        theta, _, a_norm, a_shape = self._split(torch.as_tensor(params, dtype=torch.float64))
        return torch.exp(self._log_nu(theta, a_norm, a_shape, None)[0])

    def nll(self, params: Tensor) -> Tensor:
        """−log L(θ, α) up to a constant (scalar tensor)."""
        theta, alpha, a_norm, a_shape = self._split(params)
        log_r = self._log_ratio(theta)
        log_nu, log_rate = self._log_nu(theta, a_norm, a_shape, log_r if self.mc_log_ratio is self.log_ratio else None)
        nu = torch.exp(log_nu)
        if not torch.isfinite(nu) or nu <= 0:
            raise InferenceError(f"expected number of events is {float(nu)} at {params.tolist()}")
        data_term = (self.weights * log_r).sum() + self.weights.sum() * log_rate
        if self._data_shape is not None:
            data_term = data_term + self._data_shape(a_shape)
        return nu - data_term + gaussian_constraint(alpha - self.aux)

    def _log_ratio(self, theta: Tensor) -> Tensor:
        """log r(x_i | θ) of the data, (n,). Value-only evaluations (no autograd, as in MIGRAD's line searches)
        at the θ of the previous evaluation reuse it: in a profile scan θ is fixed and only α moves."""
        key = theta.detach().numpy().tobytes()
        if not torch.is_grad_enabled() and self._cache[0] == key:
            return self._cache[1]
        log_r = self.log_ratio(theta).to(torch.float64)
        self._cache = (key, log_r.detach())
        return log_r

    def with_data(self, weights: Tensor, aux: Tensor | None = None) -> UnbinnedModel:
        """The same model on the Monte Carlo events with new per-event data weights (counts for a toy, expected
        events for an Asimov dataset) and auxiliary data."""
        if self.mc_log_ratio is None or self.mc_weights is None:
            raise InferenceError("new datasets (Asimov, toys) are drawn from Monte Carlo events: give mc_log_ratio "
                                 "and mc_weights")
        return UnbinnedModel(self.poi, self.mc_log_ratio, weights, self.expected, self.norm, self.mc_shape,
                             self.mc_log_ratio, self.mc_weights, self.mc_shape, aux=aux)

    def expected_per_event(self, params: Sequence[float] | Tensor) -> Tensor:
        """Expected events of every Monte Carlo event at (θ, α): ν(θ, α) w_j r_j(θ) g_j(α) / Σ_j w_j r_j(θ) g_j(α), (m,)."""
        if self.mc_log_ratio is None or self.mc_weights is None:
            raise InferenceError("expected events per event need Monte Carlo events (mc_log_ratio, mc_weights)")
        with torch.no_grad():
            params = torch.as_tensor(params, dtype=torch.float64)
            theta, _, _, a_shape = self._split(params)
            log_r = self.mc_log_ratio(theta).to(torch.float64)
            u = self.mc_weights * torch.exp(log_r - log_r.max())
            if self._yield is not None:
                u = u * self._yield.table.kappa(a_shape).prod(dim=1)
            return u / u.sum() * self.expected_events(params)

    def asimov(self, params: Sequence[float] | Tensor) -> UnbinnedModel:
        """The model on the Asimov dataset of (θ, α): Monte Carlo events weighted to their expected events, and
        auxiliary data α (so the constraints are centred on the fitted values, arXiv:1007.1727 sec. 5)."""
        params = torch.as_tensor(params, dtype=torch.float64)
        return self.with_data(self.expected_per_event(params), aux=params[len(self.poi):])


def _code4_powers(alpha: Tensor) -> Tensor:
    """(1, α, …, α⁶) for α clamped to [−1, 1], (K, 7): the code-4 polynomial is coefficients · powers."""
    inner = alpha.clamp(-1.0, 1.0)
    return torch.stack([inner**i for i in range(7)], dim=-1)


class _ShapeTable:
    """Shape systematics of a set of events as arrays: code-4 polynomial coefficients (1, a_1…a_6) (n, K, 7)
    and log up / log down (n, K)."""

    def __init__(self, systematics: Sequence[ShapeSys]):
        coef = torch.stack([s._coef for s in systematics], dim=1)  # (n, K, 6)
        self.poly = torch.cat([torch.ones_like(coef[..., :1]), coef], dim=-1)  # (n, K, 7)
        self.log_up = torch.stack([torch.log(s.up) for s in systematics], dim=1)  # (n, K)
        self.log_down = torch.stack([torch.log(s.down) for s in systematics], dim=1)

    def kappa(self, alpha: Tensor, columns: Sequence[int] | None = None) -> Tensor:
        """κ_ik(α_k) of every event for the systematics ``columns`` (all by default), (n, len(columns))."""
        cols = list(range(self.poly.shape[1])) if columns is None else list(columns)
        a = alpha[cols]
        poly = (self.poly[:, cols] * _code4_powers(a)).sum(dim=-1)
        high = torch.exp(a.clamp(min=1.0) * self.log_up[:, cols])
        low = torch.exp(-a.clamp(max=-1.0) * self.log_down[:, cols])
        return torch.where(a >= 1.0, high, torch.where(a <= -1.0, low, poly))


class _DataShapeTerm:
    """Σ_k D_k(α_k) with D_k(α) = Σ_i d_i log κ_ik(α): exactly linear outside [−1, 1], a Chebyshev
    interpolant inside whose degree doubles until it agrees with the exact sum to 1e-9 Σ|d| at test points
    (the exact sum is used for a systematic where no degree up to 256 does)."""

    DEGREES = (16, 32, 64, 128, 256)

    def __init__(self, systematics: Sequence[ShapeSys], weights: Tensor):
        self.table, self.weights = _ShapeTable(systematics), weights
        self.slope_up = (weights[:, None] * self.table.log_up).sum(dim=0)  # (K,)
        self.slope_down = -(weights[:, None] * self.table.log_down).sum(dim=0)
        tolerance = 1e-9 * float(weights.abs().sum())
        checks = np.linspace(-0.987, 0.993, 17)
        coefficients: list[np.ndarray] = []
        self.exact: list[int] = []
        for k in range(len(systematics)):
            exact_at = lambda a, k=k: self._exact(k, np.atleast_1d(a))  # noqa: E731
            reference = exact_at(checks)
            for degree in self.DEGREES:
                c = np.asarray(np.polynomial.chebyshev.chebinterpolate(exact_at, degree))  # type: ignore[type-var]
                if np.max(np.abs(np.polynomial.chebyshev.chebval(checks, c) - reference)) < tolerance:
                    break
            else:
                self.exact.append(k)
                c = np.zeros(1)
            coefficients.append(c)
        width = max(len(c) for c in coefficients)
        self.cheb = torch.from_numpy(np.stack([np.pad(c, (0, width - len(c))) for c in coefficients]))  # (K, deg+1)

    def _exact(self, k: int, alphas: np.ndarray, chunk: int = 200_000) -> np.ndarray:
        """D_k at many α in [−1, 1] by summing over events in chunks: (len(alphas),)."""
        powers = np.stack([alphas**i for i in range(7)])  # (7, A)
        total = np.zeros(len(alphas))
        poly, w = self.table.poly[:, k].numpy(), self.weights.numpy()
        for start in range(0, len(w), chunk):
            total += w[start:start + chunk] @ np.log(poly[start:start + chunk] @ powers)
        return total

    def __call__(self, alpha: Tensor) -> Tensor:
        inner = alpha.clamp(-1.0, 1.0)
        # Clenshaw's recurrence for Σ_n c_kn T_n(α_k), all systematics at once.
        b1 = torch.zeros_like(inner)
        b2 = torch.zeros_like(inner)
        for n in range(self.cheb.shape[1] - 1, 0, -1):
            b1, b2 = self.cheb[:, n] + 2.0 * inner * b1 - b2, b1
        values = self.cheb[:, 0] + inner * b1 - b2
        for k in self.exact:
            values = values.index_put((torch.tensor([k]),), (self.weights * torch.log(self.table.kappa(alpha, [k])[:, 0])).sum()[None])
        outside = torch.where(alpha >= 1.0, (alpha - 1.0) * self.slope_up,
                              torch.where(alpha <= -1.0, (alpha + 1.0) * self.slope_down, torch.zeros_like(alpha)))
        return (values + outside).sum()


class _YieldCorrection:
    """log Π_k Z_k(θ, α_k) on Monte Carlo events at θ_ref. With a :class:`LinearRatio` the sums over events
    are done once: for |α_k| ≤ 1, Σ_j w_j (a_j · m) κ_jk(α_k) = m · P_k · (1, α_k, …, α_k⁶) with
    P_k = Σ_j w_j a_j ⊗ (1, a_1…a_6)_jk, (C, 7); systematics beyond ±1 are summed over events exactly."""

    def __init__(self, systematics: Sequence[ShapeSys], weights: Tensor, log_ratio: Callable[[Tensor], Tensor]):
        self.table, self.weights, self.log_ratio = _ShapeTable(systematics), weights, log_ratio
        self.linear = isinstance(log_ratio, LinearRatio)
        if self.linear:
            assert isinstance(log_ratio, LinearRatio)
            wa = weights[:, None] * log_ratio.coefficients  # (m, C)
            self.moments = torch.einsum("jc,jkp->kcp", wa, self.table.poly)  # (K, C, 7)

    def log_z(self, theta: Tensor, alpha: Tensor, log_r: Tensor | None = None) -> Tensor:
        """log Π_k Z_k; ``log_r``: the Monte Carlo's log r(θ) when already computed (Asimov: data = MC)."""
        if self.linear:
            assert isinstance(self.log_ratio, LinearRatio)
            m = self.log_ratio.basis(theta)  # (C,)
            per_k = torch.einsum("kcp,c->kp", self.moments, m)  # (K, 7)
            z = (per_k * _code4_powers(alpha)).sum(dim=1) / per_k[:, 0]
            beyond = [k for k, a in enumerate(alpha.detach().abs().tolist()) if a > 1.0]
            if beyond:
                u = self.weights * (self.log_ratio.coefficients @ m)
                z_beyond = (u[:, None] * self.table.kappa(alpha, beyond)).sum(dim=0) / u.sum()
                z = z.index_put((torch.tensor(beyond),), z_beyond)
            return torch.log(z).sum()
        log_r = self.log_ratio(theta).to(torch.float64) if log_r is None else log_r
        u = self.weights * torch.exp(log_r - log_r.max().detach())
        z = (u[:, None] * self.table.kappa(alpha)).sum(dim=0) / u.sum()
        return torch.log(z).sum()


def negated(model: UnbinnedModel, poi: str) -> UnbinnedModel:
    """The same likelihood in −``poi``: L'(…, θ_k, …) = L(…, −θ_k, …). A one-sided test of the negative values of a
    coupling (destructive interference) is then the usual test of non-negative values."""
    if poi not in model.poi:
        raise InferenceError(f"unknown parameter of interest {poi!r}; the model has {model.poi}")
    k = model.poi.index(poi)
    sign = torch.ones(len(model.poi), dtype=torch.float64)
    sign[k] = -1.0

    def flip(function: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
        return lambda theta: function(torch.as_tensor(theta, dtype=torch.float64) * sign)

    return UnbinnedModel(model.poi, flip(model.log_ratio), model.weights, flip(model.expected), model.norm, model.shape,
                         None if model.mc_log_ratio is None else flip(model.mc_log_ratio), model.mc_weights,
                         model.mc_shape, model.aux)
