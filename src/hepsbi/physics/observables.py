r"""Observables x computed from reconstructed events; choose them by name in the simulator or the spec.

=================  ===========================================================
name               definition
=================  ===========================================================
``m_ll``           dilepton invariant mass (GeV)
``cos_theta_cs``   cos θ of ℓ⁻ in the Collins–Soper frame
``y_ll``           dilepton rapidity
``pt_ll``          dilepton transverse momentum (GeV)
``pt_lead``        transverse momentum of the harder lepton (GeV)
``pt_sublead``     transverse momentum of the softer lepton (GeV)
``eta_lead``       pseudorapidity of the harder lepton
``eta_sublead``    pseudorapidity of the softer lepton
``n_jets``         number of anti-kt jets (full-shower mode; 0 otherwise)
``jet1_pt``        leading-jet transverse momentum (GeV; 0 without jets)
``met``            missing transverse momentum (GeV)
=================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from hepsbi.errors import SimulatorError
from hepsbi.physics import kinematics as kin
from hepsbi.physics.detector import Reconstructed

__all__ = ["OBSERVABLES", "compute_observables"]


def _ordered(r: Reconstructed) -> tuple[np.ndarray, np.ndarray]:
    pts = kin.pt(r.leptons)
    lead = np.where(pts[:, 0] >= pts[:, 1], 0, 1)
    idx = np.arange(len(lead))
    return r.leptons[idx, lead], r.leptons[idx, 1 - lead]


OBSERVABLES: dict[str, Callable[[Reconstructed], np.ndarray]] = {
    "m_ll": lambda r: kin.mass(r.leptons.sum(axis=1)),
    "cos_theta_cs": lambda r: kin.collins_soper_cos_theta(r.leptons[:, 0], r.leptons[:, 1]),
    "y_ll": lambda r: kin.rapidity(r.leptons.sum(axis=1)),
    "pt_ll": lambda r: kin.pt(r.leptons.sum(axis=1)),
    "pt_lead": lambda r: kin.pt(_ordered(r)[0]),
    "pt_sublead": lambda r: kin.pt(_ordered(r)[1]),
    "eta_lead": lambda r: kin.eta(_ordered(r)[0]),
    "eta_sublead": lambda r: kin.eta(_ordered(r)[1]),
    "n_jets": lambda r: r.n_jets.astype(np.float64),
    "jet1_pt": lambda r: kin.pt(r.jets[:, 0]),
    "met": lambda r: np.hypot(r.met[:, 0], r.met[:, 1]),
}


def compute_observables(reco: Reconstructed, names: Sequence[str]) -> np.ndarray:
    """Observables ``names`` for every reconstructed event: (n, len(names)) float64."""
    unknown = [n for n in names if n not in OBSERVABLES]
    if unknown:
        raise SimulatorError(f"unknown observable(s) {unknown}; available: {sorted(OBSERVABLES)}")
    return np.stack([OBSERVABLES[n](reco) for n in names], axis=1).astype(np.float64)
