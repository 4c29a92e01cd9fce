r"""Standard Model inputs (the parameter card) and fermion couplings to γ and Z.

Defaults are Pythia 8.3's (``StandardModel:*`` and the Z⁰ entry of its particle data), so that matrix
elements written here and Pythia's own processes use the same electroweak inputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hepsbi.errors import SimulatorError

__all__ = ["SMInputs", "charge", "axial_coupling", "vector_coupling", "chiral_couplings"]

# Electric charge and weak isospin (T3) of the left-handed component, by |PDG id|.
_CHARGE = {1: -1 / 3, 2: 2 / 3, 3: -1 / 3, 4: 2 / 3, 5: -1 / 3, 6: 2 / 3, 11: -1.0, 13: -1.0, 15: -1.0}
_T3 = {1: -0.5, 2: 0.5, 3: -0.5, 4: 0.5, 5: -0.5, 6: 0.5, 11: -0.5, 13: -0.5, 15: -0.5}


@dataclass(frozen=True)
class SMInputs:
    r"""Electroweak inputs.

    Attributes:
        m_Z, width_Z: Z mass and width in GeV (fixed-width propagator).
        sin2_theta_W: sin²θ_W in the Z normalisation e²/(sin²θ_W cos²θ_W).
        sin2_theta_W_eff: effective angle in the vector couplings v_f = a_f − 4 Q_f sin²θ̄_W.
        alpha_em: α_EM used when an event does not carry its own (Pythia records α_EM(ŝ) per event).
    """

    m_Z: float = 91.1876
    width_Z: float = 2.4952
    sin2_theta_W: float = 0.2312
    sin2_theta_W_eff: float = 0.2315
    alpha_em: float = 0.00781751

    def __post_init__(self) -> None:
        for key, value in asdict(self).items():
            if not value > 0:
                raise SimulatorError(f"SM input {key} must be positive (got {value})")
        if not self.sin2_theta_W < 1:
            raise SimulatorError(f"SM input sin2_theta_W must be < 1 (got {self.sin2_theta_W})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _lookup(table: dict[int, float], pdg_id: int) -> float:
    try:
        return table[abs(int(pdg_id))]
    except KeyError:
        raise SimulatorError(f"no electroweak couplings for PDG id {pdg_id}") from None


def charge(pdg_id: int) -> float:
    """Electric charge of the fermion (of the particle; antiparticles use the same couplings here)."""
    return _lookup(_CHARGE, pdg_id)


def axial_coupling(pdg_id: int) -> float:
    """a_f = 2 T3 (Pythia's normalisation: ±1)."""
    return 2.0 * _lookup(_T3, pdg_id)


def vector_coupling(pdg_id: int, sm: SMInputs) -> float:
    """v_f = a_f − 4 Q_f sin²θ̄_W."""
    return axial_coupling(pdg_id) - 4.0 * charge(pdg_id) * sm.sin2_theta_W_eff


def chiral_couplings(pdg_id: int, sm: SMInputs) -> tuple[float, float]:
    """(g_L, g_R) = ((v + a)/4, (v − a)/4), i.e. T3 − Q sin²θ̄_W and −Q sin²θ̄_W."""
    v, a = vector_coupling(pdg_id, sm), axial_coupling(pdg_id)
    return (v + a) / 4.0, (v - a) / 4.0
