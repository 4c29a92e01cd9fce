r"""A fast detector: lepton resolution, acceptance and efficiency; anti-kt jets; missing transverse momentum.

Lepton transverse momenta are smeared with a Gaussian of relative width σ(p_T)/p_T = a ⊕ b·p_T (a the
multiple-scattering term, b the curvature term, p_T in TeV); η and φ are kept. A lepton is accepted when
|η| < ``lepton_eta_max`` and p_T > ``lepton_pt_min`` and it survives an efficiency draw. An event is kept
when both leptons are. Jets (full-shower mode only) are clustered with fastjet's anti-kt from the visible
final-state particles other than the two leptons; missing E_T is the negative vector sum of the visible
particles (with the smeared leptons).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hepsbi.errors import SimulatorError
from hepsbi.physics import kinematics as kin

__all__ = ["FastDetector", "Reconstructed"]

_INVISIBLE = (12, 14, 16)


@dataclass
class Reconstructed:
    """Reconstructed objects for the events that passed: leptons (n, 2, 4) as (ℓ⁻, ℓ⁺); jets (n, k, 4) padded
    with zeros, the k leading ones; n_jets (n,); met (n, 2); ``passed`` (n_in,) marks the accepted input events;
    ``generated`` (n, 2, 4) the same leptons before the detector."""

    leptons: np.ndarray
    jets: np.ndarray
    n_jets: np.ndarray
    met: np.ndarray
    passed: np.ndarray
    generated: np.ndarray


@dataclass(frozen=True)
class FastDetector:
    """Detector response (defaults resemble an LHC muon system; all documented in the README)."""

    lepton_mass: float = 0.10566
    lepton_eta_max: float = 2.5
    lepton_pt_min: float = 25.0
    lepton_efficiency: float = 0.95
    resolution_constant: float = 0.02
    resolution_slope: float = 0.10
    jet_radius: float = 0.4
    jet_pt_min: float = 30.0
    jet_eta_max: float = 4.5
    max_jets: int = 4

    def __post_init__(self) -> None:
        if not 0.0 < self.lepton_efficiency <= 1.0:
            raise SimulatorError(f"detector lepton_efficiency must be in (0, 1] (got {self.lepton_efficiency})")
        if self.resolution_constant < 0 or self.resolution_slope < 0:
            raise SimulatorError("detector resolutions must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def relative_resolution(self, pt: np.ndarray) -> np.ndarray:
        """σ(p_T)/p_T for p_T in GeV."""
        return np.hypot(self.resolution_constant, self.resolution_slope * pt / 1000.0)

    def smear_leptons(self, leptons: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Smear and select: leptons (n, 2, 4) → (smeared (n, 2, 4), accepted (n,) bool)."""
        true_pt, eta, phi = kin.pt(leptons), kin.eta(leptons), kin.phi(leptons)
        smeared_pt = true_pt * (1.0 + self.relative_resolution(true_pt) * rng.standard_normal(true_pt.shape))
        smeared_pt = np.abs(smeared_pt)
        smeared = kin.from_pt_eta_phi_m(smeared_pt, eta, phi, self.lepton_mass)
        found = rng.random(true_pt.shape) < self.lepton_efficiency
        accepted = (np.abs(eta) < self.lepton_eta_max) & (smeared_pt > self.lepton_pt_min) & found
        return smeared, accepted.all(axis=1)

    def reconstruct(self, leptons: np.ndarray, rng: np.random.Generator, final_state: Any = None, lepton_id: int = 13) -> Reconstructed:
        """Reconstruct events from parton-level leptons (n, 2, 4) or, with ``final_state`` (awkward, one list of
        final-state particles per event), from the two leading opposite-charge final-state leptons, jets and
        missing E_T."""
        if final_state is not None:
            leptons = self.final_state_leptons(final_state, lepton_id)
        smeared, passed = self.smear_leptons(leptons, rng)
        n = len(leptons)
        jets = np.zeros((n, self.max_jets, 4))
        n_jets = np.zeros(n, dtype=np.int64)
        visible = np.zeros((n, 2))
        if final_state is not None:
            jets, n_jets, visible = self._jets_and_visible(final_state, leptons, lepton_id)
        lepton_sum = smeared.sum(axis=1)
        met = -(visible[:, :2] + lepton_sum[:, 1:3])
        return Reconstructed(smeared[passed], jets[passed], n_jets[passed], met[passed], passed, leptons[passed])

    @staticmethod
    def final_state_leptons(final_state: Any, lepton_id: int) -> np.ndarray:
        """The leading ℓ⁻ and ℓ⁺ of flavour ``lepton_id`` of each event's final state (awkward, records with ``id`` and a
        four-momentum ``p``): (n, 2, 4) as (E, px, py, pz), zeros where there is none."""
        import awkward as ak

        out = []
        for sign in (1, -1):  # ℓ⁻ has the positive PDG id
            cand = final_state[final_state.id == sign * lepton_id]
            cand = cand[ak.argsort(cand.p.px**2 + cand.p.py**2, ascending=False)]
            lead = ak.firsts(cand)
            four = np.stack(
                [ak.to_numpy(ak.fill_none(getattr(lead.p, c), 0.0)) for c in ("e", "px", "py", "pz")], axis=1
            )
            out.append(four)
        return np.stack(out, axis=1)

    def _jets_and_visible(self, final_state: Any, leptons: np.ndarray, lepton_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import awkward as ak
        import fastjet
        import vector

        vector.register_awkward()
        absid = abs(final_state.id)
        # Remove the two selected leptons (matched by energy) and invisible particles.
        is_lead = ak.zeros_like(final_state.id, dtype=bool)
        for k in range(2):
            is_lead = is_lead | ((absid == lepton_id) & (abs(final_state.p.e - leptons[:, k, 0][:, None]) < 1e-9))
        invisible = (absid == _INVISIBLE[0]) | (absid == _INVISIBLE[1]) | (absid == _INVISIBLE[2])
        hadronic = final_state[~is_lead & ~invisible]
        visible = np.stack([ak.to_numpy(ak.sum(hadronic.p.px, axis=1)), ak.to_numpy(ak.sum(hadronic.p.py, axis=1))], axis=1)
        inputs = ak.zip(
            {"px": hadronic.p.px, "py": hadronic.p.py, "pz": hadronic.p.pz, "E": hadronic.p.e}, with_name="Momentum4D"
        )
        definition = fastjet.JetDefinition(fastjet.antikt_algorithm, self.jet_radius)
        clustered = fastjet.ClusterSequence(inputs, definition).inclusive_jets(min_pt=self.jet_pt_min)
        clustered = clustered[abs(clustered.eta) < self.jet_eta_max]
        clustered = clustered[ak.argsort(clustered.pt, ascending=False)]
        n_jets = ak.to_numpy(ak.num(clustered)).astype(np.int64)
        padded = ak.fill_none(ak.pad_none(clustered, self.max_jets, clip=True), {"px": 0.0, "py": 0.0, "pz": 0.0, "E": 0.0})
        jets = np.stack([ak.to_numpy(padded[c]) for c in ("E", "px", "py", "pz")], axis=-1)
        return jets, n_jets, visible
