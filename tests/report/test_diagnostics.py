"""The silent wrong answers a new user met now warn: an MLE on the scan boundary, an interval cut by the scan, a
learned likelihood evaluated where it was never trained, a closure or calibration failure, ensemble members
that disagree — each reproduced, with the correct case staying quiet."""

import warnings

import pytest
import torch
from rich.console import Console

from hepsbi import RatioEstimator, TrainingData
from hepsbi.errors import ExtrapolationWarning
from hepsbi.inference import exact_log_ratio, likelihood_scan, observed_dataset
from hepsbi.report.diagnostics import diagnose, scan_diagnostics
from hepsbi.report.summary import print_summary
from hepsbi.simulators import GaltonBoard, GaussianLatent


def _scan_block(scan):
    return scan.to_dict()


def test_a_likelihood_whose_mle_sits_on_the_scan_boundary_warns_and_the_exact_one_does_not():
    """As a badly trained classifier does (MLE 0.0 at the boundary while the truth is 0.198): here a log r̂ with
    the wrong sign of its θ-dependence, against the exact likelihood of the same events."""
    sim = GaussianLatent(mu0=0.1)
    data = observed_dataset(sim, torch.tensor([0.25]), 400, seed=3)
    exact = exact_log_ratio(sim)(data.x)
    good = likelihood_scan(exact, data, sim.space, points=41)
    bad = likelihood_scan(lambda theta: -exact(theta), data, sim.space, points=41)
    assert scan_diagnostics("exact", _scan_block(good)) == []
    found = scan_diagnostics("carl", _scan_block(bad))
    codes = {d.code for d in found}
    assert "mle_at_scan_edge" in codes and "interval_open" in codes
    message = next(d.message for d in found if d.code == "mle_at_scan_edge")
    assert "carl" in message and "theta" in message and "widen" in message


def test_an_interval_narrower_than_a_grid_step_warns():
    """4000 events of the Gaussian toy on a 5-node grid: the exact likelihood's 68 % interval (width ~0.035) falls
    between two nodes; on 401 nodes it is resolved and quiet."""
    sim = GaussianLatent()
    data = observed_dataset(sim, torch.tensor([0.25]), 4000, seed=3)
    exact = exact_log_ratio(sim)(data.x)
    coarse = scan_diagnostics("exact", _scan_block(likelihood_scan(exact, data, sim.space, points=5, zoom=0)))
    found = [d for d in coarse if d.code == "interval_unresolved"]
    assert len(found) == 1 and "68 %" in found[0].message and "inference.zoom" in found[0].message
    fine = scan_diagnostics("exact", _scan_block(likelihood_scan(exact, data, sim.space, points=401, zoom=0)))
    assert fine == []


def test_an_estimator_evaluated_outside_its_training_range_warns_once_and_keeps_the_range_when_saved(tmp_path):
    sim = GaltonBoard(low=-0.2, high=0.2)
    est = RatioEstimator("alice", epochs=1, min_steps=1, progress=False).fit(TrainingData.from_simulator(sim, 400, seed=1))
    low, high = est.theta_range
    assert -0.2 <= low[0] < -0.19 and 0.19 < high[0] <= 0.2
    x = torch.arange(21, dtype=torch.float64)[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        est.log_ratio(x, torch.tensor([0.15]))  # inside: quiet
        with pytest.raises(ExtrapolationWarning, match=r"theta = 0\.4.*\[-0\.\d+, 0\.\d+\]"):
            est.log_ratio_of_theta(x)(torch.tensor([0.4]))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        est.score(x, torch.tensor([-0.5]))
        est.score(x, torch.tensor([-0.5]))
    assert len([w for w in seen if w.category is ExtrapolationWarning]) == 0  # warned once already
    loaded = RatioEstimator.load(est.save(tmp_path / "alice"))
    assert loaded.theta_range == est.theta_range
    with pytest.warns(ExtrapolationWarning):
        loaded.log_ratio(x, torch.tensor([0.3]))


def _results(closure=None, members=None, theta_range=None):
    axes = [-0.05 + 0.005 * i for i in range(21)]
    block = {"parameters": ["c"], "mle": {"c": 0.0}, "intervals": {"c": {"68": [-0.01, 0.01], "95": [-0.02, 0.02]}},
             "intervals_open": {"c": {"68": [False, False], "95": [False, False]}}, "scan": {"axes": {"c": axes}},
             "training": {"theta_range": theta_range} if theta_range else {}}
    if closure is not None:
        block["closure"] = closure
    if members is not None:
        block["members"] = members
    return {"estimators": {"alices": block}, "fisher_information": {"alices": {"errors": {"c": 0.01}}}}


def _closure_row(p_value, chi2_poisson, reliability=None):
    return {"theta": {"c": 0.03}, "histograms": [{"observable": "m_ll", "chi2": 40.0, "ndf": 9, "p_value": p_value,
                                                  "chi2_poisson": chi2_poisson}],
            "reliability": reliability or {"predicted": [0.5, 0.6], "observed": [0.5, 0.62], "weight": [0.7, 0.3]}}


def test_closure_calibration_ensemble_and_extrapolation_findings_and_their_thresholds():
    assert diagnose(_results()) == []
    # a significant mis-closure that the data's Poisson errors could not see: quiet; one they would see: a warning
    assert diagnose(_results([_closure_row(1e-6, 2.0)])) == []
    found = diagnose(_results([_closure_row(1e-6, 30.0)]))
    assert [d.code for d in found] == ["closure"] and "m_ll" in found[0].message and "c = 0.03" in found[0].message
    bad_calibration = {"predicted": [0.5, 0.6], "observed": [0.5, 0.8], "weight": [0.7, 0.3]}
    assert [d.code for d in diagnose(_results([_closure_row(0.5, 1.0, bad_calibration)]))] == ["calibration"]
    assert diagnose(_results(members={"fisher_errors_spread": {"c": 0.001}})) == []
    found = diagnose(_results(members={"fisher_errors_spread": {"c": 0.004}}))
    assert [d.code for d in found] == ["ensemble_disagreement"]
    assert diagnose(_results(theta_range={"c": [-0.05, 0.05]})) == []
    found = diagnose(_results(theta_range={"c": [-0.01, 0.02]}))
    assert [d.code for d in found] == ["extrapolation"] and "[-0.01, 0.02]" in found[0].message


def test_the_summary_prints_the_warnings_above_the_tables():
    results = _results([_closure_row(1e-6, 30.0)])
    results["warnings"] = [d.to_dict() for d in diagnose(results)]
    results.update(parameters=["c"], truth={"c": 0.0}, fisher_information={})
    console = Console(record=True, width=200)
    print_summary(results, console)
    text = console.export_text()
    assert text.index("1 warning") < text.index("hepsbi results") and "[closure]" in text
