r"""Nuisance parameters: HistFactory-style interpolation of systematic variations and Gaussian constraints.

A systematic k with nuisance parameter α_k (constraint N(0, 1)) scales a rate or an event weight by a factor
κ(α) that is 1 at α = 0, ``up`` at α = +1 and ``down`` at α = −1. Interpolation code 4 (polynomial-
exponential, as in HistFactory and pyhf):

.. math::
    κ(α) = \begin{cases} \text{up}^{α} & α \ge 1 \\ \text{down}^{-α} & α \le -1 \\
           1 + \sum_{i=1}^{6} a_i α^i & |α| < 1 \end{cases}

with the a_i fixed by matching value, first and second derivative of the exponential branches at α = ±1,
so κ is smooth (C²) and positive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["code4_coefficients", "code4", "NormSys", "ShapeSys", "gaussian_constraint"]


def code4_coefficients(up: np.ndarray, down: np.ndarray) -> np.ndarray:
    """The six polynomial coefficients a_1..a_6 of code 4 for each (up, down) pair: (..., 6)."""
    up, down = np.broadcast_arrays(np.asarray(up, dtype=float), np.asarray(down, dtype=float))
    if np.any(up <= 0) or np.any(down <= 0):
        raise ValueError("code-4 interpolation needs positive up and down factors")
    # Rows: value, first and second derivative of Σ a_i α^i at α = +1 and α = −1.
    powers = np.arange(1, 7)
    rows = []
    for alpha in (1.0, -1.0):
        rows.append(alpha**powers)
        rows.append(powers * alpha ** (powers - 1))
        rows.append(powers * (powers - 1) * alpha ** np.maximum(powers - 2, 0))
    matrix = np.array(rows)
    lu, ld = np.log(up), np.log(down)
    # Targets (minus the constant 1 for the value rows): exponential branches up^α and down^(−α).
    b = np.stack([up - 1, up * lu, up * lu**2, down - 1, -down * ld, down * ld**2], axis=-1)
    return np.linalg.solve(matrix, b[..., None])[..., 0]


def code4(alpha: Tensor, up: Tensor, down: Tensor, coefficients: Tensor) -> Tensor:
    """κ(α) by code 4; broadcasts α against up/down/coefficients (coefficients carry a trailing axis of 6)."""
    alpha = torch.as_tensor(alpha, dtype=torch.float64)
    up, down = torch.as_tensor(up, dtype=torch.float64), torch.as_tensor(down, dtype=torch.float64)
    a = torch.as_tensor(coefficients, dtype=torch.float64)
    inner_alpha = alpha.clamp(-1.0, 1.0)
    poly = 1.0 + sum(a[..., i] * inner_alpha ** (i + 1) for i in range(6))
    high = torch.exp(alpha.clamp(min=1.0) * torch.log(up))
    low = torch.exp(-alpha.clamp(max=-1.0) * torch.log(down))
    return torch.where(alpha >= 1.0, high, torch.where(alpha <= -1.0, low, poly))


@dataclass
class NormSys:
    """A normalisation systematic: the expected yield scales by κ(α) with ``up`` and ``down`` factors."""

    name: str
    up: float
    down: float

    def __post_init__(self) -> None:
        self._coef = torch.from_numpy(code4_coefficients(np.array(self.up), np.array(self.down)))

    def factor(self, alpha: Tensor) -> Tensor:
        return code4(alpha, torch.tensor(self.up), torch.tensor(self.down), self._coef)


@dataclass
class ShapeSys:
    """A shape systematic given per event: weight ratios up/nominal and down/nominal, (n,) each."""

    name: str
    up: Tensor
    down: Tensor

    def __post_init__(self) -> None:
        self.up = torch.as_tensor(self.up, dtype=torch.float64)
        self.down = torch.as_tensor(self.down, dtype=torch.float64)
        if self.up.shape != self.down.shape:
            raise ValueError(f"shape systematic {self.name}: up and down weights differ in shape")
        self._coef = torch.from_numpy(code4_coefficients(self.up.numpy(), self.down.numpy()))

    def factor(self, alpha: Tensor) -> Tensor:
        """Per-event weight factors at α, (n,)."""
        return code4(alpha, self.up, self.down, self._coef)

    @classmethod
    def tilt(cls, name: str, values: np.ndarray | Tensor, size: float, weights: np.ndarray | Tensor | None = None) -> ShapeSys:
        """A tilt of the distribution of ``values`` (n,): factors 1 ± size (2F(x) − 1) at α = ±1, with F the
        cumulative distribution of the events (weighted by ``weights``, e.g. at the reference point), so the
        lowest values lose and the highest gain ``size`` (and the reverse at α = −1)."""
        if not 0 < size < 1:
            raise ValueError(f"shape systematic {name}: tilt size must lie in (0, 1) (got {size})")
        x = np.asarray(values, dtype=float)
        w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
        order = np.argsort(x, kind="stable")
        cumulative = np.cumsum(w[order])
        cdf = np.empty_like(x)
        cdf[order] = (cumulative - 0.5 * w[order]) / cumulative[-1]  # mid-point of each event's step
        slope = size * (2.0 * np.clip(cdf, 0.0, 1.0) - 1.0)
        return cls(name, torch.from_numpy(1.0 + slope), torch.from_numpy(1.0 - slope))


def gaussian_constraint(alpha: Tensor) -> Tensor:
    """−log of the unit Gaussian constraints, ½ Σ α², up to a constant."""
    return 0.5 * (torch.as_tensor(alpha, dtype=torch.float64) ** 2).sum()
