"""Asymptotic CLs (arXiv:1007.1727) against pyhf's calculator, and the test statistics' definitions."""

import numpy as np
import pytest

from hepsbi.errors import InferenceError
from hepsbi.inference.asymptotics import asymptotic_cls, likelihood_test_statistic


def counting_workspace(observed: float):
    import pyhf

    mods = [{"name": "lumi", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}}]
    spec = {
        "channels": [{"name": "sr", "samples": [
            {"name": "sig", "data": [12.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}, *mods]},
            {"name": "bkg", "data": [50.0], "modifiers": mods},
        ]}],
        "observations": [{"name": "sr", "data": [observed]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }
    return pyhf.Workspace(spec)


@pytest.mark.parametrize("observed", [45.0, 52.0, 66.0])
@pytest.mark.parametrize("mu", [0.5, 1.0, 2.0])
def test_cls_matches_pyhf_given_q_and_q_asimov(observed, mu):
    import pyhf

    ws = counting_workspace(observed)
    model = ws.model(modifier_settings={"normsys": {"interpcode": "code4"}})
    data = ws.data(model)
    cls_obs, cls_exp, calc = pyhf.infer.hypotest(mu, data, model, test_stat="qtilde", return_expected_set=True,
                                                 return_calculator=True)
    init, bounds, fixed = model.config.suggested_init(), model.config.suggested_bounds(), model.config.suggested_fixed()
    q = float(pyhf.infer.test_statistics.qmu_tilde(mu, data, model, init, bounds, fixed))
    mine_obs, mine_exp = asymptotic_cls(q, float(calc.sqrtqmuA_v) ** 2)
    assert mine_obs == pytest.approx(float(cls_obs), rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(mine_exp, [float(c) for c in cls_exp], rtol=1e-9, atol=1e-12)


def test_test_statistic_definitions():
    assert likelihood_test_statistic("t", nll_mu=5.0, nll_hat=3.0, mu=1.0, mu_hat=2.0) == 4.0
    assert likelihood_test_statistic("q", nll_mu=5.0, nll_hat=3.0, mu=1.0, mu_hat=2.0) == 0.0  # μ̂ > μ: no evidence against μ
    assert likelihood_test_statistic("q", nll_mu=5.0, nll_hat=3.0, mu=1.0, mu_hat=0.5) == 4.0
    assert likelihood_test_statistic("qtilde", nll_mu=5.0, nll_hat=3.0, mu=1.0, mu_hat=-0.5, nll_zero=3.5) == 3.0
    with pytest.raises(InferenceError, match="needs the profiled NLL at μ = 0"):
        likelihood_test_statistic("qtilde", nll_mu=5.0, nll_hat=3.0, mu=1.0, mu_hat=-0.5)
    with pytest.raises(InferenceError, match="'t', 'q' or 'qtilde'"):
        likelihood_test_statistic("z", 1.0, 0.0, 1.0, 0.0)
    with pytest.raises(InferenceError, match="q_A must be positive"):
        asymptotic_cls(1.0, 0.0)
