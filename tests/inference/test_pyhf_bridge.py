"""Binned limits through pyhf: the published ATLAS sbottom likelihoods (HEPData ins1748602), patches,
patchsets, upper limits and the errors users get."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hepsbi.cli import app
from hepsbi.errors import InferenceError
from hepsbi.inference.pyhf_bridge import hypotest, load_workspace

PATCH = "sbottom_1300_205_60"
#: pyhf's own regression value for this patch (normsys code4, histosys code4p, qtilde, μ = 1).
CLS_OBS = 0.24443627759085326


@pytest.fixture(scope="module")
def region_a(sbottom) -> Path:
    return sbottom / "RegionA"


def test_limits_cli_reproduces_the_published_cls(region_a, tmp_path):
    out = tmp_path / "cls.json"
    result = CliRunner().invoke(app, ["limits", str(region_a / "BkgOnly.json"), "--patch",
                                      str(region_a / f"patch.{PATCH}.json"), "--json", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["cls_obs"] == pytest.approx(CLS_OBS, rel=1e-5)
    assert len(doc["cls_exp"]) == 5 and doc["cls_exp"] == sorted(doc["cls_exp"])
    assert doc["poi"] == "mu_SIG" and "0.2444" in result.output


def patchset_from(region: Path, names: list[str]) -> dict:
    import pyhf

    bkg = json.loads((region / "BkgOnly.json").read_text())
    return {
        "metadata": {
            "name": "sbottom-test",
            "references": {"hepdata": "ins1748602"},
            "description": "two patches of the published set",
            "digests": {"sha256": pyhf.utils.digest(bkg)},
            "labels": ["m_sb", "m_chi2", "m_chi1"],
        },
        "patches": [
            {"metadata": {"name": n, "values": [float(v) for v in n.split("_")[1:]]},
             "patch": json.loads((region / f"patch.{n}.json").read_text())}
            for n in names
        ],
        "version": "1.0.0",
    }


def test_patchset_entry_gives_the_same_cls(region_a, tmp_path):
    pset = tmp_path / "patchset.json"
    pset.write_text(json.dumps(patchset_from(region_a, [PATCH, "sbottom_600_280_150"])))
    ws = load_workspace(region_a / "BkgOnly.json", patchset=pset, name=PATCH)
    assert hypotest(ws).cls_obs == pytest.approx(CLS_OBS, rel=1e-5)
    with pytest.raises(InferenceError, match="no patch named 'sbottom_1_2_3'"):
        load_workspace(region_a / "BkgOnly.json", patchset=pset, name="sbottom_1_2_3")
    with pytest.raises(InferenceError, match="--patchset needs --name"):
        load_workspace(region_a / "BkgOnly.json", patchset=pset)


def simple_workspace(tmp_path: Path, observed: float = 52.0) -> Path:
    spec = {
        "channels": [{"name": "sr", "samples": [
            {"name": "signal", "data": [12.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "background", "data": [50.0], "modifiers": [{"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}]},
        ]}],
        "observations": [{"name": "sr", "data": [observed]}],
        "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }
    path = tmp_path / "simple.json"
    path.write_text(json.dumps(spec))
    return path


def test_upper_limit_band_on_a_counting_experiment(tmp_path):
    result = hypotest(load_workspace(simple_workspace(tmp_path)), upper_limit=True, scan=(0.0, 5.0, 51))
    assert 0 < result.upper_limit_obs < 5
    assert result.upper_limit_exp == sorted(result.upper_limit_exp)
    # more observed events than the median expectation → a weaker observed limit than the median expected
    assert result.upper_limit_obs > result.upper_limit_exp[2]


def test_limits_beyond_the_scan_widen_it_and_agree_with_a_wide_pyhf_scan(tmp_path):
    """A weak signal: the +2σ expected limit lay beyond the default scan end (5) and was reported as 5. Every limit
    now lies inside the scan, and equals pyhf's own on a scan wide enough from the start."""
    import numpy as np
    import pyhf

    path = simple_workspace(tmp_path)
    spec = json.loads(path.read_text())
    spec["channels"][0]["samples"][0]["data"] = [5.0]
    path.write_text(json.dumps(spec))
    ws = load_workspace(path)
    result = hypotest(ws, upper_limit=True)  # default scan (0, 5, 41)
    assert result.upper_limit_obs < 5 < result.upper_limit_exp[4] < result.scan_mu[-1]
    model = ws.model(modifier_settings={"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code4p"}})
    bounds = [list(b) for b in model.config.suggested_bounds()]
    bounds[model.config.poi_index] = [0.0, 40.0]
    obs, exp = pyhf.infer.intervals.upper_limits.upper_limit(ws.data(model), model, scan=np.linspace(0, 40, 321),
                                                             par_bounds=bounds)
    assert result.upper_limit_obs == pytest.approx(float(obs), rel=0.02)
    assert result.upper_limit_exp == pytest.approx([float(e) for e in np.asarray(exp).ravel()], rel=0.02)


def test_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"channels": [{"name": "sr"}], "version": "1.0.0"}))
    with pytest.raises(InferenceError, match="fails pyhf's schema"):
        load_workspace(bad)
    with pytest.raises(InferenceError, match="no such file"):
        load_workspace(tmp_path / "missing.json")
    ws = load_workspace(simple_workspace(tmp_path))
    with pytest.raises(InferenceError, match="parameter 'mu_SIG' is not in the model"):
        hypotest(ws, poi="mu_SIG")
    with pytest.raises(InferenceError, match=r"observed and expected .* upper limit\(s\) on mu lie beyond 0.032 even "
                       "after widening the scan 5 times"):
        hypotest(ws, upper_limit=True, scan=(0.0, 0.001, 6))
    result = CliRunner().invoke(app, ["limits", str(bad)])
    assert result.exit_code == 2 and "fails pyhf's schema" in result.output


@pytest.mark.slow
def test_every_patch_of_a_patchset_fanned_out_over_dask_workers(region_a, tmp_path):
    """Many signal hypotheses at once: the same CLs in-process and on two Dask worker processes."""
    pset = tmp_path / "patchset.json"
    pset.write_text(json.dumps(patchset_from(region_a, [PATCH, "sbottom_600_280_150"])))
    outputs = {}
    for label, extra in (("local", []), ("dask", ["--workers", "2"])):
        out = tmp_path / f"{label}.json"
        result = CliRunner().invoke(app, ["limits", str(region_a / "BkgOnly.json"), "--patchset", str(pset),
                                          "--json", str(out), *extra])
        assert result.exit_code == 0, result.output
        assert "CLs of 2 signal hypotheses" in result.output
        outputs[label] = json.loads(out.read_text())
    assert [r["patch"].split(":")[-1] for r in outputs["local"]] == [PATCH, "sbottom_600_280_150"]
    assert outputs["local"][0]["cls_obs"] == pytest.approx(CLS_OBS, rel=1e-5)
    assert [r["cls_obs"] for r in outputs["dask"]] == pytest.approx([r["cls_obs"] for r in outputs["local"]], rel=1e-9)
