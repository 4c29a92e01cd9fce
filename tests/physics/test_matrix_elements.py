"""Matrix elements against hand-computed values and Pythia's documented normalisation; morphing exactness."""

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


def integrate_over_cos(quark: int, s: float, theta: torch.Tensor, sm: SMInputs, alpha: float, lo: float, hi: float) -> float:
    """∫ dσ̂/dt̂ dt̂ over cos θ* in [lo, hi] (dt̂ = ŝ/2 dcos θ*), by Gauss–Legendre quadrature (exact here: the
    integrand is a polynomial of degree 2 in cos θ*)."""
    nodes, weights = np.polynomial.legendre.leggauss(8)
    cos = torch.tensor(0.5 * (hi - lo) * nodes + 0.5 * (hi + lo))
    n = len(cos)
    values = dsigma_dt(torch.full((n,), quark), torch.full((n,), s, dtype=torch.float64), cos, theta.expand(n, -1),
                       torch.full((n,), alpha, dtype=torch.float64), sm=sm)
    return float((values.numpy() * weights).sum() * 0.5 * (hi - lo) * s / 2)


@pytest.mark.parametrize("quark,charge", [(1, -1 / 3), (2, 2 / 3)])
def test_photon_exchange_gives_the_textbook_cross_section(quark, charge):
    """With the Z decoupled (m_Z → ∞), σ̂(q q̄ → γ* → ℓℓ) = 4π α² Q_q² / (3 N_c ŝ) (Peskin & Schroeder eq. 5.12
    with the colour average 1/N_c)."""
    s, alpha = 500.0**2, 1 / 128.0
    no_z = SMInputs(m_Z=1e9, width_Z=1.0)
    sigma = integrate_over_cos(quark, s, torch.zeros(4, dtype=torch.float64), no_z, alpha, -1.0, 1.0)
    assert sigma == pytest.approx(4 * math.pi * alpha**2 * charge**2 / (3 * 3 * s), rel=1e-9)


@pytest.mark.parametrize("quark,charge,t3", [(1, -1 / 3, -0.5), (2, 2 / 3, 0.5)])
def test_forward_backward_asymmetry_at_the_z_pole(quark, charge, t3):
    """At √ŝ = m_Z the Z dominates and A_FB = ¾ A_q A_ℓ with A_f = (g_L² − g_R²)/(g_L² + g_R²),
    g_L = T₃ − Q sin²θ_eff, g_R = −Q sin²θ_eff (LEP's pole asymmetry, PDG review "Electroweak model")."""
    sm = SMInputs()
    s, alpha, theta = sm.m_Z**2, 1 / 128.0, torch.zeros(4, dtype=torch.float64)
    forward = integrate_over_cos(quark, s, theta, sm, alpha, 0.0, 1.0)
    backward = integrate_over_cos(quark, s, theta, sm, alpha, -1.0, 0.0)

    def asymmetry(t3_f: float, q_f: float) -> float:
        g_l, g_r = t3_f - q_f * sm.sin2_theta_W_eff, -q_f * sm.sin2_theta_W_eff
        return (g_l**2 - g_r**2) / (g_l**2 + g_r**2)

    expected = 0.75 * asymmetry(t3, charge) * asymmetry(-0.5, -1.0)
    # the photon adds a symmetric |A_γ|² of relative size ~ (Γ_Z/m_Z)², below a percent
    assert (forward - backward) / (forward + backward) == pytest.approx(expected, rel=5e-3)


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


def test_morphing_from_benchmark_weights_recovers_the_coefficients():
    """Weights of events at B > K benchmark points (as MadGraph's reweight module writes them) give back each event's
    quadratic coefficients by least squares; too few points, or points that cannot separate the terms, are named
    errors; weights that are not quadratic leave a residual."""
    from hepsbi.errors import DataError

    gen = torch.Generator().manual_seed(4)
    morph = QuadraticMorphing(2, scale=0.05)
    truth = torch.randn(50, morph.n_components, generator=gen, dtype=torch.float64)
    points = 0.05 * (2 * torch.rand(9, 2, generator=gen, dtype=torch.float64) - 1)
    weights = truth @ morph.monomials(points).T  # (50, 9)
    fit = morph.fit_benchmarks(points, weights)
    torch.testing.assert_close(fit.coefficients, truth, rtol=1e-9, atol=1e-9)
    assert fit.residual < 1e-12 and 1 < fit.condition < 1e3
    exact = morph.fit_benchmarks(morph.basis_points, truth @ morph.monomials(morph.basis_points).T)
    torch.testing.assert_close(exact.coefficients, truth, rtol=1e-9, atol=1e-9)
    cubic = weights + 50.0 * points[:, 0] ** 3  # not a quadratic: the fit says so
    assert morph.fit_benchmarks(points, cubic).residual > 1e-4
    with pytest.raises(DataError, match="5 benchmark points cannot fix the 6 morphing coefficients"):
        morph.fit_benchmarks(points[:5], weights[:, :5])
    on_a_line = torch.stack([torch.linspace(-0.05, 0.05, 7)] * 2, dim=1).double()
    with pytest.raises(DataError, match="do not separate the 6 morphing terms"):
        morph.fit_benchmarks(on_a_line, torch.ones(3, 7, dtype=torch.float64))
