r"""Datasets to infer on: an observed (simulated) sample, or an Asimov-like weighted sample."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from hepsbi.errors import InferenceError, SimulatorError
from hepsbi.simulators.protocol import Simulator, WeightedSimulator, check_weighted_simulator

__all__ = [
    "Dataset",
    "asimov_dataset",
    "asimov_expected_events",
    "observed_dataset",
    "reference_weights",
    "weighted_asimov_dataset",
]


@dataclass(frozen=True)
class Dataset:
    """Events to infer on: observables x (n, d_x) and weights (n,); ``theta_true`` (p,) when known; ``z`` the
    latent record (n, d_z) when the dataset is simulated and keeps it (for the parton-level likelihood)."""

    x: Tensor
    weights: Tensor
    theta_true: Tensor | None = None
    kind: str = "observed"
    z: Tensor | None = None



def _weighted(sim: Simulator) -> WeightedSimulator:
    try:
        return check_weighted_simulator(sim)
    except SimulatorError as exc:
        raise InferenceError(f"a weighted Asimov dataset needs a weighted simulator: {exc}") from None


def observed_dataset(sim: Simulator, theta_true: Tensor, n_events: int, seed: int) -> Dataset:
    """``n_events`` events simulated at θ_true, each with weight 1 (a pseudo-experiment)."""
    if n_events < 1:
        raise InferenceError(f"n_observed must be >= 1 (got {n_events})")
    gen = torch.Generator().manual_seed(int(seed))
    theta = torch.as_tensor(theta_true, dtype=torch.float64).reshape(1, -1).expand(n_events, -1)
    x, _ = sim.sample(theta, gen)
    return Dataset(x=x, weights=torch.ones(n_events, dtype=torch.float64), theta_true=theta[0].clone(), kind="observed")


def asimov_dataset(sim: Simulator, theta_true: Tensor, n_expected: float, n_mc: int, seed: int) -> Dataset:
    r"""An Asimov-like sample: ``n_mc`` events at θ_true, each weighted n_expected / n_mc.

    Σ_i w_i log r(x_i | θ) then approximates the expected log-likelihood ratio of an experiment with
    ``n_expected`` events, whose maximum lies at θ_true up to the Monte Carlo error of ``n_mc``."""
    if n_mc < 1 or n_expected <= 0:
        raise InferenceError(f"asimov needs n_mc >= 1 and n_expected > 0 (got {n_mc}, {n_expected})")
    data = observed_dataset(sim, theta_true, n_mc, seed)
    return Dataset(x=data.x, weights=torch.full((n_mc,), n_expected / n_mc, dtype=torch.float64), theta_true=data.theta_true, kind="asimov")


def weighted_asimov_dataset(
    sim: Simulator, theta_true: Tensor, luminosity_pb: float, n_mc: int | None = None, seed: int = 0
) -> Dataset:
    r"""Asimov dataset of a weighted simulator (one with ``asimov(θ, L)``, e.g. DrellYanContact): its event pool
    reweighted to θ_true, each event weighted by its expected number of events at luminosity L (pb⁻¹), so
    Σ w = L σ_fid(θ_true). Keeps z for the parton-level likelihood. With ``n_mc``, a random subset of that many
    pool events carries the same total (cheaper scans, at the price of Monte Carlo noise)."""
    weighted = _weighted(sim)
    if luminosity_pb <= 0:
        raise InferenceError(f"luminosity must be positive (got {luminosity_pb} pb^-1)")
    x, z, w = weighted.asimov(torch.as_tensor(theta_true, dtype=torch.float64), luminosity_pb)
    if n_mc is not None and n_mc < len(w):
        keep = torch.randperm(len(w), generator=torch.Generator().manual_seed(int(seed)))[:n_mc]
        total = w.sum()
        x, z, w = x[keep], z[keep], w[keep] * (total / w[keep].sum())
    return Dataset(x=x, weights=w, theta_true=torch.as_tensor(theta_true, dtype=torch.float64), kind="asimov", z=z)


def reference_weights(sim: Simulator, data: Dataset) -> Tensor:
    """The weights the events of a weighted Asimov dataset have at θ_ref: w_i / r_i(θ_true), (n,)."""
    if data.z is None or data.theta_true is None:
        raise InferenceError("reference_weights needs a weighted Asimov dataset (with z and theta_true)")
    return data.weights.to(torch.float64) / _weighted(sim).weight_ratio(data.z, data.theta_true)


def asimov_expected_events(sim: Simulator, data: Dataset) -> Callable[[Tensor], float]:
    r"""ν(θ) from the Asimov events themselves: Σ_i w_i r_i(θ)/r_i(θ_true) with the simulator's event weight
    ratio ``sim.weight_ratio(z, θ)``. Rate and shape then come from the same Monte Carlo events, so the
    expected likelihood peaks exactly at θ_true whatever the Monte Carlo fluctuations of the subset."""
    z, w_ref, weighted = data.z, reference_weights(sim, data), _weighted(sim)
    assert z is not None  # reference_weights checked it

    def expected(theta: Tensor) -> float:
        return float((w_ref * weighted.weight_ratio(z, theta)).sum())

    return expected
