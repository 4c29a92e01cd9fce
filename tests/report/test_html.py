"""report.html: one self-contained page per run, and what a real browser (headless Chromium) shows of it."""

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hepsbi.cli import app
from hepsbi.report.html import write_html_report

WARNING = {"code": "mle_at_scan_edge", "likelihood": "alice",
           "message": "alice: the MLE of theta1 (1) lies at the upper end of its scan (1); widen the range"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny two-parameter run (so the scan plot holds contours)."""
    tmp = tmp_path_factory.mktemp("html")
    spec = {"name": "tiny-report", "simulator": {"name": "multi_gaussian"}, "data": {"n_samples": 1500, "seed": 1},
            "training": {"estimators": [{"method": "alice", "epochs": 4}]},
            "inference": {"theta_true": {"theta1": 0.3, "theta2": -0.2}, "n_events": 200, "n_mc": 2000,
                          "grid_points": 15},
            "report": {"validation_events": 200}}
    (tmp / "spec.yaml").write_text(yaml.safe_dump(spec))
    out = tmp / "run"
    result = CliRunner().invoke(app, ["run", str(tmp / "spec.yaml"), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    return out


def test_the_page_is_self_contained_and_holds_the_run(run):
    page = (run / "report.html").read_text()
    results = json.loads((run / "results.json").read_text())
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page.replace(
        "http-equiv", "")  # nothing fetched from elsewhere
    assert 'id="warnings"' in page and page.index('id="warnings"') < page.index("<h2>Results</h2>")
    for name in ("likelihood_scan", "training", "log_ratio"):  # every plot embedded, byte for byte
        png = base64.b64encode((run / "plots" / f"{name}.png").read_bytes()).decode()
        assert f'id="plot-{name}"' in page and png in page
    for label in [*results["estimators"], "exact"]:
        assert f"<td>{label}</td>" in page
    assert "tiny-report" in page and "multi_gaussian" in page  # title and spec
    assert "hepsbi_version" in page  # provenance


def _screenshot(page: Path, target: Path) -> "object":
    from PIL import Image

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1200,3000", f"--screenshot={target}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    return Image.open(target).convert("RGB")


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="headless Chromium not installed (Debian: apt-get install chromium)")
def test_headless_chromium_shows_the_warnings_and_the_contour_plot(run, tmp_path):
    results = json.loads((run / "results.json").read_text())
    write_html_report(run, {**results, "warnings": [WARNING]})
    image = _screenshot(run / "report.html", tmp_path / "report.png")
    width, height = image.size
    pixels = image.load()

    def count(colour, rows):
        return sum(1 for y in rows for x in range(0, width, 2) if pixels[x, y] == colour)

    # the warnings box (background #fff7e0) near the top of the page, above the tables
    assert count((0xFF, 0xF7, 0xE0), range(0, 400)) > 2000
    # the likelihood-scan plot: its contour lines in matplotlib's first colour (tab:blue, #1f77b4) and the truth
    # star, drawn by the browser from the embedded PNG
    assert count((0x1F, 0x77, 0xB4), range(0, height)) > 50
    # without warnings the box is green and says so
    write_html_report(run, {**results, "warnings": []})
    image = _screenshot(run / "report.html", tmp_path / "clean.png")
    pixels = image.load()
    assert count((0xFF, 0xF7, 0xE0), range(0, 400)) == 0 and count((0xEE, 0xF8, 0xEE), range(0, 400)) > 2000
