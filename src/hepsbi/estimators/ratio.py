r"""Parametrised likelihood-ratio estimator r̂(x | θ, θ_ref), trained by any of the ratio methods (six for log r,
``revert`` for a signed r from samples with negative weights)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hepsbi.data.training import TrainingData
from hepsbi.errors import EstimatorError
from hepsbi.estimators._arrays import EVAL_BATCH, give_back, place, to_tensor
from hepsbi.estimators.base import LogRatioEstimator
from hepsbi.estimators.losses import (
    LOG_R_CLIP,
    RATIO_LOSSES,
    REVERT_OFFSET,
    SIGNED_FLOOR,
    ratio_loss,
    score_scale,
    signed_log_ratio,
    signed_ratio,
)
from hepsbi.estimators.networks import RatioModel
from hepsbi.estimators.training import TrainingConfig, normalised_weights
from hepsbi.space import ParameterSpace

__all__ = ["DEFAULT_ALPHA", "RatioEstimator"]

#: Weight of the score term for cascal, rascal and alices.
DEFAULT_ALPHA = 1.0


class RatioEstimator(LogRatioEstimator):
    r"""Learns log r(x | θ, θ_ref) = log p(x | θ) − log p(x | θ_ref) for any θ (parametrised in θ).

    Arguments:
        method: ``carl``, ``rolr``, ``alice``, ``cascal``, ``rascal``, ``alices`` or ``revert`` (see
            :mod:`hepsbi.estimators.losses` for each loss and its reference). ``revert`` learns a signed ratio
            r̂ = 2 sinh(H₀ + f) (:meth:`ratio`) from training data with negative weights; its :meth:`log_ratio` is
            log r̂ where r̂ > 0, floored where it is not (:func:`~hepsbi.estimators.losses.signed_log_ratio`).
        alpha: weight of the score term for the score-augmented methods.
        log_r_clip: ROLR and RASCAL clip the joint log ratio to ±log_r_clip. Smaller values cut the variance
            of their exponential loss (on the Galton board, 3 instead of 10 lowers RASCAL's MSE tenfold) but
            bias events whose |log r(x, z)| exceeds it.
        hidden: hidden layer widths.
        embedding: a module for x before the network (see :class:`~hepsbi.estimators.base.Estimator`).
        anchored: log r̂ = g(x, θ) − g(x, θ_ref), exact at θ_ref (default); ``False`` for a denominator other than
            p(x | θ_ref), e.g. the marginal p(x) of :meth:`TrainingData.contrastive` (NRE).
        config: a :class:`TrainingConfig`; keyword ``options`` override its fields (``epochs=50``, ``seed=1``).

    Example:
        >>> from hepsbi.simulators import GaussianLatent
        >>> sim = GaussianLatent()
        >>> data = TrainingData.from_simulator(sim, n=2000, seed=0)
        >>> est = RatioEstimator("alices", epochs=3, progress=False).fit(data)
        >>> est.log_ratio(data.x[:4], sim.space.reference).shape
        torch.Size([4])
    """

    kind = "RatioEstimator"
    OPTIONS = ("method", "alpha", "log_r_clip", "hidden", "anchored")

    def __init__(
        self,
        method: str = "alices",
        alpha: float = DEFAULT_ALPHA,
        hidden: Sequence[int] = (64, 64, 64),
        config: TrainingConfig | None = None,
        log_r_clip: float = LOG_R_CLIP,
        embedding: nn.Module | None = None,
        anchored: bool = True,
        **options: Any,
    ):
        if method not in RATIO_LOSSES:
            raise EstimatorError(f"unknown ratio method {method!r}; choose one of {list(RATIO_LOSSES)}")
        if alpha < 0:
            raise EstimatorError(f"alpha must be >= 0 (got {alpha})")
        if log_r_clip <= 0:
            raise EstimatorError(f"log_r_clip must be > 0 (got {log_r_clip})")
        super().__init__(hidden, embedding, config, **options)
        self.method = method
        self.signed = RATIO_LOSSES[method].signed
        self.alpha = float(alpha)
        self.log_r_clip = float(log_r_clip)
        self.anchored = bool(anchored)
        self._reference_cache: tuple[Any, ...] | None = None  # (x, its version, model, g(x, θ_ref))

    def network(self, x_shape: tuple[int, ...], space: ParameterSpace) -> RatioModel:
        return RatioModel(x_shape, space.dim, space.reference, self.hidden, self.embedding, self.anchored)

    def metadata(self) -> dict[str, Any]:
        model = self._model
        return {"scaling": {
            "x_mean": model.x_scale.mean.tolist(),
            "x_std": model.x_scale.std.tolist(),
            "theta_mean": model.theta_scale.mean.tolist(),
            "theta_std": model.theta_scale.std.tolist(),
        }}

    @property
    def _model(self) -> RatioModel:
        model = self._require_model()
        assert isinstance(model, RatioModel)
        return model

    # -- training (the four steps of Estimator.fit) -----------------------------------------------------------
    def check(self, data: TrainingData) -> None:
        if "both_classes" in RATIO_LOSSES[self.method].needs and data.y.min() == data.y.max():
            raise EstimatorError(f"method {self.method!r} needs events from both θ and θ_ref (y = 0 and 1)")

    def tensors(self, data: TrainingData) -> dict[str, Tensor]:
        return {
            "x": data.x.float(),
            "theta": data.theta.float(),
            "y": data.y.float(),
            "log_r_xz": data.log_r_xz.float(),
            "t_xz": data.t_xz.float(),
            "weights": normalised_weights(data.weights).float(),
        }

    def prepare(self, tensors: dict[str, Tensor]) -> None:
        model = self._model
        model.x_scale.fit(tensors["x"])
        model.theta_scale.fit(tensors["theta"])
        self.loss_scales["score"] = score_scale(tensors["t_xz"], tensors["y"], tensors["weights"])  # 1/⟨t_k²⟩

    def batch_loss(self, batch: dict[str, Tensor], training: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """The method's loss (:func:`~hepsbi.estimators.losses.ratio_loss`) on a batch of :meth:`tensors` rows."""
        model = self._model
        if RATIO_LOSSES[self.method].uses_score and self.alpha > 0:
            log_r, t_hat = model.log_ratio_and_score(batch["x"], batch["theta"], create_graph=training)
        else:
            log_r, t_hat = model(batch["x"], batch["theta"]), None
        return ratio_loss(self.method, log_r, t_hat, batch["y"], batch["log_r_xz"], batch["t_xz"], batch["weights"],
                          self.alpha, self.log_r_clip, self.loss_scales.get("score"))

    # -- evaluation ---------------------------------------------------------------------------------------
    def log_ratio(self, x: Any, theta: Any) -> Any:
        """log r̂(x | θ, θ_ref).

        Arguments:
            x: (n, d_x) observables (tensor or array).
            theta: (p,) for one point or (n, p) per event.

        Returns:
            (n,), same kind as ``x``.
        """
        model = self._model
        xt, th, as_numpy = self._inputs(x, theta)
        with torch.no_grad():
            reference = self._reference_term(x, xt)
            out = torch.cat([model.anchored(xb, tb, rb) for xb, tb, rb
                             in zip(xt.split(EVAL_BATCH), th.split(EVAL_BATCH), reference.split(EVAL_BATCH))])
        return give_back(signed_log_ratio(out) if self.signed else out, as_numpy, place(x))

    def ratio(self, x: Any, theta: Any) -> Any:
        """r̂(x | θ, θ_ref), (n,), x (n, d_x) and θ (p,) or (n, p): signed for ``revert`` (2 sinh(H₀ + f)), e^{log r̂}
        for the other methods."""
        model = self._model
        xt, th, as_numpy = self._inputs(x, theta)
        with torch.no_grad():
            f = torch.cat([model(xb, tb) for xb, tb in zip(xt.split(EVAL_BATCH), th.split(EVAL_BATCH))]).double()
        return give_back(signed_ratio(f) if self.signed else torch.exp(f), as_numpy, place(x))

    def _reference_term(self, x: Any, xt: Tensor) -> Tensor:
        """g(x, θ_ref) (n,), kept for the last tensor x (and this network) while torch's version counter says x
        is unchanged: a scan or a fit evaluates the same events at many θ, and this half of log r̂ does not
        depend on θ."""
        model = self._model
        cached = self._reference_cache
        if (cached is not None and cached[0] is x and cached[1] == x._version and cached[2] is model
                and cached[3].device == xt.device):
            return cached[3]
        reference = torch.cat([model.reference_term(xb) for xb in xt.split(EVAL_BATCH)])
        self._reference_cache = (x, x._version, model, reference) if isinstance(x, Tensor) else None
        return reference

    def log_ratio_of_theta(self, x: Any) -> Callable[[Tensor], Tensor]:
        """For fixed events x (n, d_x): the function θ (p,) → log r̂(x_i | θ, θ_ref) (n,), float64 and
        differentiable in θ (twice), e.g. the ``log_ratio`` of :class:`hepsbi.inference.UnbinnedModel`."""
        model = self._model
        xt, _ = to_tensor(x, "x", self._x_shape)
        back, xt = xt.device, xt.to(self.device)

        with torch.no_grad():  # g(x, θ_ref) does not depend on θ: once for these events
            reference = torch.cat([model.reference_term(xb) for xb in xt.split(EVAL_BATCH)])

        def log_ratio(theta: Tensor) -> Tensor:
            self.check_theta(theta)
            th = torch.as_tensor(theta).to(xt.device, torch.float32).reshape(1, -1).expand(xt.shape[0], -1)
            f = torch.cat([model.anchored(xb, tb, rb) for xb, tb, rb in
                           zip(xt.split(EVAL_BATCH), th.split(EVAL_BATCH), reference.split(EVAL_BATCH))]
                          ).to(back, torch.float64)
            return signed_log_ratio(f) if self.signed else f

        return log_ratio

    def score(self, x: Any, theta: Any) -> Any:
        """t̂(x | θ) = ∇_θ log r̂(x | θ, θ_ref), (n, p)."""
        model = self._model
        xt, th, as_numpy = self._inputs(x, theta)
        parts = [model.log_ratio_and_score(xb, tb, create_graph=False) for xb, tb in zip(xt.split(EVAL_BATCH), th.split(EVAL_BATCH))]
        f, t = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        if self.signed:  # ∇ log 2 sinh(H₀ + f) = coth(H₀ + f) ∇f where r̂ > 0; the floor is flat
            h = REVERT_OFFSET + f.detach()
            positive = h > SIGNED_FLOOR
            t = torch.where(positive[:, None], t / torch.tanh(h.clamp(min=SIGNED_FLOOR))[:, None], torch.zeros_like(t))
        return give_back(t, as_numpy, place(x))
