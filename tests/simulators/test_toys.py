"""Toy simulators: exact likelihoods against Monte Carlo, joint quantities against closed forms."""

import math

import numpy as np
import pytest
import torch
from conftest import assert_joint_score_matches_finite_differences
from scipy import stats

from hepsbi.simulators import (
    GaltonBoard,
    GaussianLatent,
    MultiParameterGaussian,
    joint_log_ratio,
    joint_score,
)


@pytest.mark.parametrize("theta", [-0.5, 0.0, 0.3, 0.5])
def test_galton_exact_slot_probabilities_match_monte_carlo(theta, gen):
    board = GaltonBoard()
    n = 40_000
    x, _ = board.sample(torch.full((n, 1), theta), gen)
    counts = np.bincount(x[:, 0].long().numpy(), minlength=board.rows + 1)
    probs = board.slot_log_probs(torch.tensor([theta])).exp()[0].numpy()
    assert probs.sum() == pytest.approx(1.0, abs=1e-12)
    keep = probs * n >= 5  # chi-square validity; pool the sparse tails
    observed = np.append(counts[keep], counts[~keep].sum())
    expected = np.append(probs[keep] * n, probs[~keep].sum() * n)
    chi2 = ((observed - expected) ** 2 / np.maximum(expected, 1e-12)).sum()
    p_value = stats.chi2.sf(chi2, df=keep.sum())
    assert p_value > 1e-3


def test_galton_log_prob_differs_between_parameters():
    board = GaltonBoard()
    x = torch.tensor([[0.0], [10.0], [20.0]])
    lp0, lp1 = board.log_prob(x, torch.tensor([0.0])), board.log_prob(x, torch.tensor([0.5]))
    assert lp1[0] > lp0[0] and lp1[1] < lp0[1]  # θ > 0 pushes balls outwards
    assert lp0[0] == pytest.approx(lp0[2])  # the board is mirror-symmetric


def test_gaussian_marginal_matches_monte_carlo(gen):
    sim = GaussianLatent(mu0=0.2, sigma_z=1.0, sigma_x=0.5)
    x, _ = sim.sample(torch.full((20_000, 1), 0.4), gen)
    scale = math.hypot(1.0, 0.5)
    assert stats.kstest(x[:, 0].numpy(), "norm", args=(0.6, scale)).pvalue > 1e-3
    # log_prob agrees with scipy's normal density
    pts = torch.tensor([[-1.0], [0.6], [2.0]], dtype=torch.float64)
    expected = stats.norm.logpdf(pts[:, 0].numpy(), 0.6, scale)
    np.testing.assert_allclose(sim.log_prob(pts, torch.tensor([0.4], dtype=torch.float64)).numpy(), expected, rtol=1e-12)


def test_multi_parameter_marginal_matches_monte_carlo(gen):
    sim = MultiParameterGaussian()
    theta = torch.tensor([0.5, -0.7])
    x, _ = sim.sample(theta.expand(20_000, 2), gen)
    # log_prob is a normalised Gaussian density: its Mahalanobis distance is chi2 with 5 dof, and
    # log p = -d²/2 - log((2π)^{5/2} |Σ|^{1/2}), so d² can be read back from log_prob.
    _, std = sim._latent_params(theta.reshape(1, 2))
    total_var = std[0] ** 2 + sim.sigma_x**2
    log_norm = -0.5 * torch.log(total_var).sum() - 2.5 * math.log(2 * math.pi)
    d2 = -2 * (sim.log_prob(x, theta) - log_norm)
    assert stats.kstest(d2.numpy(), "chi2", args=(5,)).pvalue > 1e-3
    # and the sample mean agrees with Q μ(θ)
    mean, _ = sim._latent_params(theta.reshape(1, 2))
    np.testing.assert_allclose(x.mean(0).numpy(), (mean @ sim.mixing.T)[0].numpy(), atol=0.05)


def test_gaussian_joint_score_and_ratio_match_closed_form(gen):
    sim = GaussianLatent(mu0=0.3, sigma_z=0.8)
    theta = sim.space.sample_prior(100, gen)
    _, z = sim.sample(theta, gen)
    score = joint_score(sim, z, theta)
    np.testing.assert_allclose(score[:, 0].numpy(), ((z[:, 0] - theta[:, 0] - 0.3) / 0.64).numpy(), rtol=1e-10)
    ratio = joint_log_ratio(sim, z, theta, sim.space.reference)
    closed = (-(z[:, 0] - theta[:, 0] - 0.3) ** 2 + (z[:, 0] - 0.3) ** 2) / (2 * 0.64)
    np.testing.assert_allclose(ratio.numpy(), closed.numpy(), rtol=1e-10, atol=1e-12)


def test_galton_joint_score_matches_closed_form(gen):
    board = GaltonBoard()
    theta = board.space.sample_prior(50, gen)
    _, z = board.sample(theta, gen)
    score = joint_score(board, z, theta)[:, 0].numpy()
    # d/dθ log p(path) = Σ_rows (m - p) / (p (1 - p)) · dp/dθ, with dp/dθ = sin(πρ) σ'(sθν) s ν
    zn, th = z.numpy(), theta[:, 0].numpy()
    expected = np.zeros(len(th))
    k = np.zeros(len(th))
    for row in range(board.rows):
        bend = math.sin(math.pi * row / (board.rows - 1))
        nu = (2 * k - row) / (board.nails - 1)
        sig = 1 / (1 + np.exp(-board.strength * th * nu))
        p = 0.5 * (1 - bend) + bend * sig
        dp = bend * sig * (1 - sig) * board.strength * nu
        m = zn[:, row]
        expected += (m - p) / (p * (1 - p)) * dp
        k += m
    np.testing.assert_allclose(score, expected, rtol=1e-8, atol=1e-10)


def test_multi_parameter_joint_score_matches_finite_differences(gen):
    sim = MultiParameterGaussian()
    theta = sim.space.sample_prior(20, gen)
    _, z = sim.sample(theta, gen)
    assert_joint_score_matches_finite_differences(sim, z, theta, rtol=1e-6)


def test_joint_log_ratio_expectation_is_marginal_ratio(gen):
    """E[r(x,z|θ,θ_ref) | x] = r(x|θ,θ_ref): averaged over events drawn at θ_ref, both give 1."""
    sim = GaltonBoard()
    ref = sim.space.reference
    x, z = sim.sample(ref.expand(200_000, 1), gen)
    theta = torch.tensor([0.4])
    joint = joint_log_ratio(sim, z, theta, ref).exp()
    marginal = (sim.log_prob(x, theta) - sim.log_prob(x, ref)).exp()
    assert joint.mean().item() == pytest.approx(1.0, abs=0.02)
    assert marginal.mean().item() == pytest.approx(1.0, abs=0.02)
    # per slot: the mean joint ratio of events in the slot is the marginal ratio of the slot
    for slot in (8, 10, 12):
        in_slot = x[:, 0] == slot
        assert joint[in_slot].mean().item() == pytest.approx(marginal[in_slot][0].item(), rel=0.05)
