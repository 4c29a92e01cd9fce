"""Broken pyhf inputs on the published ATLAS sbottom likelihoods: each is an InferenceError naming the file,
channel, patch or option — never a traceback, and never a CLs computed with the signal in the wrong region."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hepsbi.cli import app
from hepsbi.errors import InferenceError
from hepsbi.inference.pyhf_bridge import hypotest, load_workspace

PATCH = "sbottom_1300_205_60"


@pytest.fixture(scope="module")
def regions(sbottom) -> Path:
    return sbottom


def variant(regions: Path, tmp_path: Path, change) -> Path:
    spec = json.loads((regions / "RegionA" / "BkgOnly.json").read_text())
    change(spec)
    path = tmp_path / "ws.json"
    path.write_text(json.dumps(spec))
    return path


def test_a_patch_for_another_channel_order_is_refused(regions, tmp_path):
    """JSON Patch addresses channels by index: with channels 0 and 1 swapped the signal went into the wrong
    region (CLs 0.791 instead of 0.244, exit 0)."""
    swapped = variant(regions, tmp_path, lambda s: s["channels"].__setitem__(slice(0, 2), s["channels"][1::-1]))
    with pytest.raises(InferenceError, match=r"staterror_SR_meff.*channel 'VRtt_meff'.*another ordering"):
        load_workspace(swapped, patch=regions / "RegionA" / f"patch.{PATCH}.json")
    with pytest.raises(InferenceError, match="another ordering|cannot be applied|bins"):
        load_workspace(regions / "RegionB" / "BkgOnly.json", patch=regions / "RegionA" / f"patch.{PATCH}.json")


@pytest.mark.parametrize(("change", "says"), [
    (lambda s: s["channels"][1].__setitem__("name", s["channels"][0]["name"]), "appear more than once"),
    (lambda s: s["observations"].pop(0), "no observation for channel 'SR_meff'"),
    (lambda s: s["observations"][0].__setitem__("data", [1.0, 2.0]), "3 bins but 2 observed counts"),
    (lambda s: s["observations"][0]["data"].__setitem__(0, -3.0), "must be finite and >= 0"),
    (lambda s: s["channels"][0]["samples"][0].__setitem__("data", [1.0, 2.0]), "fails pyhf's schema|needs 3 finite yields|2 bins but 3 observed"),
    (lambda s: s.__setitem__("version", "2.0.0"), "fails pyhf's schema"),
])
def test_malformed_workspaces_are_named(regions, tmp_path, change, says):
    with pytest.raises(InferenceError, match=says):
        load_workspace(variant(regions, tmp_path, change))


def test_non_standard_json_is_refused(regions, tmp_path):
    path = tmp_path / "nan.json"
    path.write_text((regions / "RegionA" / "BkgOnly.json").read_text().replace('"data": [', '"data": [NaN, ', 1))
    with pytest.raises(InferenceError, match="not valid JSON.*NaN"):
        load_workspace(path)
    path.write_bytes(b'{"channels": "caf\xe9"}')
    with pytest.raises(InferenceError, match="not UTF-8"):
        load_workspace(path)


@pytest.mark.parametrize(("options", "says"), [
    ({"mu": float("nan")}, "--mu must be finite"),
    ({"mu": float("inf")}, "--mu must be finite"),
    ({"mu": -1.0}, ">= 0 for qtilde"),
    ({"poi": "lumi"}, "'lumi' is a constrained nuisance parameter"),
    ({"poi": "nope"}, "parameter 'nope' is not in the model"),
])
def test_bad_hypotest_options_are_named(regions, options, says):
    ws = load_workspace(regions / "RegionA" / "BkgOnly.json", patch=regions / "RegionA" / f"patch.{PATCH}.json")
    with pytest.raises(InferenceError, match=says):
        hypotest(ws, **options)


def test_limits_cli_refuses_a_directory_as_json_output(regions, tmp_path):
    result = CliRunner().invoke(app, ["limits", str(regions / "RegionA" / "BkgOnly.json"), "--patch",
                                      str(regions / "RegionA" / f"patch.{PATCH}.json"), "--json", str(tmp_path)])
    assert result.exit_code == 2 and "--json" in result.output and "existing directory" in result.output


def test_negative_yields_give_a_named_error_not_a_failed_minimisation(regions, tmp_path):
    def negative(spec):
        for sample in spec["channels"][0]["samples"]:
            sample["data"] = [-1e4 * abs(v) - 1 for v in sample["data"]]

    ws = load_workspace(variant(regions, tmp_path, negative), patch=regions / "RegionA" / f"patch.{PATCH}.json")
    with pytest.raises(InferenceError, match="failed"):
        hypotest(ws)
