r"""LHE files with reweighting benchmarks as a weighted simulator: morphing from ``<rwgt>`` weights, and scale and
PDF weight variations as nuisance parameters.

MadGraph's reweight module writes, per event, the weight w_b at each benchmark point θ_b (``<wgt id=…>``). When
|M|² is a polynomial of degree ``order`` in θ, every event's weight is w(θ) = c · m(θ − θ_ref) with m the monomials
(:mod:`hepsbi.simulators.pool`); B ≥ K benchmarks fix the K coefficients c by least squares
(:func:`~hepsbi.physics.morphing.solve_benchmarks`, with the condition number of the benchmark matrix and the
largest residual recorded in the provenance). The pool weight of an event is its morphed weight at θ_ref (pb,
signed) and its latent record keeps a = c / c₀, so joint ratios, joint scores, σ(θ), the Asimov data and the
morphing-aware estimator work as on the built-in Drell–Yan.

Weight variations (Les Houches 2013 weights, recognised by their MUR/MUF/PDF attributes — never by group name) give
per-event factors relative to the event's nominal weight XWGTUP:

* ``scale``: the envelope of the scale variations (μ_R or μ_F ≠ 1), up = max, down = min per event;
* ``pdf``: the members of the PDF set other than the central one, up/down = 1 ± their standard deviation (Monte
  Carlo replicas);
* ``{"up": id, "down": id}``: two named weights.

They enter the likelihood as :class:`~hepsbi.inference.ShapeSys` (code-4 interpolation of the per-event factors),
``kind: weights`` in a spec's ``inference.systematics``. Factors are ratios of one event's own weights — no
logarithm of a weight, whatever its sign; a factor ≤ 0 (the variation flips the event's sign) is set to 1 and
counted in the provenance. The variations are taken as θ-independent factors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hepsbi.data.events import Events
from hepsbi.errors import SimulatorError
from hepsbi.files import path_list
from hepsbi.physics.detector import FastDetector
from hepsbi.physics.lhe import WeightInfo
from hepsbi.physics.lhe_sample import DEFAULT_OBSERVABLES, LATENT_NAMES, LHESample
from hepsbi.physics.morphing import solve_benchmarks
from hepsbi.physics.observables import OBSERVABLES
from hepsbi.simulators.pool import MorphedPool
from hepsbi.space import Parameter, ParameterSpace

__all__ = ["LHEMorphed", "count_events"]


def count_events(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> int:
    """The number of ``<event>`` blocks in LHE files (one pass over their lines)."""
    from hepsbi.physics.lhe import open_text

    total = 0
    for path in path_list(paths):
        with open_text(path) as stream:
            total += sum(1 for line in stream if line.lstrip().startswith("<event"))
    return total


class LHEMorphed(MorphedPool):
    r"""Events of LHE files with benchmark weights as a weighted simulator (module docstring).

    Arguments:
        paths: LHE files (plain or gzipped).
        parameters: name → ``{"low": …, "high": …}`` (optionally ``reference`` (default 0) and ``unit``), in the
            order of θ.
        benchmarks: ``<wgt>`` id → the point it was computed at, ``{name: value}`` (missing names: the reference).
        order: 2 (quadratic weights, K = 1 + p + p(p+1)/2 benchmarks at least) or 1 (linear, K = 1 + p).
        variations: nuisance name → ``"scale"``, ``"pdf"`` or ``{"up": id, "down": id}``.
        observables, lepton_ids, detector, chunk_events, seed, n_events: as :class:`~hepsbi.physics.LHESample`
            (``detector`` a :class:`FastDetector` or its fields).
        max_condition: the largest condition number of the benchmark matrix accepted.

    Attributes:
        fixed_sample: True — the events are those of the files: a run reads them in one pass (one chunk) and has no
            second, independent pool.
        input_files: per file its resolved path, size and modification time — part of a run's stage key, so a file
            replaced under the same name is read again instead of a cached pool being reused.
    """

    fixed_sample = True

    def __init__(self, paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                 parameters: Mapping[str, Mapping[str, Any]], benchmarks: Mapping[str, Mapping[str, float]],
                 order: int = 2, variations: Mapping[str, str | Mapping[str, str]] | None = None,
                 observables: Sequence[str] = DEFAULT_OBSERVABLES, lepton_ids: Sequence[int] = (11, 13),
                 detector: FastDetector | Mapping[str, Any] | None = None, chunk_events: int = 50_000, seed: int = 0,
                 n_events: int | None = None, max_condition: float = 1e8):
        if not parameters:
            raise SimulatorError("parameters: name at least one parameter, {name: {low: ..., high: ...}}",
                                 key="parameters")
        try:
            self.space = ParameterSpace([Parameter(name, **dict(fields)) for name, fields in parameters.items()])
        except (TypeError, ValueError) as exc:
            raise SimulatorError(f"parameters: {exc}", key="parameters") from None
        if order not in (1, 2):
            raise SimulatorError(f"order must be 1 (linear) or 2 (quadratic) (got {order})", key="order")
        self.morphing_order = int(order)
        unknown = [o for o in observables if o not in OBSERVABLES]
        if unknown or not observables:
            raise SimulatorError(f"unknown observable(s) {unknown}; available: {sorted(OBSERVABLES)}", key="observables")
        self.observable_names = tuple(observables)
        self.benchmarks = {str(k): dict(v) for k, v in benchmarks.items()}
        for wid, point in self.benchmarks.items():
            stray = [n for n in point if n not in self.space.names]
            if stray:
                raise SimulatorError(f"benchmarks.{wid}: {stray[0]!r} is not a parameter ({list(self.space.names)})",
                                     key=f"benchmarks.{wid}")
        self.points = torch.stack([self.space.point(point, what=f"benchmarks.{wid}")
                                   for wid, point in self.benchmarks.items()]) if self.benchmarks else torch.zeros(0)
        n_components = self.n_components
        if len(self.benchmarks) < n_components:
            raise SimulatorError(f"benchmarks: {len(self.benchmarks)} given, a polynomial of order {order} in "
                                 f"{self.space.dim} parameter(s) needs at least {n_components}", key="benchmarks")
        self.max_condition = float(max_condition)
        self.detector = FastDetector(**detector) if isinstance(detector, Mapping) else (detector or FastDetector())
        self.seed = int(seed)
        self.n_events = count_events(paths) if n_events is None else int(n_events)
        self.chunk_events, self.lepton_ids = int(chunk_events), tuple(lepton_ids)
        self.paths = paths
        probe = LHESample(paths, observables, lepton_ids, self.detector, keep_weights=list(self.benchmarks))
        declared = probe.headers[0].weights
        self.variations = {name: self._variation_ids(name, spec, declared) for name, spec in (variations or {}).items()}
        self._events: Events | None = None
        self._sigma_coefficients: Tensor | None = None

    @staticmethod
    def _variation_ids(name: str, spec: str | Mapping[str, str], declared: list[WeightInfo]) -> tuple[str, list[str]]:
        """(how, weight ids) of one variation: ``envelope`` of the scale weights, ``sd`` of the PDF members or the
        ``pair`` (up, down)."""
        ids = [w.id for w in declared]
        if isinstance(spec, Mapping):
            pair = [spec.get("up"), spec.get("down")]
            missing = [p for p in pair if p not in ids]
            if set(spec) != {"up", "down"} or missing:
                raise SimulatorError(f"variations.{name}: give {{up: <weight id>, down: <weight id>}} among the file's "
                                     f"weights {ids[:20]}", key=f"variations.{name}")
            return "pair", [str(p) for p in pair]
        if spec == "scale":
            chosen = [w.id for w in declared if w.kind == "scale" and (w.mur, w.muf) != (1.0, 1.0)]
            how = "envelope"
        elif spec == "pdf":
            pdfs = [w for w in declared if w.kind == "pdf" and w.pdf is not None]
            central = min((w.pdf for w in pdfs if w.pdf is not None), default=None)  # LHAPDF: member 0 of a set is its lowest id
            chosen = [w.id for w in pdfs if w.pdf != central]
            how = "sd"
        else:
            raise SimulatorError(f"variations.{name}: 'scale', 'pdf' or {{up: id, down: id}} (got {spec!r})",
                                 key=f"variations.{name}")
        if not chosen:
            raise SimulatorError(f"variations.{name}: the file declares no {spec} variation", key=f"variations.{name}")
        return how, chosen

    # -- generation ------------------------------------------------------------------------------------------
    @property
    def input_files(self) -> list[list[Any]]:
        return [[str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns] for path in path_list(self.paths)]

    @property
    def latent_names(self) -> list[str]:
        return [*LATENT_NAMES, *(f"morph_{k}" for k in range(self.n_components)),
                *(f"{side}:{name}" for name in self.variations for side in ("up", "down"))]

    def generate(self, n_events: int | None = None, seed: int | None = None) -> Events:
        """Read the files (``n_events`` events at most), solve every event's morphing coefficients from its
        benchmark weights and its variation factors; the result becomes the pool (weights in pb at θ_ref)."""
        n_events = self.n_events if n_events is None else int(n_events)
        variation_ids = sorted({i for _, ids in self.variations.values() for i in ids} - set(self.benchmarks))
        sample = LHESample(self.paths, self.observable_names, self.lepton_ids, self.detector, self.chunk_events,
                           self.seed if seed is None else int(seed), n_events,
                           keep_weights=[*self.benchmarks, *variation_ids])
        raw = sample.generate()
        n_lat, n_bench = len(LATENT_NAMES), len(self.benchmarks)
        at_benchmarks = torch.from_numpy(raw.z[:, n_lat:n_lat + n_bench])
        matrix = self.morphing_basis(self.points)
        scaled = self.morphing_basis(self.space.reference + (self.points - self.space.reference)
                                     / (self.space.high - self.space.low))
        fit = solve_benchmarks(matrix, scaled, at_benchmarks, self.max_condition)
        reference = fit.coefficients[:, 0].numpy()  # the morphed weight at θ_ref, pb
        tiny = np.abs(reference) <= 1e-12 * np.abs(reference).max()
        if tiny.any():
            raise SimulatorError(f"{int(tiny.sum())} event(s) have no weight at the reference point "
                                 f"{dict(zip(self.space.names, self.space.reference.tolist()))}: choose a reference "
                                 "where every event contributes", key="parameters")
        coefficients = (fit.coefficients / fit.coefficients[:, :1]).numpy()
        kept = {wid: raw.z[:, n_lat + k] for k, wid in enumerate([*self.benchmarks, *variation_ids])}
        nominal = raw.weights
        factors, flipped = [], {}
        for name, (how, ids) in self.variations.items():
            ratios = np.stack([kept[i] / nominal for i in ids], axis=1)
            if how == "envelope":
                up, down = ratios.max(axis=1), ratios.min(axis=1)
            elif how == "sd":
                spread = ratios.std(axis=1, ddof=1) if ratios.shape[1] > 1 else np.abs(ratios[:, 0] - 1)
                up, down = 1 + spread, 1 - spread
            else:
                up, down = ratios[:, 0], ratios[:, 1]
            bad = (up <= 0) | (down <= 0) | ~np.isfinite(up) | ~np.isfinite(down)
            flipped[name] = int(bad.sum())
            factors += [np.where(bad, 1.0, up), np.where(bad, 1.0, down)]
        z = np.concatenate([raw.z[:, :n_lat], coefficients, np.stack(factors, axis=1) if factors
                            else np.zeros((len(raw), 0))], axis=1)
        provenance = raw.provenance | {
            "simulator": "lhe", "parameters": list(self.space.names), "benchmarks": self.benchmarks,
            "morphing_order": self.morphing_order, "benchmark_condition": fit.condition,
            "benchmark_residual": fit.residual, "variations": {n: {"kind": h, "weights": i}
                                                               for n, (h, i) in self.variations.items()},
            "variation_factors_set_to_1": flipped,
            "nominal_vs_reference_max_rel": float(np.max(np.abs(nominal - reference) / np.abs(reference)))}
        events = Events(raw.x, z, reference, list(self.observable_names), self.latent_names, provenance)
        self.use_events(events)
        return events

    def check_events(self, events: Events) -> None:
        """Only events with this simulator's latent columns can be its pool."""
        if events.latent_names != self.latent_names:
            raise SimulatorError(f"these events were not made by this LHE simulator (latent columns "
                                 f"{events.latent_names[:12]}, expected {self.latent_names[:12]})")

    # -- morphing and variations -----------------------------------------------------------------------------
    def morphing_coefficients(self, z: Tensor | np.ndarray) -> Tensor:
        """a (n, K) of the latent records: r(θ) = a · m(θ − θ_ref)."""
        start = len(LATENT_NAMES)
        return torch.as_tensor(z, dtype=torch.float64)[:, start:start + self.n_components]

    @property
    def variation_names(self) -> list[str]:
        return list(self.variations)

    def variation(self, name: str, z: Tensor | np.ndarray) -> tuple[Tensor, Tensor]:
        """Per-event weight factors (up (n,), down (n,)) of the variation ``name`` from the latent records z."""
        if name not in self.variations:
            raise SimulatorError(f"no weight variation {name!r}; this simulator has {self.variation_names}")
        column = self.latent_names.index(f"up:{name}")
        z = torch.as_tensor(z, dtype=torch.float64)
        return z[:, column], z[:, column + 1]
