"""Likelihood scans against closed-form Gaussian likelihoods."""

import math

import numpy as np
import pytest
import torch

from hepsbi import Parameter, ParameterSpace
from hepsbi.inference import (
    Dataset,
    asimov_dataset,
    exact_log_ratio,
    likelihood_scan,
    observed_dataset,
    scan_log_likelihood,
    wilks_threshold,
)
from hepsbi.simulators import GaussianLatent


class Gaussian2D:
    """x ~ N(θ, 1) in two dimensions: q(θ) = n |θ − x̄|² exactly."""

    def __init__(self) -> None:
        self.space = ParameterSpace([Parameter("a", -1, 1), Parameter("b", -1, 1)])

    def sample(self, theta, generator):
        x = theta + torch.randn(theta.shape, generator=generator, dtype=torch.float64)
        return x, x

    def joint_log_prob(self, z, theta):
        return -0.5 * ((z - theta) ** 2).sum(1)

    def log_prob(self, x, theta):
        return self.joint_log_prob(x, theta.expand_as(x))


def test_1d_mle_and_intervals_match_closed_form():
    sim = GaussianLatent(mu0=0.1)
    data = observed_dataset(sim, torch.tensor([0.25]), 400, seed=3)
    scan = likelihood_scan(exact_log_ratio(sim)(data.x), data, sim.space, points=401)
    sigma = math.hypot(1.0, 0.5) / math.sqrt(400)
    theta_hat = data.x.mean().item() - 0.1
    assert scan.mle["theta"] == pytest.approx(theta_hat, abs=1e-4)
    lo, hi = scan.intervals["theta"]["68"]
    assert lo == pytest.approx(theta_hat - sigma, abs=2e-4) and hi == pytest.approx(theta_hat + sigma, abs=2e-4)
    lo95, hi95 = scan.intervals["theta"]["95"]
    assert hi95 - lo95 == pytest.approx(2 * 1.959964 * sigma, abs=4e-4)
    assert scan.open_ends["theta"] == {"68": [False, False], "95": [False, False]}
    assert 0.0 <= scan.q.min() < 1e-3  # zero at the refined MLE, which lies between nodes


def test_interval_open_at_the_scan_edge_is_reported():
    sim = GaussianLatent()
    data = observed_dataset(sim, torch.tensor([0.95]), 20, seed=1)
    scan = likelihood_scan(exact_log_ratio(sim)(data.x), data, sim.space, points=101)
    assert scan.open_ends["theta"]["95"][1] is True
    assert scan.intervals["theta"]["95"][1] == 1.0


def test_2d_contour_area_and_profile_intervals_match_closed_form():
    sim = Gaussian2D()
    n = 100
    data = observed_dataset(sim, torch.tensor([0.2, -0.3], dtype=torch.float64), n, seed=4)
    scan = likelihood_scan(exact_log_ratio(sim)(data.x), data, sim.space, points=201)
    xbar = data.x.mean(0).numpy()
    assert scan.mle["a"] == pytest.approx(xbar[0], abs=1e-4) and scan.mle["b"] == pytest.approx(xbar[1], abs=1e-4)
    for level in ("68", "95"):
        exact_area = math.pi * wilks_threshold(level, 2) / n
        assert scan.contour_area[level] == pytest.approx(exact_area, rel=0.03)
    lo, hi = scan.intervals["b"]["68"]
    assert lo == pytest.approx(xbar[1] - 0.1, abs=1e-3) and hi == pytest.approx(xbar[1] + 0.1, abs=1e-3)


def test_asimov_mle_sits_at_the_truth_and_weights_scale_the_curvature():
    sim = GaussianLatent()
    truth = torch.tensor([-0.2], dtype=torch.float64)
    small = asimov_dataset(sim, truth, n_expected=50, n_mc=50_000, seed=0)
    large = Dataset(small.x, small.weights * 4, small.theta_true, "asimov")
    s_small = likelihood_scan(exact_log_ratio(sim)(small.x), small, sim.space, points=201)
    s_large = likelihood_scan(exact_log_ratio(sim)(large.x), large, sim.space, points=201)
    assert s_small.mle["theta"] == pytest.approx(-0.2, abs=0.01)
    width = lambda s: np.diff(s.intervals["theta"]["68"])[0]  # noqa: E731
    assert width(s_small) / width(s_large) == pytest.approx(2.0, rel=0.01)


def test_extended_likelihood_reproduces_the_poisson_interval():
    """With a flat shape (log r ≡ 0) only the rate informs θ: q(θ) = 2[ν(θ) − N − N log(ν(θ)/N)]."""
    from scipy import optimize

    space = ParameterSpace([Parameter("mu", -0.9, 3.0)])
    nu = lambda theta: 50.0 * (1.0 + float(torch.as_tensor(theta).reshape(-1)[0]))  # noqa: E731
    data = Dataset(torch.zeros(10, 1), torch.full((10,), 7.5, dtype=torch.float64))  # N = 75 → μ̂ = 0.5
    flat = lambda theta: torch.zeros(10)  # noqa: E731
    scan = likelihood_scan(flat, data, space, points=801, expected_events=nu)
    assert scan.mle["mu"] == pytest.approx(0.5, abs=1e-4)
    q = lambda m: 2 * (nu(m) - 75 - 75 * math.log(nu(m) / 75)) - 1  # noqa: E731
    lo, hi = optimize.brentq(q, -0.8, 0.5), optimize.brentq(q, 0.5, 2.9)
    assert scan.intervals["mu"]["68"] == pytest.approx([lo, hi], abs=2e-4)


def test_binned_likelihood_asimov_recovers_truth_and_curvature():
    from hepsbi.inference import binned_log_likelihood, scan_log_likelihood

    space = ParameterSpace([Parameter("theta", -1.0, 1.0)])
    a, b = np.array([100.0, 40.0, 10.0]), np.array([-20.0, 5.0, 8.0])
    expected = lambda theta: a + b * float(theta[0])  # noqa: E731
    observed = expected(torch.tensor([0.3]))
    scan = scan_log_likelihood(binned_log_likelihood(expected, observed), space, points=401)
    assert scan.mle["theta"] == pytest.approx(0.3, abs=1e-4)
    # Asimov: the curvature at the truth is the Fisher information Σ b² / ν
    sigma = 1 / math.sqrt(float(np.sum(b**2 / observed)))
    lo, hi = scan.intervals["theta"]["68"]
    assert (hi - lo) / 2 == pytest.approx(sigma, rel=0.02)


def test_a_scan_with_a_progress_bar_gives_the_same_result():
    """A notebook scan can show its progress (it once ran 10,201 nodes silently); the numbers do not change."""
    sim = GaussianLatent(mu0=0.1)
    data = observed_dataset(sim, torch.tensor([0.25]), 200, seed=3)
    ratio = exact_log_ratio(sim)(data.x)
    quiet = likelihood_scan(ratio, data, sim.space, points=41)
    shown = likelihood_scan(ratio, data, sim.space, points=41, progress="scan")
    assert shown.mle == quiet.mle and shown.intervals == quiet.intervals and np.array_equal(shown.q, quiet.q)


def test_zoom_closes_in_on_a_likelihood_sharper_than_the_grid():
    """log L = −½ ((θ − 0.33)/0.005)² on a 21-node grid over [−1, 1] (step 0.1): no node lies within the 95 % region
    (the nearest is 6 σ away), yet two zooms find it: the 95 % interval is 0.33 ± 1.96 × 0.005, as without zoom it
    cannot be (the grid sees only a spike at one node)."""
    space = ParameterSpace([Parameter("theta", -1.0, 1.0)])

    def log_likelihood(theta):
        return (-0.5 * ((theta[:, 0] - 0.33) / 0.005) ** 2).numpy()

    coarse = scan_log_likelihood(log_likelihood, space, points=21)
    zoomed = scan_log_likelihood(log_likelihood, space, points=21, zoom=2)
    lo, hi = zoomed.intervals["theta"]["95"]
    assert lo == pytest.approx(0.33 - 1.96 * 0.005, abs=5e-4) and hi == pytest.approx(0.33 + 1.96 * 0.005, abs=5e-4)
    assert float(np.diff(zoomed.axes[0]).min()) < 0.01 < float(np.diff(coarse.axes[0]).min())
