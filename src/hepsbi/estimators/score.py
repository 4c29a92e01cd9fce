r"""Local score estimator (SALLY): t̂(x) ≈ t(x | θ_score) = ∇_θ log p(x | θ) at one point."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hepsbi.data.training import TrainingData
from hepsbi.errors import EstimatorError
from hepsbi.estimators._arrays import EVAL_BATCH, give_back, place, to_tensor
from hepsbi.estimators.base import Estimator
from hepsbi.estimators.losses import sally
from hepsbi.estimators.networks import ScoreModel
from hepsbi.estimators.training import TrainingConfig, normalised_weights
from hepsbi.space import ParameterSpace

__all__ = ["ScoreEstimator"]


class ScoreEstimator(Estimator):
    r"""SALLY: regresses the joint score at one parameter point on the observables.

    The estimate t̂(x) is the locally sufficient statistic near that point: in its neighbourhood, the
    p-dimensional t̂(x) carries all the information x has on θ (Brehmer, Cranmer, Louppe, Pavez,
    arXiv:1805.00020).

    Arguments:
        hidden: hidden layer widths.
        embedding, config, options: as for :class:`~hepsbi.estimators.RatioEstimator`.
    """

    kind = "ScoreEstimator"
    OPTIONS = ("hidden",)

    def __init__(self, hidden: Sequence[int] = (64, 64, 64), config: TrainingConfig | None = None,
                 embedding: nn.Module | None = None, **options: Any):
        super().__init__(hidden, embedding, config, **options)
        self.point: list[float] = []

    def network(self, x_shape: tuple[int, ...], space: ParameterSpace) -> ScoreModel:
        return ScoreModel(x_shape, space.dim, self.hidden, self.embedding)

    def metadata(self) -> dict[str, Any]:
        model = self._model
        return {"point": self.point,
                "scaling": {"x_mean": model.x_scale.mean.tolist(), "x_std": model.x_scale.std.tolist()}}

    def restore(self, metadata: dict[str, Any]) -> None:
        self.point = list(metadata["point"])

    @property
    def _model(self) -> ScoreModel:
        model = self._require_model()
        assert isinstance(model, ScoreModel)
        return model

    # -- training (the four steps of Estimator.fit) -----------------------------------------------------------
    @property
    def description(self) -> str:
        return "sally"

    def check(self, data: TrainingData) -> None:
        theta = data.theta[data.y > 0.5]
        if theta.shape[0] == 0 or not torch.allclose(theta, theta[:1].expand_as(theta)):
            raise EstimatorError(
                "ScoreEstimator needs events drawn at one parameter point: build the data with TrainingData.local()"
            )
        self.point = theta[0].tolist()

    def tensors(self, data: TrainingData) -> dict[str, Tensor]:
        drawn_at_theta = data.y > 0.5
        return {
            "x": data.x[drawn_at_theta].float(),
            "t_xz": data.t_xz[drawn_at_theta].float(),
            "weights": normalised_weights(data.weights[drawn_at_theta]).float(),
        }

    def prepare(self, tensors: dict[str, Tensor]) -> None:
        self._model.x_scale.fit(tensors["x"])
        self._model.t_scale.fit(tensors["t_xz"])

    def batch_loss(self, batch: dict[str, Tensor], training: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """SALLY's loss (:func:`~hepsbi.estimators.losses.sally`) on a batch of :meth:`tensors` rows."""
        loss = sally(self._model(batch["x"]), batch["t_xz"], batch["weights"])
        return loss, {"score": loss.detach()}

    def score(self, x: Any) -> Any:
        """t̂(x): x (n, d_x) → (n, p), same kind as ``x``."""
        model = self._model
        xt, as_numpy = to_tensor(x, "x", self._x_shape)
        with torch.no_grad():
            out = torch.cat([model(xb) for xb in xt.to(self.device).split(EVAL_BATCH)])
        return give_back(out, as_numpy, place(x))
