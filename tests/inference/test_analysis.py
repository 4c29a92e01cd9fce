"""The analysis layer against closed forms: a weighted toy whose event weights are (1 + c z)² (conftest), so
every expected yield, Fisher information and histogram is a sum over its pool that the tests compute directly."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hepsbi.errors import InferenceError
from hepsbi.inference import (
    NormSys,
    Tilt,
    WeightedAnalysis,
    asimov_expected_events,
    bin_index_edges,
    bin_index_quantiles,
    model_information,
    normalised_log_ratio,
    profiled_information,
    reference_weights,
    template_log_likelihood,
    weighted_asimov_dataset,
)

L_FB = 50.0  # 100 000 expected events at c = 0 (σ = 2 pb)


def th(c: float) -> torch.Tensor:
    return torch.tensor([c], dtype=torch.float64)


def pool(sim):
    return sim.events.z[:, 0], sim.events.weights


def test_weighted_asimov_helpers(weighted_toy):
    z, w = pool(weighted_toy)
    lumi = 1000.0 * L_FB
    data = weighted_asimov_dataset(weighted_toy, th(0.2), lumi)
    np.testing.assert_allclose(data.weights.numpy(), lumi * w * (1 + 0.2 * z) ** 2, rtol=1e-12)
    np.testing.assert_allclose(reference_weights(weighted_toy, data).numpy(), lumi * w, rtol=1e-12)
    nu = asimov_expected_events(weighted_toy, data)
    for c in (-0.3, 0.0, 0.45):
        assert nu(th(c)) == pytest.approx(lumi * np.sum(w * (1 + c * z) ** 2), rel=1e-12)
    subset = weighted_asimov_dataset(weighted_toy, th(0.2), lumi, n_mc=500, seed=3)
    assert len(subset.weights) == 500 and float(subset.weights.sum()) == pytest.approx(float(data.weights.sum()), rel=1e-12)
    assert asimov_expected_events(weighted_toy, subset)(th(0.2)) == pytest.approx(float(data.weights.sum()), rel=1e-12)
    with pytest.raises(InferenceError, match="weighted simulator"):
        from hepsbi.simulators import GaussianLatent

        weighted_asimov_dataset(GaussianLatent(), th(0.0), lumi)


def test_normalised_log_ratio_removes_any_offset_and_is_differentiable():
    gen = torch.Generator().manual_seed(1)
    z = torch.rand(300, generator=gen, dtype=torch.float64) * 3
    w_ref = torch.rand(300, generator=gen, dtype=torch.float64) + 0.5
    log_r = lambda th: 2 * torch.log1p(th[0] * z)  # noqa: E731
    offset = lambda th: log_r(th) + 5 * th[0] + 3 * th[0] ** 2  # noqa: E731  # an unnormalised ratio
    normalised = normalised_log_ratio(offset, w_ref)
    for c in (-0.2, 0.1, 0.4):
        theta = torch.tensor([c], dtype=torch.float64)
        expected = log_r(theta) - torch.log((w_ref * torch.exp(log_r(theta))).sum() / w_ref.sum())
        torch.testing.assert_close(normalised(theta), expected, rtol=1e-12, atol=1e-12)
        assert float((w_ref * torch.exp(normalised(theta))).sum() / w_ref.sum()) == pytest.approx(1.0, rel=1e-12)
    assert torch.autograd.gradcheck(lambda th: normalised(th), torch.tensor([0.3], dtype=torch.float64, requires_grad=True))


def test_fisher_information_of_the_analysis_equals_sums_over_the_pool(weighted_toy):
    z, w = pool(weighted_toy)
    x = weighted_toy.events.x[:, 0]
    lumi = 1000.0 * L_FB
    analysis = WeightedAnalysis(weighted_toy, {"c": 0.0}, L_FB)
    edges = [0.0, 0.5, 1.0, 2.0, 4.0, 30.0]
    info = analysis.fisher_information({}, parton_level=True, rate=True, histogram=(["x"], [edges]))
    # per event at c = 0: ∂_c log(w r) = 2z, so I_truth = L Σ w (2z)²; the rate alone (∂ν)²/ν
    assert info["truth"][0, 0] == pytest.approx(lumi * np.sum(w * 4 * z**2), rel=1e-9)
    assert info["rate"][0, 0] == pytest.approx((lumi * np.sum(2 * w * z)) ** 2 / (lumi * np.sum(w)), rel=1e-9)
    index = np.digitize(x, edges) - 1
    dnu = np.array([lumi * np.sum(2 * w[index == b] * z[index == b]) for b in range(5)])
    nu = np.array([lumi * np.sum(w[index == b]) for b in range(5)])
    assert info["histogram"][0, 0] == pytest.approx(np.sum(dnu**2 / nu), rel=1e-6)
    assert info["rate"][0, 0] < info["histogram"][0, 0] < info["truth"][0, 0]


def test_truth_likelihoods_peak_at_the_truth_with_the_fisher_width(weighted_toy, weighted_toy_no_morphing):
    analysis = WeightedAnalysis(weighted_toy, [0.1], L_FB)
    scans = analysis.scans({}, points=61, zoom=2, parton_level=True)
    info = analysis.fisher_information({}, parton_level=True)["truth"][0, 0]
    scan = scans["truth"]
    assert scan.mle["c"] == pytest.approx(0.1, abs=1e-5)
    lo, hi = scan.intervals["c"]["68"]
    assert (hi - lo) / 2 == pytest.approx(info**-0.5, rel=0.02)
    # the unbinned model's Hessian on its Asimov dataset is the same information; the morphing (LinearRatio)
    # and the plain joint_log_prob paths give the same model
    with_morphing = analysis.models({}, parton_level=True)["truth"]
    plain = WeightedAnalysis(weighted_toy_no_morphing, [0.1], L_FB).models({}, parton_level=True)["truth"]
    assert model_information(with_morphing, [0.1])[0, 0] == pytest.approx(info, rel=1e-6)
    for c in (0.05, 0.1, 0.2):
        params = torch.tensor([c], dtype=torch.float64)
        assert float(with_morphing.nll(params)) == pytest.approx(float(plain.nll(params)), rel=1e-10)


def test_systematics_cost_information_only_when_they_mimic_the_parameter(weighted_toy):
    base = WeightedAnalysis(weighted_toy, [0.0], L_FB).models({}, parton_level=True)["truth"]
    unprofiled = model_information(base, [0.0])[0, 0]
    tiny = WeightedAnalysis(weighted_toy, [0.0], L_FB, systematics=[NormSys("lumi", 1 + 1e-7, 1 - 1e-7)])
    wide = WeightedAnalysis(weighted_toy, [0.0], L_FB, systematics=[NormSys("lumi", 1.05, 0.95)])
    independent = WeightedAnalysis(weighted_toy, [0.0], L_FB, systematics=[Tilt("u_tilt", "u", 0.1)])

    def profiled(analysis):
        model = analysis.models({}, parton_level=True)["truth"]
        return profiled_information(model_information(model, [0.0, 0.0]), 1)[0, 0]

    assert profiled(tiny) == pytest.approx(unprofiled, rel=1e-6)
    assert profiled(wide) < 0.999 * unprofiled  # a yield uncertainty takes the rate's share of the information
    assert profiled(independent) == pytest.approx(unprofiled, rel=1e-3)  # u does not depend on c
    with pytest.raises(InferenceError, match="'nope' is not an observable"):
        WeightedAnalysis(weighted_toy, [0.0], L_FB, systematics=[Tilt("t", "nope", 0.1)])
    with pytest.raises(InferenceError, match="names must be unique"):
        WeightedAnalysis(weighted_toy, [0.0], L_FB, systematics=[NormSys("c", 1.1, 0.9)])


def test_poisson_toys_give_chi2_distributed_statistics(weighted_toy):
    analysis = WeightedAnalysis(weighted_toy, [0.1], 0.5)  # 1000 expected events
    models = analysis.models({}, parton_level=True)
    result = analysis.toys(models, seed=7, first=0, count=60)["truth"]
    assert result.n_toys + result.failed == 60 and np.all(result.t >= 0)
    assert abs(np.mean(result.t) - 1.0) < 3 * np.sqrt(2 / 60)  # χ²₁: mean 1, variance 2
    again = analysis.toys(models, seed=7, first=30, count=30)["truth"]
    np.testing.assert_array_equal(again.t, result.t[30:])  # toy k draws from its own seed


def test_template_likelihood_is_the_poisson_likelihood_of_the_asimov_counts(weighted_toy):
    z, w = pool(weighted_toy)
    index, n_bins = bin_index_edges(weighted_toy.events.x[:, 0], [0.0, 1.0, 2.0, 30.0])
    lumi = 1000.0 * L_FB
    log_l = template_log_likelihood(weighted_toy, index, n_bins, th(0.1), lumi)

    def poisson(c):
        nu = np.array([lumi * np.sum(w[index == b] * (1 + c * z[index == b]) ** 2) for b in range(n_bins)])
        n = np.array([lumi * np.sum(w[index == b] * (1 + 0.1 * z[index == b]) ** 2) for b in range(n_bins)])
        return np.sum(n * np.log(nu) - nu)

    values = log_l(torch.tensor([[0.0], [0.1], [0.3]], dtype=torch.float64))
    assert values[0] - values[1] == pytest.approx(poisson(0.0) - poisson(0.1), rel=1e-9)
    assert values[2] - values[1] == pytest.approx(poisson(0.3) - poisson(0.1), rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 40), st.just(2)), elements=st.floats(-5, 5)),
       st.lists(st.floats(-4, 4), min_size=2, max_size=6, unique=True),
       st.lists(st.floats(-4, 4), min_size=2, max_size=4, unique=True))
def test_k_dimensional_bins_agree_with_numpy_histogramdd(values, first, second):
    edges = [sorted(first), sorted(second)]
    index, n_bins = bin_index_edges(values, edges)
    assert n_bins == (len(first) - 1) * (len(second) - 1)
    counts = np.bincount(index[index >= 0], minlength=n_bins)
    # numpy closes the last bin on the right; hepsbi's bins are [e_k, e_k+1) throughout
    inside = np.all([(values[:, j] < edges[j][-1]) for j in range(2)], axis=0)
    reference, _ = np.histogramdd(values[inside], bins=edges)
    np.testing.assert_array_equal(counts, reference.ravel().astype(int))


@settings(max_examples=60, deadline=None)
@given(st.integers(20, 400), st.integers(2, 6), st.integers(0, 10_000))
def test_quantile_bins_hold_equal_weight(n, bins, seed):
    rng = np.random.default_rng(seed)
    values, weights = rng.normal(size=n), rng.uniform(0.5, 1.5, size=n)
    index, n_bins = bin_index_quantiles(values, bins, weights)
    assert n_bins == bins and index.min() >= 0 and index.max() < bins
    share = np.bincount(index, weights=weights, minlength=bins) / weights.sum()
    # every bin holds 1/bins of the weight, up to the one event that straddles each cut
    assert np.all(np.abs(share - 1 / bins) <= 2 * weights.max() / weights.sum() + 1e-12)
    order = np.argsort(values)
    assert np.all(np.diff(index[order]) >= 0)  # bins follow the values


def test_closure_away_from_the_reference_catches_a_weak_likelihood(weighted_toy):
    """Asimov closure: the parton-level likelihood recovers every θ_true, and so does log r = log (1 + θ x)² (x ≈ z);
    a ratio with half the θ-dependence, log (1 + θ x / 2)², does not (its fit overshoots to make up for it)."""
    analysis = WeightedAnalysis(weighted_toy, [0.0], L_FB, n_mc=3000, seed=2)

    def ratio(strength: float):
        return lambda x: lambda theta: torch.log((1 + strength * theta[0] * torch.as_tensor(x[:, 0], dtype=torch.float64)) ** 2)

    rows = analysis.closure({"good": ratio(1.0), "weak": ratio(1 / 2)}, [[0.2], [-0.1]], scan_points=41)
    mle = {(tuple(r["theta_true"]), r["likelihood"]): r["mle"][0] for r in rows}
    for point in (0.2, -0.1):
        assert mle[((point,), "truth")] == pytest.approx(point, abs=1e-4)
        assert mle[((point,), "good")] == pytest.approx(point, abs=0.003)  # x ≈ z: nearly the exact ratio
        assert abs(mle[((point,), "weak")] - point) > 0.015  # 10 × the good one's miss
    assert {r["likelihood"] for r in rows} == {"good", "weak", "truth"}
    assert all(r["half_width_68"][0] > 0 for r in rows if r["likelihood"] != "weak")


def test_reweighting_closure_passes_the_conditional_ratio_and_fails_a_weak_one(weighted_toy):
    """Paired closure on the toy (x = z + N(0, σ²), z ~ Exp(1)): z | x is N(x − σ², σ²) truncated at 0, so the ratio
    E[(1 + c z)² | x] = (1 + c m)² + c² v with that posterior's mean m and variance v, which closes with χ² ≈ ndf in
    x and in u; a ratio with half the c-dependence does not, and its classifier is off the diagonal."""
    sigma = 0.1
    analysis = WeightedAnalysis(weighted_toy, [0.0], L_FB, n_mc=4000, seed=2)

    def ratio(strength: float):
        def of_events(x):
            mu = torch.as_tensor(x[:, 0], dtype=torch.float64) - sigma**2
            alpha = -mu / sigma
            hazard = torch.exp(-alpha**2 / 2) / (2 * torch.pi) ** 0.5 / torch.special.ndtr(-alpha)
            mean, var = mu + sigma * hazard, sigma**2 * (1 + alpha * hazard - hazard**2)
            return lambda theta: torch.log((1 + strength * theta[0] * mean) ** 2 + (strength * theta[0]) ** 2 * var)
        return of_events

    closure = analysis.reweighting_closure({"conditional": ratio(1.0), "weak": ratio(0.5)}, [[0.4], [-0.3]], bins=8)
    for row in closure["conditional"]:
        x_hist, u_hist = row["histograms"]
        assert x_hist["observable"] == "x" and x_hist["ndf"] == 7
        assert x_hist["p_value"] > 1e-3 and u_hist["p_value"] > 1e-3
        assert sum(x_hist["target"]) == pytest.approx(sum(x_hist["learned"]), rel=1e-9)
        rel = row["reliability"]
        assert np.allclose(rel["predicted"], rel["observed"], atol=0.02)
    for row, good in zip(closure["weak"], closure["conditional"]):
        assert row["histograms"][0]["chi2"] > 50 * row["histograms"][0]["ndf"]
        # against the Poisson errors of the 100k expected events: what the weak ratio gets wrong is visible
        learned, target = np.array(row["histograms"][0]["learned"]), np.array(row["histograms"][0]["target"])
        assert row["histograms"][0]["chi2_poisson"] == pytest.approx(np.sum((learned - target) ** 2 / target))
        assert row["histograms"][0]["chi2_poisson"] > 10 * max(good["histograms"][0]["chi2_poisson"], 1.0)
    weak_rel = closure["weak"][0]["reliability"]
    assert max(abs(p - o) for p, o in zip(weak_rel["predicted"], weak_rel["observed"])) > 0.05


def test_closure_of_independent_samples_against_the_exact_ratio():
    """Unpaired closure on the Gaussian toy: events at θ_ref reweighted by the exact ratio against events drawn at
    θ: χ² follows χ²_{B−1} over seeds (mean within 3σ of B − 1); the ratio at the wrong θ fails."""
    from hepsbi.inference import exact_log_ratio
    from hepsbi.inference.validation import reweighting_closure
    from hepsbi.simulators import GaussianLatent

    sim = GaussianLatent()
    theta = torch.tensor([0.8], dtype=torch.float64)
    exact = exact_log_ratio(sim)
    chi2s = []
    for seed in range(20):
        gen = torch.Generator().manual_seed(seed)
        x_ref, _ = sim.sample(sim.space.reference.expand(3000, -1), gen)
        x_at, _ = sim.sample(theta.expand(3000, -1), gen)
        ones = torch.ones(3000, dtype=torch.float64)
        [hist] = reweighting_closure(x_ref, ones, exact(x_ref)(theta), x_at, ones, ["x"], bins=10)
        chi2s.append(hist.chi2)
    assert abs(np.mean(chi2s) - 9) < 3 * np.sqrt(2 * 9 / 20)
    [wrong] = reweighting_closure(x_ref, ones, exact(x_ref)(theta / 2), x_at, ones, ["x"], bins=10)
    assert wrong.p_value < 1e-6


def test_closure_edges_of_a_discrete_observable_hold_one_value_each():
    from hepsbi.inference.validation import closure_edges

    values = torch.tensor([3.0, 5.0, 5.0, 7.0, 3.0])
    edges = closure_edges(values, torch.ones(5), bins=10)
    assert edges == [2.5, 4.0, 6.0, 7.5]
    continuous = closure_edges(torch.linspace(0, 1, 1001), torch.ones(1001), bins=4)
    assert len(continuous) == 5 and continuous[0] == 0.0 and continuous[-1] > 1.0


def test_kept_information_does_not_trust_the_scale_of_a_learned_score():
    """At c = 0 the scores of log (1 + s c x)² are 2 s x for any strength s: a too-weak ratio claims s² of the
    information but keeps exactly what the right one keeps, which lies below the parton-level truth (x is z
    smeared); the truth keeps all it claims; bootstrap replicas scatter around the central value."""
    from conftest import QuadraticWeighted

    held = QuadraticWeighted(seed=9)
    held.generate()
    analysis = WeightedAnalysis(held, [0.0], L_FB, seed=1)

    def ratio(strength: float):
        return lambda x: lambda theta: torch.log((1 + strength * theta[0] * torch.as_tensor(x[:, 0], dtype=torch.float64)) ** 2)

    kept = analysis.kept_information({"good": ratio(1.0), "weak": ratio(0.5)}, {"u": lambda x: x[:, 1]}, replicas=30)
    assert set(kept) == {"good", "weak", "truth", "u"}
    good, weak, truth = (kept[k]["information"][0, 0] for k in ("good", "weak", "truth"))
    assert weak == pytest.approx(good, rel=1e-9) and 0.5 * truth < good < truth
    claimed = analysis.fisher_information({"good": ratio(1.0), "weak": ratio(0.5)}, parton_level=True, rate=True)
    assert claimed["truth"][0, 0] == pytest.approx(truth, rel=1e-9)
    shape = {k: claimed[k][0, 0] - claimed["rate"][0, 0] for k in ("good", "weak")}  # the count's part is exact
    assert shape["weak"] == pytest.approx(shape["good"] / 4, rel=0.02)
    # u carries nothing about c: with it, only the count's (rate) information is kept
    assert kept["u"]["information"][0, 0] == pytest.approx(claimed["rate"][0, 0], rel=0.01)
    spread = np.std([r[0, 0] for r in kept["good"]["replicas"]])
    assert 0 < spread < 0.1 * good and abs(np.mean([r[0, 0] for r in kept["good"]["replicas"]]) - good) < 3 * spread


def test_a_profile_window_that_cuts_the_interval_widens_until_it_contains_it(weighted_toy):
    """The demo's profiled ALICES left its 95 % interval of c_LR open at the window's edge (the window is set from
    the unprofiled scan, and profiling widens the interval). A window far too narrow now doubles until the
    interval closes (here ×25, profiling a rate-dominated toy), and gives the interval of the usual window."""
    import dataclasses

    from hepsbi.inference import NormSys, profile_scans

    analysis = WeightedAnalysis(weighted_toy, [0.1], 20.0, systematics=[NormSys("lumi", 1.05, 0.95)])
    scans = analysis.scans({}, points=41, parton_level=True)
    models = analysis.models({}, parton_level=True)
    name = weighted_toy.space.names[0]
    honest = profile_scans(models, weighted_toy.space, analysis.theta_true, points=21, around=scans)["truth"]["scan"]
    (lo, hi), mle = scans["truth"].intervals[name]["95"], scans["truth"].mle[name]
    narrow = dataclasses.replace(scans["truth"], intervals={name: {"68": [mle, mle], "95": [mle - 0.3 * (mle - lo),
                                                                                             mle + 0.3 * (hi - mle)]}})
    widened = profile_scans(models, weighted_toy.space, analysis.theta_true, points=21, around={"truth": narrow})
    scan = widened["truth"]["scan"]
    assert not any(scan.open_ends[name]["95"]) and not any(honest.open_ends[name]["95"])
    width = honest.intervals[name]["95"][1] - honest.intervals[name]["95"][0]
    assert width > 5 * (hi - lo)  # profiling the rate's normalisation widened the interval many times over
    assert scan.intervals[name]["95"] == pytest.approx(honest.intervals[name]["95"], abs=0.05 * width)
