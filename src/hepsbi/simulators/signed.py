r"""Quasiprobabilistic toys: densities that are signed mixtures of Gaussians, sampled with signed weights.

A density p(x) = Σ_k c_k N(x; 0, σ_k² I_d) with Σ_k c_k = 1 and some c_k < 0 is what a next-to-leading-order
generator hands over: it may go negative where a subtraction term wins (then only the weighted sum has meaning,
never the events one by one). It is sampled exactly as such a generator does: component k with probability
|c_k| / Σ|c|, each event weighted sign(c_k) · Σ|c|, so that for any h

.. math:: E[w\, h(x)] = \sum_k c_k\, E_{N_k}[h] = \int p(x)\, h(x)\, dx, \qquad E[w] = 1.

:func:`camel` gives the pair of the quasiprobabilistic density-ratio paper (Drnevich, Jiggins, Katzy, Cranmer,
arXiv:2410.10216; Drnevich, Jiggins, Cranmer, arXiv:2512.19913): a non-negative source
p₀ = [4 N(0, 2.5² I) − N(0, 2.3² I)]/3 and a target p₁ = 2 N(0, 2² I) − N(0, 1.2² I), negative for |x| < 1.216, so
the ratio r = p₁/p₀ they are compared by changes sign — something no classifier's odds s/(1 − s) can represent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["SignedMixture", "camel"]


class SignedMixture:
    r"""p(x) = Σ_k c_k N(x; 0, σ_k² I_d): isotropic Gaussians around the origin with signed coefficients.

    Arguments:
        coefficients: c_k, summing to 1 (a normalised density; some may be negative).
        scales: σ_k > 0, one per coefficient.
        dim: d, the dimension of x.
    """

    def __init__(self, coefficients: Sequence[float], scales: Sequence[float], dim: int = 2):
        self.coefficients = torch.tensor([float(c) for c in coefficients], dtype=torch.float64)
        self.scales = torch.tensor([float(s) for s in scales], dtype=torch.float64)
        if self.coefficients.shape != self.scales.shape or self.coefficients.numel() == 0:
            raise ValueError(f"give one scale per coefficient (got {len(coefficients)} and {len(scales)})")
        if abs(float(self.coefficients.sum()) - 1.0) > 1e-9:
            raise ValueError(f"the coefficients must sum to 1 (got {float(self.coefficients.sum()):.12g})")
        if bool((self.scales <= 0).any()) or dim < 1:
            raise ValueError(f"scales must be positive and dim >= 1 (got {list(scales)}, dim={dim})")
        self.dim = int(dim)

    @property
    def weight_scale(self) -> float:
        """Σ|c_k|: the magnitude of every event's weight (1 for an ordinary mixture)."""
        return float(self.coefficients.abs().sum())

    @property
    def negative_fraction(self) -> float:
        """The share of events with a negative weight, Σ_{c_k<0} |c_k| / Σ|c_k|."""
        return float(self.coefficients.clamp(max=0).abs().sum()) / self.weight_scale

    def density(self, x: Tensor) -> Tensor:
        """p(x) for x (n, d): (n,), float64; negative where the negative components win."""
        x = torch.as_tensor(x, dtype=torch.float64)
        r2 = (x**2).sum(dim=-1, keepdim=True)
        var = self.scales**2
        normal = torch.exp(-0.5 * r2 / var) / (2 * math.pi * var) ** (self.dim / 2)
        return (normal * self.coefficients).sum(dim=-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """n events and their signed weights: x (n, d), w (n,), float64, E[w h(x)] = ∫ p h (module docstring)."""
        probabilities = self.coefficients.abs() / self.weight_scale
        component = torch.multinomial(probabilities, n, replacement=True, generator=generator)
        x = torch.randn(n, self.dim, generator=generator, dtype=torch.float64) * self.scales[component, None]
        return x, torch.sign(self.coefficients[component]) * self.weight_scale


def camel(dim: int = 2) -> tuple[SignedMixture, SignedMixture]:
    """The source p₀ (non-negative, 20 % of its events weighted negative) and the target p₁ (negative near the
    origin, 33 % negative events) of the camel example (module docstring)."""
    source = SignedMixture([4 / 3, -1 / 3], [2.5, 2.3], dim)
    target = SignedMixture([2.0, -1.0], [2.0, 1.2], dim)
    return source, target
