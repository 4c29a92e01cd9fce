"""Fast detector: acceptance, efficiency and resolution as specified."""

import numpy as np
import pytest

from hepsbi.physics import FastDetector
from hepsbi.physics import kinematics as kin


def leptons_at(pt, eta, n):
    minus = kin.from_pt_eta_phi_m(np.full(n, pt), np.full(n, eta), np.zeros(n), 0.10566)
    plus = kin.from_pt_eta_phi_m(np.full(n, pt), np.full(n, -eta), np.full(n, np.pi), 0.10566)
    return np.stack([minus, plus], axis=1)


def test_acceptance_cuts():
    det = FastDetector(lepton_efficiency=1.0, resolution_constant=0.0, resolution_slope=0.0)
    rng = np.random.default_rng(0)
    assert det.smear_leptons(leptons_at(100.0, 1.0, 50), rng)[1].all()
    assert not det.smear_leptons(leptons_at(100.0, 2.6, 50), rng)[1].any()  # |η| > 2.5
    assert not det.smear_leptons(leptons_at(20.0, 0.5, 50), rng)[1].any()  # pT < 25 GeV


def test_efficiency_is_per_lepton():
    det = FastDetector(lepton_efficiency=0.9)
    passed = det.smear_leptons(leptons_at(200.0, 0.3, 100_000), np.random.default_rng(1))[1]
    assert passed.mean() == pytest.approx(0.81, abs=0.005)


@pytest.mark.parametrize("pt", [100.0, 1000.0])
def test_resolution_grows_with_pt(pt):
    det = FastDetector(lepton_efficiency=1.0)
    smeared, _ = det.smear_leptons(leptons_at(pt, 0.2, 50_000), np.random.default_rng(2))
    rel = kin.pt(smeared[:, 0]) / pt - 1
    assert rel.std() == pytest.approx(det.relative_resolution(np.array(pt)), rel=0.02)
    assert abs(rel.mean()) < 0.002
    np.testing.assert_allclose(kin.eta(smeared[:, 0]), 0.2, atol=1e-9)  # direction kept


def test_collins_soper_matches_parton_level_without_transverse_boost():
    """With no pT of the pair, cos θ_CS is ±cos θ* (sign set by the pair's direction vs the quark's)."""
    n = 200
    rng = np.random.default_rng(3)
    cos = rng.uniform(-1, 1, n)
    e = 300.0
    sin = np.sqrt(1 - cos**2)
    minus = np.stack([np.full(n, e), e * sin, np.zeros(n), e * cos], axis=1)
    plus = np.stack([np.full(n, e), -e * sin, np.zeros(n), -e * cos], axis=1)
    # boost along +z with β = 0.3: the quark comes from +z when id1 > 0
    beta, gamma = 0.3, 1 / np.sqrt(1 - 0.09)

    def boost(p):
        return np.stack([gamma * (p[:, 0] + beta * p[:, 3]), p[:, 1], p[:, 2], gamma * (p[:, 3] + beta * p[:, 0])], axis=1)

    x1, x2 = np.full(n, 1.3), np.full(n, 0.7)  # (x1 - x2)/(x1 + x2) = 0.3
    star = kin.cos_theta_star(boost(minus), boost(plus), x1, x2, np.ones(n))
    np.testing.assert_allclose(star, cos, atol=1e-9)
    cs = kin.collins_soper_cos_theta(boost(minus), boost(plus))
    np.testing.assert_allclose(cs, cos, atol=1e-9)
