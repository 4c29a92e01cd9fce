"""A run with more than two parameters: no grid over all of them, but every parameter's profile interval with the
others free (MINOS) and the 2-D profile contour of a chosen pair, with the systematics fixed and profiled."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from hepsbi.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.slow
def test_three_contact_coefficients_from_a_spec(tmp_path):
    spec = yaml.safe_load((EXAMPLES / "drell_yan_contact.yaml").read_text())
    names = ["c_LL", "c_LR", "c_RL"]
    spec["simulator"]["options"].update(n_events=6000, n_slices=2, parameters=names)
    spec["data"]["n_samples"] = 3000
    spec["training"] = {"estimators": [{"method": "morphing", "epochs": 3}]}
    spec["inference"].update(theta_true={n: 0.0 for n in names}, n_mc=2000, held_out_events=None, pair=["c_LL", "c_RL"],
                             systematics=[{"name": "lumi", "kind": "norm", "up": 1.017, "down": 0.983}],
                             profile={"grid_points": 7}, histogram={"observable": "m_ll", "bins": [200, 400, 13000]})
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out)], terminal_width=200)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["parameters"] == names
    for block in [results["estimators"]["morphing"], results["comparisons"]["truth"], results["profiled"]["truth"]]:
        assert list(block["scan"]["axes"]) == ["c_LL", "c_RL"]  # the contour's pair
        for n in names:  # Asimov at θ_true: every likelihood peaks there, and its intervals hold it
            lo68, hi68 = block["intervals"][n]["68"]
            lo95, hi95 = block["intervals"][n]["95"]
            assert lo95 < lo68 < block["mle"][n] < hi68 < hi95
            assert abs(block["mle"][n]) < 0.05 * (hi95 - lo95)
    # profiling the luminosity cannot shrink an interval; the parton-level truth is the tightest likelihood
    for n in names:
        plain, prof = results["comparisons"]["truth"]["intervals"][n]["95"], results["profiled"]["truth"]["intervals"][n]["95"]
        assert prof[1] - prof[0] >= (plain[1] - plain[0]) * (1 - 1e-6)
        learned = results["estimators"]["morphing"]["intervals"][n]["95"]
        assert plain[1] - plain[0] < learned[1] - learned[0]
    # the 1-D profile intervals agree with the Fisher information at θ_true (Asimov, nearly Gaussian near the truth)
    sigma = results["fisher_information"]["truth"]["errors"]
    for n in names:
        lo, hi = results["comparisons"]["truth"]["intervals"][n]["68"]
        assert (hi - lo) / 2 == pytest.approx(sigma[n], rel=0.15)
    assert results["expected_contour_area"]["truth"] > 0 and (out / "plots" / "likelihood_scan.png").is_file()
    assert "lumi" in results["profiled"]["truth"]["nuisance_parameters"]
    assert all(name in result.output for name in names)  # the summary lists every parameter
    assert np.isfinite(results["fisher_information"]["morphing"]["determinant"])


@pytest.mark.slow
def test_limits_from_a_run_directory_match_its_profile_interval(tmp_path):
    """`hepsbi limits RUN_DIR`: CLs upper limits of the run's learned likelihood on a coupling (others and the
    nuisance parameters profiled). On the run's Asimov dataset the observed limit is the median expected one, and
    that median sits where q_A = 1.96² — the end of the run's own profiled 95 % interval, found there by a scan."""
    spec = yaml.safe_load((EXAMPLES / "drell_yan_contact.yaml").read_text())
    spec["simulator"]["options"].update(n_events=6000, n_slices=2, parameters=["c_LL"])
    spec["data"]["n_samples"] = 3000
    spec["training"] = {"estimators": [{"method": "morphing", "epochs": 3}]}
    spec["inference"].update(theta_true={"c_LL": 0.0}, n_mc=2000, held_out_events=None, grid_points=41, closure=None,
                             systematics=[{"name": "lumi", "kind": "norm", "up": 1.017, "down": 0.983}],
                             profile={"grid_points": 41})
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    run = tmp_path / "run"
    assert CliRunner().invoke(app, ["run", str(path), "--out", str(run), "--quiet"]).exit_code == 0
    results = json.loads((run / "results.json").read_text())
    lower, upper = results["profiled"]["morphing"]["intervals"]["c_LL"]["95"]
    for flag, end in (([], upper), (["--negative"], lower)):
        out = tmp_path / f"limits{len(flag)}.json"
        result = CliRunner().invoke(app, ["limits", str(run), "--poi", "c_LL", "--json", str(out), *flag],
                                    terminal_width=200)
        assert result.exit_code == 0, result.output
        limits = json.loads(out.read_text())
        expected = limits["upper_limit_exp"]
        assert limits["upper_limit_obs"] == pytest.approx(expected[2], rel=1e-3)  # Asimov: observed = median
        assert expected == sorted(expected, key=abs)  # −2σ … +2σ, most excluding first
        assert expected[2] == pytest.approx(end, rel=0.03)
        scale = limits["scale_tev"]["observed"]
        assert scale == pytest.approx(np.sqrt(4 * np.pi / abs(limits["upper_limit_obs"])))
        assert "Λ > [TeV]" in result.output
    bad = CliRunner().invoke(app, ["limits", str(run), "--poi", "c_RR"])
    assert bad.exit_code == 2 and "--poi 'c_RR': not a parameter of this run" in bad.output
