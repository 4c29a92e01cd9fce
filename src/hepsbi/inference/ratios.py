r"""The one door between estimators and inference: per-event log-likelihood ratios as functions of θ.

.. math:: θ \mapsto \log r(x_i \mid θ, θ_\text{ref}) = \log p(x_i \mid θ) - \log p(x_i \mid θ_\text{ref}),
          \qquad i = 1 … n,

for fixed events x (n, d_x): a :data:`PerEventLogRatio` takes θ (p,) and returns (n,) float64, differentiable
in θ (fits take gradients and Hessians of it, the Fisher information its per-event θ-gradients). What makes one
for given events is a :data:`LogRatioOfTheta`, x ↦ PerEventLogRatio: every estimator kind offers one
(``log_ratio_of_theta``), and so do the exact likelihood of a toy (:func:`exact_log_ratio`) and the
parton-level likelihood of a simulator's latent record (:func:`latent_log_ratio`). Inference knows nothing
else about estimators.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from hepsbi.errors import SimulatorError
from hepsbi.simulators.gold import as_rows
from hepsbi.simulators.protocol import Simulator, has_exact_likelihood

__all__ = ["LogRatioOfTheta", "PerEventLogRatio", "exact_log_ratio", "latent_log_ratio", "normalised_log_ratio"]

#: θ (p,) ↦ log r(x_i | θ, θ_ref) (n,) for fixed events; float64, differentiable in θ
PerEventLogRatio = Callable[[Tensor], Tensor]
#: x (n, d_x) ↦ :data:`PerEventLogRatio` for those events (e.g. ``RatioEstimator.log_ratio_of_theta``)
LogRatioOfTheta = Callable[[Tensor], PerEventLogRatio]


def exact_log_ratio(sim: Simulator) -> LogRatioOfTheta:
    """x ↦ (θ ↦ log p(x_i | θ) − log p(x_i | θ_ref)) from the simulator's exact ``log_prob`` (toys)."""
    if not has_exact_likelihood(sim):
        raise SimulatorError(f"{type(sim).__name__} has no exact log_prob(x, theta)")
    ref = sim.space.reference

    def of_events(x: Tensor) -> PerEventLogRatio:
        x64 = torch.as_tensor(x, dtype=torch.float64)
        with torch.no_grad():
            log_p_ref = sim.log_prob(x64, ref)  # type: ignore[attr-defined]
        return lambda theta: sim.log_prob(x64, theta) - log_p_ref  # type: ignore[attr-defined]

    return of_events


def latent_log_ratio(sim: Simulator) -> LogRatioOfTheta:
    """z ↦ (θ ↦ log p(z_i | θ) − log p(z_i | θ_ref)): the parton-level ("truth") likelihood ratio, the ceiling
    any analysis of the observables can reach. Give it the latent record z (n, d_z) in place of x."""
    ref = sim.space.reference

    def of_events(z: Tensor) -> PerEventLogRatio:
        z64 = torch.as_tensor(z, dtype=torch.float64)
        n = z64.shape[0]
        with torch.no_grad():
            log_p_ref = sim.joint_log_prob(z64, as_rows(ref, n))
        return lambda theta: sim.joint_log_prob(z64, as_rows(theta, n)) - log_p_ref

    return of_events


def normalised_log_ratio(log_ratio: PerEventLogRatio, w_ref: Tensor) -> PerEventLogRatio:
    r"""log r̂_i(θ) − log Z(θ), Z(θ) = Σ_j w_j r̂_j(θ) / Σ_j w_j over the same events with their weights at
    θ_ref, (n,) → (n,); differentiable in θ and one evaluation of the ratio per call.

    A learned ratio is normalised only approximately (∫ p(x|θ_ref) r̂ dx ≈ 1); in an extended likelihood with
    N events an error ε(θ) of that normalisation shifts log L by N ε(θ), which for LHC-sized N dominates.
    Dividing by the Monte Carlo estimate of Z(θ) leaves the rate to ν(θ) and the learned ratio to the shape.

    Arguments:
        log_ratio: a :data:`PerEventLogRatio` of events drawn (with weights) at θ_ref.
        w_ref: the events' weights at θ_ref, (n,).
    """
    w = torch.as_tensor(w_ref, dtype=torch.float64)
    w = w / w.sum()

    def normalised(theta: Tensor) -> Tensor:
        lr = log_ratio(theta)
        # a plain sum (log-ratios of events are far from float64's exp range); the scans' Powell refinement of
        # the MLE is sensitive to the last bits, and this keeps them as they were before the door was unified
        return lr - torch.log((w * torch.exp(lr)).sum())

    return normalised
