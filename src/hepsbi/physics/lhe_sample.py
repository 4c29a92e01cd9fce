r"""Events of LHE files from any generator as a weighted sample: the final-state leptons and partons of each event
through the fast detector, the observables by name, the signed weights in pb.

Each event's weight in pb is XWGTUP / N with N the number of events read (the convention of IDWTUP = ±3, ±4, which
MadGraph5_aMC@NLO and POWHEG write: Σ_events XWGTUP / N = σ), so Σw over the events that pass the detector is the
fiducial cross section. The dilepton is the leading opposite-charge pair of one flavour (``lepton_ids``, e and μ by
default: a Drell–Yan sample mixes them); the other visible final-state particles — partons at this level — are
clustered into anti-kt jets. Nothing is showered here (``n_jets``, ``jet1_pt`` and ``pt_ll`` are those of the
fixed-order events). The detector is the given one with the lepton mass of each flavour.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from hepsbi._version import __version__
from hepsbi.data.events import Events
from hepsbi.errors import SimulatorError
from hepsbi.physics import kinematics as kin
from hepsbi.physics.detector import FastDetector
from hepsbi.physics.lhe import iter_chunks, read_header
from hepsbi.physics.observables import compute_observables

__all__ = ["LHESample", "LATENT_NAMES"]

#: the latent record of an LHE event: the process id and the parton-level dilepton (mass, pT, rapidity)
LATENT_NAMES = ("process", "m_ll_parton", "pt_ll_parton", "y_ll_parton")
DEFAULT_OBSERVABLES = ("m_ll", "pt_ll", "y_ll", "n_jets", "jet1_pt")
#: lepton masses (GeV, PDG) the detector gives each reconstructed flavour
LEPTON_MASSES = {11: 0.000511, 13: 0.10566, 15: 1.77686}


class LHESample:
    """Events of one or more LHE files through the fast detector (module docstring).

    Arguments:
        paths: LHE files (plain or gzipped) of one process; read in order.
        observables: names from :data:`hepsbi.physics.observables.OBSERVABLES`.
        lepton_ids: the lepton flavours (PDG ids, positive) a dilepton may have.
        detector: a :class:`~hepsbi.physics.detector.FastDetector` (default: its defaults).
        chunk_events: events parsed at a time (memory O(chunk)).
        seed: seeds the detector's smearing and efficiency draws.
        n_events: read at most this many events (default: all).
    """

    def __init__(self, paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                 observables: Sequence[str] = DEFAULT_OBSERVABLES, lepton_ids: Sequence[int] = (11, 13),
                 detector: FastDetector | None = None, chunk_events: int = 50_000, seed: int = 0,
                 n_events: int | None = None):
        self.paths = [Path(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
        if not self.paths:
            raise SimulatorError("LHESample needs at least one LHE file", key="options")
        self.observable_names = list(observables)
        self.lepton_ids = tuple(abs(int(i)) for i in lepton_ids)
        self.detector = detector or FastDetector()
        self.chunk_events = int(chunk_events)
        self.seed = int(seed)
        self.n_events = n_events
        self.headers = [read_header(p) for p in self.paths]
        energies = {h.sqrt_s for h in self.headers}
        if len(energies) > 1:
            raise SimulatorError(f"the LHE files have different collision energies {sorted(energies)} GeV", key="options")

    def generate(self) -> Events:
        """Read every event (up to ``n_events``), reconstruct it and return those that pass, weights in pb."""
        rng = np.random.default_rng(self.seed)
        parts_x, parts_z, parts_w = [], [], []
        read = 0
        for path in self.paths:
            for chunk in iter_chunks(path, self.chunk_events):
                if self.n_events is not None and read >= self.n_events:
                    break
                keep = len(chunk) if self.n_events is None else min(len(chunk), self.n_events - read)
                read += keep
                x, z, w = self._reconstruct(chunk.particles[:keep], chunk.process[:keep], chunk.weight[:keep], rng)
                parts_x.append(x)
                parts_z.append(z)
                parts_w.append(w)
        if read == 0:
            raise SimulatorError(f"no events in {[str(p) for p in self.paths]}", key="options")
        weights = np.concatenate(parts_w) / read  # XWGTUP / N: pb per event
        if len(weights) == 0:
            raise SimulatorError(f"none of the {read} events passed the detector selection", key="options")
        header = self.headers[0]
        provenance = {"generator": "lhe", "files": [str(p) for p in self.paths], "events_read": read,
                      "sqrt_s_gev": header.sqrt_s, "cross_section_header_pb": sum(h.cross_section_pb for h in self.headers)
                      / len(self.headers), "hepsbi_version": __version__, "seed": self.seed, "weight_unit": "pb",
                      "detector": self.detector.to_dict(), "lepton_ids": list(self.lepton_ids)}
        return Events(np.concatenate(parts_x), np.concatenate(parts_z), weights, list(self.observable_names),
                      list(LATENT_NAMES), provenance)

    def _reconstruct(self, particles: np.ndarray, process: np.ndarray, weight: np.ndarray, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x, z and XWGTUP of the events of one chunk that pass, in file order."""
        import awkward as ak

        ids = particles[:, :, 0]
        final = particles[:, :, 1] == 1
        flavour = np.zeros(len(particles), dtype=np.int64)
        for lepton in self.lepton_ids:  # the flavour of the event's dilepton: both charges present
            has = ((ids == lepton) & final).any(axis=1) & ((ids == -lepton) & final).any(axis=1)
            flavour = np.where((flavour == 0) & has, lepton, flavour)
        xs, zs, ws, order = [], [], [], []
        for lepton in self.lepton_ids:
            rows = np.nonzero(flavour == lepton)[0]
            if rows.size == 0:
                continue
            mask = final[rows]
            counts = mask.sum(axis=1)
            chosen = particles[rows][mask]  # (Σ counts, 13), event by event
            four = {c: ak.unflatten(chosen[:, k], counts) for c, k in (("e", 9), ("px", 6), ("py", 7), ("pz", 8))}
            final_state = ak.zip({"id": ak.unflatten(chosen[:, 0].astype(np.int64), counts),
                                  "p": ak.zip(four, with_name="Momentum4D")})
            detector = replace(self.detector, lepton_mass=LEPTON_MASSES.get(lepton, self.detector.lepton_mass))
            reco = detector.reconstruct(np.zeros((len(rows), 2, 4)), rng, final_state, lepton)
            xs.append(compute_observables(reco, self.observable_names))
            pair = reco.generated.sum(axis=1)
            zs.append(np.stack([process[rows][reco.passed].astype(np.float64), kin.mass(pair), kin.pt(pair),
                                kin.rapidity(pair)], axis=1))
            ws.append(weight[rows][reco.passed])
            order.append(rows[reco.passed])
        if not xs:
            d = len(self.observable_names)
            return np.zeros((0, d)), np.zeros((0, len(LATENT_NAMES))), np.zeros(0)
        index = np.argsort(np.concatenate(order), kind="stable")  # back to file order
        return np.concatenate(xs)[index], np.concatenate(zs)[index], np.concatenate(ws)[index]
