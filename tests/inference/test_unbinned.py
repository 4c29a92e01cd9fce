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


def counting_model(n_mc: int | None = None) -> UnbinnedModel:
    """N events, no shape information, ν = S μ + B with two normalisation systematics; with ``n_mc`` flat
    Monte Carlo events (for Asimov datasets)."""
    flat = lambda theta: torch.zeros(N, dtype=torch.float64)  # noqa: E731
    mc = {} if n_mc is None else {"mc_log_ratio": lambda theta: torch.zeros(n_mc, dtype=torch.float64),
                                  "mc_weights": torch.full((n_mc,), 1.0 / n_mc)}
    return UnbinnedModel(["mu"], flat, torch.ones(N), lambda th: S * th[0] + B,
                         norm=[NormSys("lumi", 1.05, 0.95), NormSys("xsec", 1.1, 0.85)], **mc)


def pyhf_counting_model():
    """The same counting experiment as a pyhf model (normsys code 4) and its data."""
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
    return model, ws.data(model)


def test_profile_likelihood_agrees_with_pyhf_on_a_counting_experiment():
    import pyhf

    model, data = pyhf_counting_model()
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


def morphing_toy(n=3000, seed=5):
    """Events whose weight at θ is a_i · (1, θ, θ²), with two shape systematics, and the same model given
    its ratio as an opaque function (every sum over events done per call)."""
    from hepsbi.inference.unbinned import LinearRatio

    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, generator=gen, dtype=torch.float64)
    coef = torch.stack([torch.ones(n, dtype=torch.float64), 2 * x - 1, x**2 + 0.3], dim=1)  # positive for all θ
    basis = lambda th: torch.stack([torch.ones((), dtype=torch.float64), th[0], th[0] ** 2])  # noqa: E731
    mc_w = torch.full((n,), 1 / n, dtype=torch.float64)
    linear = LinearRatio(basis, coef, mc_w @ coef)
    opaque = lambda th: linear(th)  # noqa: E731
    shape = [ShapeSys("s1", 1 + 0.2 * x, 1 - 0.15 * x), ShapeSys("s2", 1.05 + 0.1 * x**2, 0.9 - 0.05 * x)]
    data_w = 500.0 * mc_w * (coef @ basis(torch.tensor([0.3], dtype=torch.float64)))  # Asimov, ν(θ_true) events

    def build(ratio):
        return UnbinnedModel(["theta"], ratio, data_w, lambda th: 500.0 * (linear.mean @ basis(th)),
                             norm=[NormSys("lumi", 1.02, 0.98)], shape=shape,
                             mc_log_ratio=ratio, mc_weights=mc_w, mc_shape=shape)

    return build(linear), build(opaque), data_w, shape


def test_tabulated_terms_equal_the_sums_over_events():
    fast, slow, data_w, shape = morphing_toy()
    for params in ([0.3, 0.0, 0.0, 0.0], [0.1, 0.5, -0.7, 0.4], [-0.4, 1.3, 1.6, -2.2], [0.8, -0.2, -1.0, 1.0]):
        p = torch.tensor(params, dtype=torch.float64, requires_grad=True)
        a, b = fast.nll(p), slow.nll(p)
        assert a.item() == pytest.approx(b.item(), rel=1e-12, abs=1e-7)
        (ga,), (gb,) = torch.autograd.grad(a, p), torch.autograd.grad(b, p)
        np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-6, atol=1e-6)
        # The data term of the shape systematics against its definition, Σ_i d_i Σ_k log κ_ik(α_k).
        alpha = p.detach()[2:]
        exact = sum((data_w * torch.log(s.factor(a))).sum() for s, a in zip(shape, alpha))
        assert fast._data_shape(alpha).item() == pytest.approx(exact.item(), abs=1e-7)


def test_fit_on_the_tabulated_model_equals_the_direct_one():
    fast, slow, _, _ = morphing_toy()
    a = minimize(fast.nll, fast.names, [0.0, 0.0, 0.0, 0.0])
    b = minimize(slow.nll, slow.names, [0.0, 0.0, 0.0, 0.0])
    assert a.values["theta"] == pytest.approx(0.3, abs=1e-4)  # Asimov: at the truth
    for name in a.names:
        assert a.values[name] == pytest.approx(b.values[name], abs=1e-5)
        assert a.errors[name] == pytest.approx(b.errors[name], rel=1e-5)


def test_cls_and_expected_band_agree_with_pyhf_on_a_counting_experiment():
    """The Asimov dataset (background-only fit, auxiliary data at the fitted α) and q̃ as pyhf does them."""
    import pyhf

    from hepsbi.inference.hypotest import hypotest

    pmodel, pdata = pyhf_counting_model()
    ours = counting_model(n_mc=50)
    for mu in (0.5, 1.0, 2.0):
        cls_obs, cls_exp = pyhf.infer.hypotest(mu, pdata, pmodel, test_stat="qtilde", return_expected_set=True)
        result = hypotest(ours, "mu", mu)
        assert result.cls_obs == pytest.approx(float(cls_obs), rel=2e-3)
        np.testing.assert_allclose(result.cls_exp, [float(c) for c in cls_exp], rtol=2e-3)


def test_upper_limits_agree_with_pyhf_on_a_counting_experiment():
    import pyhf

    from hepsbi.inference.hypotest import upper_limit

    pmodel, pdata = pyhf_counting_model()
    obs_ref, exp_ref = pyhf.infer.intervals.upper_limits.upper_limit(pdata, pmodel, scan=np.linspace(0.0, 8.0, 321))
    obs, exp = upper_limit(counting_model(n_mc=50), "mu", (0.05, 8.0))  # at μ = 0 the test has no power (q_A = 0)
    assert obs == pytest.approx(float(obs_ref), rel=5e-3)
    np.testing.assert_allclose(exp, [float(e) for e in exp_ref], rtol=5e-3)
    assert exp == sorted(exp)


def test_a_shared_hypotester_makes_the_fits_independent_of_mu_once_and_remembers_each_test(monkeypatch):
    """A CLs scan and the limit search on one Hypotester (as `hepsbi limits` does) give what the separate calls give,
    with the four μ-independent fits made once and no value tested twice."""
    import hepsbi.inference.hypotest as module

    model = counting_model(n_mc=50)
    obs_ref, exp_ref = module.upper_limit(model, "mu", (0.05, 8.0))
    scan = [0.05, 1.0, 2.0, 8.0]
    scan_ref = module.hypotests(model, "mu", scan)
    fits: list[dict[str, float] | None] = []
    real = module.minimize
    monkeypatch.setattr(module, "minimize", lambda *a, **k: fits.append(k.get("fixed")) or real(*a, **k))
    tester = module.Hypotester(model, "mu")
    assert len(fits) == 4  # global, at 0, and both on the Asimov dataset
    obs, exp = tester.upper_limit((0.05, 8.0))
    searched = len(fits)
    tests = [tester(mu) for mu in scan]
    assert len(fits) == searched + 2 * 2  # 0.05 and 8.0 were tested by the search already: only 1.0 and 2.0 are fitted
    assert (obs, exp) == (obs_ref, exp_ref)
    for ours, ref in zip(tests, scan_ref):
        assert ours.cls_obs == pytest.approx(ref.cls_obs, rel=1e-9)
        np.testing.assert_allclose(ours.cls_exp, ref.cls_exp, rtol=1e-9)
    assert fits.count(None) == 2  # the two global fits, never repeated
