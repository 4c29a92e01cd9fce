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


class ThreeParameterToy:
    """x ∈ R⁴, x_i ~ N(μ(θ), 1) with μ = A θ + c θ₁θ₂ (three parameters, exact likelihood); θ ∈ [−1, 1]³."""

    A = torch.tensor([[1.0, 0.3, 0.0], [0.2, 1.0, 0.5], [0.0, -0.4, 1.0], [0.6, 0.0, 0.3]], dtype=torch.float64)
    C = torch.tensor([0.0, 0.8, 0.0, -0.5], dtype=torch.float64)

    def mean(self, theta):
        return self.A @ theta + self.C * theta[0] * theta[1]

    def data(self, theta, n, seed=0):
        gen = torch.Generator().manual_seed(seed)
        return self.mean(torch.as_tensor(theta, dtype=torch.float64)) + torch.randn(n, 4, generator=gen, dtype=torch.float64)

    def nll(self, x):
        return lambda theta: 0.5 * ((x - self.mean(theta)) ** 2).sum()


def _brute_force_interval(nll, j, mle_value, best_nll, delta, step):
    """Where the profiled NLL of parameter j rises by ``delta``: bisection on a profile computed with scipy (an
    optimiser independent of Minuit), each side."""
    from scipy.optimize import brentq
    from scipy.optimize import minimize as scipy_minimize

    def profiled(value):
        others = [k for k in range(3) if k != j]

        def f(free):
            theta = torch.zeros(3, dtype=torch.float64)
            theta[others] = torch.as_tensor(free, dtype=torch.float64)
            theta[j] = value
            return float(nll(theta))

        return scipy_minimize(f, np.zeros(2), method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12,
                                                                            "maxiter": 4000}).fun - best_nll - delta

    return [brentq(profiled, mle_value - 10 * step, mle_value), brentq(profiled, mle_value, mle_value + 10 * step)]


def test_profile_fit_in_three_dimensions_against_closed_form_and_brute_force():
    """A fit of three parameters: MINOS intervals of each, the others free, equal the closed form of a linear
    Gaussian model (θ̂ ± √χ²₁ σ, σ from (n AᵀA)⁻¹), and with a non-linear term the profile likelihood found by
    an independent optimiser."""
    from hepsbi.inference import profile_fit

    toy, truth = ThreeParameterToy(), [0.3, -0.2, 0.1]
    names, limits = ["a", "b", "c"], {n: (-1.0, 1.0) for n in ["a", "b", "c"]}
    linear = ThreeParameterToy()
    linear.C = torch.zeros(4, dtype=torch.float64)
    x = linear.data(truth, 200, seed=1)
    fit = profile_fit(linear.nll(x), names, [0.0, 0.0, 0.0], limits=limits)
    cov = np.linalg.inv(200 * (linear.A.T @ linear.A).numpy())
    mle = np.linalg.solve((linear.A.T @ linear.A).numpy(), linear.A.T.numpy() @ x.mean(0).numpy())
    for j, name in enumerate(names):
        sigma = math.sqrt(cov[j, j])  # (Minuit stops at EDM < 2e-4: ~1e-3 σ)
        assert fit.mle[name] == pytest.approx(mle[j], abs=2e-3 * sigma)
        for level, z in (("68", 1.0), ("95", 1.959964)):
            lo, hi = fit.intervals[name][level]
            assert lo == pytest.approx(mle[j] - z * sigma, abs=3e-3 * sigma)
            assert hi == pytest.approx(mle[j] + z * sigma, abs=3e-3 * sigma)
            assert fit.open_ends[name][level] == [False, False]
    x = toy.data(truth, 50, seed=2)
    fit = profile_fit(toy.nll(x), names, [0.0, 0.0, 0.0], limits=limits, pois=["b"])
    assert list(fit.intervals) == ["b"]
    step = math.sqrt(fit.covariance[1, 1])
    for level, delta in (("68", 0.5), ("95", 1.920729)):
        reference = _brute_force_interval(toy.nll(x), 1, fit.mle["b"], fit.nll, delta, step)
        assert fit.intervals["b"][level] == pytest.approx(reference, abs=3e-3 * step)


def test_profile_fit_marks_an_interval_stopped_by_a_limit():
    from hepsbi.inference import profile_fit

    toy = ThreeParameterToy()
    x = toy.data([0.95, 0.0, 0.0], 5, seed=3)  # few events: the 95 % interval of a reaches its limit at 1
    fit = profile_fit(toy.nll(x), ["a", "b", "c"], [0.5, 0.0, 0.0], limits={"a": (-1.0, 1.0)}, pois=["a"])
    assert fit.open_ends["a"]["95"][1] and fit.intervals["a"]["95"][1] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(InferenceError, match="unknown parameter"):
        profile_fit(toy.nll(x), ["a", "b", "c"], [0.0] * 3, pois=["z"])


def test_profile_fit_finds_the_interval_itself_where_minos_fails(monkeypatch):
    """MINOS gives up on irregular profiles (an undertrained estimator's): each end is then found by bisection on
    the profiled NLL, which must agree with the closed form where MINOS would have."""
    import iminuit

    from hepsbi.inference import profile_fit

    def broken(self, *args, **kwargs):
        raise RuntimeError("MINOS failed")

    monkeypatch.setattr(iminuit.Minuit, "minos", broken)
    toy = ThreeParameterToy()
    toy.C = torch.zeros(4, dtype=torch.float64)
    x = toy.data([0.3, -0.2, 0.1], 200, seed=1)
    fit = profile_fit(toy.nll(x), ["a", "b", "c"], [0.0] * 3, limits={n: (-1.0, 1.0) for n in "abc"})
    cov = np.linalg.inv(200 * (toy.A.T @ toy.A).numpy())
    for j, name in enumerate("abc"):
        sigma = math.sqrt(cov[j, j])
        for level, z in (("68", 1.0), ("95", 1.959964)):
            assert fit.intervals[name][level] == pytest.approx([fit.mle[name] - z * sigma, fit.mle[name] + z * sigma],
                                                              abs=3e-3 * sigma)


def test_minuits_own_messages_do_not_reach_the_terminal(capfd):
    """A first MIGRAD step into negative curvature made Minuit print "VariableMetricBuilder Initial matrix not
    pos.def." from C++, straight through the progress bars; the fit recovers — here a hump −a² inside |a| < 1 and a
    wall a⁴ − 2 outside, started on the hump, ends at the rim a = 1 (NLL −1) — silently, and Minuit's global print
    level is as it was."""
    from iminuit import Minuit

    def nll(p):
        return torch.where(p.abs() < 1, -(p**2), p**4 - 2).sum()

    fit = minimize(nll, ["a"], [0.1])
    assert fit.values["a"] == pytest.approx(1.0, abs=1e-4) and fit.nll == pytest.approx(-1.0, abs=1e-4)
    printed = capfd.readouterr()
    assert "VariableMetricBuilder" not in printed.out + printed.err
    assert Minuit(lambda a: a**2, a=0.0).print_level == 0
