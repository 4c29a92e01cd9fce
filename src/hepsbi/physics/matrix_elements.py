r"""q q̄ → γ*/Z (+ contact terms) → ℓ⁻ℓ⁺ at leading order, by helicity; vectorised and differentiable.

For an incoming quark of flavour q, outgoing ℓ⁻ at angle θ* to the quark in the partonic rest frame,
ŝ the partonic energy squared, t̂ = −ŝ(1 − cos θ*)/2 and û = −ŝ(1 + cos θ*)/2, the helicity amplitudes are

.. math::
    A_{ij} = \frac{4πα\,Q_q Q_ℓ}{ŝ}
           + \frac{4πα}{\sin^2θ_W\cos^2θ_W}\,\frac{g_i^q\,g_j^ℓ}{ŝ - m_Z^2 + i\,m_Z Γ_Z} + c_{ij},
    \qquad i, j \in \{L, R\},

and the partonic cross section is

.. math::
    \frac{dσ̂}{dt̂} = \frac{1}{16π ŝ^2}\,\frac{1}{N_c}
        \Big[û^2 \big(|A_{LL}|^2 + |A_{RR}|^2\big) + t̂^2 \big(|A_{LR}|^2 + |A_{RL}|^2\big)\Big].

Contact-interaction conventions follow Pythia 8's ``ContactInteractions`` (``Lambda``, ``etaLL``, ``etaLR``,
``etaRL``, ``etaRR``): c_ij = 4π η_ij / Λ², so that the pure LL contact term alone gives
dσ̂/dt̂ = π û² / (3 ŝ² Λ⁴). hepsbi's parameters are the Wilson coefficients c_ij in TeV⁻²
(η = ±1 and Λ = 5 TeV give |c| = 4π/25 ≈ 0.503 TeV⁻²). η < 0 interferes constructively with the SM in
u ū → ℓℓ (Q_u Q_ℓ < 0) for LL.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hepsbi.physics.standard_model import SMInputs, charge, chiral_couplings

__all__ = ["HELICITIES", "wilson_from_eta", "eta_lambda_to_theta", "helicity_amplitudes", "me_weight", "dsigma_dt"]

#: Order of the contact parameters: θ = (c_LL, c_LR, c_RL, c_RR) in TeV⁻².
HELICITIES = ("LL", "LR", "RL", "RR")
_GEV2_PER_TEV2 = 1e6
N_COLOURS = 3


def wilson_from_eta(eta: float, lambda_tev: float) -> float:
    """c = 4π η / Λ² in TeV⁻², for Λ in TeV."""
    return 4.0 * math.pi * eta / lambda_tev**2


def eta_lambda_to_theta(lambda_tev: float, eta_LL: float = 0, eta_LR: float = 0, eta_RL: float = 0, eta_RR: float = 0) -> Tensor:
    """θ = (c_LL, c_LR, c_RL, c_RR) in TeV⁻² for Pythia's (Λ, η) settings; shape (4,)."""
    return torch.tensor([wilson_from_eta(e, lambda_tev) for e in (eta_LL, eta_LR, eta_RL, eta_RR)], dtype=torch.float64)


def _flavour_table(lepton_id: int, sm: SMInputs) -> Tensor:
    """Per |quark id| 1..6: (Q_q Q_ℓ, g_L^q g_L^ℓ, g_L^q g_R^ℓ, g_R^q g_L^ℓ, g_R^q g_R^ℓ); shape (7, 5), row 0 unused."""
    gl_l, gr_l = chiral_couplings(lepton_id, sm)
    rows = [[0.0] * 5]
    for q in range(1, 7):
        gl_q, gr_q = chiral_couplings(q, sm)
        rows.append([charge(q) * charge(lepton_id), gl_q * gl_l, gl_q * gr_l, gr_q * gl_l, gr_q * gr_l])
    return torch.tensor(rows, dtype=torch.float64)


def helicity_amplitudes(
    quark: Tensor, s_hat: Tensor, theta: Tensor, alpha_em: Tensor | None = None, lepton_id: int = 13, sm: SMInputs | None = None
) -> Tensor:
    r"""Complex amplitudes A_ij, shape (n, 4) in the order of :data:`HELICITIES`, in GeV⁻².

    Arguments:
        quark: |PDG id| of the incoming quark, (n,) integer tensor (1–6).
        s_hat: ŝ in GeV², (n,).
        theta: (c_LL, c_LR, c_RL, c_RR) in TeV⁻², (n, 4) or (4,); gradients flow through it.
        alpha_em: α_EM per event (n,); default ``sm.alpha_em``.
        lepton_id: 11, 13 or 15.
        sm: electroweak inputs.
    """
    sm = sm or SMInputs()
    table = _flavour_table(lepton_id, sm)[quark.long()]  # (n, 5)
    s_hat = s_hat.to(torch.float64)
    alpha = torch.full_like(s_hat, sm.alpha_em) if alpha_em is None else alpha_em.to(torch.float64)
    e2 = 4 * math.pi * alpha
    photon = e2 * table[:, 0] / s_hat
    propagator = 1.0 / torch.complex(s_hat - sm.m_Z**2, torch.full_like(s_hat, sm.m_Z * sm.width_Z))
    z_norm = e2 / (sm.sin2_theta_W * (1 - sm.sin2_theta_W))
    contact = torch.as_tensor(theta, dtype=torch.float64).reshape(-1, 4) / _GEV2_PER_TEV2
    sm_part = photon.unsqueeze(1) + (z_norm.unsqueeze(1) * table[:, 1:]) * propagator.unsqueeze(1)
    return sm_part + contact


def me_weight(
    quark: Tensor, s_hat: Tensor, cos_theta: Tensor, theta: Tensor, alpha_em: Tensor | None = None,
    lepton_id: int = 13, sm: SMInputs | None = None,
) -> Tensor:
    r"""û²(|A_LL|² + |A_RR|²) + t̂²(|A_LR|² + |A_RL|²): the θ-dependent part of dσ̂/dt̂ × 16πŝ²N_c, (n,).

    ``cos_theta`` is cos θ* between the incoming quark and ℓ⁻ in the partonic rest frame, (n,)."""
    amp = helicity_amplitudes(quark, s_hat, theta, alpha_em, lepton_id, sm)
    mod2 = amp.real**2 + amp.imag**2
    s_hat = s_hat.to(torch.float64)
    t_hat = -0.5 * s_hat * (1 - cos_theta.to(torch.float64))
    u_hat = -0.5 * s_hat * (1 + cos_theta.to(torch.float64))
    return u_hat**2 * (mod2[:, 0] + mod2[:, 3]) + t_hat**2 * (mod2[:, 1] + mod2[:, 2])


def dsigma_dt(
    quark: Tensor, s_hat: Tensor, cos_theta: Tensor, theta: Tensor, alpha_em: Tensor | None = None,
    lepton_id: int = 13, sm: SMInputs | None = None,
) -> Tensor:
    """dσ̂/dt̂ in GeV⁻⁴ for q q̄ → ℓ⁻ℓ⁺ (colour-averaged), (n,)."""
    s_hat = s_hat.to(torch.float64)
    weight = me_weight(quark, s_hat, cos_theta, theta, alpha_em, lepton_id, sm)
    return weight / (16 * math.pi * s_hat**2 * N_COLOURS)
