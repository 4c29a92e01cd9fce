r"""How close a learned log-likelihood ratio is to the exact one, on simulators that have one."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from hepsbi.inference.ratios import LogRatioOfTheta, exact_log_ratio
from hepsbi.simulators.protocol import Simulator

__all__ = ["log_ratio_comparison", "log_ratio_mse"]


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
