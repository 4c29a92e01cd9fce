"""Posteriors from a likelihood by MCMC (LikelihoodPosterior) against exact posteriors: the Gaussian toy's exact
likelihood over 20 events, a bimodal likelihood (both modes found), a learned density (NLE), and SBC of the result."""

from __future__ import annotations

import math

import pytest
import torch

from hepsbi import DensityEstimator, Parameter, ParameterSpace, TrainingData, diagnostics
from hepsbi.errors import EstimatorError
from hepsbi.inference import LikelihoodPosterior
from hepsbi.simulators import GaussianLatent

FAST = {"burn": 100, "thin": 4}


def exact_moments(x_obs: torch.Tensor, low: float, high: float) -> tuple[float, float]:
    """Mean and sd of Π_i N(x_i; θ, √1.25) × uniform prior on [low, high], by quadrature."""
    grid = torch.linspace(low, high, 4001, dtype=torch.float64)
    log_p = torch.distributions.Normal(grid[:, None], 1.25**0.5).log_prob(x_obs[:, 0][None]).sum(dim=1)
    pdf = torch.exp(log_p - log_p.max())
    pdf = pdf / torch.trapezoid(pdf, grid)
    mean = torch.trapezoid(grid * pdf, grid)
    return float(mean), float(torch.trapezoid((grid - mean) ** 2 * pdf, grid).sqrt())


def test_exact_likelihood_over_many_events():
    """20 events at θ = 0.3 (prior [−1, 1]): 8000 draws have the quadrature mean and sd (sd 0.25 / √20 …);
    log_prob_unnormalised is log prior + the summed log-likelihood, −∞ outside the box."""
    sim = GaussianLatent()
    gen = torch.Generator().manual_seed(5)
    x_obs, _ = sim.sample(torch.full((20, 1), 0.3, dtype=torch.float64), gen)
    post = LikelihoodPosterior(sim.log_prob, sim.space, **FAST)
    draws = post.sample(x_obs, 8000, generator=torch.Generator().manual_seed(1))
    mean, sd = exact_moments(x_obs, -1.0, 1.0)
    assert draws.shape == (8000, 1) and bool(((draws >= -1) & (draws <= 1)).all())
    assert float(draws.mean()) == pytest.approx(mean, abs=0.02)
    assert float(draws.std()) == pytest.approx(sd, rel=0.08)
    assert 0.2 < post.acceptance < 0.95
    theta = torch.tensor([[0.1], [1.5]], dtype=torch.float64)
    value = post.log_prob_unnormalised(theta, x_obs)
    expected = math.log(0.5) + float(sim.log_prob(x_obs, theta[0]).sum())
    assert float(value[0]) == pytest.approx(expected, abs=1e-9) and value[1] == -math.inf


def lag_one_correlation(draws: torch.Tensor, walkers: int) -> float:
    """Correlation of a walker's successive kept states (draws come as (kept, walkers, p), latest first)."""
    chains = draws[: (len(draws) // walkers) * walkers].reshape(-1, walkers, draws.shape[1])[..., 0]
    a, b = chains[1:] - chains.mean(), chains[:-1] - chains.mean()
    return float((a * b).mean() / (chains - chains.mean()).pow(2).mean())


def test_auto_thinning_keeps_draws_independent():
    """A correlated 2-D Gaussian (ρ = 0.98) mixes slowly (τ of tens of steps): thin="auto" runs until walkers × steps /
    τ ≥ n and keeps draws whose successive states are about uncorrelated, with the right variance; keeping every
    step instead leaves them strongly correlated; too few max_steps warns."""
    from hepsbi.errors import HepsbiWarning

    space = ParameterSpace([Parameter("a", -1.0, 1.0), Parameter("b", -1.0, 1.0)])
    cov = 0.04 * torch.tensor([[1.0, 0.98], [0.98, 1.0]], dtype=torch.float64)
    normal = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64), cov)

    def log_likelihood(x, theta):
        return normal.log_prob(theta)

    auto = LikelihoodPosterior(log_likelihood, space, walkers=32, burn=200)
    draws = auto.sample(torch.zeros(1), 2000, generator=torch.Generator().manual_seed(3))
    assert draws.shape == (2000, 2) and auto.autocorrelation.shape == (2,)
    assert auto.autocorrelation.max() > 10 and auto.effective_draws >= 2000
    assert abs(lag_one_correlation(draws, 32)) < 0.25
    assert float(draws[:, 0].std()) == pytest.approx(0.2, rel=0.1)
    every = LikelihoodPosterior(log_likelihood, space, walkers=32, burn=200, thin=1)
    draws = every.sample(torch.zeros(1), 2000, generator=torch.Generator().manual_seed(3))
    assert lag_one_correlation(draws, 32) > 0.7 and every.effective_draws < 500
    with pytest.warns(HepsbiWarning, match="max_steps = 50 reached"):
        LikelihoodPosterior(log_likelihood, space, walkers=32, burn=50, max_steps=50).sample(torch.zeros(1), 2000)


def test_both_modes_of_a_bimodal_posterior():
    """log L(θ) = log(N(θ; −0.6, 0.08) + N(θ; 0.6, 0.08)) on [−1, 1]: walkers start in both modes (importance
    resampling) and the draws split about evenly between them."""
    space = ParameterSpace([Parameter("theta", -1.0, 1.0)])

    def log_likelihood(x, theta):
        modes = torch.distributions.Normal(torch.tensor([-0.6, 0.6], dtype=torch.float64), 0.08)
        return torch.logsumexp(modes.log_prob(theta[:, :1]), dim=1)

    draws = LikelihoodPosterior(log_likelihood, space, **FAST).sample(torch.zeros(1), 8000,
                                                                      generator=torch.Generator().manual_seed(2))
    share = float((draws < 0).double().mean())
    assert 0.35 < share < 0.65
    assert float(draws[draws < 0].mean()) == pytest.approx(-0.6, abs=0.03)


def test_nle_posterior_is_calibrated():
    """A density estimator (NDE) trained on the toy, sampled by MCMC: SBC and TARP do not reject it on 100
    simulations, and its posterior for one event has the exact mean (prior box [−2, 2])."""
    sim = GaussianLatent(low=-2.0, high=2.0)
    data = TrainingData.from_simulator(sim, 4000, seed=0)
    density = DensityEstimator(epochs=10, transforms=2, progress=False).fit(data)
    post = LikelihoodPosterior(density, sim.space, burn=40, thin=2, init=1024)  # the estimator's log_prob
    gen = torch.Generator().manual_seed(7)
    theta = sim.space.sample_prior(100, gen)
    x, _ = sim.sample(theta, gen)
    samples = diagnostics.posterior_samples(post, x, 32, seed=3)
    assert diagnostics.sbc(post, theta, x, samples=samples).calibrated()
    assert diagnostics.tarp(post, theta, x, samples=samples).calibrated()
    draws = post.sample(torch.tensor([[0.5]]), 4000, generator=torch.Generator().manual_seed(1))
    mean, _ = exact_moments(torch.tensor([[0.5]], dtype=torch.float64), -2.0, 2.0)
    assert float(draws.mean()) == pytest.approx(mean, abs=0.08)


def test_named_errors():
    sim = GaussianLatent()
    with pytest.raises(EstimatorError, match="must be callable"):
        LikelihoodPosterior(3.0, sim.space)
    with pytest.raises(EstimatorError, match="sample_prior"):
        LikelihoodPosterior(sim.log_prob, object())
    with pytest.raises(EstimatorError, match="burn must be >= 0"):
        LikelihoodPosterior(sim.log_prob, sim.space, burn=-1)
    with pytest.raises(EstimatorError, match="thin must be 'auto' or an integer >= 1"):
        LikelihoodPosterior(sim.log_prob, sim.space, thin="every")
    with pytest.raises(EstimatorError, match=r"walkers must be >= 2 p \+ 2 = 4"):
        LikelihoodPosterior(sim.log_prob, sim.space, walkers=3).sample(torch.zeros(1, 1), 10)
    nowhere = LikelihoodPosterior(lambda x, theta: torch.full((len(x),), -math.inf), sim.space)
    with pytest.raises(EstimatorError, match="finite likelihood"):
        nowhere.sample(torch.zeros(1, 1), 10)


def test_nre_on_contrastive_pairs_gives_the_posterior():
    """An unanchored carl on (θ_i, x_i) against (θ_i, x_π(i)) learns p(x | θ)/p(x) (TrainingData.contrastive, 3
    shuffles, weights 1/3): its MCMC posterior for one event has the exact mean and sd (prior box [−2, 2]); bad input
    is named. An ensemble of two such classifiers does the same."""
    from hepsbi import RatioEstimator
    from hepsbi.errors import DataError
    from hepsbi.estimators import RatioEnsemble

    sim = GaussianLatent(low=-2.0, high=2.0)
    gen = torch.Generator().manual_seed(4)
    theta = sim.space.sample_prior(4000, gen)
    x, _ = sim.sample(theta, gen)
    data = TrainingData.contrastive(theta, x, sim.space, negatives=3, seed=1)
    assert len(data.y) == 16_000 and float(data.weights[data.y == 0].sum()) == pytest.approx(4000)
    ratio = RatioEstimator("carl", anchored=False, epochs=10, progress=False).fit(data)
    # unanchored: log r̂(x | θ_ref) = log p(x | θ_ref)/p(x) is learned, not fixed at 0 (x = 3 is unlikely at θ_ref = 0)
    assert float(ratio.log_ratio(torch.tensor([[3.0]]), sim.space.reference)[0]) < -1.0
    draws = LikelihoodPosterior(ratio, sim.space, burn=60, thin=3).sample(torch.tensor([[0.5]]), 4000,
                                                                          generator=torch.Generator().manual_seed(1))
    mean, sd = exact_moments(torch.tensor([[0.5]], dtype=torch.float64), -2.0, 2.0)
    assert float(draws.mean()) == pytest.approx(mean, abs=0.1)
    assert float(draws.std()) == pytest.approx(sd, rel=0.15)
    # an ensemble (a second classifier with its own seed and shuffles; the mean log r̂) samples the same posterior
    other = RatioEstimator("carl", anchored=False, epochs=10, seed=2, progress=False).fit(
        TrainingData.contrastive(theta, x, sim.space, negatives=3, seed=2))
    ensemble = RatioEnsemble([ratio, other])
    draws = LikelihoodPosterior(ensemble, sim.space, burn=60, thin=3).sample(torch.tensor([[0.5]]), 4000,
                                                                             generator=torch.Generator().manual_seed(1))
    assert float(draws.mean()) == pytest.approx(mean, abs=0.1)
    assert float(draws.std()) == pytest.approx(sd, rel=0.15)
    with pytest.raises(DataError, match="negatives must be >= 1"):
        TrainingData.contrastive(theta, x, sim.space, negatives=0)
    with pytest.raises(DataError, match="the same n"):
        TrainingData.contrastive(theta, x[:10], sim.space)
