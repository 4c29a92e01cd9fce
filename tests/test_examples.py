"""Every example spec runs end to end at a small scale (same sections and options, fewer events, epochs and
grid points), and its expected likelihoods peak where they must: at the truth."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hepsbi.cli import app

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


def small(spec: dict) -> dict:
    """The same analysis with small sizes."""
    options = spec["simulator"].get("options", {})
    if "n_events" in options:  # a weighted simulator's pool
        options.update(n_events=3000, n_slices=2)
    spec.setdefault("data", {})["n_samples"] = 600
    for e in spec.get("training", {}).get("estimators", [{}]):
        e["epochs"] = 2
    if spec.get("training", {}).get("sally"):
        spec["training"]["sally"].update(n_samples=300, epochs=2)
    if spec.get("training", {}).get("posterior"):
        spec["training"]["posterior"].update(n_samples=500, epochs=2, draws=200, calibration=20, calibration_draws=10,
                                             predictive=50)
    inference = spec.setdefault("inference", {})
    inference.update(n_mc=min(inference.get("n_mc", 20_000), 600), grid_points=9, zoom=0)
    if inference.get("profile"):
        inference["profile"]["grid_points"] = 3
    spec["report"] = {"validation_events": 50}
    return spec


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_at_a_small_scale(path, tmp_path):
    spec = small(yaml.safe_load(path.read_text()))
    spec_path, out = tmp_path / "spec.yaml", tmp_path / "run"
    spec_path.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(app, ["run", str(spec_path), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    truth = results["truth"]
    assert set(truth) == set(results["parameters"]) and truth == {**truth, **spec["inference"].get("theta_true", {})}
    if spec["training"].get("posterior"):
        posterior = json.loads((out / "posterior.json").read_text())
        assert posterior["parameters"] == results["parameters"] and posterior["sbc"]["simulations"] == 20
        assert all(0 <= p <= 1 for p in posterior["sbc"]["p_values"]) and 0 <= posterior["tarp"]["p_value"] <= 1
        assert all((out / "plots" / f"posterior{s}.png").stat().st_size > 1000 for s in ("", "_sbc", "_tarp"))
    if "exact" not in results and "truth" not in results.get("comparisons", {}):
        return  # two_moons: neither an exact nor a parton-level likelihood to peak at the truth
    weighted = "exact" not in results  # toys compare with their exact likelihood, Drell–Yan with the parton level
    reference = results["comparisons"]["truth"] if weighted else results["exact"]
    for name, value in truth.items():
        # it peaks at the truth: exactly for the reweighted Monte Carlo of a weighted simulator (rate and shape
        # from the same events) on a grid, to the fit's precision in more dimensions (MIGRAD, no grid), within a
        # grid cell for an Asimov sample of simulated events
        lo, hi = reference["intervals"][name]["95"]
        if name not in reference["scan"]["axes"] or len(truth) > 2:
            assert reference["mle"][name] == pytest.approx(value, abs=0.01 * (hi - lo))
            continue
        cell = reference["scan"]["axes"][name][1] - reference["scan"]["axes"][name][0]
        assert reference["mle"][name] == pytest.approx(value, abs=1e-6 if weighted else cell)
    assert (out / "plots" / "likelihood_scan.png").stat().st_size > 1000


@pytest.mark.slow
def test_nlo_reweighting_script_runs_at_a_small_scale(tmp_path):
    """examples/nlo_reweighting.py end to end on a few hundred showered events: the closure table for every method,
    the plot, and the cached samples reused by a second run."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "examples" / "nlo_reweighting.py"
    command = [sys.executable, str(script), "--out", str(tmp_path), "--nlo-events", "600", "--lo-events", "1500",
               "--epochs", "2"]
    for _ in range(2):
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    closure = json.loads((tmp_path / "closure.json").read_text())
    assert set(closure["chi2"]) == {"LO (no reweighting)", "revert", "smm", "bce |w|", "bce clipped"}
    assert all(set(row) >= {"pt_ll", "y_ll", "n_jets", "jet1_pt"} for row in closure["chi2"].values())
    assert 0.05 < closure["nlo_negative_share"] < 0.3 and (tmp_path / "closure.png").stat().st_size > 10_000
