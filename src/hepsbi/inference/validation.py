r"""How close a learned log-likelihood ratio is to the exact one, on simulators that have one."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from hepsbi.errors import SimulatorError
from hepsbi.simulators.gold import as_rows
from hepsbi.simulators.protocol import Simulator, has_exact_likelihood

__all__ = [
    "exact_log_ratio",
    "joint_log_ratio_on_latent",
    "log_ratio_comparison",
    "log_ratio_mse",
    "normalised_log_ratio",
    "normalised_log_ratio_of_theta",
]

LogRatio = Callable[[Tensor, Tensor], Tensor]


def exact_log_ratio(sim: Simulator) -> LogRatio:
    """``(x, θ) -> log p(x|θ) − log p(x|θ_ref)`` from the simulator's exact ``log_prob``."""
    if not has_exact_likelihood(sim):
        raise SimulatorError(f"{type(sim).__name__} has no exact log_prob(x, theta)")
    ref = sim.space.reference

    def log_ratio(x: Tensor, theta: Tensor) -> Tensor:
        x = torch.as_tensor(x, dtype=torch.float64)
        with torch.no_grad():
            return sim.log_prob(x, theta) - sim.log_prob(x, ref)  # type: ignore[attr-defined]

    return log_ratio


def joint_log_ratio_on_latent(sim: Simulator) -> LogRatio:
    """``(z, θ) -> log p(z|θ) − log p(z|θ_ref)``: the parton-level ("truth") likelihood ratio, the ceiling any
    analysis of the observables can reach. Feed it the latent record z in place of x."""
    ref = sim.space.reference

    def log_ratio(z: Tensor, theta: Tensor) -> Tensor:
        z = torch.as_tensor(z, dtype=torch.float64)
        with torch.no_grad():
            return sim.joint_log_prob(z, as_rows(theta, z.shape[0])) - sim.joint_log_prob(z, as_rows(ref, z.shape[0]))

    return log_ratio


def normalised_log_ratio(log_ratio: LogRatio, x_ref: Tensor, w_ref: Tensor) -> LogRatio:
    r"""log r̂(x | θ) − log Z(θ) with Z(θ) = Σ_j w_j r̂(x_j | θ) / Σ_j w_j over a reference sample drawn at θ_ref.

    A learned ratio is normalised only approximately (∫ p(x|θ_ref) r̂ dx ≈ 1); in an extended likelihood
    with N events an error ε(θ) of that normalisation shifts log L by N ε(θ), which for LHC-sized N
    dominates. Dividing by the Monte Carlo estimate of Z(θ) leaves the rate to ν(θ) and the learned
    ratio to the shape. Z is cached per θ."""
    x_ref = torch.as_tensor(x_ref)
    w = torch.as_tensor(w_ref, dtype=torch.float64)
    w = w / w.sum()
    cache: dict[tuple[float, ...], float] = {}

    def corrected(x: Tensor, theta: Tensor) -> Tensor:
        key = tuple(float(v) for v in torch.as_tensor(theta).reshape(-1))
        lr_ref = None
        if key not in cache:
            lr_ref = torch.as_tensor(log_ratio(x_ref, theta), dtype=torch.float64)
            cache[key] = float(torch.log((w * torch.exp(lr_ref)).sum()))
        if x is x_ref and lr_ref is not None:  # the usual case: normalised on the dataset itself
            return lr_ref - cache[key]
        return torch.as_tensor(log_ratio(x, theta), dtype=torch.float64) - cache[key]

    return corrected


def normalised_log_ratio_of_theta(log_ratio: Callable[[Tensor], Tensor], w_ref: Tensor) -> Callable[[Tensor], Tensor]:
    r"""The same normalisation for a ratio on fixed events, θ (p,) → (n,), differentiable in θ (fits, Fisher
    information): log r̂_i(θ) − log Σ_j w_j r̂_j(θ)/Σ_j w_j, the sum over the same events with their weights at
    θ_ref. The ratio is evaluated once per call."""
    log_w = torch.log(torch.as_tensor(w_ref, dtype=torch.float64) / torch.as_tensor(w_ref, dtype=torch.float64).sum())

    def normalised(theta: Tensor) -> Tensor:
        lr = log_ratio(theta)
        return lr - torch.logsumexp(lr + log_w, 0)

    return normalised


def log_ratio_comparison(
    log_ratios: Mapping[str, LogRatio],
    sim: Simulator,
    thetas: Tensor,
    n_events: int = 2000,
    seed: int = 12345,
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    r"""Exact and learned log r on the same held-out events: ``n_events`` drawn at each test point θ_g.

    Arguments:
        log_ratios: label → ``(x, θ) -> (n,)``, e.g. ``RatioEstimator.log_ratio``.
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
    for theta in torch.as_tensor(thetas, dtype=torch.float64).reshape(-1, sim.space.dim):
        x, _ = sim.sample(theta.expand(n_events, -1), gen)
        theta_rows.append(theta.expand(n_events, -1))
        exact_parts.append(exact(x, theta))
        for label, fn in log_ratios.items():
            learned_parts[label].append(torch.as_tensor(fn(x, theta), dtype=torch.float64))
    learned = {label: torch.cat(parts) for label, parts in learned_parts.items()}
    return torch.cat(theta_rows), torch.cat(exact_parts), learned


def log_ratio_mse(
    log_ratio: LogRatio,
    sim: Simulator,
    thetas: Tensor,
    n_events: int = 2000,
    seed: int = 12345,
) -> float:
    r"""Mean squared error of a learned log r̂(x | θ, θ_ref) against the exact one,

    .. math:: \mathrm{MSE} = \frac{1}{G}\sum_{g=1}^{G} \frac{1}{N}\sum_{i=1}^{N}
              \big(\log\hat r(x_i \mid θ_g) - \log r(x_i \mid θ_g)\big)^2, \quad x_i \sim p(x \mid θ_g),

    i.e. over the events one would observe at each test point θ_g (arguments as for
    :func:`log_ratio_comparison`).
    """
    _, exact, learned = log_ratio_comparison({"learned": log_ratio}, sim, thetas, n_events, seed)
    return float(((learned["learned"] - exact) ** 2).mean())
