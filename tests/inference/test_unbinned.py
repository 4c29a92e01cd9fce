"""The extended unbinned likelihood: against pyhf on a counting experiment with normalisation systematics,
against the exact Gaussian MLE and intervals, and shape-systematic consistency."""

import math

import numpy as np
import pytest
import torch

from hepsbi.inference import observed_dataset
from hepsbi.inference.nuisance import NormSys, ShapeSys
from hepsbi.inference.profile import minimize
from hepsbi.inference.unbinned import UnbinnedModel
from hepsbi.simulators import GaussianLatent

S, B, N = 12.0, 50.0, 58


def counting_model() -> UnbinnedModel:
    flat = lambda theta: torch.zeros(N, dtype=torch.float64)  # noqa: E731  (no shape information)
    return UnbinnedModel(["mu"], flat, torch.ones(N), lambda th: S * th[0] + B,
                         norm=[NormSys("lumi", 1.05, 0.95), NormSys("xsec", 1.1, 0.85)])


def test_profile_likelihood_agrees_with_pyhf_on_a_counting_experiment():
    import pyhf

    mods = [{"name": "lumi", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}},
            {"name": "xsec", "type": "normsys", "data": {"hi": 1.1, "lo": 0.85}}]
    spec = {
        "channels": [{"name": "sr", "samples": [
            {"name": "sig", "data": [S], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}, *mods]},
            {"name": "bkg", "data": [B], "modifiers": mods},
        ]}],
        "observations": [{"name": "sr", "data": [float(N)]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }
    ws = pyhf.Workspace(spec)
    model = ws.model(modifier_settings={"normsys": {"interpcode": "code4"}})
    data = ws.data(model)
    _, free = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
    ours = counting_model()
    best = minimize(ours.nll, ours.names, [1.0, 0.0, 0.0])
    for mu in (0.0, 0.5, 1.5, 2.5):
        _, fixed = pyhf.infer.mle.fixed_poi_fit(mu, data, model, return_fitted_val=True)
        prof = minimize(ours.nll, ours.names, [mu, 0.0, 0.0], fixed={"mu": mu})
        assert 2 * (prof.nll - best.nll) == pytest.approx(float(fixed - free), abs=1e-3)


def test_exact_ratio_reproduces_the_exact_gaussian_mle_and_interval():
    sim = GaussianLatent(mu0=0.1)
    data = observed_dataset(sim, torch.tensor([0.25], dtype=torch.float64), 400, seed=3)
    ref = sim.space.reference

    def log_ratio(theta):
        return sim.log_prob(data.x, theta) - sim.log_prob(data.x, ref)

    model = UnbinnedModel(["theta"], log_ratio, data.weights, lambda th: torch.tensor(400.0, dtype=torch.float64))
    fit = minimize(model.nll, model.names, [0.0], minos=["theta"])
    sigma = math.hypot(1.0, 0.5) / math.sqrt(400)
    xbar = data.x.mean().item() - 0.1
    assert fit.values["theta"] == pytest.approx(xbar, abs=1e-6)
    assert fit.errors["theta"] == pytest.approx(sigma, rel=1e-5)
    assert fit.minos["theta"] == pytest.approx((xbar - sigma, xbar + sigma), abs=1e-6)


def test_uniform_shape_systematic_equals_a_normalisation_systematic():
    flat = lambda theta: torch.zeros(N, dtype=torch.float64)  # noqa: E731
    mc_flat = lambda theta: torch.zeros(200, dtype=torch.float64)  # noqa: E731
    as_norm = UnbinnedModel(["mu"], flat, torch.ones(N), lambda th: S * th[0] + B, norm=[NormSys("k", 1.1, 0.9)])
    as_shape = UnbinnedModel(
        ["mu"], flat, torch.ones(N), lambda th: S * th[0] + B,
        shape=[ShapeSys("k", torch.full((N,), 1.1), torch.full((N,), 0.9))],
        mc_log_ratio=mc_flat, mc_weights=torch.ones(200),
        mc_shape=[ShapeSys("k", torch.full((200,), 1.1), torch.full((200,), 0.9))],
    )
    for params in ([1.0, 0.0], [0.3, 0.7], [2.0, -1.6]):
        p = torch.tensor(params, dtype=torch.float64)
        assert as_shape.nll(p).item() == pytest.approx(as_norm.nll(p).item(), rel=1e-9)
    np.testing.assert_allclose(minimize(as_shape.nll, as_shape.names, [1.0, 0.0]).values["mu"],
                               minimize(as_norm.nll, as_norm.names, [1.0, 0.0]).values["mu"], atol=1e-5)
