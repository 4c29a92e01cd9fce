r"""Four-vector helpers on arrays: momenta are (…, 4) arrays ordered (E, px, py, pz), in GeV."""

from __future__ import annotations

import numpy as np

__all__ = ["pt", "eta", "phi", "mass", "rapidity", "from_pt_eta_phi_m", "cos_theta_star", "collins_soper_cos_theta"]


def pt(p: np.ndarray) -> np.ndarray:
    return np.hypot(p[..., 1], p[..., 2])


def eta(p: np.ndarray) -> np.ndarray:
    return np.arcsinh(p[..., 3] / np.maximum(pt(p), 1e-12))


def phi(p: np.ndarray) -> np.ndarray:
    return np.arctan2(p[..., 2], p[..., 1])


def mass(p: np.ndarray) -> np.ndarray:
    m2 = p[..., 0] ** 2 - p[..., 1] ** 2 - p[..., 2] ** 2 - p[..., 3] ** 2
    return np.sqrt(np.maximum(m2, 0.0))


def rapidity(p: np.ndarray) -> np.ndarray:
    return 0.5 * np.log((p[..., 0] + p[..., 3]) / np.maximum(p[..., 0] - p[..., 3], 1e-12))


def from_pt_eta_phi_m(pt_: np.ndarray, eta_: np.ndarray, phi_: np.ndarray, m: float | np.ndarray) -> np.ndarray:
    px, py, pz = pt_ * np.cos(phi_), pt_ * np.sin(phi_), pt_ * np.sinh(eta_)
    e = np.sqrt(px**2 + py**2 + pz**2 + np.asarray(m) ** 2)
    return np.stack([e, px, py, pz], axis=-1)


def cos_theta_star(lepton_minus: np.ndarray, lepton_plus: np.ndarray, x1: np.ndarray, x2: np.ndarray, id1: np.ndarray) -> np.ndarray:
    r"""cos θ* of ℓ⁻ to the incoming quark, in the partonic rest frame (parton level, no transverse boost).

    The partonic system moves along z with β = (x1 − x2)/(x1 + x2); the quark comes from beam A (+z) when
    id1 > 0 and from beam B (−z) when id1 < 0.
    """
    beta = (x1 - x2) / (x1 + x2)
    gamma = 1.0 / np.sqrt(1.0 - beta**2)
    pz_rest = gamma * (lepton_minus[..., 3] - beta * lepton_minus[..., 0])
    e_rest = gamma * (lepton_minus[..., 0] - beta * lepton_minus[..., 3])
    p_rest = np.sqrt(np.maximum(e_rest**2 - mass(lepton_minus) ** 2, 1e-300))
    del lepton_plus  # the partner fixes nothing more at leading order
    return np.sign(id1) * pz_rest / p_rest


def collins_soper_cos_theta(lepton_minus: np.ndarray, lepton_plus: np.ndarray) -> np.ndarray:
    r"""cos θ in the Collins–Soper frame (Phys. Rev. D 16 (1977) 2219), signed by the dilepton p_z:

    .. math:: \cos θ_{CS} = \mathrm{sign}(p_{z,ℓℓ})\,
        \frac{2 (p_1^+ p_2^- - p_1^- p_2^+)}{m_{ℓℓ} \sqrt{m_{ℓℓ}^2 + p_{T,ℓℓ}^2}}, \quad p^\pm = (E \pm p_z)/\sqrt 2,

    with particle 1 the ℓ⁻.
    """
    pair = lepton_minus + lepton_plus
    m, pt_ll = mass(pair), pt(pair)
    p1p, p1m = (lepton_minus[..., 0] + lepton_minus[..., 3]) / np.sqrt(2), (lepton_minus[..., 0] - lepton_minus[..., 3]) / np.sqrt(2)
    p2p, p2m = (lepton_plus[..., 0] + lepton_plus[..., 3]) / np.sqrt(2), (lepton_plus[..., 0] - lepton_plus[..., 3]) / np.sqrt(2)
    sign = np.where(pair[..., 3] >= 0, 1.0, -1.0)
    return sign * 2 * (p1p * p2m - p1m * p2p) / np.maximum(m * np.sqrt(m**2 + pt_ll**2), 1e-12)
