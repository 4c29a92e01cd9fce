"""``training.posterior`` end to end: NPE on the Gaussian toy beside its exact posterior (drawn by MCMC from the exact
likelihood), SBC and TARP, the published files, a rerun that reuses the stage, and the named errors of bad specs."""

from __future__ import annotations

import json

import h5py
import pytest
import yaml
from typer.testing import CliRunner

from hepsbi.cli import app
from hepsbi.errors import SpecError
from hepsbi.estimators import PosteriorEstimator, load_estimator
from hepsbi.report.summary import posterior_grid
from hepsbi.workflow.inputs import prepare
from hepsbi.workflow.spec import parse_spec

SPEC = {
    "name": "gaussian_npe",
    "simulator": {"name": "gaussian", "options": {"low": -2.0, "high": 2.0}},
    "data": {"n_samples": 600},
    "training": {"estimators": [{"method": "carl", "epochs": 2}],
                 "posterior": {"n_samples": 4000, "epochs": 20, "transforms": 3, "ensemble": 2, "adjust": "linear",
                               "draws": 4000,
                               "calibration": 100, "calibration_draws": 50, "predictive": 500}},
    "inference": {"theta_true": {"theta": 0.5}, "n_mc": 600, "grid_points": 9, "closure": None},
    "report": {"validation_events": 50},
}


def test_npe_in_a_run_matches_the_exact_posterior_and_is_reused(tmp_path):
    """The NPE posterior at the one simulated observation has the exact posterior's mean and sd (within 0.1 and
    25 %); SBC and TARP do not reject it; posterior.json (also results.json's ``posterior`` and a table of the
    summary and the HTML report), posterior.h5, the plots and the model (a mixture of ``ensemble`` flows on the
    residual of θ's regression on x, ``adjust``) are published; a second run reuses the stage."""
    spec_file, out = tmp_path / "spec.yaml", tmp_path / "run"
    spec_file.write_text(yaml.safe_dump(SPEC))
    result = CliRunner().invoke(app, ["run", str(spec_file), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    posterior = json.loads((out / "posterior.json").read_text())
    results = json.loads((out / "results.json").read_text())
    assert results["posterior"] == posterior
    grid = posterior_grid(results)
    assert [row[:2] for row in grid.rows] == [["NPE", "theta"], ["exact", "theta"]] and "TARP p" in grid.title
    assert "posterior at the observation" in (out / "report.html").read_text()
    npe, exact = posterior["npe"]["theta"], posterior["exact"]["theta"]
    assert npe["mean"] == pytest.approx(exact["mean"], abs=0.1)
    assert npe["sd"] == pytest.approx(exact["sd"], rel=0.25)
    assert npe["interval_95"][0] < npe["interval_68"][0] < npe["median"] < npe["interval_68"][1] < npe["interval_95"][1]
    assert posterior["sbc"]["p_values"][0] > 1e-3 and posterior["tarp"]["p_value"] > 1e-3
    assert 0.0 < posterior["predictive"]["p_values"]["x"] < 1.0
    with h5py.File(out / "posterior.h5") as f:
        assert f["samples/NPE"].shape == (4000, 1) and f["samples/exact"].shape == (4000, 1)
        assert f["sbc_ranks"].shape == (100, 1) and list(f.attrs["parameters"]) == ["theta"]
    for name in ("posterior", "posterior_sbc", "posterior_tarp", "posterior_training"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 1000
    model = load_estimator(out / "models" / "posterior")
    assert isinstance(model, PosteriorEstimator) and model.members == posterior["ensemble"] == 2
    assert model.adjust == posterior["adjust"] == "linear"
    before = (out / "stages").iterdir()
    posterior_stage = next(p for p in before if p.name.startswith("posterior-"))
    stamp = (posterior_stage / "manifest.json").stat().st_mtime_ns
    assert CliRunner().invoke(app, ["run", str(spec_file), "--out", str(out), "--quiet"]).exit_code == 0
    assert (posterior_stage / "manifest.json").stat().st_mtime_ns == stamp


def test_bad_posterior_specs_name_the_key():
    with pytest.raises(SpecError, match="training.posterior: neural posterior estimation needs an unweighted"):
        prepare(parse_spec({"simulator": {"name": "drell_yan"}, "inference": {"luminosity": 139},
                            "training": {"posterior": {}}}))
    with pytest.raises(SpecError, match=r"training.posterior.observation: one value per observable \['x'\]"):
        prepare(parse_spec({"training": {"posterior": {"observation": [0.1, 0.2]}}}))
    with pytest.raises(SpecError, match="training.posterior.flow"):
        parse_spec({"training": {"posterior": {"flow": "glow"}}})
