"""Toys: Poisson bootstrap, Wilks coverage of profile-likelihood intervals, Neyman intervals."""

import math

import numpy as np
import pytest
import torch

from hepsbi.errors import InferenceError
from hepsbi.inference.nuisance import NormSys
from hepsbi.inference.profile import minimize
from hepsbi.inference.pseudo_experiments import (
    neyman_interval,
    poisson_counts,
    unbinned_coverage,
    unbinned_toys,
)
from hepsbi.inference.unbinned import UnbinnedModel
from hepsbi.simulators import GaussianLatent

NU = 100.0


def gaussian_model(n_mc: int = 4000, truth: float = 0.3) -> UnbinnedModel:
    """x ~ N(θ + 0.1, 1.25) with exact ratio, ν = 100 events (no rate information) and a 5% luminosity
    systematic; the data are the Asimov dataset at θ = truth."""
    sim = GaussianLatent(mu0=0.1)
    ref = sim.space.reference
    x, _ = sim.sample(ref.expand(n_mc, -1), torch.Generator().manual_seed(11))
    log_p_ref = sim.log_prob(x, ref)

    def log_ratio(theta):
        return sim.log_prob(x, theta) - log_p_ref

    mc_w = torch.full((n_mc,), 1.0 / n_mc, dtype=torch.float64)
    asimov = NU * mc_w * torch.exp(log_ratio(torch.tensor([truth], dtype=torch.float64)))
    return UnbinnedModel(["theta"], log_ratio, asimov / asimov.sum() * NU, lambda th: torch.tensor(NU, dtype=torch.float64),
                         norm=[NormSys("lumi", 1.05, 0.95)], mc_log_ratio=log_ratio, mc_weights=mc_w)


def test_poisson_toys_have_the_expected_counts_and_refuse_negative_weights():
    model = gaussian_model()
    params = torch.tensor([0.3, 1.0], dtype=torch.float64)  # α = +1: 5% more events
    totals = [float(toy.weights.sum()) for toy in unbinned_toys(model, params, 200, seed=1)]
    assert np.mean(totals) == pytest.approx(NU * 1.05, abs=4 * math.sqrt(NU * 1.05 / 200))
    assert np.var(totals) == pytest.approx(NU * 1.05, rel=0.3)
    auxes = [float(toy.aux[0]) for toy in unbinned_toys(model, params, 200, seed=2)]
    assert np.mean(auxes) == pytest.approx(1.0, abs=4 / math.sqrt(200))
    with pytest.raises(InferenceError, match="1 events have ν_j < 0"):
        poisson_counts(torch.tensor([0.1, -0.2, 0.3]), torch.Generator())


@pytest.mark.slow
def test_wilks_coverage_of_68_and_95_percent_intervals_over_300_toys():
    model = gaussian_model()
    result = unbinned_coverage(model, [0.3, 0.0], n_toys=300, seed=5)
    assert result.failed == 0 and result.n_toys == 300
    for level in ("68", "95"):
        assert abs(result.level(level)["pull"]) < 3.0, result.level(level)
    # the toys' best fits scatter around the truth by the Gaussian σ/√n
    fits = np.array([f["theta"] for f in result.best_fits])
    assert fits.mean() == pytest.approx(0.3, abs=4 * math.hypot(1, 0.5) / math.sqrt(NU) / math.sqrt(300))


@pytest.mark.slow
def test_neyman_interval_equals_the_wilks_interval_for_a_gaussian_mean():
    model = gaussian_model()
    fit = minimize(model.nll, model.names, [0.0, 0.0], minos=["theta"])
    lo, hi = fit.minos["theta"]
    step = (hi - lo) / 8
    offsets = step * np.arange(-2, 3)
    result = neyman_interval(model, "theta", np.concatenate([lo + offsets, hi + offsets]), n_toys=100, seed=3)
    # t_μ is χ²(1)-distributed here: the critical values scatter around 1 by toy statistics
    assert np.median(result.t_critical) == pytest.approx(1.0, abs=0.25)
    n_lo, n_hi = result.interval
    assert n_lo == pytest.approx(lo, abs=1.5 * step) and n_hi == pytest.approx(hi, abs=1.5 * step)


def test_toy_batches_join_in_order_and_an_all_failed_study_is_an_error():
    from hepsbi.inference.pseudo_experiments import CoverageResult

    first = CoverageResult(np.array([0.1, 2.0]), 1, 1, [{"a": 0.0}, {"a": 1.0}])
    second = CoverageResult(np.array([5.0]), 1, 0, [{"a": 2.0}])
    joined = CoverageResult.join([first, CoverageResult(np.array([]), 1, 2), second])
    np.testing.assert_array_equal(joined.t, [0.1, 2.0, 5.0])
    assert joined.failed == 3 and [f["a"] for f in joined.best_fits] == [0.0, 1.0, 2.0]
    assert joined.level("68")["coverage"] == pytest.approx(1 / 3)  # t <= 1 for 1 dof: only 0.1
    with pytest.raises(InferenceError, match="every one of 4 toy fits failed"):
        CoverageResult.join([CoverageResult(np.array([]), 1, 4)])
