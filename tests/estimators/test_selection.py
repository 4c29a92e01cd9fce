"""Choosing between estimators by their validation loss: the better candidate wins (checked on fresh simulations
against the exact likelihood of the Gaussian toy), and candidates whose losses are not comparable are refused."""

from __future__ import annotations

import pytest
import torch

from hepsbi import DensityEstimator, PosteriorEstimator, TrainingData
from hepsbi.errors import EstimatorError
from hepsbi.estimators import RatioEstimator, select_by_validation
from hepsbi.simulators import GaussianLatent


def test_the_candidate_with_the_lower_held_out_loss_is_the_better_posterior():
    """A flow trained for 20 epochs against one stopped after a single epoch at a tiny learning rate: the selection
    keeps the first, reports each candidate's loss at its kept weights, and the kept one is also the better
    posterior on 4,000 fresh simulations (mean −log q̂(θ | x))."""
    sim = GaussianLatent()
    data = TrainingData.from_simulator(sim, 6000, seed=0)
    good = PosteriorEstimator(sim.space, transforms=3, epochs=20, progress=False)
    poor = PosteriorEstimator(sim.space, transforms=3, epochs=1, learning_rate=1e-5, progress=False)
    chosen = select_by_validation([poor, good], data)
    assert chosen.index == 1 and chosen.best is good
    assert chosen.losses == [poor.history.kept_val_loss, good.history.kept_val_loss]
    assert chosen.losses[1] < chosen.losses[0]
    gen = torch.Generator().manual_seed(5)
    theta = sim.space.sample_prior(4000, gen)
    x = sim.sample(theta, gen)[0]
    with torch.no_grad():
        fresh = [float(-est.model.log_prob(theta.float(), x.float()).mean()) for est in (poor, good)]
    assert fresh[1] < fresh[0]


def test_density_candidates_are_ranked_as_the_exact_likelihood_ranks_them():
    """Two flows p̂(x | θ) of different architecture (a spline flow with ReLU, a MAF with tanh) on the Gaussian toy,
    one of them starved (one epoch at a tiny rate): the selection keeps the trained one, and on 4,000 fresh events
    its mean −log p̂(x | θ) is the closer to the exact likelihood's."""
    sim = GaussianLatent()
    data = TrainingData.from_simulator(sim, 4000, seed=0)
    starved = DensityEstimator(transforms=2, epochs=1, learning_rate=1e-5, progress=False)
    trained = DensityEstimator(flow="maf", activation="tanh", transforms=2, epochs=15, progress=False)
    chosen = select_by_validation([starved, trained], data)
    assert chosen.index == 1 and chosen.best is trained
    gen = torch.Generator().manual_seed(5)
    theta = sim.space.sample_prior(4000, gen)
    x = sim.sample(theta, gen)[0]
    exact = float(-sim.log_prob(x, theta).mean())
    fresh = [float(-est.log_prob(x, theta).mean()) for est in (starved, trained)]
    assert abs(fresh[1] - exact) < abs(fresh[0] - exact)
    assert abs(fresh[1] - exact) < 0.02  # 0.0013 measured


def test_candidates_whose_losses_are_not_comparable_are_refused():
    sim = GaussianLatent()
    data = TrainingData.from_simulator(sim, 500, seed=0)
    with pytest.raises(EstimatorError, match="at least one candidate"):
        select_by_validation([], data)
    with pytest.raises(EstimatorError, match="candidate 1 is a DensityEstimator"):
        select_by_validation([PosteriorEstimator(sim.space), DensityEstimator()], data)
    with pytest.raises(EstimatorError, match="candidate 1 has method='alices'"):
        select_by_validation([RatioEstimator("carl"), RatioEstimator("alices")], data)
    with pytest.raises(EstimatorError, match="candidate 1 has training option seed=1"):
        select_by_validation([PosteriorEstimator(sim.space), PosteriorEstimator(sim.space, seed=1)], data)
    with pytest.raises(EstimatorError, match="validation_fraction > 0"):
        select_by_validation([PosteriorEstimator(sim.space, validation_fraction=0.0)], data)
