r"""Morphing: event weights that are polynomials of degree two in the parameters.

When |M|² is quadratic in θ (here the contact coefficients), the weight of an event at any θ is

.. math:: w(θ) = \sum_k a_k\, m_k(θ), \qquad m(θ) = (1,\ θ_1, …, θ_p,\ θ_1^2,\ θ_1θ_2,\ …,\ θ_p^2),

with p(p+3)/2 + 1 monomials. Evaluating w at that many basis points and solving one linear system
gives the coefficients a_k exactly (to float64 precision); afterwards w(θ) costs a dot product, and is
differentiable in θ.

A sample generated elsewhere brings the weights at named benchmark points instead (MadGraph's reweight module:
one ``<wgt id=…>`` per point): :meth:`QuadraticMorphing.fit_benchmarks` solves the same coefficients from B ≥ K
benchmarks by least squares, with the condition number of the benchmark matrix (how much a weight's rounding is
amplified in the coefficients) and the largest residual (non-zero when the weights are not quadratic in θ).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from hepsbi.errors import DataError

__all__ = ["BenchmarkFit", "QuadraticMorphing", "solve_benchmarks"]


class BenchmarkFit(NamedTuple):
    """Morphing coefficients solved from benchmark weights.

    Attributes:
        coefficients: a (n, K).  condition: the condition number of the (B, K) matrix of monomials at the benchmarks
            (θ in units of the basis ``scale``).  residual: max |w − a·m| / max |w| over events and benchmarks.
    """

    coefficients: Tensor
    condition: float
    residual: float


class QuadraticMorphing:
    r"""The quadratic monomial basis in ``n_params`` parameters.

    Arguments:
        n_params: p, the number of parameters.
        scale: spread of the basis points (in units of θ); choose it near the size of interesting θ.
    """

    def __init__(self, n_params: int, scale: float = 1.0):
        self.n_params = int(n_params)
        self.pairs = list(itertools.combinations_with_replacement(range(self.n_params), 2))
        self._first = torch.tensor([i for i, _ in self.pairs], dtype=torch.long)
        self._second = torch.tensor([j for _, j in self.pairs], dtype=torch.long)
        self.scale = float(scale)
        self.basis_points = self._basis_points()
        matrix = self.monomials(self.basis_points)  # (K, K)
        self._inverse = torch.linalg.inv(matrix)

    @property
    def n_components(self) -> int:
        """Number of monomials K = 1 + p + p(p+1)/2."""
        return 1 + self.n_params + len(self.pairs)

    def _basis_points(self) -> Tensor:
        p, s = self.n_params, self.scale
        points = [torch.zeros(p, dtype=torch.float64)]
        for i in range(p):
            for sign in (1.0, -1.0):
                v = torch.zeros(p, dtype=torch.float64)
                v[i] = sign * s
                points.append(v)
        for i, j in itertools.combinations(range(p), 2):
            v = torch.zeros(p, dtype=torch.float64)
            v[i], v[j] = s, s
            points.append(v)
        return torch.stack(points)

    def monomials(self, theta: Tensor) -> Tensor:
        """m(θ) for θ (n, p) or (p,) → (n, K); differentiable in θ."""
        theta = torch.as_tensor(theta, dtype=torch.float64).reshape(-1, self.n_params)
        ones = torch.ones(theta.shape[0], 1, dtype=theta.dtype)
        return torch.cat([ones, theta, theta[:, self._first] * theta[:, self._second]], dim=1)

    def fit(self, weight_at: Callable[[Tensor], Tensor]) -> Tensor:
        """Coefficients a (n, K) of events whose weight at one θ (p,) is ``weight_at(θ) -> (n,)``."""
        values = torch.stack([weight_at(point) for point in self.basis_points], dim=1)  # (n, K)
        return values @ self._inverse.T

    def evaluate(self, coefficients: Tensor, theta: Tensor) -> Tensor:
        """w(θ) = Σ_k a_k m_k(θ): coefficients (n, K) with θ (p,) → (n,), or θ (n, p) row-wise → (n,)."""
        m = self.monomials(theta)
        if m.shape[0] == 1:
            return coefficients @ m[0]
        return (coefficients * m).sum(dim=1)

    def fit_benchmarks(self, points: Tensor, weights: Tensor, max_condition: float = 1e8) -> BenchmarkFit:
        r"""Coefficients a (n, K) from the weights w (n, B) of n events at B benchmark points θ_b (B, p):
        least squares of w_b = a · m(θ_b), exact when B = K and the points are independent. Raises a
        :class:`~hepsbi.errors.DataError` when B < K or when the benchmarks cannot separate the monomials
        (condition number above ``max_condition``: e.g. points on a line for two parameters)."""
        points = torch.as_tensor(points, dtype=torch.float64).reshape(-1, self.n_params)
        return solve_benchmarks(self.monomials(points), self.monomials(points / self.scale), weights, max_condition)


def solve_benchmarks(matrix: Tensor, scaled: Tensor, weights: Tensor, max_condition: float = 1e8) -> BenchmarkFit:
    r"""Least-squares coefficients a (n, K) of w_b = a · m_b from the weights w (n, B) of n events at B benchmarks
    whose monomials are the rows of ``matrix`` (B, K); ``scaled`` is the same matrix with θ in the units the basis is
    built for, whose condition number decides whether the benchmarks separate the monomials. Raises a
    :class:`~hepsbi.errors.DataError` when B < K or the condition number exceeds ``max_condition``."""
    weights = torch.as_tensor(weights, dtype=torch.float64)
    n_points, n_components = matrix.shape
    if weights.dim() != 2 or weights.shape[1] != n_points:
        raise DataError(f"weights must be (n events, {n_points} benchmarks), got {tuple(weights.shape)}")
    if n_points < n_components:
        raise DataError(f"{n_points} benchmark points cannot fix the {n_components} morphing coefficients: give at "
                        f"least {n_components}")
    condition = float(torch.linalg.cond(scaled))
    if not condition < max_condition:
        raise DataError(f"the {n_points} benchmark points do not separate the {n_components} morphing terms "
                        f"(condition number {condition:.3g}): spread them over every parameter and pair")
    coefficients = torch.linalg.lstsq(matrix, weights.T).solution.T
    scale = float(weights.abs().max()) or 1.0
    residual = float((coefficients @ matrix.T - weights).abs().max()) / scale
    return BenchmarkFit(coefficients, condition, residual)
