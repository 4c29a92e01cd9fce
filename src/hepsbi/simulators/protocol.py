r"""The contract every simulator implements.

A simulator draws one event per row of θ and can evaluate the log density of its latent variables,
``joint_log_prob(z, θ) = log p(z | θ)`` up to a θ-independent constant, differentiably in θ. Everything a
method needs beyond that (joint likelihood ratios, joint scores) is derived by the framework
(:mod:`hepsbi.simulators.gold`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from hepsbi.errors import SimulatorError
from hepsbi.space import ParameterSpace

__all__ = ["Simulator", "check_simulator", "has_exact_likelihood", "is_weighted", "observable_names"]


@runtime_checkable
class Simulator(Protocol):
    """What hepsbi needs from a simulator.

    Attributes:
        space: the :class:`~hepsbi.space.ParameterSpace` of θ.

    Optional attributes that hepsbi uses when present:
        ``observable_names`` (sequence of str, one per column of x) for plots and metadata;
        ``log_prob(x, θ)``: the exact marginal log p(x | θ), used for validation only;
        ``sample_weighted(n, generator) -> (x, z, weights)``: n weighted events drawn at θ_ref, for
        simulators that generate once and reach other θ by reweighting (training data then uses weights).
    """

    space: ParameterSpace

    def sample(self, theta: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """One event per row of ``theta`` (n, p): returns observables x (n, d_x) and latent z (n, d_z)."""
        ...

    def joint_log_prob(self, z: Tensor, theta: Tensor) -> Tensor:
        """log p(z | θ) up to a θ-independent constant, shape (n,); differentiable in θ."""
        ...


def check_simulator(sim: object) -> Simulator:
    """Return ``sim`` if it implements :class:`Simulator`, else raise :class:`SimulatorError` saying what
    is missing."""
    missing = [a for a in ("space", "sample", "joint_log_prob") if not hasattr(sim, a)]
    if missing:
        raise SimulatorError(f"{type(sim).__name__} does not implement the Simulator protocol: missing {missing}")
    if not isinstance(sim.space, ParameterSpace):  # type: ignore[attr-defined]
        raise SimulatorError(f"{type(sim).__name__}.space must be a hepsbi.ParameterSpace")
    return sim  # type: ignore[return-value]


def has_exact_likelihood(sim: Simulator) -> bool:
    """Whether ``sim`` provides the exact marginal ``log_prob(x, θ)``."""
    return callable(getattr(sim, "log_prob", None))


def is_weighted(sim: Simulator) -> bool:
    """Whether ``sim`` generates weighted events at θ_ref (``sample_weighted``)."""
    return callable(getattr(sim, "sample_weighted", None))


def observable_names(sim: Simulator, d_x: int) -> list[str]:
    """The simulator's observable names, or ``x0 … x{d_x-1}`` when it declares none."""
    names = list(getattr(sim, "observable_names", []) or [])
    return names if len(names) == d_x else [f"x{i}" for i in range(d_x)]
