r"""The contracts simulators implement.

:class:`Simulator` — what every simulator provides: one event per row of θ and the log density of its latent
variables, ``joint_log_prob(z, θ) = log p(z | θ)`` up to a θ-independent constant, differentiable in θ.
Everything a method needs beyond that (joint likelihood ratios, joint scores) is derived by the framework
(:mod:`hepsbi.simulators.gold`).

:class:`WeightedSimulator` — a generate-once, reweight-everywhere simulator (how physics generators are used,
and how MadMiner uses MadGraph): a pool of weighted events generated at θ_ref, every other θ reached by the
per-event weight ratio. :class:`Morphing` — optionally, weight ratios linear in fixed functions of θ.

Members are looked up statically (:func:`inspect.getattr_static`): checking a simulator never runs its code —
``events`` of a weighted simulator would otherwise start an event generation.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from hepsbi.errors import SimulatorError
from hepsbi.space import ParameterSpace

if TYPE_CHECKING:  # annotations only: data builds on this module, not the other way round
    from hepsbi.data.events import Events

__all__ = [
    "Morphing",
    "Simulator",
    "WeightedSimulator",
    "check_simulator",
    "check_weighted_simulator",
    "has_exact_likelihood",
    "has_morphing",
    "has_quadratic_morphing",
    "quadratic_monomials",
    "quadratic_size",
    "is_weighted",
    "observable_names",
]


@runtime_checkable
class Simulator(Protocol):
    """What hepsbi needs from a simulator.

    Attributes:
        space: the :class:`~hepsbi.space.ParameterSpace` of θ.

    Optional attributes that hepsbi uses when present:
        ``observable_names`` (sequence of str, one per column of x) for plots and metadata;
        ``log_prob(x, θ)``: the exact marginal log p(x | θ) (n,), used for validation only; hepsbi always passes
        one point θ (p,) for all n events x (n, d_x) — the built-in toys also accept one θ per event, (n, p) —
        while ``joint_log_prob`` always gets one row per event, (n, p);
        ``sample_weighted(n, generator) -> (x, z, weights)``: n weighted events drawn at θ_ref; training data
        is then reweighted (the one member of :class:`WeightedSimulator` that training needs).
    """

    space: ParameterSpace

    def sample(self, theta: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """One event per row of ``theta`` (n, p): returns observables x (n, d_x) and latent z (n, d_z)."""
        ...

    def joint_log_prob(self, z: Tensor, theta: Tensor) -> Tensor:
        """log p(z | θ) up to a θ-independent constant, shape (n,); differentiable in θ."""
        ...


class WeightedSimulator(Simulator, Protocol):
    r"""A simulator that generates a pool of weighted events once, at θ_ref, and reaches every θ by reweighting.

    The weight of pool event i at θ is w_i r_i(θ) with r_i(θ) = ``weight_ratio(z_i, θ)`` (r_i(θ_ref) = 1), so
    the expected number of events at luminosity L is ν(θ) = L Σ_i w_i r_i(θ) and every extended likelihood,
    histogram and Asimov dataset follows from the pool (:mod:`hepsbi.inference.analysis`).

    Attributes:
        observable_names: one name per column of x.
        n_events: events generated for the pool (before selection).
        seed: seeds the generation (a run's chunk k uses seed + 100 k).
    """

    observable_names: Sequence[str]
    n_events: int
    seed: int

    def generate(self, n_events: int | None = None, seed: int | None = None) -> Events:
        """Generate ``n_events`` at θ_ref with ``seed`` (defaults: the simulator's); the result becomes the pool."""
        ...

    def use_events(self, events: Events) -> None:
        """Make ``events`` (e.g. loaded from a file this simulator wrote) the pool."""
        ...

    @property
    def events(self) -> Events:
        """The pool: x (N, d_x), z (N, d_z), weights (N,) in pb (Σ w = σ_fid(θ_ref))."""
        ...

    def sample_weighted(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """``n`` distinct pool events with weights rescaled so that Σ w stays σ_fid(θ_ref): x, z, w."""
        ...

    def weight_ratio(self, z: Tensor, theta: Tensor) -> Tensor:
        """r_i(θ) = w_i(θ)/w_i(θ_ref) per event, (n,), at one θ (p,) or one per event (n, p); differentiable."""
        ...

    def asimov(self, theta_true: Tensor, luminosity_pb: float) -> tuple[Tensor, Tensor, Tensor]:
        """The pool reweighted to θ_true, each event weighted by its expected events at L (pb⁻¹): x, z, ν_i."""
        ...

    def expected_counts(self, bin_index: np.ndarray, n_bins: int, luminosity_pb: float) -> Callable[[Tensor], np.ndarray]:
        """θ (p,) → expected events per bin (n_bins,), with ``bin_index`` (N,) the bin of every pool event (−1 =
        outside)."""
        ...


class Morphing(Protocol):
    r"""Weight ratios linear in fixed functions of θ: r_i(θ) = a_i · m(θ) (e.g. |M|² quadratic in couplings).

    When m(θ) is :func:`quadratic_monomials` of θ − θ_ref, training data carries the a_i (``TrainingData.morphing``)
    and the morphing-aware estimator learns E[a(z) | x]."""

    def morphing_basis(self, theta: Tensor) -> Tensor:
        """m(θ), (K,), for θ (p,); differentiable."""
        ...

    def morphing_coefficients(self, z: Tensor) -> Tensor:
        """a_i, (n, K), from the latent record z (n, d_z)."""
        ...


def quadratic_size(p: int) -> int:
    """K = 1 + p + p(p+1)/2: the number of quadratic monomials of p parameters."""
    return 1 + p + p * (p + 1) // 2


def quadratic_monomials(u: Tensor) -> Tensor:
    """m(u) = (1, u_1 … u_p, u_i u_j for i ≤ j in lexicographic order): u (p,) → (K,), or (n, p) → (n, K)."""
    rows = u.reshape(-1, u.shape[-1])
    i, j = torch.triu_indices(rows.shape[1], rows.shape[1])
    out = torch.cat([torch.ones_like(rows[:, :1]), rows, rows[:, i] * rows[:, j]], dim=1)
    return out[0] if u.dim() == 1 else out


def has_quadratic_morphing(sim: object) -> bool:
    """Whether ``sim`` has a :class:`Morphing` basis that is :func:`quadratic_monomials` of θ − θ_ref (checked
    at two points), so its coefficients are those of ``TrainingData.morphing``."""
    if not has_morphing(sim):
        return False
    space = sim.space  # type: ignore[attr-defined]
    gen = torch.Generator().manual_seed(0)
    for _ in range(2):
        theta = space.low + (space.high - space.low) * torch.rand(space.dim, generator=gen, dtype=torch.float64)
        basis = torch.as_tensor(sim.morphing_basis(theta), dtype=torch.float64)  # type: ignore[attr-defined]
        expected = quadratic_monomials(theta - space.reference)
        if basis.shape != expected.shape or not torch.allclose(basis, expected, rtol=1e-10, atol=1e-12):
            return False
    return True


def _members(protocol: type) -> list[str]:
    """The public attributes and methods a protocol (and the protocols it extends) declares."""
    names: set[str] = set()
    for cls in protocol.__mro__:
        if cls in (object, Protocol) or not getattr(cls, "_is_protocol", False):
            continue
        names |= set(vars(cls).get("__annotations__", {}))
        names |= {n for n, v in vars(cls).items() if not n.startswith("_") and (callable(v) or isinstance(v, property))}
    return sorted(names)


def _missing(sim: object, protocol: type) -> list[str]:
    """Members of ``protocol`` that ``sim`` lacks, looked up without running any of its code."""
    missing = []
    for name in _members(protocol):
        try:
            inspect.getattr_static(sim, name)
        except AttributeError:
            missing.append(name)
    return missing


def check_simulator(sim: object) -> Simulator:
    """Return ``sim`` if it implements :class:`Simulator`, else raise :class:`SimulatorError` saying what
    is missing."""
    missing = _missing(sim, Simulator)
    if missing:
        raise SimulatorError(f"{type(sim).__name__} does not implement the Simulator protocol: missing {missing}")
    if not isinstance(sim.space, ParameterSpace):  # type: ignore[attr-defined]
        raise SimulatorError(f"{type(sim).__name__}.space must be a hepsbi.ParameterSpace")
    return sim  # type: ignore[return-value]


def check_weighted_simulator(sim: object) -> WeightedSimulator:
    """Return ``sim`` if it implements :class:`WeightedSimulator`, else raise :class:`SimulatorError` naming
    every missing member."""
    check_simulator(sim)
    missing = _missing(sim, WeightedSimulator)
    if missing:
        raise SimulatorError(f"{type(sim).__name__} does not implement the WeightedSimulator protocol (a pool of "
                             f"weighted events reweighted to any θ): missing {missing}")
    return sim  # type: ignore[return-value]


def has_exact_likelihood(sim: object) -> bool:
    """Whether ``sim`` provides the exact marginal ``log_prob(x, θ)``."""
    return callable(getattr(sim, "log_prob", None))


def is_weighted(sim: object) -> bool:
    """Whether ``sim`` generates weighted events at θ_ref (it has ``sample_weighted``; the rest of
    :class:`WeightedSimulator` is checked by :func:`check_weighted_simulator`)."""
    try:
        return callable(inspect.getattr_static(sim, "sample_weighted"))
    except AttributeError:
        return False


def has_morphing(sim: object) -> bool:
    """Whether ``sim`` implements :class:`Morphing` (a morphing basis and per-event coefficients)."""
    return not _missing(sim, Morphing)


def observable_names(sim: object, d_x: int) -> list[str]:
    """The simulator's observable names, or ``x0 … x{d_x-1}`` when it declares none."""
    names = list(getattr(sim, "observable_names", []) or [])
    return names if len(names) == d_x else [f"x{i}" for i in range(d_x)]
