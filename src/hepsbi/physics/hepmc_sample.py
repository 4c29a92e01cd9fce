r"""Events of HepMC3 files — samples showered and hadronised elsewhere — as a weighted sample: the final-state
particles of each event through the fast detector (:func:`~hepsbi.physics.dileptons.reconstruct_dileptons`), the
observables by name, the signed weights in pb.

Files are read with ``pyhepmc`` (any format it knows: HepMC3 and HepMC2 ASCII, plain or compressed), one event at a
time into numpy views of its particles, ``chunk_events`` events reconstructed together (memory O(chunk)). Weights:
the event's first (nominal) weight; when the file carries a cross section (``GenCrossSection``, pb) each weight is
scaled so that the events read add up to it (σ of the last event, the generator's final estimate):
w_i = w_i^file σ / Σ_events w^file; without one, as for LHE files, w_i = w_i^file / N. The incoming partons of the
latent record come from ``GenPdfInfo`` (0 when the file has none).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from hepsbi._version import __version__
from hepsbi.data.events import Events
from hepsbi.errors import SimulatorError
from hepsbi.files import path_list
from hepsbi.physics.detector import FastDetector
from hepsbi.physics.dileptons import LATENT_NAMES, final_state_records, reconstruct_dileptons
from hepsbi.physics.lhe_sample import DEFAULT_OBSERVABLES

__all__ = ["HepMCSample"]


class HepMCSample:
    """Events of one or more HepMC files through the fast detector (module docstring).

    Arguments:
        paths: HepMC files of one process; read in order.
        observables: names from :data:`hepsbi.physics.observables.OBSERVABLES`.
        lepton_ids: the lepton flavours (PDG ids, positive) a dilepton may have.
        detector: a :class:`~hepsbi.physics.detector.FastDetector` (default: its defaults).
        chunk_events: events reconstructed at a time (memory O(chunk)).
        seed: seeds the detector's smearing and efficiency draws.
        n_events: read at most this many events (default: all).
    """

    def __init__(self, paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                 observables: Sequence[str] = DEFAULT_OBSERVABLES, lepton_ids: Sequence[int] = (11, 13),
                 detector: FastDetector | None = None, chunk_events: int = 10_000, seed: int = 0,
                 n_events: int | None = None):
        self.paths = path_list(paths)
        if not self.paths:
            raise SimulatorError("HepMCSample needs at least one HepMC file", key="paths")
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise SimulatorError(f"no such HepMC file: {missing[0]}", key="paths")
        self.observable_names = list(observables)
        self.lepton_ids = tuple(abs(int(i)) for i in lepton_ids)
        self.detector = detector or FastDetector()
        self.chunk_events, self.seed, self.n_events = int(chunk_events), int(seed), n_events

    def generate(self) -> Events:
        """Read every event (up to ``n_events``), reconstruct it and return those that pass, weights in pb."""
        rng = np.random.default_rng(self.seed)
        parts, read, total, sigma = [], 0, 0.0, None
        for final_state, id1, id2, weights, xsec in self._chunks():
            read += len(weights)
            total += float(weights.sum())
            sigma = xsec if xsec is not None else sigma
            parts.append(reconstruct_dileptons(final_state, id1, id2, weights, self.detector, self.lepton_ids,
                                               self.observable_names, rng))
        if read == 0:
            raise SimulatorError(f"no events in {[str(p) for p in self.paths]}", key="paths")
        scale = sigma / total if sigma is not None and total != 0 else 1.0 / read
        weights = np.concatenate([w for _, _, w in parts]) * scale
        if len(weights) == 0:
            raise SimulatorError(f"none of the {read} events passed the detector selection", key="paths")
        provenance = {"generator": "hepmc", "files": [str(p) for p in self.paths], "events_read": read,
                      "cross_section_pb": sigma, "hepsbi_version": __version__, "seed": self.seed,
                      "weight_unit": "pb", "detector": self.detector.to_dict(), "lepton_ids": list(self.lepton_ids)}
        return Events(np.concatenate([x for x, _, _ in parts]), np.concatenate([z for _, z, _ in parts]), weights,
                      list(self.observable_names), list(LATENT_NAMES), provenance)

    def _chunks(self) -> Iterator[tuple[Any, np.ndarray, np.ndarray, np.ndarray, float | None]]:
        """(final state, id1, id2, weights, the last cross section in pb or None) per chunk of events."""
        import pyhepmc

        rows: list[dict[str, np.ndarray]] = []
        incoming: list[tuple[int, int]] = []
        weights: list[float] = []
        xsec: float | None = None
        read = 0

        def flush() -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, float | None]:
            counts = np.array([len(r["id"]) for r in rows])
            pid, e, px, py, pz = (np.concatenate([r[k] for r in rows]) for k in ("id", "e", "px", "py", "pz"))
            final_state = final_state_records(pid, e, px, py, pz, counts)
            partons = np.array(incoming, dtype=np.int64).reshape(-1, 2)
            out = (final_state, partons[:, 0], partons[:, 1], np.array(weights), xsec)
            rows.clear()
            incoming.clear()
            weights.clear()
            return out

        for path in self.paths:
            try:
                reader = pyhepmc.open(path)
            except Exception as exc:  # pyhepmc names the format problem; the file is ours to name
                raise SimulatorError(f"{path}: not a HepMC file pyhepmc can read ({exc})", key="paths") from None
            with reader as stream:
                for event in stream:
                    if self.n_events is not None and read >= self.n_events:
                        break
                    read += 1
                    particles = event.numpy.particles
                    final = particles.status == 1
                    unit = 1e-3 if event.momentum_unit == pyhepmc.Units.MEV else 1.0  # GeV throughout
                    rows.append({"id": particles.pid[final], "e": particles.e[final] * unit,
                                 "px": particles.px[final] * unit, "py": particles.py[final] * unit,
                                 "pz": particles.pz[final] * unit})
                    pdf = event.pdf_info
                    incoming.append((pdf.parton_id1, pdf.parton_id2) if pdf is not None else (0, 0))
                    weights.append(event.weights[0] if len(event.weights) else 1.0)
                    if event.cross_section is not None and event.cross_section.is_valid:
                        xsec = float(event.cross_section.xsec())
                    if len(rows) >= self.chunk_events:
                        yield flush()
        if rows:
            yield flush()
