r"""Binned (template) likelihoods for weighted simulators: histogram any per-event statistic — an
observable such as m_ℓℓ, or a learned summary such as the SALLY score — and get expected counts per bin at
any θ from the simulator (exact through morphing for DrellYanContact)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from hepsbi.errors import InferenceError, SimulatorError
from hepsbi.inference.scan import LogLikelihood, binned_log_likelihood
from hepsbi.simulators.protocol import Simulator, check_weighted_simulator

__all__ = ["bin_index_edges", "bin_index_quantiles", "template_log_likelihood"]


def bin_index_edges(values: np.ndarray, edges: Sequence[float] | Sequence[Sequence[float]]) -> tuple[np.ndarray, int]:
    """Bin of each value for bin ``edges``; −1 outside. 1-D: values (n,) and one edge list; k-D: values (n, k)
    and k edge lists, bins combined row-major. Returns (index (n,), number of bins)."""
    if len(edges) and np.ndim(edges[0]) == 1:  # one edge list per dimension
        values = np.asarray(values, dtype=float).reshape(len(values), -1)
        if values.shape[1] != len(edges):
            raise InferenceError(f"{len(edges)} edge lists for {values.shape[1]}-dimensional values")
        index, total = np.zeros(len(values), dtype=np.int64), 1
        for j, e in enumerate(edges):
            sub, n_bins = bin_index_edges(values[:, j], e)  # type: ignore[arg-type]
            index = np.where((index < 0) | (sub < 0), -1, index * n_bins + sub)
            total *= n_bins
        return index, total
    bounds = np.asarray(edges, dtype=float)
    if bounds.ndim != 1 or len(bounds) < 2 or np.any(np.diff(bounds) <= 0):
        raise InferenceError(f"histogram bins must be increasing edges, at least two (got {bounds.tolist()})")
    index = np.searchsorted(bounds, values, side="right") - 1
    index[(values < bounds[0]) | (values >= bounds[-1])] = -1
    return index, len(bounds) - 1


def bin_index_quantiles(values: np.ndarray, bins_per_dim: int, weights: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Bins for a k-dimensional statistic (n, k): per dimension, edges at the weighted quantiles (equal expected
    content), combined row-major. Returns (index (n,), bins_per_dim ** k)."""
    values = np.asarray(values, dtype=float).reshape(len(values), -1)
    w = np.ones(len(values)) if weights is None else np.abs(np.asarray(weights, dtype=float))
    index = np.zeros(len(values), dtype=np.int64)
    for j in range(values.shape[1]):
        order = np.argsort(values[:, j])
        cdf = np.cumsum(w[order]) / w.sum()
        cuts = np.interp(np.arange(1, bins_per_dim) / bins_per_dim, cdf, values[order, j])
        index = index * bins_per_dim + np.searchsorted(cuts, values[:, j], side="right")
    return index, bins_per_dim ** values.shape[1]


def template_log_likelihood(
    sim: Simulator, bin_index: np.ndarray, n_bins: int, theta_true: Tensor, luminosity_pb: float
) -> LogLikelihood:
    """Poisson likelihood of the Asimov counts at θ_true in the bins ``bin_index`` assigns to the simulator's
    event pool (``sim.expected_counts``); for :func:`~hepsbi.inference.scan_log_likelihood`."""
    try:
        weighted = check_weighted_simulator(sim)
    except SimulatorError as exc:
        raise InferenceError(f"template likelihoods need a weighted simulator: {exc}") from None
    expected = weighted.expected_counts(bin_index, n_bins, luminosity_pb)
    observed = expected(torch.as_tensor(theta_true, dtype=torch.float64))
    keep = observed > 0
    return binned_log_likelihood(lambda theta: expected(theta)[keep], observed[keep])
