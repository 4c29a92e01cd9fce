r"""Mining gold: joint likelihood ratios and joint scores from ``joint_log_prob`` by autodiff.

For latent z,

.. math::
    \log r(x, z \mid θ_0, θ_1) = \log p(z \mid θ_0) - \log p(z \mid θ_1), \qquad
    t(x, z \mid θ) = \nabla_θ \log p(z \mid θ).

Their conditional expectations given x are the intractable ratio and score, which is what the estimators
regress on (Brehmer, Louppe, Pavez, Cranmer, PNAS 117 (2020) 5242, arXiv:1805.12244).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hepsbi.simulators.protocol import Simulator

__all__ = ["joint_log_ratio", "joint_score", "as_rows"]


def as_rows(theta: Tensor, n: int) -> Tensor:
    """Broadcast θ of shape (p,) or (n, p) to (n, p)."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    if theta.dim() == 1:
        theta = theta.unsqueeze(0)
    return theta.expand(n, -1)


def joint_log_ratio(sim: Simulator, z: Tensor, theta0: Tensor, theta1: Tensor) -> Tensor:
    """log r(x, z | θ0, θ1) for each event.

    Arguments:
        z: latent variables, (n, d_z).
        theta0, theta1: numerator and denominator, (p,) or (n, p).

    Returns:
        (n,) float64.
    """
    n = z.shape[0]
    with torch.no_grad():
        return sim.joint_log_prob(z, as_rows(theta0, n)) - sim.joint_log_prob(z, as_rows(theta1, n))


def joint_score(sim: Simulator, z: Tensor, theta: Tensor) -> Tensor:
    """t(x, z | θ) = ∇_θ log p(z | θ) for each event.

    Arguments:
        z: latent variables, (n, d_z).
        theta: where the score is evaluated, (p,) or (n, p).

    Returns:
        (n, p) float64.
    """
    n = z.shape[0]
    theta_rows = as_rows(theta, n).clone().requires_grad_(True)
    with torch.enable_grad():
        log_p = sim.joint_log_prob(z, theta_rows)
        (grad,) = torch.autograd.grad(log_p.sum(), theta_rows)
    return grad.detach()
