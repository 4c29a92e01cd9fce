r"""Training data for likelihood-ratio and score estimators, and its HDF5 file format.

A :class:`TrainingData` holds one row per event:

========== ========= ===========================================================================
name       shape     meaning
========== ========= ===========================================================================
x          (n, d_x)  observables (or (n, …, d_x): a set or sequence per event, for estimators with an embedding)
theta      (n, p)    the parameter point the row conditions on (numerator of the ratio)
y          (n,)      1 if the event was drawn at ``theta``, 0 if drawn at the reference θ_ref
log_r_xz   (n,)      joint log ratio log r(x, z | θ, θ_ref)
t_xz       (n, p)    joint score t(x, z | θ) = ∇_θ log p(z | θ) at ``theta``
weights    (n,)      per-event weights; may be negative and are never dropped
morphing   (n, K)    optional: the event's weight ratio w(z|θ)/w(z|θ_ref) = m(θ) · a(z) in the quadratic
                     monomials m(θ) = (1, θ_i, θ_iθ_j (i ≤ j)) of θ − θ_ref, for simulators with a morphing basis
========== ========= ===========================================================================

The HDF5 layout is documented in ``docs/formats.md`` (format ``hepsbi.TrainingData``, schema version 1).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import torch
from torch import Tensor

from hepsbi._version import __version__
from hepsbi.data.hdf5 import (
    COMPRESSION,
    check_datasets,
    check_finite,
    damaged,
    json_attribute,
    open_checked,
    read,
)
from hepsbi.errors import DataError, HepsbiError
from hepsbi.files import atomic_path
from hepsbi.simulators.gold import joint_log_ratio, joint_score
from hepsbi.simulators.protocol import (
    Simulator,
    check_simulator,
    has_quadratic_morphing,
    is_weighted,
    observable_names,
    quadratic_size,
)
from hepsbi.space import FixedSampler, ParameterSpace, PriorSampler, ThetaSampler

__all__ = ["FORMAT", "SCHEMA_VERSION", "TrainingData", "inspect_training"]

FORMAT = "hepsbi.TrainingData"
SCHEMA_VERSION = 1
_COLUMNS = ("x", "theta", "y", "log_r_xz", "t_xz", "weights")
_INTEGER_TYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def inspect_training(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A summary of a training-data file (:meth:`TrainingData.save`): rows, share at θ (y = 1), weight sums,
    observable and θ ranges, the parameter space and provenance."""
    data = TrainingData.load(path)
    x = data.x.reshape(-1, data.x.shape[-1]).to(torch.float64)
    theta, w = data.theta.to(torch.float64), data.weights.to(torch.float64)
    return {
        "file": str(path),
        "format": f"{FORMAT} v{SCHEMA_VERSION}",
        "rows": data.x.shape[0],
        "at_theta": int((data.y > 0.5).sum()),
        "sum_weights": float(w.sum()),
        "negative_weights": {"count": int((w < 0).sum()), "sum": float(w[w < 0].sum())},
        "observables": {n: [float(x[:, j].min()), float(x[:, j].max())] for j, n in enumerate(data.observable_names)},
        "theta": {n: [float(theta[:, j].min()), float(theta[:, j].max())] for j, n in enumerate(data.space.names)},
        "morphing": data.morphing is not None,
        "provenance": data.provenance,
    }


@dataclass
class TrainingData:
    """Events with labels, joint log ratios, joint scores and weights (see the module docstring)."""

    x: Tensor
    theta: Tensor
    y: Tensor
    log_r_xz: Tensor
    t_xz: Tensor
    weights: Tensor
    space: ParameterSpace
    observable_names: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    morphing: Tensor | None = None

    def __repr__(self) -> str:
        """Sizes and names, not the tensors (a dataclass repr would print every row)."""
        n = self.x.shape[0]
        share = float(self.y.to(torch.float64).mean()) if n else 0.0
        extra = ", morphing" if self.morphing is not None else ""
        return (f"TrainingData({n} rows, x {tuple(self.x.shape[1:])} {self.observable_names}, θ {list(self.space.names)}, "
                f"{share:.0%} at θ (y = 1), Σ weights {float(self.weights.sum()):.6g}{extra})")

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        if self.x.dim() < 2:
            raise DataError(f"TrainingData.x has shape {tuple(self.x.shape)}, expected (n, d_x) or (n, ..., d_x)")
        expected = {
            "theta": (n, self.space.dim),
            "y": (n,),
            "log_r_xz": (n,),
            "t_xz": (n, self.space.dim),
            "weights": (n,),
        }
        for name, shape in expected.items():
            value = getattr(self, name)
            if value.dim() != len(shape) or any(s is not None and s != v for s, v in zip(shape, value.shape)):
                raise DataError(f"TrainingData.{name} has shape {tuple(value.shape)}, expected {shape} (None = any)")
        if not self.observable_names:
            self.observable_names = [f"x{i}" for i in range(self.x.shape[-1])]
        if len(self.observable_names) != self.x.shape[-1]:
            raise DataError(
                f"TrainingData: {len(self.observable_names)} observable names for {self.x.shape[-1]} columns of x"
            )
        for name in _COLUMNS:
            value = getattr(self, name)
            if not (value.dtype.is_floating_point or value.dtype in _INTEGER_TYPES):
                raise DataError(f"TrainingData.{name} has type {value.dtype}, expected real numbers")
            check_finite(value.numpy(), f"TrainingData.{name}",
                         self.observable_names if name == "x" else list(self.space.names) if name in ("theta", "t_xz") else None)
        if self.morphing is not None:
            k = quadratic_size(self.space.dim)
            if self.morphing.shape != (self.x.shape[0], k):
                raise DataError(f"TrainingData.morphing has shape {tuple(self.morphing.shape)}, expected "
                                f"({self.x.shape[0]}, {k}): the quadratic monomials of {self.space.dim} parameters")
            check_finite(self.morphing.numpy(), "TrainingData.morphing")
        labels = torch.unique(self.y)
        if not all(float(v) in (0.0, 1.0) for v in labels):
            raise DataError(f"TrainingData.y must be 0 or 1 (got values {[float(v) for v in labels[:5]]})")

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def reference(self) -> Tensor:
        """θ_ref, (p,)."""
        return self.space.reference

    # -- construction from a simulator --------------------------------------------------------------------
    @classmethod
    def from_simulator(
        cls,
        sim: Simulator,
        n: int,
        theta_sampler: ThetaSampler | None = None,
        reference: Tensor | None = None,
        seed: int = 0,
        reweight: bool | None = None,
    ) -> TrainingData:
        r"""Simulate ``n`` rows for parametrised ratio training.

        Half of the rows (y = 1) are drawn at θ from ``theta_sampler`` (the prior by default), the other half
        (y = 0) at the reference θ_ref while still conditioning on a θ from the sampler. Every row carries the
        joint log ratio log r(x, z | θ, θ_ref) and the joint score t(x, z | θ), from ``sim.joint_log_prob``
        by autodiff.

        Arguments:
            sim: any :class:`~hepsbi.simulators.Simulator`.
            n: number of rows (events).
            theta_sampler: ``sampler(n, generator) -> (n, p)``; default :class:`~hepsbi.space.PriorSampler`.
            reference: θ_ref, (p,); default ``sim.space.reference``.
            seed: seeds every random number drawn here.
            reweight: draw every event at θ_ref from ``sim.sample_weighted`` and represent θ by event
                weights (how physics simulators work: generate once, reweight); default: when the
                simulator has ``sample_weighted``.
        """
        sim = check_simulator(sim)
        if n < 2:
            raise DataError(f"TrainingData.from_simulator: n must be >= 2 (got {n})")
        space = sim.space
        sampler = theta_sampler or PriorSampler(space)
        ref = space.reference if reference is None else space.point(reference, what="reference")
        gen = torch.Generator().manual_seed(int(seed))
        theta = torch.as_tensor(sampler(n, gen), dtype=torch.float64)
        space.check(theta, what="theta_sampler output")
        y = (torch.arange(n) % 2 == 0).to(torch.float64)
        if reweight is None:
            reweight = is_weighted(sim)
        morphing = None
        if reweight:
            if not is_weighted(sim):
                raise DataError(f"{type(sim).__name__} has no sample_weighted(n, generator): cannot reweight")
            # Every event is drawn once at θ_ref; rows with y = 1 stand for θ through the weight
            # w · r(x, z | θ, θ_ref), an unbiased representation of p(x, z | θ).
            if not torch.equal(ref, space.reference):
                raise DataError("reweighting needs the simulator's own reference point")
            x, z, w = sim.sample_weighted(n, gen)  # type: ignore[attr-defined]
            log_r = joint_log_ratio(sim, z, theta, ref)
            weights = torch.where(y.bool(), w * torch.exp(log_r), w)
            if has_quadratic_morphing(sim):
                morphing = torch.as_tensor(sim.morphing_coefficients(z), dtype=torch.float64)  # type: ignore[attr-defined]
        else:
            morphing = None
            theta_gen = torch.where(y.bool().unsqueeze(1), theta, ref.expand(n, -1))
            x, z = sim.sample(theta_gen, gen)
            log_r = joint_log_ratio(sim, z, theta, ref)
            weights = torch.ones(n, dtype=torch.float64)
        return cls(
            x=torch.as_tensor(x, dtype=torch.float64),
            theta=theta,
            y=y,
            log_r_xz=log_r,
            t_xz=joint_score(sim, z, theta),
            weights=torch.as_tensor(weights, dtype=torch.float64),
            space=space,
            observable_names=observable_names(sim, x.shape[-1]),
            provenance=_provenance(sim, n, seed, type(sampler).__name__) | {"reweighted": bool(reweight)},
            morphing=morphing,
        )

    @classmethod
    def local(cls, sim: Simulator, n: int, at: Tensor | Mapping[str, float] | None = None, seed: int = 0) -> TrainingData:
        r"""Simulate ``n`` events at one point (θ_ref by default) for local score training (SALLY).

        Every row has y = 1, θ = ``at`` and the joint score t(x, z | at)."""
        sim = check_simulator(sim)
        point = sim.space.reference if at is None else sim.space.point(at, what="at")
        gen = torch.Generator().manual_seed(int(seed))
        theta = FixedSampler(point)(n, gen)
        if is_weighted(sim):
            x, z, w = sim.sample_weighted(n, gen)  # type: ignore[attr-defined]
            weights = w * torch.exp(joint_log_ratio(sim, z, theta, sim.space.reference))
        else:
            x, z = sim.sample(theta, gen)
            weights = torch.ones(n, dtype=torch.float64)
        return cls(
            x=torch.as_tensor(x, dtype=torch.float64),
            theta=theta,
            y=torch.ones(n, dtype=torch.float64),
            log_r_xz=joint_log_ratio(sim, z, theta, sim.space.reference),
            t_xz=joint_score(sim, z, theta),
            weights=torch.as_tensor(weights, dtype=torch.float64),
            space=sim.space,
            observable_names=observable_names(sim, x.shape[-1]),
            provenance=_provenance(sim, n, seed, "local"),
        )

    @classmethod
    def contrastive(cls, theta: Tensor, x: Tensor, space: ParameterSpace, negatives: int = 1, seed: int = 0,
                    observable_names: Sequence[str] | None = None) -> TrainingData:
        r"""Pairs for neural ratio estimation against the marginal (Hermans, Begy, Louppe, arXiv:1903.04057): the
        n simulations (θ_i, x_i) (y = 1) and, ``negatives`` times, the same θ_i with the x of a random permutation
        (y = 0, weight 1/``negatives``, so the classes weigh the same). A classifier of y (``carl``) then learns
        r(x | θ) = p(x | θ)/p(x), and π(θ) r(x | θ) is the posterior.

        More negatives reuse the same simulations for more contrast (sbi draws new ones every epoch). There is no
        joint ratio or score (zeros): train with ``carl``, not the gold-mining methods.

        Arguments:
            theta: (n, p) prior draws.  x: (n, \*x_shape) their simulations.  space: the parameters.
            negatives: shuffled copies.  seed: seeds the permutations.  observable_names: x's columns.
        """
        if int(negatives) < 1:
            raise DataError(f"TrainingData.contrastive: negatives must be >= 1 (got {negatives})")
        pairs = cls.simulations(theta, x, space, observable_names, what="TrainingData.contrastive")
        n, k = len(pairs), int(negatives)
        if n < 2:
            raise DataError(f"TrainingData.contrastive: needs n >= 2 simulations (got {n})")
        gen = torch.Generator().manual_seed(int(seed))
        shuffled = [pairs.x[torch.randperm(n, generator=gen)] for _ in range(k)]
        return cls(
            x=torch.cat([pairs.x, *shuffled]), theta=pairs.theta.repeat(1 + k, 1),
            y=torch.cat([pairs.y, torch.zeros(n * k, dtype=torch.float64)]),
            log_r_xz=torch.zeros(n * (1 + k), dtype=torch.float64),
            t_xz=torch.zeros(n * (1 + k), space.dim, dtype=torch.float64),
            weights=torch.cat([pairs.weights, torch.full((n * k,), 1.0 / k, dtype=torch.float64)]),
            space=space, observable_names=pairs.observable_names,
            provenance={"kind": "contrastive", "n": n, "negatives": k, "seed": int(seed), "hepsbi_version": __version__},
        )

    @classmethod
    def simulations(cls, theta: Tensor, x: Tensor, space: ParameterSpace,
                    observable_names: Sequence[str] | None = None, what: str = "TrainingData.simulations") -> TrainingData:
        r"""Plain simulations as training rows: θ_i (n, p) drawn from a prior and x_i (n, \*x_shape) ~ p(x | θ_i), each
        a row drawn at its θ (y = 1, weight 1, no joint ratio or score). What NPE (q(θ | x)) and NLE (p(x | θ)) train
        on when the simulator is a black box.

        Raises :class:`~hepsbi.errors.DataError` (naming ``what``) when the shapes disagree or a θ lies outside the
        space."""
        th = torch.as_tensor(theta, dtype=torch.float64)
        xs = torch.as_tensor(x, dtype=torch.float64)
        n = th.shape[0] if th.dim() else 0
        if th.dim() != 2 or th.shape[1] != space.dim or xs.dim() < 1 or xs.shape[0] != n or n < 1:
            raise DataError(f"{what}: theta must be (n, {space.dim}) and x (n, ...) with the same n >= 1 (got "
                            f"{tuple(th.shape)} and {tuple(xs.shape)})")
        space.check(th, what=f"{what} theta")
        return cls(
            x=xs, theta=th, y=torch.ones(n, dtype=torch.float64), log_r_xz=torch.zeros(n, dtype=torch.float64),
            t_xz=torch.zeros(n, space.dim, dtype=torch.float64), weights=torch.ones(n, dtype=torch.float64),
            space=space,
            observable_names=list(observable_names) if observable_names else [f"x{k}" for k in range(xs.shape[-1])],
            provenance={"kind": "simulations", "n": n, "hepsbi_version": __version__},
        )

    # -- views ---------------------------------------------------------------------------------------------
    @classmethod
    def concatenate(cls, parts: Sequence[TrainingData]) -> TrainingData:
        """Rows of several data sets in order (chunks of one run); they must share space and observables.
        The provenance is the first part's, with ``n_samples`` the total and ``chunks`` their number."""
        if not parts:
            raise DataError("nothing to concatenate")
        first = parts[0]
        for i, p in enumerate(parts[1:], 1):
            if p.space.to_dict() != first.space.to_dict() or p.observable_names != first.observable_names:
                raise DataError(f"part {i} has another parameter space or other observables than part 0")
        cols = {name: torch.cat([getattr(p, name) for p in parts]) for name in _COLUMNS}
        provenance = dict(first.provenance) | {"n_samples": int(cols["x"].shape[0]), "chunks": len(parts)}
        blocks = [p.morphing for p in parts if p.morphing is not None]
        morphing = torch.cat(blocks) if len(blocks) == len(parts) else None
        return cls(**cols, space=first.space, observable_names=list(first.observable_names), provenance=provenance,
                   morphing=morphing)

    def subset(self, index: Tensor) -> TrainingData:
        """Rows ``index`` (a 1-D long or bool tensor) as new TrainingData."""
        cols = {name: getattr(self, name)[index] for name in _COLUMNS}
        return TrainingData(**cols, space=self.space, observable_names=list(self.observable_names),
                            provenance=dict(self.provenance), morphing=None if self.morphing is None else self.morphing[index])

    @property
    def reference_weights(self) -> Tensor:
        """Each row's weight as an event at θ_ref, (n,): the weight of y = 0 rows, and w / r(x, z | θ, θ_ref) for
        y = 1 rows of reweighted data (whose weight carries the joint ratio); ``weights`` for sampled data."""
        if not self.provenance.get("reweighted"):
            return self.weights
        return torch.where(self.y > 0.5, self.weights * torch.exp(-self.log_r_xz), self.weights)

    def balanced(self, observable: str | int = 0, bins: int = 20) -> TrainingData:
        r"""Reweight events by a function h(x) of one observable so that each of ``bins`` quantile bins holds
        the same total reference weight.

        Multiplying both classes by the same h(x) leaves every loss's pointwise minimiser — the ratio r(x) and
        the score — unchanged, while giving the sparse but informative regions (e.g. the high-mass tail of a
        mass-sliced sample, whose events carry tiny weights) a fair share of the training signal. h is built
        from the y = 0 rows (drawn at θ_ref; all rows for local data) and applied to all rows.
        """
        if self.x.dim() != 2:
            raise DataError(f"balanced: needs one row of observables per event, x has shape {tuple(self.x.shape)}")
        names = list(self.observable_names)
        column = names.index(observable) if observable in names else (observable if isinstance(observable, int) else -1)
        if not 0 <= column < self.x.shape[1]:
            raise DataError(f"balanced: no observable {observable!r} in {self.observable_names}")
        values = self.x[:, column].contiguous()
        ref = self.y < 0.5
        if not ref.any():  # local data (all rows drawn at one point): balance on all of them
            ref = torch.ones_like(ref)
        if ref.sum() < bins:
            raise DataError(f"balanced: {int(ref.sum())} reference events are too few for {bins} bins")
        edges = torch.quantile(values[ref], torch.linspace(0, 1, bins + 1, dtype=torch.float64)[1:-1])
        index = torch.bucketize(values, edges)
        per_bin = torch.zeros(bins, dtype=torch.float64).index_add(0, index[ref], self.weights[ref])
        if torch.any(per_bin <= 0):
            raise DataError("balanced: a bin has no positive reference weight; use fewer bins")
        h = (per_bin.sum() / bins) / per_bin
        out = self.subset(torch.arange(len(self)))
        out.weights = self.weights * h[index]
        out.provenance = {**self.provenance, "balanced": {"observable": self.observable_names[column], "bins": bins}}
        return out

    def split(self, fraction: float, seed: int = 0) -> tuple[TrainingData, TrainingData]:
        """Random split into (rest, held-out) with ``fraction`` of rows held out."""
        if not 0.0 < fraction < 1.0:
            raise DataError(f"split fraction must be in (0, 1) (got {fraction})")
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        n_out = max(1, int(round(fraction * len(self))))
        return self.subset(perm[n_out:]), self.subset(perm[:n_out])

    # -- persistence -------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write to HDF5 atomically (schema in ``docs/formats.md``). Returns the path."""
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = FORMAT
                f.attrs["schema_version"] = SCHEMA_VERSION
                f.attrs["hepsbi_version"] = __version__
                f.attrs["parameter_space"] = json.dumps(self.space.to_dict())
                f.attrs["observable_names"] = json.dumps(list(self.observable_names))
                f.attrs["provenance"] = json.dumps(self.provenance)
                for name in _COLUMNS:
                    f.create_dataset(name, data=getattr(self, name).numpy(), **COMPRESSION)
                if self.morphing is not None:
                    f.create_dataset("morphing", data=self.morphing.numpy(), **COMPRESSION)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrainingData:
        """Read a file written by :meth:`save`; raises :class:`~hepsbi.errors.DataError` naming the file and
        the problem when it is not one."""
        path = Path(path)
        with open_checked(path, FORMAT, SCHEMA_VERSION, _COLUMNS) as f, damaged(path):
            try:
                space = ParameterSpace.from_dict(json_attribute(f, "parameter_space"))
            except (KeyError, TypeError, ValueError, HepsbiError) as exc:
                raise DataError(f"{path}: attribute 'parameter_space' does not describe a parameter space "
                                f"({type(exc).__name__}: {exc})") from None
            names = json_attribute(f, "observable_names")
            provenance = json_attribute(f, "provenance") if "provenance" in f.attrs else {}
            if not isinstance(names, list) or not isinstance(provenance, dict):
                raise DataError(f"{path}: observable_names must be a list and provenance a mapping")
            check_datasets(f, {"x": (None,) * (f["x"].ndim - 1) if f["x"].ndim >= 2 else (None,), "theta": (space.dim,),
                               "y": (), "log_r_xz": (), "t_xz": (space.dim,), "weights": ()})
            cols = {c: torch.from_numpy(read(f, c)) for c in _COLUMNS}
            if "morphing" in f:
                check_datasets(f, {"morphing": (quadratic_size(space.dim),)})
                cols["morphing"] = torch.from_numpy(read(f, "morphing"))
        try:
            data = cls(**cols, space=space, observable_names=names, provenance=provenance)
            space.check(data.theta, what="theta")
        except HepsbiError as exc:
            raise DataError(f"{path}: {exc}") from None
        return data


def _provenance(sim: Simulator, n: int, seed: int, sampler: str) -> dict[str, Any]:
    return {
        "simulator": f"{type(sim).__module__}.{type(sim).__qualname__}",
        "n": int(n),
        "seed": int(seed),
        "theta_sampler": sampler,
        "hepsbi_version": __version__,
    }
