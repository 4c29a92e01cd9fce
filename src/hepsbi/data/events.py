r"""Weighted events and the HDF5 event store.

:class:`Events` holds observables x (n, d_x), latent variables z (n, d_z) and weights (n,) with column
names and provenance. The :class:`EventStore` writes one HDF5 file per chunk (atomically) and merges them
into one file by copying their stored datasets (memory O(1), about the cost of a file copy). Format
``hepsbi.Events``, schema version 1, documented in ``docs/formats.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

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
from hepsbi.errors import DataError
from hepsbi.files import atomic_path

__all__ = ["Events", "EventStore", "EVENTS_FORMAT", "EVENTS_SCHEMA_VERSION", "inspect_events", "merge_event_files"]

EVENTS_FORMAT = "hepsbi.Events"
EVENTS_SCHEMA_VERSION = 1
_COLUMNS = ("x", "z", "weights")


@dataclass
class Events:
    """Weighted events: x (n, d_x), z (n, d_z), weights (n,) — negative weights allowed and kept."""

    x: np.ndarray
    z: np.ndarray
    weights: np.ndarray
    observable_names: list[str]
    latent_names: list[str]
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.weights)
        if self.x.ndim != 2 or self.z.ndim != 2 or self.weights.ndim != 1 or len(self.x) != n or len(self.z) != n:
            raise DataError(f"Events: inconsistent shapes x {self.x.shape}, z {self.z.shape}, weights {self.weights.shape}")
        if self.x.shape[1] != len(self.observable_names) or self.z.shape[1] != len(self.latent_names):
            raise DataError(f"Events: {len(self.observable_names)} observable and {len(self.latent_names)} latent names "
                            f"for x with {self.x.shape[1]} and z with {self.z.shape[1]} columns")
        check_finite(self.x, "Events.x", self.observable_names)
        check_finite(self.z, "Events.z", self.latent_names)
        check_finite(self.weights, "Events.weights")

    def __len__(self) -> int:
        return len(self.weights)

    def select(self, index: np.ndarray) -> Events:
        return Events(self.x[index], self.z[index], self.weights[index], list(self.observable_names),
                      list(self.latent_names), dict(self.provenance))

    # -- one file ------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write to HDF5 atomically."""
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                _write_header(f, self.observable_names, self.latent_names, self.provenance)
                for name in _COLUMNS:
                    f.create_dataset(name, data=getattr(self, name), **COMPRESSION)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Events:
        """Read a whole file written by :meth:`save` or :meth:`EventStore.merge`; every check of
        :func:`_open` and finite values (a :class:`DataError` names the file, column and row otherwise)."""
        with _open(path) as f, damaged(path):
            columns = read(f, "x"), read(f, "z"), read(f, "weights")
            names, provenance = _names(f), json_attribute(f, "provenance")
        try:
            return cls(*columns, *names, provenance)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None


def _write_header(f: h5py.File, obs: list[str], latent: list[str], provenance: dict[str, Any]) -> None:
    f.attrs["format"] = EVENTS_FORMAT
    f.attrs["schema_version"] = EVENTS_SCHEMA_VERSION
    f.attrs["hepsbi_version"] = __version__
    f.attrs["observable_names"] = json.dumps(list(obs))
    f.attrs["latent_names"] = json.dumps(list(latent))
    f.attrs["provenance"] = json.dumps(provenance)


def _names(f: h5py.File) -> tuple[list[str], list[str]]:
    names = json_attribute(f, "observable_names"), json_attribute(f, "latent_names")
    if not all(isinstance(n, list) and all(isinstance(v, str) for v in n) for n in names):
        raise DataError(f"{f.filename}: observable_names and latent_names must be lists of names")
    return names


def _open(path: str | os.PathLike[str]) -> h5py.File:
    """An events file, checked: format, schema version, the three datasets with the shapes their column names
    give (x (n, observables), z (n, latent), weights (n,)) and real numeric types. The caller closes it."""
    f = open_checked(path, EVENTS_FORMAT, EVENTS_SCHEMA_VERSION, _COLUMNS)
    try:
        with damaged(path):
            obs, latent = _names(f)
            check_datasets(f, {"x": (len(obs),), "z": (len(latent),), "weights": ()})
            json_attribute(f, "provenance")
    except DataError:
        f.close()
        raise
    return f


class EventStore:
    """Chunked event files in a directory, merged into one file without loading everything.

    Example::

        store = EventStore("run/events")
        for i, chunk in enumerate(chunks):
            store.write_chunk(i, chunk)
        store.merge("run/events.h5")
        for part in EventStore.iterate("run/events.h5", chunk_size=100_000):
            ...
    """

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)

    def chunk_path(self, index: int) -> Path:
        return self.directory / f"chunk_{index:05d}.h5"

    def write_chunk(self, index: int, events: Events) -> Path:
        """Write chunk ``index`` atomically."""
        return events.save(self.chunk_path(index))

    def chunks(self) -> list[Path]:
        return sorted(self.directory.glob("chunk_*.h5"))

    def merge(self, path: str | os.PathLike[str], provenance: dict[str, Any] | None = None) -> Path:
        """Concatenate every chunk into ``path`` (see :func:`merge_event_files`)."""
        chunks = self.chunks()
        if not chunks:
            raise DataError(f"{self.directory}: no chunks to merge")
        return merge_event_files(chunks, path, {"chunks": [c.name for c in chunks], **(provenance or {})})

    @staticmethod
    def iterate(path: str | os.PathLike[str], chunk_size: int = 100_000) -> Iterator[Events]:
        """Read a merged file in pieces of ``chunk_size`` events."""
        with _open(path) as f, damaged(path):
            obs, latent = _names(f)
            prov = json_attribute(f, "provenance")
            n = f["weights"].shape[0]
            for start in range(0, n, chunk_size):
                rows = slice(start, min(n, start + chunk_size))
                try:
                    yield Events(read(f, "x", rows), read(f, "z", rows), read(f, "weights", rows), obs, latent, prov)
                except DataError as exc:
                    raise DataError(f"{path} (rows from {start}): {exc}") from None


#: group of a merged file that holds its inputs' datasets, one subgroup per input (``parts/00000``, ...)
_PARTS = "parts"


def _parts(f: h5py.File) -> list[h5py.Group]:
    """The groups whose ``x``, ``z``, ``weights`` hold a file's rows in order: the root of a plain file, the
    parts of a merged one."""
    if _PARTS in f and f["weights"].is_virtual:
        return [f[_PARTS][name] for name in sorted(f[_PARTS])]
    return [f]


def _join(out: h5py.File, name: str, sources: list[str], sizes: list[int], shape: tuple[int, ...]) -> None:
    """Dataset ``name`` of ``out``: the float64 datasets ``sources`` (in ``out``, of ``sizes`` rows, each row of
    ``shape``) one after the other, as a virtual dataset without a modification time (same inputs, same bytes)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    total = (sum(sizes), *shape)
    space = h5py.h5s.create_simple(total)
    start = 0
    for source, n in zip(sources, sizes):
        space.select_hyperslab((start,) + (0,) * len(shape), (n, *shape))
        dcpl.set_virtual(space, b".", source.encode(), h5py.h5s.create_simple((n, *shape)))
        start += n
    h5py.h5d.create(out.id, name.encode(), h5py.h5t.IEEE_F64LE, h5py.h5s.create_simple(total), dcpl=dcpl)


def merge_event_files(files: Sequence[str | os.PathLike[str]], path: str | os.PathLike[str],
                      provenance: dict[str, Any] | None = None, verify: bool = True) -> Path:
    """Concatenate event files in order into ``path`` (atomically); the provenance is the first file's updated
    with ``provenance``.

    The inputs' datasets are copied as they are stored (compressed HDF5 chunks are not decoded and encoded
    again) into ``/parts/NNNNN``, and ``x``, ``z``, ``weights`` become HDF5 virtual datasets joining the parts
    in order: a merge costs about a file copy and no memory, and readers (any HDF5 >= 1.10) see plain
    datasets. The merged file does not refer to its inputs; merged files merge again (their parts are
    copied).

    With ``verify`` (the default) every input is read once — every chunk decoded, every value checked finite —
    before anything is copied: HDF5 can abort the process when it copies a damaged file. A run's merge passes
    ``verify=False``: its inputs are stage outputs whose SHA-256 checksums were verified."""
    chunks = [Path(f) for f in files]
    if not chunks:
        raise DataError("no event files to merge")
    with _open(chunks[0]) as f:
        obs, latent = _names(f)
        merged_prov = {**json_attribute(f, "provenance"), **(provenance or {})}
    for chunk in chunks:  # every input checked (shapes from its names) before anything is written
        with _open(chunk) as f, damaged(chunk):
            if _names(f) != (obs, latent):
                raise DataError(f"{chunk}: columns {_names(f)} differ from those of {chunks[0]} {(obs, latent)}")
        if verify:
            for _ in EventStore.iterate(chunk, chunk_size=200_000):
                pass
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as out:
            _write_header(out, obs, latent, merged_prov)
            parts = out.create_group(_PARTS)
            sizes: list[int] = []
            for chunk in chunks:
                with _open(chunk) as f, damaged(chunk):
                    for source in _parts(f):
                        n = source["weights"].shape[0]
                        if n == 0:
                            continue
                        target = parts.create_group(f"{len(sizes):05d}")
                        for name in _COLUMNS:
                            f.copy(source[name], target, name=name)  # stored bytes, not re-encoded
                        sizes.append(n)
            row_shapes = {"x": (len(obs),), "z": (len(latent),), "weights": ()}  # the names fix the columns
            for name in _COLUMNS:
                _join(out, name, [f"{_PARTS}/{i:05d}/{name}" for i in range(len(sizes))], sizes, row_shapes[name])
    return Path(path)


def inspect_events(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A summary of an events file: counts, weight sums (negative ones too), column ranges, provenance."""
    with _open(path) as f, damaged(path):
        obs, latent = _names(f)
        w = f["weights"]
        n = w.shape[0]
        total, negative, n_neg = 0.0, 0.0, 0
        x_min = np.full(len(obs), np.inf)
        x_max = np.full(len(obs), -np.inf)
        for start in range(0, n, 200_000):
            rows = slice(start, start + 200_000)
            wc, xc = read(f, "weights", rows), read(f, "x", rows)
            check_finite(wc, f"{path}: weights", first_row=start)
            check_finite(xc, f"{path}: x", obs, first_row=start)
            total += float(wc.sum())
            negative += float(wc[wc < 0].sum())
            n_neg += int((wc < 0).sum())
            if len(xc):
                x_min, x_max = np.minimum(x_min, xc.min(0)), np.maximum(x_max, xc.max(0))
        return {
            "file": str(path),
            "format": f"{EVENTS_FORMAT} v{EVENTS_SCHEMA_VERSION}",
            "events": n,
            "sum_weights": total,
            "negative_weights": {"count": n_neg, "sum": negative},
            "observables": {name: [float(lo), float(hi)] for name, lo, hi in zip(obs, x_min, x_max)},
            "latent": latent,
            "provenance": json_attribute(f, "provenance"),
        }
