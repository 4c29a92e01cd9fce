r"""Events of LHE files from any generator as a weighted sample: the final-state leptons and partons of each event
through the fast detector, the observables by name, the signed weights in pb.

Each event's weight in pb is XWGTUP / N with N the number of events read (the convention of IDWTUP = ±3, ±4, which
MadGraph5_aMC@NLO and POWHEG write: Σ_events XWGTUP / N = σ), so Σw over the events that pass the detector is the
fiducial cross section. The dilepton is the leading opposite-charge pair of one flavour (``lepton_ids``, e and μ by
default: a Drell–Yan sample mixes them); the other visible final-state particles — partons at this level — are
clustered into anti-kt jets. Nothing is showered here (``n_jets``, ``jet1_pt`` and ``pt_ll`` are those of the
fixed-order events) unless ``shower`` is set: then Pythia 8 showers and hadronises each file (with MLM or FxFx
merging, :class:`~hepsbi.physics.pythia.LHEShower`) and the detector sees the final-state particles. The detector
is the given one with the lepton mass of each flavour.

Showered, each event's weight in pb is Pythia's weight (XWGTUP) over the LHE events read, vetoed ones included, so
Σw is the cross section after merging; for files with IDWTUP ≠ ±4 Pythia's weights are rescaled to Pythia's
cross section of the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hepsbi._version import __version__
from hepsbi.data.events import Events
from hepsbi.errors import SimulatorError
from hepsbi.files import path_list
from hepsbi.physics.detector import FastDetector
from hepsbi.physics.dileptons import LATENT_NAMES, final_state_records, reconstruct_dileptons
from hepsbi.physics.lhe import iter_chunks, read_header
from hepsbi.physics.pythia import LHEShower, pythia_version

__all__ = ["LHESample", "LATENT_NAMES"]

#: showered events per Pythia batch (a hadronised event holds hundreds of particles)
SHOWER_BATCH = 2_000
DEFAULT_OBSERVABLES = ("m_ll", "pt_ll", "y_ll", "n_jets", "jet1_pt")

class LHESample:
    """Events of one or more LHE files through the fast detector (module docstring).

    Arguments:
        paths: LHE files (plain or gzipped) of one process; read in order.
        observables: names from :data:`hepsbi.physics.observables.OBSERVABLES`.
        lepton_ids: the lepton flavours (PDG ids, positive) a dilepton may have.
        detector: a :class:`~hepsbi.physics.detector.FastDetector` (default: its defaults).
        chunk_events: events parsed at a time (memory O(chunk)).
        seed: seeds the detector's smearing and efficiency draws (and, + file index + 1, Pythia's shower).
        n_events: read at most this many events (default: all); showered, at most this many events accepted by
            the merging.
        shower: shower and hadronise with Pythia 8 before the detector.
        merging: with ``shower``, MLM or FxFx merging:
            ``{"scheme": "fxfx", "qcut": 20.0, "qcut_me": 10.0, "n_jet_max": 1}``
            (:func:`~hepsbi.physics.pythia.merging_settings`).
        pythia_settings: further Pythia settings for the shower, applied last.
        keep_weights: ids of ``<wgt>`` weights (benchmark points, scale or PDF variations) to keep per event, in pb
            like the event weight: latent columns ``wgt:<id>`` after :data:`LATENT_NAMES` (without the shower).
    """

    def __init__(self, paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                 observables: Sequence[str] = DEFAULT_OBSERVABLES, lepton_ids: Sequence[int] = (11, 13),
                 detector: FastDetector | None = None, chunk_events: int = 50_000, seed: int = 0,
                 n_events: int | None = None, shower: bool = False, merging: Mapping[str, Any] | None = None,
                 pythia_settings: Sequence[str] = (), keep_weights: Sequence[str] = ()):
        self.paths = path_list(paths)
        if not self.paths:
            raise SimulatorError("LHESample needs at least one LHE file", key="paths")
        self.observable_names = list(observables)
        self.lepton_ids = tuple(abs(int(i)) for i in lepton_ids)
        self.detector = detector or FastDetector()
        self.chunk_events = int(chunk_events)
        self.seed = int(seed)
        self.n_events = n_events
        self.shower = bool(shower)
        self.merging = dict(merging) if merging else None
        self.pythia_settings = list(pythia_settings)
        if (self.merging or self.pythia_settings) and not self.shower:
            raise SimulatorError("merging and pythia_settings need shower: true", key="shower")
        self.keep_weights = list(keep_weights)
        if self.keep_weights and self.shower:
            raise SimulatorError("keep_weights: the <wgt> weights are kept for events read without the shower only",
                                 key="keep_weights")
        self.headers = [read_header(p) for p in self.paths]
        for path, header in zip(self.paths, self.headers):
            missing = [w for w in self.keep_weights if w not in header.weight_ids()]
            if missing:
                raise SimulatorError(f"keep_weights: {path} declares no weight {missing[0]!r} (its weights: "
                                     f"{header.weight_ids()[:20]})", key="keep_weights")
        energies = {h.sqrt_s for h in self.headers}
        if len(energies) > 1:
            raise SimulatorError(f"the LHE files have different collision energies {sorted(energies)} GeV", key="paths")
        self._shower: LHEShower | None = None
        if self.shower:  # a bad merging option or Pythia setting fails now, not after the first file
            LHEShower(self.paths[0], self.merging, self.pythia_settings, seed=1).check_settings()

    def generate(self) -> Events:
        """Read every event (up to ``n_events``), reconstruct it and return those that pass, weights in pb."""
        rng = np.random.default_rng(self.seed)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        read = taken = 0  # LHE events read; events taken (read, or accepted by the merging)
        settings: list[str] = []
        for k, path in enumerate(self.paths):
            if self.n_events is not None and taken >= self.n_events:
                break
            in_file, n_file = [], 0
            for final_state, id1, id2, weight, so_far in self._chunks(k, path, None if self.n_events is None else self.n_events - taken):
                taken, n_file = taken + len(weight), so_far
                in_file.append(self._reconstruct(final_state, id1, id2, weight, rng))
            scale = 1.0
            if self._shower is not None:
                shower = self._shower
                n_file, settings = shower.tried, shower.settings
                if abs(shower.strategy) != 4:  # weights not in pb: share out Pythia's cross section of the file
                    total = sum(float(w[:, 0].sum()) for _, _, w in in_file)
                    scale = shower.sigma_pb * n_file / total if total else 0.0
            parts += [(x, z, w * scale) for x, z, w in in_file]  # w: (n, 1 + kept weights)
            read += n_file
        if read == 0:
            raise SimulatorError(f"no events in {[str(p) for p in self.paths]}", key="paths")
        all_weights = np.concatenate([w for _, _, w in parts]) / read  # XWGTUP / N: pb per event
        weights = all_weights[:, 0]
        if len(weights) == 0:
            raise SimulatorError(f"none of the {read} events passed the detector selection", key="paths")
        header = self.headers[0]
        provenance = {"generator": "lhe", "files": [str(p) for p in self.paths], "events_read": read,
                      "sqrt_s_gev": header.sqrt_s, "cross_section_header_pb": sum(h.cross_section_pb for h in self.headers)
                      / len(self.headers), "hepsbi_version": __version__, "seed": self.seed, "weight_unit": "pb",
                      "detector": self.detector.to_dict(), "lepton_ids": list(self.lepton_ids), "shower": self.shower}
        if self.shower:
            provenance.update({"pythia_version": pythia_version(), "merging": self.merging, "pythia_settings": settings})
        z = np.concatenate([np.concatenate([z for _, z, _ in parts]), all_weights[:, 1:]], axis=1)
        return Events(np.concatenate([x for x, _, _ in parts]), z, weights, list(self.observable_names),
                      [*LATENT_NAMES, *(f"wgt:{w}" for w in self.keep_weights)], provenance)

    def _chunks(self, k: int, path: Path, limit: int | None) -> Iterator[tuple[Any, np.ndarray, np.ndarray, np.ndarray, int]]:
        """(final state, id1, id2, weights (n, 1 + kept weights), events of the file read so far) per chunk of file
        ``k``, at most ``limit`` events (read, or accepted by the merging)."""
        if self.shower:
            shower = self._shower = LHEShower(path, self.merging, self.pythia_settings, seed=self.seed + k + 1)
            for batch in shower.batches(min(self.chunk_events, SHOWER_BATCH), limit):
                yield batch.final_state, batch.id1, batch.id2, batch.weights[:, None], shower.tried
            return
        n_file = 0
        for chunk in iter_chunks(path, self.chunk_events):
            keep = len(chunk) if limit is None else min(len(chunk), limit - n_file)
            if keep <= 0:
                return
            n_file += keep
            particles = chunk.particles[:keep]
            final = particles[:, :, 1] == 1
            missing = [w for w in self.keep_weights if w not in chunk.rwgt]
            if missing:
                raise SimulatorError(f"keep_weights: the events from {chunk.first} on in {path} carry no weight "
                                     f"{missing[0]!r}", key="keep_weights")
            weights = np.stack([chunk.weight, *(chunk.rwgt[w] for w in self.keep_weights)], axis=1)[:keep]
            yield (_final_state(particles[final], final.sum(axis=1)), particles[:, 0, 0].astype(np.int64),
                   particles[:, 1, 0].astype(np.int64), weights, n_file)

    def _reconstruct(self, final_state: Any, id1: np.ndarray, id2: np.ndarray, weight: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return reconstruct_dileptons(final_state, id1, id2, weight, self.detector, self.lepton_ids,
                                     self.observable_names, rng)


def _final_state(chosen: np.ndarray, counts: np.ndarray) -> Any:
    """The final-state records of LHE particle rows (Σ counts, 13) grouped ``counts`` per event."""
    return final_state_records(chosen[:, 0], chosen[:, 9], chosen[:, 6], chosen[:, 7], chosen[:, 8], counts)
