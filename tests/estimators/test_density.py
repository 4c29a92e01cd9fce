"""Neural density estimation (nde) and SCANDAL against the exact likelihood of the Gaussian toy, samples against
its moments, an unconditional density against a closed form, and the named errors."""

from __future__ import annotations

import math

import pytest
import torch

from hepsbi import DensityEstimator
from hepsbi.data.training import TrainingData
from hepsbi.errors import EstimatorError
from hepsbi.estimators import load_estimator
from hepsbi.simulators import GaussianLatent
from hepsbi.space import Parameter, ParameterSpace

SMALL = {"epochs": 20, "transforms": 3, "progress": False}


@pytest.fixture(scope="module")
def toy():
    sim = GaussianLatent()
    return sim, TrainingData.from_simulator(sim, 10_000, seed=0)


def test_nde_and_scandal_learn_the_exact_likelihood(toy):
    """On z ~ N(θ, 1), x ~ N(z, ½) — p(x | θ) = N(θ, 1.25) — the flow's log p̂(x | θ) and its ratio door follow the
    exact ones at events drawn at θ; SCANDAL's score term makes the ratio several times more precise (measured on
    10⁴ rows: mean |Δ log r| 0.09 / 0.14 for nde, 0.015 / 0.029 for scandal at θ = 0.3 / 1), as its paper reports."""
    sim, data = toy
    gen = torch.Generator().manual_seed(1)
    errors = {}
    for method in ("nde", "scandal"):
        est = DensityEstimator(method, **SMALL).fit(data)
        assert est.method == method
        for theta in (0.3, 1.0):
            th = torch.tensor([theta], dtype=torch.float64)
            x, _ = sim.sample(th.expand(5000, 1), gen)
            exact = sim.log_prob(x, th)
            assert float((est.log_prob(x, th) - exact).abs().mean()) < 0.25, (method, theta)
            exact_r = exact - sim.log_prob(x, sim.space.reference)
            errors[method, theta] = float((est.log_ratio(x, th).double() - exact_r).abs().mean())
        door = est.log_ratio_of_theta(x[:20])
        th = torch.tensor([0.4], dtype=torch.float64)
        torch.testing.assert_close(door(th).float(), est.log_ratio(x[:20], th), rtol=0, atol=1e-5)
        grad = torch.autograd.functional.jacobian(door, th)[:, 0]
        torch.testing.assert_close(est.score(x[:20], th)[:, 0].double(), grad, rtol=1e-3, atol=1e-4)
        sample = est.sample(torch.tensor([1.0]), 20_000, generator=torch.Generator().manual_seed(2))
        assert sample.shape == (20_000, 1)
        assert float(sample.mean()) == pytest.approx(1.0, abs=0.05)
        assert float(sample.std()) == pytest.approx(1.25**0.5, rel=0.06)
    for theta in (0.3, 1.0):
        assert errors["scandal", theta] < 0.5 * errors["nde", theta] and errors["scandal", theta] < 0.06, errors


def test_unconditional_density_of_a_correlated_gaussian():
    """conditional=False learns p̂(x) alone: a 2-D correlated Gaussian's log-density to a few per cent of a unit, its
    covariance from samples; no ratio in θ."""
    gen = torch.Generator().manual_seed(3)
    cov = torch.tensor([[1.0, 0.8], [0.8, 2.0]], dtype=torch.float64)
    normal = torch.distributions.MultivariateNormal(torch.tensor([1.0, -2.0], dtype=torch.float64), cov)
    chol = torch.linalg.cholesky(cov)

    def draw(n: int) -> torch.Tensor:
        return normal.mean + torch.randn(n, 2, generator=gen, dtype=torch.float64) @ chol.T

    x = draw(10_000)
    space = ParameterSpace([Parameter("unused", -1.0, 1.0)])
    data = TrainingData(x, torch.zeros(len(x), 1), torch.ones(len(x)), torch.zeros(len(x)), torch.zeros(len(x), 1),
                        torch.ones(len(x)), space)
    est = DensityEstimator(conditional=False, **SMALL).fit(data)
    test = draw(2000)
    assert float((est.log_prob(test) - normal.log_prob(test)).abs().mean()) < 0.08
    drawn = est.sample(n=20_000, generator=torch.Generator().manual_seed(4)).double()
    torch.testing.assert_close(torch.cov(drawn.T), cov, rtol=0, atol=0.15)
    with pytest.raises(EstimatorError, match="no ratio in θ"):
        est.log_ratio(test, torch.tensor([0.0]))


def test_named_errors_of_the_density_estimator():
    with pytest.raises(EstimatorError, match="unknown flow"):
        DensityEstimator(flow="glow")
    with pytest.raises(EstimatorError, match="no score term"):
        DensityEstimator("nde", scandal_alpha=1.0)
    with pytest.raises(EstimatorError, match="takes no embedding"):
        DensityEstimator(embedding=torch.nn.Identity())
    with pytest.raises(EstimatorError, match="conditional density"):
        DensityEstimator(scandal_alpha=1.0, conditional=False)
    with pytest.raises(EstimatorError, match="unknown activation 'elu'"):
        DensityEstimator(activation="elu")


def test_dequantised_density_of_an_integer_observable():
    """x ~ Binomial(10, θ): with dequantise the flow's p̂(k | θ) at the integers is the probability of k (to ~0.1 in
    log over the likely k); the same flow without it piles its density onto the integers instead."""
    gen = torch.Generator().manual_seed(5)
    n = 10_000
    theta = 0.2 + 0.6 * torch.rand(n, 1, generator=gen, dtype=torch.float64)
    y = (torch.arange(n) % 2).double()
    drawn_at = torch.where(y[:, None] > 0, theta, torch.full_like(theta, 0.5))
    x = torch.binomial(torch.full((n, 1), 10.0, dtype=torch.float64), drawn_at, generator=gen)
    space = ParameterSpace([Parameter("p", 0.2, 0.8, reference=0.5)])
    data = TrainingData(x, theta, y, torch.zeros(n), torch.zeros(n, 1), torch.ones(n), space, ["k"])
    k = torch.arange(2.0, 9.0, dtype=torch.float64)[:, None]
    exact = torch.distributions.Binomial(10, torch.tensor(0.5, dtype=torch.float64)).log_prob(k[:, 0])
    smooth = DensityEstimator(dequantise=["k"], **SMALL).fit(data)
    assert float((smooth.log_prob(k, [0.5]) - exact).abs().max()) < 0.15
    spiky = DensityEstimator(**SMALL).fit(data)
    assert float((spiky.log_prob(k, [0.5]) - exact).mean()) > 0.5  # density, not probability: far above log P(k)
    with pytest.raises(EstimatorError, match="dequantise: 'j' is not an observable"):
        DensityEstimator(dequantise=["j"], **SMALL).fit(data)


def test_a_mixture_of_flows_is_a_normalised_density_that_draws_from_itself(toy, tmp_path):
    """members=2: log p̂ is the equal mixture of the members' (which differ), integrates to 1 over x, its draws
    follow its own mean and spread, it survives save/load, and a model saved with one flow named ``flow`` loads as
    member 0; SCANDAL trains every member on its own score term."""
    sim, data = toy
    est = DensityEstimator(members=2, epochs=1, transforms=2, progress=False).fit(data)
    grid = torch.linspace(-7, 7, 4001, dtype=torch.float64)
    theta = torch.tensor([0.4], dtype=torch.float64)
    density = est.log_prob(grid[:, None], theta).exp()
    assert float(torch.trapezoid(density, grid)) == pytest.approx(1.0, abs=0.01)
    with torch.no_grad():
        members = est._model.member_log_probs(grid[:, None].float(), theta.float().expand(len(grid), 1)).double()
    torch.testing.assert_close(est.log_prob(grid[:, None], theta), torch.logsumexp(members, 0) - math.log(2),
                               rtol=0, atol=1e-5)
    member_means = torch.trapezoid(grid * members.exp(), grid)
    assert float((member_means[0] - member_means[1]).abs()) > 0.01  # the members differ, so the mixture matters
    mean = torch.trapezoid(grid * density, grid)
    sd = torch.trapezoid((grid - mean) ** 2 * density, grid).sqrt()
    draws = est.sample(theta, 40_000, generator=torch.Generator().manual_seed(3)).double()
    assert float(draws.mean()) == pytest.approx(float(mean), abs=4 * float(sd) / 200)
    assert float(draws.std()) == pytest.approx(float(sd), rel=0.02)
    est.save(tmp_path / "mixture")
    torch.testing.assert_close(load_estimator(tmp_path / "mixture").log_prob(grid[::100, None], theta),
                               est.log_prob(grid[::100, None], theta), rtol=0, atol=1e-6)
    single = DensityEstimator(epochs=1, transforms=2, progress=False).fit(data)
    old = {k.replace("flows.0.", "flow."): v for k, v in single._model.state_dict().items()}
    fresh = DensityEstimator(transforms=2).network(single._x_shape, sim.space)
    fresh.load_state_dict(old)
    torch.testing.assert_close(fresh.log_prob(grid[::100, None].float(), theta.float().expand(41, 1)),
                               single._model.log_prob(grid[::100, None].float(), theta.float().expand(41, 1)))
    scandal = DensityEstimator("scandal", members=2, epochs=1, transforms=2, progress=False).fit(data)
    assert "score" in scandal.history.train_parts and math.isfinite(scandal.history.val_parts["score"][-1])
    with pytest.raises(EstimatorError, match="members must be a positive integer"):
        DensityEstimator(members=0)
