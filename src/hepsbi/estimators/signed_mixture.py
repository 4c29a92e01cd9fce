r"""The signed mixture model parametrised in θ: a signed r(x | θ) from training data with negative weights.

An NLO sample at θ is a signed mixture of the densities of its positive- and negative-weight events,
W(θ) p(x | θ) = W₊(θ) p₊(x | θ) − W₋(θ) p₋(x | θ), with W± the totals of |w| of each part (Drnevich, Jiggins, Katzy,
Cranmer, arXiv:2410.10216: p = c p₊ − (c − 1) p₋, c = W₊/W). Two cross-entropy classifiers, one between the
positive-weight events at θ and the reference sample, one between the negative-weight events (|w|) and the same
reference sample, learn on the same rows as CARL — no rebalancing — so their odds carry the class totals:
e^{f±(x, θ)} = W±(θ) p±(x | θ) / (W_ref(θ) p(x | θ_ref)). With the training data's two classes of equal total
weight at every θ (W = W_ref, as CARL needs too), the difference is the signed ratio,

.. math:: r̂(x \mid θ) = e^{f_+(x, θ)} - e^{f_-(x, θ)},

so c(θ) never has to be estimated separately. The networks are not anchored at θ_ref (each odds is W±/W_ref there,
not 1), and a per-θ offset in log r̂ — noise of the classifiers' learned class totals — would shift every likelihood
by n times it. So r̂ is self-normalised: divided by Z(θ) = Σ_j w_j r̂(x_j | θ) / Σ_j w_j over a fixed sample of
:data:`REFERENCE_EVENTS` reference events kept from the training data (E_ref[r] = 1 for a ratio of normalised
densities), which also frees r̂ from the class totals W(θ)/W_ref(θ). ``log_ratio`` takes log r̂ where r̂ > 0 and floors
it elsewhere, as the θ-parametrised REVERT does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hepsbi.data.training import TrainingData
from hepsbi.errors import EstimatorError
from hepsbi.estimators._arrays import EVAL_BATCH, give_back, place, to_tensor
from hepsbi.estimators.base import LogRatioEstimator
from hepsbi.estimators.losses import SIGNED_FLOOR, carl, floored_log
from hepsbi.estimators.networks import MLP, Standardize
from hepsbi.estimators.training import TrainingConfig, normalised_weights
from hepsbi.space import ParameterSpace

__all__ = ["REFERENCE_EVENTS", "SignedMixtureModel", "SignedMixtureRatioEstimator"]

#: logits are clamped here before the exponential (float32 overflow)
_CLAMP = 30.0
#: reference events kept (from the training data at θ_ref) for the self-normalisation Z(θ)
REFERENCE_EVENTS = 1024


class SignedMixtureModel(nn.Module):
    r"""Two classifiers f±(x, θ) on standardised (x, θ) and the reference events of the self-normalisation; r̂ =
    (e^{f₊} − e^{f₋}) / Z(θ) (module docstring).

    Arguments:
        n_x: observables per event.  n_theta: parameters.  hidden: hidden layer widths of each network.
    """

    signed: Tensor
    reference_x: Tensor
    reference_w: Tensor

    def __init__(self, n_x: int, n_theta: int, hidden: Sequence[int] = (64, 64, 64)):
        super().__init__()
        self.x_shape = (n_x,)
        self.x_scale = Standardize(n_x)
        self.theta_scale = Standardize(n_theta)
        self.nets = nn.ModuleList([MLP(n_x + n_theta, 1, hidden) for _ in range(2)])
        #: 1 when the events at θ had negative weights; 0: r̂ = e^{f₊} (a plain classifier; f₋ is not used)
        self.register_buffer("signed", torch.ones((), dtype=torch.float64))
        self.register_buffer("reference_x", torch.zeros(REFERENCE_EVENTS, n_x))
        self.register_buffer("reference_w", torch.zeros(REFERENCE_EVENTS, dtype=torch.float64))

    def logits(self, x: Tensor, theta: Tensor) -> Tensor:
        """f₊ and f₋, (n, 2)."""
        inputs = torch.cat([self.x_scale(x), self.theta_scale(theta)], dim=1)
        return torch.cat([net(inputs) for net in self.nets], dim=1)

    def raw(self, x: Tensor, theta: Tensor) -> Tensor:
        """e^{f₊} − e^{f₋} for x (n, d) and θ (n, p): (n,), float64, not normalised."""
        odds = torch.exp(self.logits(x, theta).double().clamp(-_CLAMP, _CLAMP))
        return odds[:, 0] - self.signed * odds[:, 1]

    def normaliser(self, theta: Tensor) -> Tensor:
        """Z(θ) = Σ_j w_j raw(x_j, θ) / Σ_j w_j over the reference events, for θ rows (k, p): (k,)."""
        k, m = theta.shape[0], self.reference_x.shape[0]
        x = self.reference_x.unsqueeze(0).expand(k, m, -1).reshape(k * m, -1)
        th = theta.unsqueeze(1).expand(k, m, -1).reshape(k * m, -1)
        return (self.raw(x, th).reshape(k, m) @ self.reference_w) / self.reference_w.sum()

    def forward(self, x: Tensor, theta: Tensor) -> Tensor:
        """r̂(x | θ) = raw / Z(θ) for x (n, d) and θ (n, p), Z per row: (n,), float64 (for evaluation at one θ,
        :meth:`normaliser` once and :meth:`raw` are cheaper)."""
        return self.raw(x, theta) / self.normaliser(theta)


class SignedMixtureRatioEstimator(LogRatioEstimator):
    r"""Learns a signed r(x | θ, θ_ref) as a mixture of two classifiers (module docstring); method ``smm``.

    Arguments:
        hidden: hidden layer widths of each of the two networks.
        config: a :class:`TrainingConfig`; keyword ``options`` override its fields (``epochs=50``, ``seed=1``).
    """

    kind = "SignedMixtureRatioEstimator"
    OPTIONS = ("hidden",)
    method = "smm"

    def __init__(self, hidden: Sequence[int] = (64, 64, 64), embedding: nn.Module | None = None,
                 config: TrainingConfig | None = None, **options: Any):
        if embedding is not None:
            raise EstimatorError("the signed mixture model takes no embedding (its two networks see x itself)")
        super().__init__(hidden, None, config, **options)

    def network(self, x_shape: tuple[int, ...], space: ParameterSpace) -> SignedMixtureModel:
        if len(x_shape) != 1:
            raise EstimatorError(f"the signed mixture model needs x of shape (n, d) (got events of shape {x_shape})")
        return SignedMixtureModel(x_shape[0], space.dim, self.hidden)

    @property
    def _model(self) -> SignedMixtureModel:
        model = self._require_model()
        assert isinstance(model, SignedMixtureModel)
        return model

    # -- training ------------------------------------------------------------------------------------------------
    def check(self, data: TrainingData) -> None:
        if data.y.min() == data.y.max():
            raise EstimatorError("method 'smm' needs events from both θ and θ_ref (y = 0 and 1)")

    def tensors(self, data: TrainingData) -> dict[str, Tensor]:
        return {"x": data.x.float(), "theta": data.theta.float(), "y": data.y.float(),
                "weights": normalised_weights(data.weights).float()}

    def prepare(self, tensors: dict[str, Tensor]) -> None:
        model = self._model
        model.x_scale.fit(tensors["x"])
        model.theta_scale.fit(tensors["theta"])
        model.signed.fill_(float(bool(((tensors["y"] > 0.5) & (tensors["weights"] < 0)).any())))
        reference = torch.nonzero(tensors["y"] < 0.5)[:, 0]
        gen = torch.Generator().manual_seed(self.config.seed)
        chosen = reference[torch.randperm(len(reference), generator=gen)[:REFERENCE_EVENTS]]
        model.reference_x.zero_()
        model.reference_w.zero_()
        model.reference_x[: len(chosen)] = tensors["x"][chosen].to(model.reference_x.dtype)
        model.reference_w[: len(chosen)] = tensors["weights"][chosen].double()

    def batch_loss(self, batch: dict[str, Tensor], training: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """Cross-entropy of f₊ on the reference rows and the positive-weight rows at θ, plus that of f₋ on the
        reference rows and the negative-weight rows at θ (weights |w|)."""
        f = self._model.logits(batch["x"], batch["theta"])
        y, w = batch["y"], batch["weights"]
        at_theta = y > 0.5
        positive = torch.where(at_theta & (w < 0), torch.zeros_like(w), w)
        negative = torch.where(at_theta, torch.where(w < 0, -w, torch.zeros_like(w)), w)
        parts = {"positive": carl(f[:, 0], y, positive), "negative": carl(f[:, 1], y, negative)}
        return parts["positive"] + parts["negative"], {k: v.detach() for k, v in parts.items()}

    # -- evaluation -----------------------------------------------------------------------------------------------
    def _ratio(self, xt: Tensor, th: Tensor) -> Tensor:
        """Self-normalised r̂ (n,), float64, for x (n, d) and θ (n, p): Z once per distinct θ (not differentiable in
        θ: :meth:`score` takes the two terms apart)."""
        model = self._model
        distinct, index = torch.unique(th.detach(), dim=0, return_inverse=True)
        z = model.normaliser(distinct)[index]
        raw = torch.cat([model.raw(xb, tb) for xb, tb in zip(xt.split(EVAL_BATCH), th.split(EVAL_BATCH))])
        return raw / z

    def ratio(self, x: Any, theta: Any) -> Any:
        """The signed r̂(x | θ, θ_ref) = (e^{f₊} − e^{f₋}) / Z(θ), (n,), for x (n, d_x) and θ (p,) or (n, p)."""
        xt, th, as_numpy = self._inputs(x, theta)
        with torch.no_grad():
            r = self._ratio(xt, th)
        return give_back(r, as_numpy, place(x))

    def log_ratio(self, x: Any, theta: Any) -> Any:
        """log r̂(x | θ, θ_ref) where r̂ > 0, floored elsewhere: (n,), float32 like the other kinds, same kind as x."""
        xt, th, as_numpy = self._inputs(x, theta)
        with torch.no_grad():
            r = self._ratio(xt, th)
        return give_back(floored_log(r).float(), as_numpy, place(x))

    def log_ratio_of_theta(self, x: Any) -> Callable[[Tensor], Tensor]:
        """For fixed events x (n, d_x): θ (p,) → log r̂(x_i | θ) (n,), float64, differentiable in θ."""
        model = self._model
        xt, _ = to_tensor(x, "x", self._x_shape)
        back, xt = xt.device, xt.to(self.device)

        def log_ratio(theta: Tensor) -> Tensor:
            self.check_theta(theta)
            one = torch.as_tensor(theta).to(xt.device, torch.float32).reshape(1, -1)
            th = one.expand(xt.shape[0], -1)
            raw = torch.cat([model.raw(xb, tb) for xb, tb in zip(xt.split(EVAL_BATCH), th.split(EVAL_BATCH))])
            return floored_log(raw / model.normaliser(one)).to(back, torch.float64)

        return log_ratio

    def score(self, x: Any, theta: Any) -> Any:
        """t̂(x | θ) = ∇_θ log r̂(x | θ), (n, p) (0 where r̂ is floored)."""
        xt, th, as_numpy = self._inputs(x, theta)
        model = self._model
        distinct, index = torch.unique(th, dim=0, return_inverse=True)
        with torch.enable_grad():  # ∇ log Z(θ) once per distinct θ (each row of Z depends on its own θ only)
            d = distinct.detach().requires_grad_(True)
            z = model.normaliser(d)
            grad_log_z = torch.autograd.grad(torch.log(z.abs().clamp(min=1e-300)).sum(), d)[0]
        parts = []
        for xb, tb, ib in zip(xt.split(EVAL_BATCH), th.split(EVAL_BATCH), index.split(EVAL_BATCH)):
            tb = tb.detach().requires_grad_(True)
            with torch.enable_grad():
                raw = model.raw(xb, tb)
                grad_raw = torch.autograd.grad(torch.log(raw.abs().clamp(min=1e-300)).sum(), tb)[0]
            floored = (raw.detach() / z.detach()[ib]) <= 2 * SIGNED_FLOOR
            t = grad_raw - grad_log_z[ib].to(grad_raw.dtype)
            parts.append(torch.where(floored[:, None], torch.zeros_like(t), t))
        return give_back(torch.cat(parts), as_numpy, place(x))
