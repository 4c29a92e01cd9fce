r"""Ensembles of likelihood-ratio estimators: the same method trained with different seeds.

The ensemble's log r̂ is the mean of its members' (each member is a consistent estimator, so is the mean,
with less variance); the members' spread is a measure of how far to trust it where it matters — large
spreads flag regions of x or θ the training data did not cover.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from hepsbi.errors import EstimatorError
from hepsbi.estimators._arrays import give_back, to_tensor
from hepsbi.estimators.base import LogRatioEstimator

__all__ = ["RatioEnsemble"]


class RatioEnsemble:
    """Members trained on the same data with different seeds; the interface of a
    :class:`~hepsbi.estimators.base.LogRatioEstimator` for inference (``log_ratio``, ``log_ratio_of_theta``,
    ``score``), plus :meth:`log_ratio_spread`. ``method``, ``history`` and ``config`` are the first member's."""

    def __init__(self, members: Sequence[LogRatioEstimator]):
        if not members:
            raise EstimatorError("an ensemble needs at least one member")
        methods = {m.method for m in members}
        if len(methods) > 1:
            raise EstimatorError(f"ensemble members must share a method (got {sorted(methods)})")
        self.members = list(members)
        first = self.members[0]
        self.method, self.history, self.config, self.space = first.method, first.history, first.config, first.space
        self.features = first.features

    def __len__(self) -> int:
        return len(self.members)

    @property
    def device(self) -> torch.device:
        """Where the first member's network is."""
        return self.members[0].device

    def to(self, device: str | torch.device) -> RatioEnsemble:
        """Move every member's network to ``device`` (see :meth:`~hepsbi.estimators.base.Estimator.to`)."""
        for member in self.members:
            member.to(device)
        return self

    def _stack(self, x: Any, theta: Any) -> tuple[Tensor, bool]:
        _, as_numpy = to_tensor(x, "x", self.members[0]._x_shape)
        values = torch.stack([torch.as_tensor(m.log_ratio(x, theta)) for m in self.members])
        return values, as_numpy

    def log_ratio(self, x: Any, theta: Any) -> Any:
        """Mean of the members' log r̂(x | θ), (n,)."""
        values, as_numpy = self._stack(x, theta)
        return give_back(values.mean(dim=0), as_numpy)

    def log_ratio_spread(self, x: Any, theta: Any) -> Any:
        """Standard deviation of the members' log r̂(x | θ), (n,) (zero for one member)."""
        values, as_numpy = self._stack(x, theta)
        spread = values.std(dim=0) if len(self.members) > 1 else torch.zeros_like(values[0])
        return give_back(spread, as_numpy)

    def log_ratio_of_theta(self, x: Any) -> Callable[[Tensor], Tensor]:
        """θ (p,) → mean log r̂(x_i | θ) (n,), float64, differentiable in θ."""
        functions = [m.log_ratio_of_theta(x) for m in self.members]
        return lambda theta: torch.stack([f(theta) for f in functions]).mean(dim=0)

    def score(self, x: Any, theta: Any) -> Any:
        """Mean of the members' scores, (n, p)."""
        _, as_numpy = to_tensor(x, "x", self.members[0]._x_shape)
        return give_back(torch.stack([torch.as_tensor(m.score(x, theta)) for m in self.members]).mean(dim=0), as_numpy)
