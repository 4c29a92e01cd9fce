r"""Dilepton events from their final-state particles: the flavour of the pair, the fast detector, the observables and
the latent record — for events read from LHE files or showered by Pythia alike.

An event's dilepton is the leading opposite-charge pair of the first flavour in ``lepton_ids`` that has both
charges; the detector then sees that pair (with the lepton mass of its flavour), jets from the other visible
particles and the missing transverse momentum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from hepsbi.physics import kinematics as kin
from hepsbi.physics.detector import FastDetector
from hepsbi.physics.observables import compute_observables

__all__ = ["LATENT_NAMES", "LEPTON_MASSES", "final_state_records", "reconstruct_dileptons"]

#: the latent record of an event: the incoming partons' PDG ids and the dilepton before the detector (mass, pT,
#: rapidity) — at parton level without the shower, the final-state leptons (after QED radiation) with it
LATENT_NAMES = ("id1", "id2", "m_ll_gen", "pt_ll_gen", "y_ll_gen")
#: lepton masses (GeV, PDG) the detector gives each reconstructed flavour
LEPTON_MASSES = {11: 0.000511, 13: 0.10566, 15: 1.77686}


def final_state_records(ids: np.ndarray, e: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray,
                        counts: np.ndarray) -> Any:
    """Per event its final-state particles as awkward records (``id``, Momentum4D ``p``), what
    :func:`reconstruct_dileptons` reads, from flat columns (Σ counts,) grouped ``counts`` (n,) per event."""
    import awkward as ak

    four = {name: ak.unflatten(column, counts) for name, column in (("e", e), ("px", px), ("py", py), ("pz", pz))}
    return ak.zip({"id": ak.unflatten(ids.astype(np.int64), counts), "p": ak.zip(four, with_name="Momentum4D")})


def reconstruct_dileptons(final_state: Any, id1: np.ndarray, id2: np.ndarray, weight: np.ndarray,
                          detector: FastDetector, lepton_ids: Sequence[int], observables: Sequence[str],
                          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The events that pass, in their order: x (n, d_x) of ``observables``, z (n, 5) of :data:`LATENT_NAMES`, and
    their rows of ``weight`` (n_in, ...) — from ``final_state`` (awkward, per event records ``id`` and Momentum4D
    ``p``) and the incoming partons ``id1``, ``id2`` (n_in,)."""
    import awkward as ak

    flavour = np.zeros(len(weight), dtype=np.int64)
    for lepton in lepton_ids:  # the flavour of the event's dilepton: both charges present
        has = ak.to_numpy(ak.any(final_state.id == lepton, axis=1) & ak.any(final_state.id == -lepton, axis=1))
        flavour = np.where((flavour == 0) & has, lepton, flavour)
    xs, zs, ws, order = [], [], [], []
    for lepton in lepton_ids:
        rows = np.nonzero(flavour == lepton)[0]
        if rows.size == 0:
            continue
        flavoured = replace(detector, lepton_mass=LEPTON_MASSES.get(lepton, detector.lepton_mass))
        reco = flavoured.reconstruct(np.zeros((len(rows), 2, 4)), rng, final_state[rows], lepton)
        xs.append(compute_observables(reco, observables))
        pair = reco.generated.sum(axis=1)
        zs.append(np.stack([id1[rows][reco.passed].astype(np.float64), id2[rows][reco.passed].astype(np.float64),
                            kin.mass(pair), kin.pt(pair), kin.rapidity(pair)], axis=1))
        ws.append(weight[rows][reco.passed])
        order.append(rows[reco.passed])
    if not xs:
        return np.zeros((0, len(observables))), np.zeros((0, len(LATENT_NAMES))), weight[:0]
    index = np.argsort(np.concatenate(order), kind="stable")  # back to file order
    return np.concatenate(xs)[index], np.concatenate(zs)[index], np.concatenate(ws)[index]
