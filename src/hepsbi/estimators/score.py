r"""Local score estimator (SALLY): t̂(x) ≈ t(x | θ_score) = ∇_θ log p(x | θ) at one point."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hepsbi.data.training import TrainingData
from hepsbi.errors import EstimatorError
from hepsbi.estimators._arrays import give_back, to_tensor
from hepsbi.estimators.losses import sally
from hepsbi.estimators.networks import ScoreModel
from hepsbi.estimators.persistence import check_features, load_weights, read_metadata, save_estimator
from hepsbi.estimators.ratio import _EVAL_BATCH, _config
from hepsbi.estimators.training import TrainingConfig, TrainingHistory, normalised_weights, train
from hepsbi.space import ParameterSpace

__all__ = ["ScoreEstimator"]


class ScoreEstimator:
    r"""SALLY: regresses the joint score at one parameter point on the observables.

    The estimate t̂(x) is the locally sufficient statistic near that point: in its neighbourhood, the
    p-dimensional t̂(x) carries all the information x has on θ (Brehmer, Cranmer, Louppe, Pavez,
    arXiv:1805.00020).

    Arguments:
        hidden: hidden layer widths.
        config, options: as for :class:`~hepsbi.estimators.RatioEstimator`.
    """

    kind = "ScoreEstimator"

    def __init__(self, hidden: Sequence[int] = (64, 64, 64), config: TrainingConfig | None = None, **options: Any):
        self.hidden = tuple(int(h) for h in hidden)
        self.config = _config(config, options)
        self.model: ScoreModel | None = None
        self.space: ParameterSpace | None = None
        self.features: list[str] = []
        self.point: list[float] = []
        self.history = TrainingHistory()

    def fit(self, data: TrainingData) -> ScoreEstimator:
        """Train on events drawn at a single point (:meth:`TrainingData.local`). Returns self."""
        if not isinstance(data, TrainingData):
            raise EstimatorError(f"fit expects TrainingData, got {type(data).__name__}")
        drawn_at_theta = data.y > 0.5
        theta = data.theta[drawn_at_theta]
        if theta.shape[0] == 0 or not torch.allclose(theta, theta[:1].expand_as(theta)):
            raise EstimatorError(
                "ScoreEstimator needs events drawn at one parameter point: build the data with TrainingData.local()"
            )
        self.space, self.features, self.point = data.space, list(data.observable_names), theta[0].tolist()
        tensors = {
            "x": data.x[drawn_at_theta].float(),
            "t_xz": data.t_xz[drawn_at_theta].float(),
            "weights": normalised_weights(data.weights[drawn_at_theta]).float(),
        }
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self.model = ScoreModel(data.x.shape[1], data.space.dim, self.hidden)
        self.model.x_scale.fit(tensors["x"])
        self.model.t_scale.fit(tensors["t_xz"])
        model = self.model

        def batch_loss(batch: dict[str, Tensor], training: bool) -> tuple[Tensor, dict[str, Tensor]]:
            loss = sally(model(batch["x"]), batch["t_xz"], batch["weights"])
            return loss, {"score": loss.detach()}

        self.history = train(self.model, batch_loss, tensors, self.config, description="sally")
        return self

    def score(self, x: Any) -> Any:
        """t̂(x): x (n, d_x) → (n, p), same kind as ``x``."""
        if self.model is None:
            raise EstimatorError("the estimator is not trained: call fit() or load() first")
        xt, as_numpy = to_tensor(x, "x", len(self.features))
        with torch.no_grad():
            out = torch.cat([self.model(xb) for xb in xt.split(_EVAL_BATCH)])
        return give_back(out, as_numpy)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write weights and metadata into directory ``path``."""
        if self.model is None or self.space is None:
            raise EstimatorError("the estimator is not trained: nothing to save")
        meta = {
            "kind": self.kind,
            "hidden": list(self.hidden),
            "features": self.features,
            "point": self.point,
            "parameter_space": self.space.to_dict(),
            "scaling": {"x_mean": self.model.x_scale.mean.tolist(), "x_std": self.model.x_scale.std.tolist()},
            "training": self.config.to_dict(),
            "history": self.history.to_dict(),
        }
        return save_estimator(path, self.model, meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str], features: Sequence[str] | None = None) -> ScoreEstimator:
        """Load an estimator saved by :meth:`save`. With ``features``, check they match the trained ones."""
        meta = read_metadata(path, cls.kind)
        check_features(meta["features"], list(features) if features is not None else None, str(path))
        est = cls(hidden=meta["hidden"], config=TrainingConfig(**meta["training"]))
        est.space = ParameterSpace.from_dict(meta["parameter_space"])
        est.features, est.point = list(meta["features"]), list(meta["point"])
        est.model = ScoreModel(len(est.features), est.space.dim, est.hidden)
        load_weights(path, est.model)
        est.model.eval()
        est.history = TrainingHistory(**meta.get("history", {}))
        return est
