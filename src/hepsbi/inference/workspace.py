r"""Binned models from hepsbi events: histogram any observable or learned summary (e.g. the SALLY score) into a
pyhf JSON workspace, for :mod:`hepsbi.inference.pyhf_bridge` and ``hepsbi limits``.

Each :class:`Sample` is a set of weighted events (expected events per event) with its systematics. In the
workspace a sample gets:

* ``normfactor`` (the parameter of interest, default ``mu``) if it is the signal;
* ``normsys`` for every :class:`~hepsbi.inference.nuisance.NormSys` (hi/lo factors);
* ``histosys`` for every per-event :class:`~hepsbi.inference.nuisance.ShapeSys`: the histograms of the
  events weighted by the up and down factors (rate and shape together);
* ``staterror`` (one per channel, shared by its samples, named ``staterror_<channel>``): the Monte Carlo
  statistical error √Σw² per bin.

pyhf builds and validates the model (its JSON schema); hepsbi only fills histograms.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepsbi.errors import InferenceError
from hepsbi.files import write_json
from hepsbi.inference.nuisance import NormSys, ShapeSys

__all__ = ["Sample", "histogram_workspace", "write_workspace"]


@dataclass
class Sample:
    """Weighted events of one process: ``values`` (n,) of the histogrammed quantity, ``weights`` (n,) expected
    events per event, its systematics and whether it carries the signal-strength normfactor."""

    name: str
    values: np.ndarray
    weights: np.ndarray
    norm: Sequence[NormSys] = ()
    shape: Sequence[ShapeSys] = ()
    signal: bool = False
    _counts: dict[str, list[float]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=float)
        self.weights = np.asarray(self.weights, dtype=float)
        if self.values.shape != self.weights.shape or self.values.ndim != 1:
            raise InferenceError(f"sample {self.name!r}: values and weights must both be (n,) "
                                 f"(got {self.values.shape}, {self.weights.shape})")
        for s in self.shape:
            if tuple(s.up.shape) != self.values.shape:
                raise InferenceError(f"sample {self.name!r}: shape systematic {s.name!r} has {tuple(s.up.shape)} "
                                     f"factors for {len(self.values)} events")


def _histogram(values: np.ndarray, weights: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.histogram(values, bins=edges, weights=weights)[0]


def histogram_workspace(
    edges: Sequence[float],
    samples: Sequence[Sample],
    observed: Sequence[float] | None = None,
    poi: str = "mu",
    channel: str = "sr",
    staterror: bool = True,
    measurement: str = "measurement",
) -> dict[str, Any]:
    """A one-channel pyhf workspace (JSON document) from weighted events binned in ``edges``.

    Arguments:
        edges: bin edges (B+1,), increasing; events outside are dropped.
        samples: the processes; exactly one or more with ``signal=True`` get the normfactor ``poi``.
        observed: observed counts (B,); default the Asimov counts (sum of the nominal histograms).
    """
    import pyhf

    bins = np.asarray(edges, dtype=float)
    if bins.ndim != 1 or len(bins) < 2 or np.any(np.diff(bins) <= 0):
        raise InferenceError(f"edges must increase strictly, at least two of them (got {bins.tolist()})")
    if not any(s.signal for s in samples):
        raise InferenceError(f"no sample is marked signal=True to carry the normfactor {poi!r}")
    names = [s.name for s in samples]
    if len(set(names)) != len(names):
        raise InferenceError(f"sample names must be unique (got {names})")
    stat_name = f"staterror_{channel}"
    total = np.zeros(len(bins) - 1)
    entries = []
    for s in samples:
        nominal = _histogram(s.values, s.weights, bins)
        if np.any(nominal < 0):
            raise InferenceError(f"sample {s.name!r} has negative expected counts in bins "
                                 f"{np.flatnonzero(nominal < 0).tolist()}; HistFactory needs non-negative yields")
        total += nominal
        modifiers: list[dict[str, Any]] = []
        if s.signal:
            modifiers.append({"name": poi, "type": "normfactor", "data": None})
        for n in s.norm:
            modifiers.append({"name": n.name, "type": "normsys", "data": {"hi": float(n.up), "lo": float(n.down)}})
        for sh in s.shape:
            hi = _histogram(s.values, s.weights * sh.up.numpy(), bins)
            lo = _histogram(s.values, s.weights * sh.down.numpy(), bins)
            modifiers.append({"name": sh.name, "type": "histosys", "data": {"hi_data": hi.tolist(), "lo_data": lo.tolist()}})
        if staterror:
            error = np.sqrt(_histogram(s.values, s.weights**2, bins))
            modifiers.append({"name": stat_name, "type": "staterror", "data": error.tolist()})
        entries.append({"name": s.name, "data": nominal.tolist(), "modifiers": modifiers})
    data = total if observed is None else np.asarray(observed, dtype=float)
    if data.shape != total.shape:
        raise InferenceError(f"observed counts have {data.shape[0] if data.ndim else 0} bins, the histograms {len(total)}")
    spec = {
        "channels": [{"name": channel, "samples": entries}],
        "observations": [{"name": channel, "data": data.tolist()}],
        "measurements": [{"name": measurement, "config": {"poi": poi, "parameters": []}}],
        "version": "1.0.0",
    }
    try:
        pyhf.Workspace(spec)
    except Exception as exc:  # pyhf raises schema and model errors of several kinds
        raise InferenceError(f"the workspace does not validate: {exc}") from None
    return spec


def write_workspace(spec: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a workspace document atomically; ``hepsbi limits PATH`` then fits it."""
    return write_json(Path(path), spec)
