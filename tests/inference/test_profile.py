"""Nuisance-parameter interpolation against pyhf, and profile fits against closed forms."""

import math

import numpy as np
import pytest
import torch

from hepsbi.errors import InferenceError
from hepsbi.inference.nuisance import NormSys, ShapeSys, code4, code4_coefficients, gaussian_constraint
from hepsbi.inference.profile import minimize, profile_scan


def test_code4_matches_pyhf_and_is_smooth():
    import pyhf

    up, down = np.array([1.2, 0.7, 1.05, 1.3]), np.array([0.85, 1.1, 0.9, 0.6])
    coef = torch.from_numpy(code4_coefficients(up, down))
    interp = pyhf.interpolators.code4([[[[d], [1.0], [u]]] for u, d in zip(up, down)])
    for alpha in np.linspace(-2.5, 2.5, 21):
        mine = code4(torch.full((4,), alpha), torch.tensor(up), torch.tensor(down), coef).numpy()
        ref = np.asarray(interp(np.full((4, 1), alpha))).reshape(4)
        np.testing.assert_allclose(mine, ref, rtol=1e-12)
    # C¹ at the matching points: the autograd slope equals the exponential's, up^α ln up at α = 1
    a = torch.tensor(1.0 - 1e-9, dtype=torch.float64, requires_grad=True)
    k = NormSys("lumi", up=1.2, down=0.85).factor(a)
    (slope,) = torch.autograd.grad(k, a)
    assert slope.item() == pytest.approx(1.2 * math.log(1.2), rel=1e-6)
    assert NormSys("x", 1.1, 0.9).factor(torch.tensor(0.0)).item() == pytest.approx(1.0)


def test_shape_systematic_reaches_its_templates():
    sys = ShapeSys("jes", up=[1.1, 0.95, 1.3], down=[0.9, 1.02, 0.8])
    np.testing.assert_allclose(sys.factor(torch.tensor(1.0)).numpy(), [1.1, 0.95, 1.3])
    np.testing.assert_allclose(sys.factor(torch.tensor(-1.0)).numpy(), [0.9, 1.02, 0.8])
    assert gaussian_constraint(torch.tensor([1.0, 2.0])).item() == pytest.approx(2.5)


def gaussian_with_nuisance(n=100, shift=0.2, seed=0):
    """x_i ~ N(θ + s α, 1) with α constrained by N(0, 1): profiling gives σ_θ² = 1/n + s²."""
    x = 0.3 + torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

    def nll(p):
        return 0.5 * ((x - p[0] - shift * p[1]) ** 2).sum() + gaussian_constraint(p[1:])

    return x, nll


def test_profiling_a_nuisance_widens_the_interval_as_in_closed_form():
    n, shift = 100, 0.2
    x, nll = gaussian_with_nuisance(n, shift)
    profiled = minimize(nll, ["theta", "alpha"], [0.0, 0.0], minos=["theta"])
    fixed = minimize(nll, ["theta", "alpha"], [0.0, 0.0], fixed={"alpha": 0.0}, minos=["theta"])
    xbar = x.mean().item()
    assert profiled.values["theta"] == pytest.approx(xbar, abs=1e-6)
    assert profiled.errors["theta"] == pytest.approx(math.sqrt(1 / n + shift**2), rel=1e-4)
    assert fixed.errors["theta"] == pytest.approx(1 / math.sqrt(n), rel=1e-4)
    lo, hi = profiled.minos["theta"]
    assert (hi - lo) / 2 == pytest.approx(math.sqrt(1 / n + shift**2), rel=1e-4)
    scan = profile_scan(nll, ["theta", "alpha"], [0.0, 0.0], {"theta": np.linspace(-0.5, 1.1, 161)})
    assert scan.intervals["theta"]["68"] == pytest.approx([lo, hi], abs=2e-3)
    assert scan.mle["theta"] == pytest.approx(xbar, abs=1e-6)


def test_non_convergence_and_unknown_names_are_errors():
    with pytest.raises(InferenceError, match="the fit did not converge"):
        minimize(lambda p: -(p**3).sum(), ["a"], [0.5])
    _, nll = gaussian_with_nuisance()
    with pytest.raises(InferenceError, match=r"unknown parameter\(s\) \['beta'\]"):
        minimize(nll, ["theta", "alpha"], [0.0, 0.0], fixed={"beta": 1.0})
    with pytest.raises(InferenceError, match="1 or 2 parameters of interest"):
        profile_scan(nll, ["theta", "alpha"], [0.0, 0.0], {})
