"""An ensemble's log r̂ is its members' mean, differentiable in θ; members must share a method."""

import numpy as np
import pytest
import torch

from hepsbi.data.training import TrainingData
from hepsbi.errors import EstimatorError
from hepsbi.estimators.ensemble import RatioEnsemble
from hepsbi.estimators.ratio import RatioEstimator
from hepsbi.simulators import GaussianLatent
from hepsbi.space import PriorSampler


def test_ensemble_is_the_mean_of_its_members():
    sim = GaussianLatent()
    data = TrainingData.from_simulator(sim, 2000, PriorSampler(sim.space), seed=0)
    members = [RatioEstimator("alices", epochs=2, seed=s, progress=False).fit(data) for s in (0, 1, 2)]
    ensemble = RatioEnsemble(members)
    x = torch.linspace(-2, 2, 7, dtype=torch.float64)[:, None]
    theta = torch.tensor([0.4])
    each = np.stack([m.log_ratio(x.numpy(), theta.numpy()) for m in members])
    np.testing.assert_allclose(ensemble.log_ratio(x.numpy(), theta.numpy()), each.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(ensemble.log_ratio_spread(x.numpy(), theta.numpy()), each.std(axis=0, ddof=1), rtol=1e-5)
    assert np.all(ensemble.log_ratio_spread(x.numpy(), theta.numpy()) > 0)  # different seeds, different networks
    fn = ensemble.log_ratio_of_theta(x)
    t = torch.tensor([0.4], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(fn(t).sum(), t)
    np.testing.assert_allclose(grad.numpy(), ensemble.score(x.numpy(), theta.numpy()).sum(axis=0), rtol=1e-4)
    with pytest.raises(EstimatorError, match="share a method"):
        RatioEnsemble([members[0], RatioEstimator("carl", epochs=1, progress=False).fit(data)])
