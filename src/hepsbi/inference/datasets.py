r"""Datasets to infer on: an observed (simulated) sample, or an Asimov-like weighted sample."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from hepsbi.errors import InferenceError
from hepsbi.simulators.protocol import Simulator

__all__ = ["Dataset", "observed_dataset", "asimov_dataset"]


@dataclass(frozen=True)
class Dataset:
    """Events to infer on: observables x (n, d_x) and weights (n,); ``truth`` is θ_true (p,) when known."""

    x: Tensor
    weights: Tensor
    truth: Tensor | None = None
    kind: str = "observed"

    @property
    def n_effective(self) -> float:
        """Σ w, the number of events the dataset stands for."""
        return float(self.weights.sum())


def observed_dataset(sim: Simulator, theta_true: Tensor, n_events: int, seed: int) -> Dataset:
    """``n_events`` events simulated at θ_true, each with weight 1 (a pseudo-experiment)."""
    if n_events < 1:
        raise InferenceError(f"n_observed must be >= 1 (got {n_events})")
    gen = torch.Generator().manual_seed(int(seed))
    theta = torch.as_tensor(theta_true, dtype=torch.float64).reshape(1, -1).expand(n_events, -1)
    x, _ = sim.sample(theta, gen)
    return Dataset(x=x, weights=torch.ones(n_events, dtype=torch.float64), truth=theta[0].clone(), kind="observed")


def asimov_dataset(sim: Simulator, theta_true: Tensor, n_expected: float, n_mc: int, seed: int) -> Dataset:
    r"""An Asimov-like sample: ``n_mc`` events at θ_true, each weighted n_expected / n_mc.

    Σ_i w_i log r(x_i | θ) then approximates the expected log-likelihood ratio of an experiment with
    ``n_expected`` events, whose maximum lies at θ_true up to the Monte Carlo error of ``n_mc``."""
    if n_mc < 1 or n_expected <= 0:
        raise InferenceError(f"asimov needs n_mc >= 1 and n_expected > 0 (got {n_mc}, {n_expected})")
    data = observed_dataset(sim, theta_true, n_mc, seed)
    return Dataset(x=data.x, weights=torch.full((n_mc,), n_expected / n_mc, dtype=torch.float64), truth=data.truth, kind="asimov")
