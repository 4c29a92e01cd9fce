r"""The parameter space θ: names, reference point, ranges, priors and benchmarks.

A :class:`ParameterSpace` knows nothing about simulators. It samples θ for training (:class:`PriorSampler`,
:class:`GridSampler`, :class:`BenchmarkSampler`), builds scan grids, and checks that user-given points lie
inside the declared ranges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
from torch import Tensor

from hepsbi.errors import ParameterError

__all__ = [
    "Parameter",
    "ParameterSpace",
    "ThetaSampler",
    "PriorSampler",
    "GridSampler",
    "BenchmarkSampler",
    "BoxSampler",
    "FixedSampler",
]


@dataclass(frozen=True)
class Parameter:
    r"""One model parameter.

    Arguments:
        name: identifier used in specs, results and plots (e.g. ``"c_LL"``).
        low, high: the range the analysis considers; priors and grids live inside it.
        reference: the reference point θ_ref (the denominator of every likelihood ratio).
        prior: ``"uniform"`` on [low, high], or ``"normal"`` centred on ``reference`` with ``prior_width``,
            truncated to [low, high].
        prior_width: standard deviation of the normal prior.
        unit: a unit for axis labels (e.g. ``"TeV^-2"``).
    """

    name: str
    low: float
    high: float
    reference: float = 0.0
    prior: Literal["uniform", "normal"] = "uniform"
    prior_width: float | None = None
    unit: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ParameterError(f"parameter name {self.name!r} must be a Python identifier")
        if not self.low < self.high:
            raise ParameterError(f"parameter {self.name}: low must be < high (got {self.low}, {self.high})")
        if not self.low <= self.reference <= self.high:
            raise ParameterError(
                f"parameter {self.name}: reference {self.reference} lies outside [{self.low}, {self.high}]"
            )
        if self.prior not in ("uniform", "normal"):
            raise ParameterError(f"parameter {self.name}: prior must be 'uniform' or 'normal' (got {self.prior!r})")
        if self.prior == "normal" and not (self.prior_width and self.prior_width > 0):
            raise ParameterError(f"parameter {self.name}: a normal prior needs prior_width > 0")


@dataclass(frozen=True)
class ParameterSpace:
    r"""An ordered set of :class:`Parameter` with named benchmark points.

    Arguments:
        parameters: the parameters, in the order of θ's columns.
        benchmarks: named points, ``{"bsm1": {"c_LL": -0.5, "c_LR": 0.0}}``; missing names take the reference.

    Example:
        >>> space = ParameterSpace([Parameter("theta", -1.0, 1.0)])
        >>> space.dim, space.names
        (1, ('theta',))
    """

    parameters: tuple[Parameter, ...]
    benchmarks: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def __init__(
        self, parameters: Sequence[Parameter], benchmarks: Mapping[str, Mapping[str, float]] | None = None
    ) -> None:
        params = tuple(parameters)
        if not params:
            raise ParameterError("a parameter space needs at least one parameter")
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise ParameterError(f"parameter names must be unique (got {names})")
        object.__setattr__(self, "parameters", params)
        object.__setattr__(self, "benchmarks", dict(benchmarks or {}))
        for bname, point in self.benchmarks.items():
            self.point(point, what=f"benchmark {bname!r}")

    # -- basic views --------------------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def dim(self) -> int:
        return len(self.parameters)

    @property
    def low(self) -> Tensor:
        """Lower bounds, shape (p,)."""
        return torch.tensor([p.low for p in self.parameters], dtype=torch.float64)

    @property
    def high(self) -> Tensor:
        """Upper bounds, shape (p,)."""
        return torch.tensor([p.high for p in self.parameters], dtype=torch.float64)

    @property
    def reference(self) -> Tensor:
        """The reference point θ_ref, shape (p,)."""
        return torch.tensor([p.reference for p in self.parameters], dtype=torch.float64)

    def index(self, name: str) -> int:
        """Column of parameter ``name`` in θ."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ParameterError(f"unknown parameter {name!r}; the model has {list(self.names)}") from None

    # -- points ------------------------------------------------------------------------------------------
    def point(self, values: Mapping[str, float] | Sequence[float] | Tensor, what: str = "point") -> Tensor:
        """Turn a mapping ``{name: value}`` (missing names take the reference) or a sequence into a checked
        tensor of shape (p,). Raises :class:`ParameterError` naming the parameter when a value is unknown or
        outside its range."""
        if isinstance(values, Mapping):
            unknown = set(values) - set(self.names)
            if unknown:
                raise ParameterError(f"{what}: unknown parameter(s) {sorted(unknown)}; the model has {list(self.names)}")
            theta = self.reference.clone()
            for name, value in values.items():
                theta[self.index(name)] = float(value)
        else:
            theta = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
            if theta.shape[0] != self.dim:
                raise ParameterError(f"{what}: expected {self.dim} values for {list(self.names)}, got {theta.shape[0]}")
        self.check(theta, what=what)
        return theta

    def inside(self, theta: Tensor) -> Tensor:
        """Whether each row of θ (n, p) or (p,) lies in the box [low, high] (and is finite): (n,) bool, on θ's
        device."""
        th = torch.as_tensor(theta).reshape(-1, self.dim)
        low, high = (v.to(th.device, th.dtype) for v in (self.low, self.high))
        return ((th >= low) & (th <= high)).all(dim=1)

    def check(self, theta: Tensor, what: str = "theta") -> None:
        """Raise :class:`ParameterError` if any row of ``theta`` (p,) or (n, p) lies outside the ranges."""
        theta = torch.as_tensor(theta, dtype=torch.float64)
        rows = theta.reshape(-1, self.dim)
        for j, p in enumerate(self.parameters):
            bad = (rows[:, j] < p.low) | (rows[:, j] > p.high) | ~torch.isfinite(rows[:, j])
            if bad.any():
                value = rows[bad, j][0].item()
                raise ParameterError(f"{what}: {p.name} = {value:g} is outside its range [{p.low:g}, {p.high:g}]")

    def benchmark(self, name: str) -> Tensor:
        """The benchmark point ``name``, shape (p,)."""
        if name not in self.benchmarks:
            raise ParameterError(f"unknown benchmark {name!r}; defined: {sorted(self.benchmarks)}")
        return self.point(self.benchmarks[name], what=f"benchmark {name!r}")

    def as_dict(self, theta: Tensor) -> dict[str, float]:
        """``{name: value}`` for one point θ of shape (p,)."""
        return {n: float(v) for n, v in zip(self.names, torch.as_tensor(theta).reshape(-1).tolist())}

    # -- sampling and grids ------------------------------------------------------------------------------
    def sample_prior(self, n: int, generator: torch.Generator) -> Tensor:
        """Draw ``n`` points from the prior; returns (n, p) float64."""
        cols = []
        for p in self.parameters:
            if p.prior == "uniform":
                u = torch.rand(n, generator=generator, dtype=torch.float64)
                cols.append(p.low + (p.high - p.low) * u)
            else:
                # Truncated normal by inverse CDF: exact and vectorised.
                normal = torch.distributions.Normal(
                    torch.tensor(p.reference, dtype=torch.float64), torch.tensor(p.prior_width, dtype=torch.float64)
                )
                lo, hi = normal.cdf(torch.tensor(p.low)), normal.cdf(torch.tensor(p.high))
                u = torch.rand(n, generator=generator, dtype=torch.float64)
                cols.append(normal.icdf(lo + (hi - lo) * u).clamp(p.low, p.high))
        return torch.stack(cols, dim=1)

    def log_prior(self, theta: Tensor) -> Tensor:
        r"""log π(θ) of θ (n, p) or (p,): (n,) float64, normalised on the box and −∞ outside it. Uniform:
        −log(high − low); normal: log N(θ; reference, prior_width) − log(Φ(b) − Φ(a)), truncated to [low, high]."""
        th = torch.as_tensor(theta, dtype=torch.float64).reshape(-1, self.dim)
        total = torch.zeros(th.shape[0], dtype=torch.float64)
        for k, p in enumerate(self.parameters):
            if p.prior == "uniform":
                total = total - math.log(p.high - p.low)
            else:
                normal = torch.distributions.Normal(torch.tensor(p.reference, dtype=torch.float64),
                                                    torch.tensor(p.prior_width, dtype=torch.float64))
                mass = normal.cdf(torch.tensor(p.high, dtype=torch.float64)) - normal.cdf(torch.tensor(p.low, dtype=torch.float64))
                total = total + normal.log_prob(th[:, k]) - torch.log(mass)
        return torch.where(self.inside(th), total, torch.full_like(total, -math.inf))

    def grid(self, points: int | Sequence[int] = 21, bounds: Mapping[str, tuple[float, float]] | None = None) -> list[Tensor]:
        """One-dimensional axes of a regular grid: a list of p tensors, each (points_j,), spanning the range
        (or ``bounds[name]`` where given)."""
        counts = [points] * self.dim if isinstance(points, int) else list(points)
        if len(counts) != self.dim:
            raise ParameterError(f"grid: expected {self.dim} point counts, got {len(counts)}")
        axes = []
        for p, k in zip(self.parameters, counts):
            lo, hi = (bounds or {}).get(p.name, (p.low, p.high))
            if k < 2:
                raise ParameterError(f"grid: parameter {p.name} needs at least 2 points (got {k})")
            axes.append(torch.linspace(lo, hi, k, dtype=torch.float64))
        return axes

    @staticmethod
    def mesh(axes: Sequence[Tensor]) -> Tensor:
        """All points of the grid with the given axes, shape (prod(len(axis)), p), first axis slowest."""
        return torch.cartesian_prod(*axes).reshape(-1, len(axes))

    # -- serialisation -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "parameters": [p.__dict__.copy() for p in self.parameters],
            "benchmarks": {k: dict(v) for k, v in self.benchmarks.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParameterSpace:
        return cls([Parameter(**p) for p in data["parameters"]], data.get("benchmarks", {}))


class ThetaSampler(Protocol):
    """Draws parameter points for training data: ``sampler(n, generator) -> (n, p)``."""

    def __call__(self, n: int, generator: torch.Generator) -> Tensor: ...


@dataclass(frozen=True)
class PriorSampler:
    """θ from the prior of ``space``."""

    space: ParameterSpace

    def __call__(self, n: int, generator: torch.Generator) -> Tensor:
        return self.space.sample_prior(n, generator)


@dataclass(frozen=True)
class GridSampler:
    """θ drawn uniformly from the nodes of a regular grid with ``points`` nodes per parameter."""

    space: ParameterSpace
    points: int = 11

    def __call__(self, n: int, generator: torch.Generator) -> Tensor:
        nodes = self.space.mesh(self.space.grid(self.points))
        return nodes[torch.randint(len(nodes), (n,), generator=generator)]


@dataclass(frozen=True)
class BoxSampler:
    """θ uniform in the box [low, high] (each (p,), inside ``space``): training focused on a region, e.g. the one a
    first round's scan found sensitive."""

    space: ParameterSpace
    low: tuple[float, ...]
    high: tuple[float, ...]

    def __post_init__(self) -> None:
        low, high = self.space.point(list(self.low), what="box low"), self.space.point(list(self.high), what="box high")
        if not bool(torch.all(high > low)):
            raise ParameterError(f"box: every high must exceed its low (got {list(self.low)}, {list(self.high)})")

    def __call__(self, n: int, generator: torch.Generator) -> Tensor:
        low, high = torch.tensor(self.low, dtype=torch.float64), torch.tensor(self.high, dtype=torch.float64)
        return low + (high - low) * torch.rand(n, len(low), generator=generator, dtype=torch.float64)


@dataclass(frozen=True)
class BenchmarkSampler:
    """θ drawn uniformly from named benchmark points (all benchmarks of ``space`` when ``names`` is None)."""

    space: ParameterSpace
    names: tuple[str, ...] | None = None

    def __call__(self, n: int, generator: torch.Generator) -> Tensor:
        names = self.names or tuple(self.space.benchmarks)
        if not names:
            raise ParameterError("benchmark sampling needs benchmarks; the parameter space defines none")
        points = torch.stack([self.space.benchmark(b) for b in names])
        return points[torch.randint(len(points), (n,), generator=generator)]


@dataclass(frozen=True)
class FixedSampler:
    """Every θ equal to one point (e.g. the reference, for local score training)."""

    theta: Tensor

    def __call__(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.as_tensor(self.theta, dtype=torch.float64).reshape(1, -1).expand(n, -1).clone()
