r"""Neural networks behind the estimators: an MLP, input standardisation, the embedding slot, and the ratio and
score models.

The models hold their own standardisation (as buffers), so they take and return quantities in physical
units and the gradient with respect to θ is the score in the units of θ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hepsbi.errors import EstimatorError

__all__ = ["MLP", "RatioModel", "ScoreModel", "Standardize", "embedding_slot"]


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
    """``(v − mean) / std`` over the last axis with fixed mean and std (buffers, saved with the model), (d,)."""

    mean: Tensor
    std: Tensor

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, values: Tensor, weights: Tensor | None = None) -> Standardize:
        """Set mean and std from ``values`` (n, …, d), over every axis but the last. Constant columns keep std = 1."""
        values = values.to(self.mean.dtype).reshape(-1, self.mean.shape[0])
        self.mean.copy_(values.mean(dim=0))
        std = values.std(dim=0) if values.shape[0] > 1 else torch.ones_like(self.mean)
        self.std.copy_(torch.where(std > 1e-12, std, torch.ones_like(std)))
        return self

    def forward(self, v: Tensor) -> Tensor:
        return (v - self.mean) / self.std

    def inverse(self, u: Tensor) -> Tensor:
        """v from its standardised u: ``u · std + mean``."""
        return u * self.std + self.mean


def _shape(x_shape: int | Sequence[int]) -> tuple[int, ...]:
    return (int(x_shape),) if isinstance(x_shape, int) else tuple(int(d) for d in x_shape)


def embedding_slot(embedding: nn.Module | None, x_shape: tuple[int, ...]) -> tuple[nn.Module, int]:
    r"""The module that turns standardised x (n, \*x_shape) into features (n, d_e), and d_e: ``embedding`` (its
    ``out_features``, or found by one forward pass), or by default a flattening, so the MLP sees x itself."""
    if embedding is None:
        return nn.Flatten(), math.prod(x_shape)
    width = getattr(embedding, "out_features", None)
    if width is None:
        with torch.no_grad():
            out = embedding(torch.zeros(2, *x_shape))
        if out.dim() != 2:
            raise EstimatorError(f"the embedding must map (n, *{x_shape}) to (n, d_e), gave shape {tuple(out.shape)}")
        width = out.shape[1]
    return embedding, int(width)


class RatioModel(nn.Module):
    r"""log r̂(x | θ, θ_ref) = g(e(x), θ) − g(e(x), θ_ref), e the embedding of x.

    Anchoring at θ_ref makes r̂(x | θ_ref, θ_ref) = 1 exactly, for every x, which the true ratio satisfies;
    the network only learns how the ratio departs from the reference. A ratio against a denominator that is not
    p(x | θ_ref) — the marginal p(x) of contrastive NRE — is not 1 there: ``anchored=False`` makes
    log r̂ = g(e(x), θ) (with an output bias).

    Arguments:
        x_shape: shape of one event's x (an int: the number of observables).  n_theta: number of parameters.
        reference: θ_ref, (n_theta,).  hidden: hidden layer widths of g.
        embedding: e, a module (n, \*x_shape) → (n, d_e) on standardised x; default: flatten (e(x) = x).
        anchored: subtract g(e(x), θ_ref) (default) or not.
    """

    reference: Tensor
    embedding: nn.Module

    def __init__(self, x_shape: int | Sequence[int], n_theta: int, reference: Tensor,
                 hidden: Sequence[int] = (64, 64, 64), embedding: nn.Module | None = None, anchored: bool = True):
        super().__init__()
        self.is_anchored = bool(anchored)
        self.x_shape = _shape(x_shape)
        self.x_scale = Standardize(self.x_shape[-1])
        self.theta_scale = Standardize(n_theta)
        self.register_buffer("reference", torch.as_tensor(reference, dtype=torch.float32).reshape(n_theta))
        self.embedding, width = embedding_slot(embedding, self.x_shape)
        # An output bias would cancel in g(x, θ) − g(x, θ_ref): leave it out (unless unanchored).
        self.net = MLP(width + n_theta, 1, hidden, output_bias=not self.is_anchored)

    def features(self, x: Tensor) -> Tensor:
        """e(x), (n, d_e): the embedding of standardised x."""
        return self.embedding(self.x_scale(x))

    def g(self, features: Tensor, theta: Tensor) -> Tensor:
        return self.net(torch.cat([features, self.theta_scale(theta)], dim=1)).squeeze(1)

    def forward(self, x: Tensor, theta: Tensor) -> Tensor:
        r"""x (n, \*x_shape), θ (n, n_theta) → log r̂ (n,)."""
        e = self.features(x)
        return self.g(e, theta) - self.reference_term(x, e)

    def reference_term(self, x: Tensor, features: Tensor | None = None) -> Tensor:
        """g(e(x), θ_ref), (n,) (0 when unanchored): the half of log r̂ that does not depend on θ (reuse it for
        fixed events)."""
        if not self.is_anchored:
            return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        e = self.features(x) if features is None else features
        return self.g(e, self.reference.expand(x.shape[0], -1))

    def anchored(self, x: Tensor, theta: Tensor, reference_term: Tensor) -> Tensor:
        """log r̂ (n,) from x, θ (n, n_theta) and :meth:`reference_term` of the same x: one network evaluation
        instead of two."""
        return self.g(self.features(x), theta) - reference_term

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
        x_shape: shape of one event's x (an int: the number of observables).  n_theta: number of parameters.
        hidden: hidden layer widths.  embedding: as for :class:`RatioModel`.
    """

    embedding: nn.Module

    def __init__(self, x_shape: int | Sequence[int], n_theta: int, hidden: Sequence[int] = (64, 64, 64),
                 embedding: nn.Module | None = None):
        super().__init__()
        self.x_shape = _shape(x_shape)
        self.x_scale = Standardize(self.x_shape[-1])
        self.t_scale = Standardize(n_theta)
        self.embedding, width = embedding_slot(embedding, self.x_shape)
        self.net = MLP(width, n_theta, hidden)

    def forward(self, x: Tensor) -> Tensor:
        r"""x (n, \*x_shape) → t̂ (n, n_theta)."""
        return self.net(self.embedding(self.x_scale(x))) * self.t_scale.std + self.t_scale.mean
