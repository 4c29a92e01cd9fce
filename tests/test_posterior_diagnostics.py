"""Posterior diagnostics against posteriors whose calibration is known: the exact posterior of the Gaussian toy
(N(x, 1.25) in θ truncated to the prior box, here [−3, 3]) passes SBC and TARP; the same posterior made overconfident
(half its width), underconfident (twice) or biased is caught. (A posterior equal to the prior is calibrated too: on
the default box [−1, 1] this toy's posterior is nearly flat, and twice its width would pass SBC.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hepsbi import diagnostics
from hepsbi.errors import EstimatorError
from hepsbi.simulators import GaussianLatent

SIGMA = 1.25**0.5
BOX = 3.0


class TruncatedNormalPosterior:
    """N(x + shift, width · σ) truncated to [−BOX, BOX], drawn exactly by the inverse CDF; exact at width 1, shift 0."""

    def __init__(self, width: float = 1.0, shift: float = 0.0):
        self.width, self.shift = width, shift

    def sample(self, x_obs, n, generator=None):
        mean = float(torch.as_tensor(x_obs).reshape(-1)[0]) + self.shift
        normal = torch.distributions.Normal(torch.tensor(mean, dtype=torch.float64),
                                            torch.tensor(self.width * SIGMA, dtype=torch.float64))
        lo, hi = (normal.cdf(torch.tensor(b, dtype=torch.float64)) for b in (-BOX, BOX))
        u = torch.rand(n, 1, generator=generator, dtype=torch.float64)
        return normal.icdf((lo + (hi - lo) * u).clamp(1e-12, 1 - 1e-12)).clamp(-BOX, BOX)


@pytest.fixture(scope="module")
def pairs():
    sim = GaussianLatent(low=-BOX, high=BOX)
    gen = torch.Generator().manual_seed(3)
    theta = sim.space.sample_prior(600, gen)
    x, _ = sim.sample(theta, gen)
    return sim, theta, x


def test_the_exact_posterior_is_calibrated(pairs):
    """SBC's χ² and TARP's KS test do not reject the exact posterior; its ECP follows the diagonal."""
    _, theta, x = pairs
    samples = diagnostics.posterior_samples(TruncatedNormalPosterior(), x, 99, seed=1)
    assert samples.shape == (600, 99, 1)
    ranks = diagnostics.sbc(TruncatedNormalPosterior(), theta, x, samples=samples)
    coverage = diagnostics.tarp(TruncatedNormalPosterior(), theta, x, samples=samples)
    assert ranks.calibrated() and coverage.calibrated()
    assert float(ranks.p_values[0]) > 0.01 and coverage.p_value > 0.01
    assert np.abs(coverage.ecp - coverage.alpha).max() < 0.08
    assert coverage.ecp[0] == 0.0 and coverage.ecp[-1] > 0.97 and bool(np.all(np.diff(coverage.ecp) >= 0))
    edges, counts, expected = ranks.histogram()
    assert counts.sum() == 600 and expected.sum() == pytest.approx(600) and len(edges) == ranks.bins + 1


@pytest.mark.parametrize("wrong, shape", [({"width": 0.5}, "cup"), ({"width": 2.0}, "cap"), ({"shift": 0.4}, "side")])
def test_miscalibrated_posteriors_are_caught(pairs, wrong, shape):
    """An overconfident posterior piles the ranks at both ends, an underconfident one in the middle, a biased one
    on one side; SBC rejects each, and TARP the overconfident one. (TARP with reference points drawn uniformly misses
    this bias — measured p = 0.65 — as its authors note: a bias shows only with references placed against it.)"""
    _, theta, x = pairs
    posterior = TruncatedNormalPosterior(**wrong)
    samples = diagnostics.posterior_samples(posterior, x, 99, seed=1)
    ranks = diagnostics.sbc(posterior, theta, x, samples=samples)
    assert not ranks.calibrated() and float(ranks.p_values[0]) < 1e-4
    r = ranks.ranks[:, 0]
    ends, middle = np.mean((r < 10) | (r > 89)), np.mean((r >= 40) & (r < 60))
    if shape == "cup":
        assert ends > 0.35 and middle < 0.15
    elif shape == "cap":
        assert ends < 0.15 and middle > 0.25  # uniform: 0.2 and 0.2
    else:
        assert np.mean(r < 50) > 0.6  # uniform: 0.5
    if shape == "cup":
        assert not diagnostics.tarp(posterior, theta, x, samples=samples).calibrated()


def test_ranks_and_coverage_by_hand():
    """Ranks count the draws below the truth; f counts the draws nearer the reference point than the truth."""
    samples = np.array([[[0.0], [1.0], [2.0]], [[5.0], [6.0], [7.0]]])
    theta = np.array([[1.5], [4.0]])
    result = diagnostics.sbc_ranks(samples, theta)
    assert result.ranks[:, 0].tolist() == [2, 0] and result.draws == 3
    # scaled to [0, 1] over [0, 7]; reference points at 0 and 1 (scaled)
    coverage = diagnostics.tarp_coverage(samples, theta, references=np.array([[0.0], [7.0]]), levels=3)
    assert coverage.f.tolist() == pytest.approx([2 / 3, 1.0])
    assert coverage.ecp.tolist() == [0.0, 0.0, 0.5]


def test_named_errors():
    with pytest.raises(EstimatorError, match="samples must be"):
        diagnostics.sbc_ranks(np.zeros((3, 5, 2)), np.zeros((4, 2)))
    with pytest.raises(EstimatorError, match="finite"):
        diagnostics.tarp_coverage(np.full((3, 5, 1), np.nan), np.zeros((3, 1)))
    with pytest.raises(EstimatorError, match="at least 2 simulations"):
        diagnostics.sbc_ranks(np.zeros((1, 5, 1)), np.zeros((1, 1)))


def test_posterior_predictive_flags_an_observation_the_model_cannot_make(pairs):
    """With θ confined to [−3, 3], x = 0.2 is typical (p-value well inside (0, 1)); x = 12 lies beyond every
    predictive draw (p-value 1)."""
    sim, _, _ = pairs
    typical = diagnostics.posterior_predictive(TruncatedNormalPosterior(), sim, torch.tensor([0.2]), n=4000, seed=2)
    assert typical.x.shape == (4000, 1) and typical.theta.shape == (4000, 1)
    assert 0.3 < float(typical.p_values[0]) < 0.7
    far = diagnostics.posterior_predictive(TruncatedNormalPosterior(), sim, torch.tensor([12.0]), n=4000, seed=2)
    assert float(far.p_values[0]) == 1.0
