"""The morphing-aware estimator against the exact detector-level ratio of the weighted toy (conftest): z ~ Exp(1)
at c = 0, event weight ratio (1 + c z)², x = z + N(0, 0.1²). Then p(z | x) ∝ e^{−z} N(x; z, 0.1²) on z > 0 is a
normal N(x − 0.01, 0.1²) truncated at 0, and the exact ratio is r(x | c) = E[(1 + c z)² | x] / E[(1 + c z)²]."""

import numpy as np
import pytest
import torch
from scipy import stats

from hepsbi import TrainingData
from hepsbi.errors import EstimatorError
from hepsbi.estimators import MorphingRatioEstimator
from hepsbi.estimators.morphing import quadratic_form
from hepsbi.simulators.protocol import quadratic_monomials


def exact_log_ratio(x: np.ndarray, c: float, pool_z: np.ndarray, pool_w: np.ndarray) -> np.ndarray:
    mean, sd = x - 0.01, 0.1
    post = stats.truncnorm((0 - mean) / sd, np.inf, loc=mean, scale=sd)
    ez, ez2 = post.mean(), post.var() + post.mean() ** 2
    numerator = 1 + 2 * c * ez + c**2 * ez2
    denominator = np.sum(pool_w * (1 + c * pool_z) ** 2) / np.sum(pool_w)  # σ(c)/σ(0) of the same pool
    return np.log(numerator) - np.log(denominator)


def test_quadratic_form_reproduces_the_weight_polynomial():
    gen = torch.Generator().manual_seed(0)
    coefficients = torch.randn(7, 6, generator=gen, dtype=torch.float64)
    coefficients[:, 0] = 1
    scale = torch.tensor([0.05, 0.2], dtype=torch.float64)
    form = quadratic_form(coefficients, scale)
    theta = torch.tensor([0.03, -0.1], dtype=torch.float64)
    u = torch.cat([torch.ones(1, dtype=torch.float64), theta / scale])
    torch.testing.assert_close(torch.einsum("i,nij,j->n", u, form, u), coefficients @ quadratic_monomials(theta))
    assert torch.equal(form, form.transpose(1, 2))


@pytest.mark.slow
def test_morphing_estimator_learns_the_exact_ratio(weighted_toy):
    pool = weighted_toy.generate(12_000, seed=3)  # the training pool: its σ(c)/σ(0) normalises the learned ratio
    pool_z, pool_w = pool.z[:, 0].copy(), pool.weights.copy()
    data = TrainingData.from_simulator(weighted_toy, 12_000, seed=1)
    assert data.morphing is not None and data.morphing.shape == (12_000, 3)
    est = MorphingRatioEstimator(seed=0, progress=False, epochs=150).fit(data)
    held_out = weighted_toy.generate(3000, seed=9)  # new events at c = 0, not seen in training
    x = held_out.x[:, 0]
    # (at c = −0.4 the weight (1 − 0.4 z)² vanishes at z = 2.5, inside the bulk, and log r → −∞ there: 4000
    # training events leave 12 % relative error in log r, 20000 events 1 %)
    for c in (-0.2, 0.2, 0.45):
        exact = exact_log_ratio(x, c, pool_z, pool_w)
        learned = est.log_ratio_of_theta(held_out.x)(torch.tensor([c], dtype=torch.float64)).numpy()
        assert np.mean((learned - exact) ** 2) < 0.01 * np.var(exact), c
    # the local score at c = 0 is the linear coefficient: 2 (E[z|x] − E[z]) for the exact ratio
    score = est.score(held_out.x, torch.tensor([0.0]))[:, 0]
    mean, sd = x - 0.01, 0.1
    exact_score = 2 * (stats.truncnorm(-mean / sd, np.inf, loc=mean, scale=sd).mean() - np.sum(pool_w * pool_z) / np.sum(pool_w))
    assert np.mean((score - exact_score) ** 2) < 0.01 * np.var(exact_score)
    assert np.all(np.isfinite(est.log_ratio(held_out.x, torch.tensor([-0.5]))))  # positive ratio everywhere


def test_morphing_needs_morphing_coefficients():
    from hepsbi.simulators import GaussianLatent

    with pytest.raises(EstimatorError, match="needs training data with morphing coefficients"):
        MorphingRatioEstimator(epochs=1, progress=False).fit(TrainingData.from_simulator(GaussianLatent(), 100, seed=0))
