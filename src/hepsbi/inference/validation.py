r"""How close a learned log-likelihood ratio is to the truth: against the exact ratio on simulators that have one,
and — on any simulator — by closure (the reference events reweighted by r̂ against events at θ, with a χ² per
observable) and by the calibration of the classifier it implies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from hepsbi.inference.ratios import LogRatioOfTheta, exact_log_ratio
from hepsbi.simulators.protocol import Simulator

__all__ = ["ClosureHistogram", "closure_edges", "log_ratio_comparison", "log_ratio_mse", "reliability_curve",
           "reweighting_closure"]


def log_ratio_comparison(
    log_ratios: Mapping[str, LogRatioOfTheta],
    sim: Simulator,
    thetas: Tensor,
    n_events: int = 2000,
    seed: int = 12345,
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    r"""Exact and learned log r on the same held-out events: ``n_events`` drawn at each test point θ_g.

    Arguments:
        log_ratios: label → x ↦ (θ ↦ log r̂(x_i | θ)), e.g. ``RatioEstimator.log_ratio_of_theta``.
        sim: a simulator with exact ``log_prob``.
        thetas: test points, (G, p).
        n_events: events per test point.
        seed: seeds the test events (held out: use a seed not used for training).

    Returns:
        θ of each event (G·n_events, p), exact log r (G·n_events,), and label → learned log r̂ (G·n_events,).
    """
    exact = exact_log_ratio(sim)
    gen = torch.Generator().manual_seed(seed)
    theta_rows, exact_parts = [], []
    learned_parts: dict[str, list[Tensor]] = {label: [] for label in log_ratios}
    with torch.no_grad():
        for theta in torch.as_tensor(thetas, dtype=torch.float64).reshape(-1, sim.space.dim):
            x, _ = sim.sample(theta.expand(n_events, -1), gen)
            theta_rows.append(theta.expand(n_events, -1))
            exact_parts.append(exact(x)(theta))
            for label, fn in log_ratios.items():
                learned_parts[label].append(torch.as_tensor(fn(x)(theta), dtype=torch.float64))
    learned = {label: torch.cat(parts) for label, parts in learned_parts.items()}
    return torch.cat(theta_rows), torch.cat(exact_parts), learned


def log_ratio_mse(
    log_ratio: LogRatioOfTheta,
    sim: Simulator,
    thetas: Tensor,
    n_events: int = 2000,
    seed: int = 12345,
) -> float:
    r"""Mean squared error of a learned log r̂(x | θ, θ_ref) against the exact one,

    .. math:: \mathrm{MSE} = \frac{1}{G}\sum_{g=1}^{G} \frac{1}{N}\sum_{i=1}^{N}
              \big(\log\hat r(x_i \mid θ_g) - \log r(x_i \mid θ_g)\big)^2, \quad x_i \sim p(x \mid θ_g),

    i.e. over the events one would observe at each test point θ_g (arguments as for
    :func:`log_ratio_comparison`; ``log_ratio`` is e.g. ``est.log_ratio_of_theta``).
    """
    _, exact, learned = log_ratio_comparison({"learned": log_ratio}, sim, thetas, n_events, seed)
    return float(((learned["learned"] - exact) ** 2).mean())


# -- closure by reweighting, and calibration ------------------------------------------------------------------
@dataclass(frozen=True)
class ClosureHistogram:
    r"""One observable of a reweighting closure: the reference events reweighted by r̂(x | θ) against the events
    at θ, in ``edges`` (B + 1,) bins.

    Attributes:
        observable: its name.  edges: bin edges (B + 1).
        learned: Σ_b c w_i r̂(x_i | θ) over reference events (B,), c scales the total to ``target``'s (r̂ is a ratio
            of normalised densities: closure is of the shape).
        target: Σ_b of the weights of the events at θ (B,).
        error: standard deviation of learned − target per bin (B,), from the events' weights.
        chi2, ndf: Σ_b ((learned − target) / error)² over bins with events, and their number − 1: is the
            mis-closure significant given the events behind the comparison?
        chi2_poisson: Σ_b (learned − target)² / target: does it matter for a dataset of ``target`` events (the
            analysis' expected events, for a weighted simulator)? Far below ndf: invisible in the data.
    """

    observable: str
    edges: list[float]
    learned: list[float]
    target: list[float]
    error: list[float]
    chi2: float
    ndf: int
    chi2_poisson: float

    @property
    def p_value(self) -> float:
        from scipy import stats

        return float(stats.chi2.sf(self.chi2, self.ndf)) if self.ndf > 0 else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "p_value": self.p_value}


def closure_edges(values: Tensor, weights: Tensor, bins: int) -> list[float]:
    """Edges of ``bins`` bins of equal weighted content of ``values`` (n,); a discrete observable with at most
    ``bins`` distinct values gets one bin per value."""
    values, weights = values.to(torch.float64), weights.to(torch.float64).abs()
    distinct = torch.unique(values)
    if len(distinct) <= bins:
        mids = ((distinct[1:] + distinct[:-1]) / 2).tolist()
        return [float(distinct[0]) - 0.5, *mids, float(distinct[-1]) + 0.5]
    order = torch.argsort(values)
    cdf = torch.cumsum(weights[order], 0) / weights.sum()
    inner = [float(values[order][torch.searchsorted(cdf, q).clamp(max=len(values) - 1)]) for q in
             (torch.arange(1, bins, dtype=torch.float64) / bins).tolist()]
    edges = sorted({float(values.min()), *inner, float(values.max())})
    edges[-1] = float(torch.nextafter(torch.tensor(edges[-1], dtype=torch.float64), torch.tensor(float("inf"), dtype=torch.float64)))
    return edges


def reweighting_closure(
    x_reference: Tensor,
    w_reference: Tensor,
    log_r_hat: Tensor,
    x_target: Tensor,
    w_target: Tensor,
    observables: Sequence[str],
    bins: int = 10,
    paired: bool = False,
) -> list[ClosureHistogram]:
    r"""Closure of a learned ratio in every observable: reference events (drawn at θ_ref) weighted by
    w_i r̂(x_i | θ) against events at θ.

    .. math:: χ^2 = \sum_b \frac{(L_b - T_b)^2}{σ_b^2}, \quad L_b = c\sum_{i∈b} w_i \hat r_i, \quad
              T_b = \sum_{j∈b} w'_j, \quad c = \frac{\sum_j w'_j}{\sum_i w_i \hat r_i}

    With ``paired`` the target events are the reference events themselves with their true weights at θ,
    w'_i = w_i r(x_i, z_i | θ) (a weighted simulator): σ_b² = Σ_{i∈b} (c w_i r̂_i − w'_i)², whose expectation is the
    variance of L_b − T_b when r̂(x) = E[r(x, z) | x]. Otherwise the two samples are independent:
    σ_b² = Σ_{i∈b} (c w_i r̂_i)² + Σ_{j∈b} w'_j². Either way a correct r̂ gives χ² ~ χ²_{B−1}.

    Arguments:
        x_reference: (n, d) events at θ_ref.  w_reference: (n,) their weights.  log_r_hat: (n,) log r̂(x_i | θ).
        x_target: (m, d) events at θ (with ``paired``, x_reference).  w_target: (m,) their weights.
        observables: the d column names.  bins: per observable, of equal content at θ.

    References:
        The reweighting closure of DCTR: A. Andreassen, B. Nachman, "Neural networks for full phase-space
        reweighting and parameter tuning", PRD 101 (2020) 091901, arXiv:1907.08209.
    """
    w = w_reference.to(torch.float64) * torch.exp(log_r_hat.to(torch.float64))
    wt = w_target.to(torch.float64)
    c = wt.sum() / w.sum()
    learned_w = c * w
    out = []
    for k, name in enumerate(observables):
        edges = closure_edges(x_target[:, k].contiguous(), wt, bins)
        edge_t = torch.tensor(edges, dtype=torch.float64)
        index_l = torch.bucketize(x_reference[:, k].to(torch.float64).contiguous(), edge_t, right=True) - 1
        index_t = torch.bucketize(x_target[:, k].to(torch.float64).contiguous(), edge_t, right=True) - 1
        n_bins = len(edges) - 1

        def bin_sum(index: Tensor, values: Tensor) -> Tensor:
            inside = (index >= 0) & (index < n_bins)
            return torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index[inside], values[inside])

        learned, target = bin_sum(index_l, learned_w), bin_sum(index_t, wt)
        if paired:
            variance = bin_sum(index_l, (learned_w - wt) ** 2)
        else:
            variance = bin_sum(index_l, learned_w**2) + bin_sum(index_t, wt**2)
        used = variance > 0
        chi2 = float((((learned - target) ** 2)[used] / variance[used]).sum())
        filled = target > 0
        chi2_poisson = float((((learned - target) ** 2)[filled] / target[filled]).sum())
        out.append(ClosureHistogram(name, edges, learned.tolist(), target.tolist(), variance.sqrt().tolist(), chi2,
                                    max(int(used.sum()) - 1, 0), chi2_poisson))
    return out


def reliability_curve(log_r_hat_1: Tensor, w_1: Tensor, log_r_hat_0: Tensor, w_0: Tensor,
                      bins: int = 10) -> dict[str, list[float]]:
    r"""Calibration of the classifier ŝ = σ(log r̂) between θ (class 1) and θ_ref (class 0), the two classes
    normalised to equal total weight: in bins of ŝ, the mean ŝ (``predicted``) against the weighted fraction of
    class 1 (``observed``); a calibrated r̂ lies on the diagonal. The same events may appear in both classes
    (a weighted simulator: w_1 = w r(x, z | θ), w_0 = w).

    Arguments:
        log_r_hat_1, w_1: log r̂ (n₁,) and weights (n₁,) of class 1.  log_r_hat_0, w_0: the same for class 0.

    Returns:
        ``predicted``, ``observed``, ``weight`` (the bin's share of the total weight) per bin of equal width in ŝ
        over [0, 1] that holds events.
    """
    s1, s0 = torch.sigmoid(log_r_hat_1.to(torch.float64)), torch.sigmoid(log_r_hat_0.to(torch.float64))
    a = w_1.to(torch.float64) / w_1.sum()
    b = w_0.to(torch.float64) / w_0.sum()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    i1 = (torch.bucketize(s1, edges, right=True) - 1).clamp(0, bins - 1)
    i0 = (torch.bucketize(s0, edges, right=True) - 1).clamp(0, bins - 1)
    zeros = torch.zeros(bins, dtype=torch.float64)
    one, zero = zeros.clone().index_add_(0, i1, a), zeros.clone().index_add_(0, i0, b)
    weighted_s = zeros.clone().index_add_(0, i1, a * s1).index_add_(0, i0, b * s0)
    total = one + zero
    keep = total.abs() > 0
    return {"predicted": (weighted_s[keep] / total[keep]).tolist(), "observed": (one[keep] / total[keep]).tolist(),
            "weight": (total[keep] / total.sum()).tolist()}
