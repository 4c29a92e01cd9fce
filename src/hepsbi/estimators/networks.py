r"""Neural networks behind the estimators: an MLP, input standardisation, and the ratio and score models.

The models hold their own standardisation (as buffers), so they take and return quantities in physical
units and the gradient with respect to θ is the score in the units of θ.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["MLP", "Standardize", "RatioModel", "ScoreModel"]


class MLP(nn.Sequential):
    """Fully connected network with SiLU activations (smooth, so that gradients in θ are smooth too).

    Arguments:
        n_in, n_out: input and output widths.
        hidden: widths of the hidden layers.
        output_bias: whether the last layer has a bias.
    """

    def __init__(self, n_in: int, n_out: int, hidden: Sequence[int] = (64, 64, 64), output_bias: bool = True):
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h), nn.SiLU()]
            width = h
        layers.append(nn.Linear(width, n_out, bias=output_bias))
        super().__init__(*layers)


class Standardize(nn.Module):
    """``(v − mean) / std`` with fixed mean and std (buffers, saved with the model), shapes (d,)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, values: Tensor, weights: Tensor | None = None) -> Standardize:
        """Set mean and std from ``values`` (n, d). Constant columns keep std = 1."""
        values = values.to(self.mean.dtype)
        self.mean.copy_(values.mean(dim=0))
        std = values.std(dim=0) if values.shape[0] > 1 else torch.ones_like(self.mean)
        self.std.copy_(torch.where(std > 1e-12, std, torch.ones_like(std)))
        return self

    def forward(self, v: Tensor) -> Tensor:
        return (v - self.mean) / self.std


class RatioModel(nn.Module):
    r"""log r̂(x | θ, θ_ref) = g(x, θ) − g(x, θ_ref).

    Anchoring at θ_ref makes r̂(x | θ_ref, θ_ref) = 1 exactly, for every x, which the true ratio satisfies;
    the network only learns how the ratio departs from the reference.

    Arguments:
        n_x: number of observables.  n_theta: number of parameters.
        reference: θ_ref, (n_theta,).  hidden: hidden layer widths.
    """

    def __init__(self, n_x: int, n_theta: int, reference: Tensor, hidden: Sequence[int] = (64, 64, 64)):
        super().__init__()
        self.x_scale = Standardize(n_x)
        self.theta_scale = Standardize(n_theta)
        self.register_buffer("reference", torch.as_tensor(reference, dtype=torch.float32).reshape(n_theta))
        # An output bias would cancel in g(x, θ) − g(x, θ_ref): leave it out.
        self.net = MLP(n_x + n_theta, 1, hidden, output_bias=False)

    def g(self, x_std: Tensor, theta: Tensor) -> Tensor:
        return self.net(torch.cat([x_std, self.theta_scale(theta)], dim=1)).squeeze(1)

    def forward(self, x: Tensor, theta: Tensor) -> Tensor:
        """x (n, n_x), θ (n, n_theta) → log r̂ (n,)."""
        x_std = self.x_scale(x)
        return self.g(x_std, theta) - self.g(x_std, self.reference.expand(x.shape[0], -1))

    def reference_term(self, x: Tensor) -> Tensor:
        """g(x, θ_ref), (n,): the half of log r̂ that does not depend on θ (reuse it for fixed events)."""
        return self.g(self.x_scale(x), self.reference.expand(x.shape[0], -1))

    def anchored(self, x: Tensor, theta: Tensor, reference_term: Tensor) -> Tensor:
        """log r̂ (n,) from x (n, n_x), θ (n, n_theta) and :meth:`reference_term` of the same x: one network
        evaluation instead of two."""
        return self.g(self.x_scale(x), theta) - reference_term

    def log_ratio_and_score(self, x: Tensor, theta: Tensor, create_graph: bool) -> tuple[Tensor, Tensor]:
        """log r̂ (n,) and its gradient in θ, t̂(x | θ) (n, n_theta)."""
        theta = theta.detach().requires_grad_(True)
        with torch.enable_grad():
            log_r = self(x, theta)
            (score,) = torch.autograd.grad(log_r.sum(), theta, create_graph=create_graph)
        return log_r, score


class ScoreModel(nn.Module):
    r"""t̂(x) ∈ R^p, the score at a fixed point; targets are standardised inside the model.

    Arguments:
        n_x: number of observables.  n_theta: number of parameters.  hidden: hidden layer widths.
    """

    def __init__(self, n_x: int, n_theta: int, hidden: Sequence[int] = (64, 64, 64)):
        super().__init__()
        self.x_scale = Standardize(n_x)
        self.t_scale = Standardize(n_theta)
        self.net = MLP(n_x, n_theta, hidden)

    def forward(self, x: Tensor) -> Tensor:
        """x (n, n_x) → t̂ (n, n_theta)."""
        return self.net(self.x_scale(x)) * self.t_scale.std + self.t_scale.mean
