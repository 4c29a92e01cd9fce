"""Matrix elements against hand-computed values and Pythia's documented normalisation; morphing exactness."""

import cmath
import math

import numpy as np
import pytest
import torch

from hepsbi.physics import (
    QuadraticMorphing,
    SMInputs,
    dsigma_dt,
    eta_lambda_to_theta,
    me_weight,
    wilson_from_eta,
)
from hepsbi.physics.matrix_elements import helicity_amplitudes


def hand_amplitude(q_charge, t3_q, s, c_tev2, alpha, sm, hel):
    """One helicity amplitude written out with plain complex numbers (lepton: Q = -1, T3 = -1/2)."""
    def g(t3, q, h):
        return (t3 - q * sm.sin2_theta_W_eff) if h == "L" else (-q * sm.sin2_theta_W_eff)
    e2 = 4 * math.pi * alpha
    photon = e2 * q_charge * (-1.0) / s
    z = e2 / (sm.sin2_theta_W * (1 - sm.sin2_theta_W)) * g(t3_q, q_charge, hel[0]) * g(-0.5, -1.0, hel[1])
    z = z / complex(s - sm.m_Z**2, sm.m_Z * sm.width_Z)
    return photon + z + c_tev2 * 1e-6


@pytest.mark.parametrize("quark,q_charge,t3", [(2, 2 / 3, 0.5), (1, -1 / 3, -0.5)])
def test_amplitudes_match_hand_computation(quark, q_charge, t3):
    sm = SMInputs()
    s, alpha = 800.0**2, 0.0079
    theta = torch.tensor([0.3, -0.2, 0.5, -0.7], dtype=torch.float64)
    amp = helicity_amplitudes(torch.tensor([quark]), torch.tensor([s]), theta, torch.tensor([alpha]), sm=sm)[0]
    for k, hel in enumerate(("LL", "LR", "RL", "RR")):
        expected = hand_amplitude(q_charge, t3, s, float(theta[k]), alpha, sm, hel)
        assert complex(amp[k]) == pytest.approx(expected, rel=1e-12)
    # and the cross-section assembly: u² for LL, RR; t² for LR, RL; 1/(16π ŝ² N_c)
    cos = 0.3
    t_hat, u_hat = -s * (1 - cos) / 2, -s * (1 + cos) / 2
    mods = [abs(hand_amplitude(q_charge, t3, s, float(theta[k]), alpha, sm, h)) ** 2 for k, h in enumerate(("LL", "LR", "RL", "RR"))]
    expected = (u_hat**2 * (mods[0] + mods[3]) + t_hat**2 * (mods[1] + mods[2])) / (16 * math.pi * s**2 * 3)
    value = dsigma_dt(torch.tensor([quark]), torch.tensor([s]), torch.tensor([cos]), theta, torch.tensor([alpha]), sm=sm)
    assert value.item() == pytest.approx(expected, rel=1e-12)
    assert cmath.isfinite(expected)


def test_pure_contact_term_has_pythia_normalisation():
    """Pythia 8 documents dσ̂/dt̂ = π û² / (3 ŝ² Λ⁴) for the pure LL contact term with η = 1."""
    lam_gev = 5000.0
    theta = eta_lambda_to_theta(lam_gev / 1000, eta_LL=1)
    s, cos = 1500.0**2, -0.4
    u_hat = -s * (1 + cos) / 2
    no_sm = SMInputs(alpha_em=1e-30)
    value = dsigma_dt(torch.tensor([1]), torch.tensor([s]), torch.tensor([cos]), theta, torch.tensor([1e-30]), sm=no_sm)
    assert value.item() == pytest.approx(math.pi * u_hat**2 / (3 * s**2 * lam_gev**4), rel=1e-9)
    assert wilson_from_eta(-1, 5.0) == pytest.approx(-4 * math.pi / 25)


def test_constructive_interference_sign():
    """η_LL = −1 raises u ū → μμ above the Z (Q_u Q_μ < 0 and the photon dominates the LL amplitude)."""
    s, cos = torch.tensor([1000.0**2]), torch.tensor([0.0])
    sm_w = me_weight(torch.tensor([2]), s, cos, torch.zeros(4))
    ci_w = me_weight(torch.tensor([2]), s, cos, eta_lambda_to_theta(5, eta_LL=-1))
    assert ci_w.item() > sm_w.item()


def test_morphing_is_exact_at_random_points():
    gen = torch.Generator().manual_seed(0)
    n = 500
    quark = torch.randint(1, 6, (n,), generator=gen)
    s = (200 + 3000 * torch.rand(n, generator=gen, dtype=torch.float64)) ** 2
    cos = 2 * torch.rand(n, generator=gen, dtype=torch.float64) - 1
    morph = QuadraticMorphing(4, scale=0.5)
    assert morph.n_components == 15
    coef = morph.fit(lambda th: me_weight(quark, s, cos, th.expand(n, -1)))
    for _ in range(5):
        theta = 2 * torch.rand(4, generator=gen, dtype=torch.float64) - 1
        direct = me_weight(quark, s, cos, theta.expand(n, -1))
        np.testing.assert_allclose(morph.evaluate(coef, theta).numpy(), direct.numpy(), rtol=1e-10)


def test_amplitudes_are_differentiable_in_theta():
    theta = torch.tensor([0.1, 0.2, -0.3, 0.4], dtype=torch.float64, requires_grad=True)
    w = me_weight(torch.tensor([1, 2]), torch.tensor([400.0**2, 900.0**2]), torch.tensor([0.1, -0.5]), theta.expand(2, -1))
    (grad,) = torch.autograd.grad(w.sum(), theta)
    assert torch.all(grad != 0)
