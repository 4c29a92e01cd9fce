r"""Morphing-aware likelihood ratio: the exact polynomial θ-dependence, learned coefficients.

When an event's weight is quadratic in θ — w(z|θ)/w(z|θ_ref) = m(u) · a(z) with m the quadratic monomials of
u = (θ − θ_ref)/s (as for the Drell–Yan contact terms, and for any sample with benchmark weights) — the
detector-level ratio is exactly

.. math:: r(x \mid θ) = \frac{m(u) \cdot E_{θ_\text{ref}}[a(z) \mid x]}{m(u) \cdot E_{θ_\text{ref}}[a(z)]}
          = \frac{\tilde u^T A(x)\, \tilde u}{\tilde u^T \bar A\, \tilde u}, \qquad \tilde u = (1, u),

with A(x) = E[T(z) | x] the conditional expectation of the event's quadratic form T(z) (the symmetric matrix of
a(z)), positive semi-definite because every T(z) is (|M(θ)|² is a sum of squares), and Ā its mean. One network,
θ not an input, learns A(x) = L(x) L(x)ᵀ (a Cholesky factor, A_00 = 1) by regressing T(z): the minimiser of
the weighted squared error is the conditional expectation, so the learned ratio is exact in the large-sample
limit, positive for every θ, and costs one network pass per event for a whole scan. Its θ-gradient at θ_ref is
2 A_0i(x)/s_i − 2 Ā_0i/s_i: the local score (SALLY) comes with it.

References:
    S. Chen, A. Glioti, G. Panico, A. Wulzer, "Parametrized classifiers for optimal EFT sensitivity",
    JHEP 05 (2021) 247, arXiv:2007.10356 (the quadratic classifier); S. Chatterjee, N. Frohner, L. Lechner,
    R. Schöfbeck, D. Schwarz, "Tree boosting for learning EFT parameters", arXiv:2107.10859.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hepsbi.data.training import TrainingData
from hepsbi.errors import EstimatorError
from hepsbi.estimators._arrays import EVAL_BATCH, give_back, place, to_tensor
from hepsbi.estimators.base import LogRatioEstimator
from hepsbi.estimators.losses import quadratic_form_mse
from hepsbi.estimators.networks import MLP, Standardize, embedding_slot
from hepsbi.estimators.training import TrainingConfig, normalised_weights
from hepsbi.space import ParameterSpace

__all__ = ["MorphingRatioEstimator", "QuadraticFormModel", "form_entries", "quadratic_form", "theta_scale"]


def quadratic_form(coefficients: Tensor, scale: Tensor) -> Tensor:
    """The symmetric (p+1)×(p+1) matrices T with ũᵀ T ũ = m(u) · a for ũ = (1, u), u = (θ − θ_ref)/s, from the
    coefficients a (n, K) of the quadratic monomials of θ − θ_ref (:func:`~hepsbi.simulators.protocol.quadratic_monomials`)
    and the scales s (p,): (n, p+1, p+1)."""
    n, p = coefficients.shape[0], scale.shape[0]
    i, j = torch.triu_indices(p, p)
    form = torch.zeros(n, p + 1, p + 1, dtype=coefficients.dtype)
    form[:, 0, 0] = coefficients[:, 0]
    linear = coefficients[:, 1:1 + p] * scale / 2
    form[:, 0, 1:], form[:, 1:, 0] = linear, linear
    quadratic = coefficients[:, 1 + p:] * scale[i] * scale[j]
    off = torch.where(i == j, 1.0, 0.5).to(coefficients.dtype)
    form[:, 1 + i, 1 + j] = quadratic * off
    form[:, 1 + j, 1 + i] = quadratic * off
    return form


def theta_scale(space: ParameterSpace) -> Tensor:
    """s = half the range of each parameter (p,): with u = (θ − θ_ref)/s the quadratic form's entries are of
    order one."""
    return torch.clamp((space.high - space.low) / 2, min=1e-12)


def form_entries(p: int) -> tuple[Tensor, Tensor]:
    """Rows and columns of the entries of a symmetric (p+1)×(p+1) form that are learned: the upper triangle
    without A_00 (= 1 for both the events' and the predicted forms)."""
    i, j = torch.triu_indices(p + 1, p + 1)
    keep = (i + j) > 0
    return i[keep], j[keep]


class QuadraticFormModel(nn.Module):
    r"""A(x) = L(x) L(x)ᵀ, (n, p+1, p+1), with L lower-triangular, L_00 = 1 and a positive diagonal (softplus):
    positive semi-definite, A_00 = 1. Also holds θ_ref, the scales s of θ and Ā (buffers).

    Arguments:
        x_shape: shape of one event's x.  n_theta: p.  reference: θ_ref (p,).  scale: s (p,).
        hidden: hidden layer widths.  embedding: as for :class:`~hepsbi.estimators.networks.RatioModel`.
    """

    reference: Tensor
    theta_scale: Tensor
    mean_form: Tensor
    embedding: nn.Module
    _rows: Tensor
    _cols: Tensor

    def __init__(self, x_shape: int | Sequence[int], n_theta: int, reference: Tensor, scale: Tensor,
                 hidden: Sequence[int] = (64, 64, 64), embedding: nn.Module | None = None):
        super().__init__()
        self.x_shape = (int(x_shape),) if isinstance(x_shape, int) else tuple(int(d) for d in x_shape)
        self.p = int(n_theta)
        self.x_scale = Standardize(self.x_shape[-1])
        self.register_buffer("reference", torch.as_tensor(reference, dtype=torch.float32).reshape(n_theta))
        self.register_buffer("theta_scale", torch.as_tensor(scale, dtype=torch.float32).reshape(n_theta))
        self.register_buffer("mean_form", torch.eye(n_theta + 1))
        self.embedding, width = embedding_slot(embedding, self.x_shape)
        self.net = MLP(width, self.p + self.p * (self.p + 1) // 2, hidden)
        rows, cols = torch.tril_indices(self.p, self.p)
        self.register_buffer("_rows", rows, persistent=False)
        self.register_buffer("_cols", cols, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """x (n, \\*x_shape) → A(x) (n, p+1, p+1)."""
        out = self.net(self.embedding(self.x_scale(x)))
        n, p = out.shape[0], self.p
        block = out[:, p:]
        diagonal = self._rows == self._cols
        block = torch.where(diagonal, F.softplus(block) + 1e-4, block)
        lower = torch.zeros(n, p + 1, p + 1, dtype=out.dtype, device=out.device)
        lower[:, 0, 0] = 1.0
        lower[:, 1:, 0] = out[:, :p]
        lower[:, 1 + self._rows, 1 + self._cols] = block
        return lower @ lower.transpose(1, 2)

    def u(self, theta: Tensor) -> Tensor:
        """ũ = (1, (θ − θ_ref)/s): θ (p,) → (p+1,), or (n, p) → (n, p+1); float64, on θ's device."""
        t = torch.as_tensor(theta, dtype=torch.float64)
        t = (t - self.reference.to(t.device, torch.float64)) / self.theta_scale.to(t.device, torch.float64)
        return torch.cat([torch.ones_like(t[..., :1]), t], dim=-1)

    def log_ratio(self, form: Tensor, theta: Tensor) -> Tensor:
        """log(ũᵀ A ũ) − log(ũᵀ Ā ũ) from A (n, p+1, p+1) and θ (p,) or (n, p): (n,), float64, on the device of
        the form (θ is moved there, differentiably)."""
        u = self.u(torch.as_tensor(theta).to(form.device))
        form = form.double()
        value = torch.einsum("i,nij,j->n", u, form, u) if u.dim() == 1 else torch.einsum("ni,nij,nj->n", u, form, u)
        norm = torch.einsum("...i,ij,...j->...", u, self.mean_form.to(form.device, torch.float64), u)
        return torch.log(value) - torch.log(norm)


class MorphingRatioEstimator(LogRatioEstimator):
    r"""Learns r(x | θ, θ_ref) with its exact quadratic θ-dependence (see the module docstring): method ``morphing``.

    Needs training data with ``morphing`` coefficients (``TrainingData.from_simulator`` fills them for simulators
    whose :class:`~hepsbi.simulators.protocol.Morphing` basis is quadratic, e.g. ``DrellYanContact``).

    Arguments:
        hidden: hidden layer widths.
        embedding, config, options: as for :class:`~hepsbi.estimators.RatioEstimator`.

    Example:
        >>> from hepsbi.physics import DrellYanContact  # doctest: +SKIP
        >>> sim = DrellYanContact(parameters=["c_LL", "c_LR"], c_max=0.05, n_events=20_000)  # doctest: +SKIP
        >>> est = MorphingRatioEstimator().fit(TrainingData.from_simulator(sim, 20_000))  # doctest: +SKIP
    """

    kind = "MorphingRatioEstimator"
    OPTIONS = ("hidden",)
    method = "morphing"

    def __init__(self, hidden: Sequence[int] = (64, 64, 64), config: TrainingConfig | None = None,
                 embedding: nn.Module | None = None, **options: Any):
        super().__init__(hidden, embedding, config, **options)

    @property
    def description(self) -> str:
        return "morphing"

    def network(self, x_shape: tuple[int, ...], space: ParameterSpace) -> QuadraticFormModel:
        return QuadraticFormModel(x_shape, space.dim, space.reference, theta_scale(space), self.hidden,
                                  self.embedding)

    @property
    def _model(self) -> QuadraticFormModel:
        model = self._require_model()
        assert isinstance(model, QuadraticFormModel)
        return model

    def metadata(self) -> dict[str, Any]:
        model = self._model
        return {"scaling": {"x_mean": model.x_scale.mean.tolist(), "x_std": model.x_scale.std.tolist(),
                            "theta_scale": model.theta_scale.tolist()}, "mean_form": model.mean_form.tolist()}

    # -- training (the four steps of Estimator.fit) ---------------------------------------------------------------
    def check(self, data: TrainingData) -> None:
        if data.morphing is None:
            raise EstimatorError("method 'morphing' needs training data with morphing coefficients: a simulator whose "
                                 "Morphing basis is quadratic in θ − θ_ref (e.g. drell_yan), reweighted")

    def tensors(self, data: TrainingData) -> dict[str, Tensor]:
        assert data.morphing is not None
        form = quadratic_form(data.morphing, theta_scale(data.space))
        i, j = form_entries(data.space.dim)
        return {"x": data.x.float(), "form": form[:, i, j].float(),
                "weights": normalised_weights(data.reference_weights).float()}

    def prepare(self, tensors: dict[str, Tensor]) -> None:
        model = self._model
        model.x_scale.fit(tensors["x"])
        w = tensors["weights"]
        mean = (w[:, None] * tensors["form"]).sum(0) / w.sum()
        variance = (w[:, None] * (tensors["form"] - mean) ** 2).sum(0) / w.sum()
        # entries that vanish for every event (e.g. helicities that do not interfere) have a variance of rounding
        # noise: weigh them like a typical entry instead of by its inverse
        self.loss_scales["entries"] = 1.0 / torch.clamp(variance, min=float(variance.mean()) * 1e-2)
        i, j = form_entries(model.p)
        full = torch.eye(model.p + 1)
        full[i, j] = mean
        full[j, i] = mean
        model.mean_form.copy_(full)  # Ā: σ(θ)/σ(θ_ref) = ũᵀ Ā ũ on the training sample

    def batch_loss(self, batch: dict[str, Tensor], training: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted squared error of the predicted form's entries against the events' (:func:`quadratic_form_mse`)."""
        model = self._model
        form = model(batch["x"])
        i, j = (index.to(form.device) for index in form_entries(model.p))
        loss = quadratic_form_mse(form[:, i, j], batch["form"], batch["weights"], self.loss_scales["entries"])
        return loss, {"form": loss.detach()}

    # -- evaluation -------------------------------------------------------------------------------------------------
    def form(self, x: Any) -> Tensor:
        """A(x), (n, p+1, p+1): the conditional expectation of the events' quadratic forms given x (on x's device,
        the CPU for an array)."""
        return self._form(to_tensor(x, "x", self._x_shape)[0]).to(place(x))

    def _form(self, xt: Tensor) -> Tensor:
        """A(x) on the network's device."""
        model = self._model
        with torch.no_grad():
            return torch.cat([model(xb) for xb in xt.to(self.device).split(EVAL_BATCH)])

    def log_ratio_of_theta(self, x: Any) -> Callable[[Tensor], Tensor]:
        """For fixed events x: θ (p,) ↦ log r̂(x_i | θ, θ_ref) (n,), float64, differentiable in θ; the network runs
        once, here, not per θ (the forms stay where x is: a scan's quadratic forms cost no transfer per θ)."""
        form, model = self.form(x), self._model
        return lambda theta: model.log_ratio(form, theta)

    def log_ratio(self, x: Any, theta: Any) -> Any:
        """log r̂(x | θ, θ_ref), (n,), for θ (p,) or (n, p); same kind as ``x``."""
        xt, as_numpy = to_tensor(x, "x", self._x_shape)
        assert self.space is not None
        th = torch.as_tensor(theta, dtype=torch.float64)
        if th.shape not in ((self.space.dim,), (len(xt), self.space.dim)):
            raise EstimatorError(f"theta must have shape ({self.space.dim},) or (n, {self.space.dim}) for parameters "
                                 f"{list(self.space.names)}, got {tuple(th.shape)}")
        with torch.no_grad():
            out = self._model.log_ratio(self._form(xt), th)
        return give_back(out.float(), as_numpy, place(x))

    def score(self, x: Any, theta: Any) -> Any:
        """t̂(x | θ) = ∇_θ log r̂(x | θ, θ_ref), (n, p)."""
        xt, as_numpy = to_tensor(x, "x", self._x_shape)
        form, model = self._form(xt), self._model
        th = torch.as_tensor(theta, dtype=torch.float64).to(form.device).reshape(-1, model.p).expand(form.shape[0], -1)
        th = th.clone().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(model.log_ratio(form, th).sum(), th)
        return give_back(grad.float(), as_numpy, place(x))
