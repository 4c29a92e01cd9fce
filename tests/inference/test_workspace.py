"""Workspaces built from weighted events: pyhf reads back the histograms, systematics and statistical errors."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hepsbi.cli import app
from hepsbi.errors import InferenceError
from hepsbi.inference.nuisance import NormSys, ShapeSys
from hepsbi.inference.workspace import Sample, histogram_workspace, write_workspace

EDGES = np.linspace(0.0, 1.0, 6)


def samples():
    rng = np.random.default_rng(0)
    bkg_x = rng.uniform(0, 1, 4000)
    sig_x = np.clip(rng.normal(0.7, 0.08, 1000), 0, 0.999)
    scale = torch.from_numpy(1 + 0.2 * (bkg_x - 0.5))  # a tilt: +10 % at x = 1, −10 % at x = 0
    background = Sample("background", bkg_x, np.full(4000, 0.05), norm=[NormSys("xsec_bkg", 1.1, 0.9)],
                        shape=[ShapeSys("tilt", scale, 2 - scale)])
    signal = Sample("signal", sig_x, np.full(1000, 0.02), norm=[NormSys("lumi", 1.02, 0.98)], signal=True)
    return background, signal


def test_pyhf_reads_back_histograms_systematics_and_staterror():
    import pyhf

    background, signal = samples()
    spec = histogram_workspace(EDGES, [background, signal])
    ws = pyhf.Workspace(spec)
    model = ws.model()
    bkg_hist = np.histogram(background.values, EDGES, weights=background.weights)[0]
    sig_hist = np.histogram(signal.values, EDGES, weights=signal.weights)[0]
    nominal = model.config.suggested_init()
    np.testing.assert_allclose(model.expected_actualdata(nominal), bkg_hist + sig_hist, rtol=1e-10)
    np.testing.assert_allclose(ws.data(model, include_auxdata=False), bkg_hist + sig_hist)  # Asimov observation
    up = list(nominal)
    up[model.config.par_slice("tilt")] = [1.0]
    tilted = np.histogram(background.values, EDGES, weights=background.weights * background.shape[0].up.numpy())[0]
    np.testing.assert_allclose(model.expected_actualdata(up), tilted + sig_hist, rtol=1e-10)
    assert model.config.param_set("staterror_sr").n_parameters == len(EDGES) - 1
    assert set(model.config.parameters) >= {"mu", "lumi", "xsec_bkg", "tilt", "staterror_sr"}


def test_limits_cli_fits_a_built_workspace(tmp_path):
    background, signal = samples()
    observed = np.histogram(background.values, EDGES, weights=background.weights)[0]  # background only
    path = write_workspace(histogram_workspace(EDGES, [background, signal], observed=np.round(observed)), tmp_path / "ws.json")
    result = CliRunner().invoke(app, ["limits", str(path), "--brazil", str(tmp_path / "cls.png"), "--json", str(tmp_path / "out.json")])
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "out.json").read_text())
    assert 0 < out["cls_obs"] < 0.05  # 50 signal events on ~200 background: μ = 1 is excluded
    assert 0 < out["upper_limit_obs"] < 1
    assert len(out["scan_mu"]) == len(out["scan_cls_exp"]) == 41 and (tmp_path / "cls.png").stat().st_size > 1000


def test_bad_inputs_are_named():
    background, signal = samples()
    with pytest.raises(InferenceError, match="no sample is marked signal"):
        histogram_workspace(EDGES, [background])
    negative = Sample("neg", [0.5], [-1.0], signal=True)
    with pytest.raises(InferenceError, match="sample 'neg' has negative expected counts in bins \\[2\\]"):
        histogram_workspace(EDGES, [background, negative])
    with pytest.raises(InferenceError, match="edges must increase"):
        histogram_workspace([0.0, 0.5, 0.4], [signal])
    with pytest.raises(InferenceError, match="shape systematic 'tilt' has"):
        Sample("x", [0.1, 0.2], [1.0, 1.0], shape=[background.shape[0]])
