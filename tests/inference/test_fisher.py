"""Fisher information against closed forms: Gaussian mean, Poisson histograms, profiling a nuisance."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from test_pseudo_experiments import NU, gaussian_model

from hepsbi.inference.fisher import (
    binned_information,
    information_from_scores,
    model_information,
    per_event_scores,
    profiled_information,
    rate_information,
)
from hepsbi.inference.nuisance import gaussian_constraint
from hepsbi.inference.profile import hessian


def test_unbinned_binned_and_rate_information_of_a_gaussian_mean():
    """x ~ N(θ, 1), N expected events: unbinned I = N; a fine histogram approaches it, coarse ones lose; the
    rate alone carries nothing (ν does not depend on θ) and everything when ν = N e^θ."""
    n_expected, n_mc, theta = 500.0, 200_000, torch.tensor([0.2], dtype=torch.float64)
    x = theta + torch.randn(n_mc, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = torch.full((n_mc,), n_expected / n_mc, dtype=torch.float64)
    scores = per_event_scores(lambda t: -0.5 * (x - t[0]) ** 2, theta)
    info = information_from_scores(scores, expected)
    assert info[0, 0] == pytest.approx(n_expected, rel=4 * math.sqrt(2 / n_mc))

    def counts(edges):
        def fn(t):
            cdf = stats.norm.cdf(edges, loc=float(t[0]))
            return n_expected * np.diff(cdf)
        return fn

    fine = binned_information(counts(np.concatenate([[-np.inf], np.linspace(-6, 6, 1201), [np.inf]])), theta)
    coarse = binned_information(counts(np.array([-np.inf, 0.2, np.inf])), theta)
    assert fine[0, 0] == pytest.approx(n_expected, rel=1e-3)
    assert coarse[0, 0] == pytest.approx(n_expected * 2 / math.pi, rel=1e-6)  # median split: 2/π of it
    assert rate_information(lambda t: n_expected, theta)[0, 0] == 0.0
    assert rate_information(lambda t: n_expected * torch.exp(t[0]), theta)[0, 0] == pytest.approx(n_expected * math.exp(0.2), rel=1e-7)


def test_profiled_information_is_the_closed_form():
    """x_i ~ N(θ + s α, 1) with α ~ N(0, 1): the information left on θ is 1 / (1/n + s²)."""
    n, s = 100, 0.2
    x = torch.randn(n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def nll(p):
        return 0.5 * ((x - p[0] - s * p[1]) ** 2).sum() + gaussian_constraint(p[1:])

    full = hessian(nll, [0.0, 0.0])
    np.testing.assert_allclose(full, [[n, n * s], [n * s, n * s**2 + 1]], rtol=1e-12)
    assert profiled_information(full, 1)[0, 0] == pytest.approx(1 / (1 / n + s**2), rel=1e-12)


def test_model_information_is_the_inverse_covariance_of_the_asimov_fit():
    model = gaussian_model()
    info = model_information(model, [0.3, 0.0])
    assert info.shape == (2, 2)
    assert profiled_information(info, 1)[0, 0] == pytest.approx(NU / 1.25, rel=0.05)  # σ² = 1.25 per event
    assert info[1, 1] == pytest.approx(1.0 + NU * math.log(1.05 / 0.95) ** 2 / 4, rel=0.05)


def test_kept_information_is_the_binned_information_for_bin_indicators_and_everything_for_the_score():
    """kept_information = C_ts C_ss⁻¹ C_st: with bin indicators as the statistic it is Σ_b ∂ν_b ∂ν_bᵀ / ν_b
    (∂ν_b = Σ_{j∈b} ν_j t_j); with the joint score itself it is all of Σ ν t tᵀ; a noisy score keeps less than
    it claims."""
    from hepsbi.inference import information_from_scores, kept_information

    rng = np.random.default_rng(3)
    n, p, bins = 4000, 2, 5
    nu = rng.uniform(0.5, 2.0, n)
    t = rng.normal(size=(n, p)) + 0.3
    b = rng.integers(0, bins, n)
    indicators = np.eye(bins)[b][:, 1:]  # the count already carries the sum of all bins
    d_nu = np.stack([(nu[b == k, None] * t[b == k]).sum(0) for k in range(bins)])
    nu_b = np.array([nu[b == k].sum() for k in range(bins)])
    np.testing.assert_allclose(kept_information(indicators, t, nu), (d_nu / nu_b[:, None]).T @ d_nu, rtol=1e-10)
    np.testing.assert_allclose(kept_information(t, t, nu), information_from_scores(t, nu), rtol=1e-10)
    noisy = t + rng.normal(size=(n, p))
    kept, claimed = kept_information(noisy, t, nu), information_from_scores(noisy, nu)
    assert np.all(np.linalg.eigvalsh(information_from_scores(t, nu) - kept) > 0)  # below what t carries
    assert np.linalg.det(claimed) > 2 * np.linalg.det(kept)
    with pytest.raises(Exception, match="do not match"):
        kept_information(noisy[:10], t, nu)
