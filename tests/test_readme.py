"""Every code block of the README runs: Python blocks are executed (at a small scale: the sizes listed below are
replaced, and each replacement must still find its text), the pyhf limits block runs for real, every other
``hepsbi`` command line parses with the CLI's own parser, and the YAML block is a valid spec section."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SHARED = ROOT.parent / "shared" / "data"

#: the README's Python blocks, told apart by a line they contain, and the replacements that make them small
PYTHON_BLOCKS = {
    "sim = GaltonBoard()": {
        "n=10_000, seed=0": "n=600, seed=0",
        'RatioEstimator(method="alices")': 'RatioEstimator(method="alices", epochs=2, progress=False)',
        "n_mc=20_000": "n_mc=500",
        "hepsbi.ScoreEstimator()": "hepsbi.ScoreEstimator(epochs=2, progress=False)",
        "TrainingData.local(sim, n=10_000)": "TrainingData.local(sim, n=300)",
    },
    "class Exponential:": {},
    "events = sim.generate()": {"n_events=100_000": "n_events=1_000", "from_simulator(sim, 50_000)": "from_simulator(sim, 500)"},
    "analysis = WeightedAnalysis(": {
        "n_events=100_000": "n_events=3_000",
        'RatioEstimator("alices")': 'RatioEstimator("alices", epochs=2, progress=False)',
        "MorphingRatioEstimator()": "MorphingRatioEstimator(epochs=2, progress=False)",
        "n=60_000": "n=1_000",
        "n_mc=30_000": "n_mc=800",
        "points=31, zoom=2": "points=5, zoom=0",
        "points=15": "points=3",
    },
    "model = UnbinnedModel(": {},
    'est = TwoSampleRatio("revert")': {"100_000": "2_000",
                                       'TwoSampleRatio("revert")': 'TwoSampleRatio("revert", epochs=2, progress=False)'},
    "est = DensityEstimator(scandal_alpha=1.0)": {"10_000": "1_000",
                                                 "DensityEstimator(scandal_alpha=1.0)": "DensityEstimator(scandal_alpha=1.0, epochs=2, progress=False)"},
    "npe = PosteriorEstimator(sim.space).fit(data)": {"20_000": "1_000",
                                            "PosteriorEstimator(sim.space)": "PosteriorEstimator(sim.space, epochs=2, progress=False)"},
    "chosen = select_by_validation(": {"20_000": "1_000", "members=5, **r)": "members=2, epochs=2, progress=False, **r)"},
    "ranks = diagnostics.sbc(npe, theta_c, x_c, samples=draws_c)": {
        "PosteriorEstimator(sim.space)": "PosteriorEstimator(sim.space, epochs=2, progress=False)",
        "20_000": "1_000", "300": "40", "100)": "20)", "n=1000": "n=100"},
    "posterior = LikelihoodPosterior(nle, sim.space)": {
        "DensityEstimator().fit(data)": "DensityEstimator(epochs=2, progress=False).fit(data)",
        "20_000": "1_000", "4_000": "100"},
    'events = LHESample("Z-fxfx.lhe.gz"': {
        '"Z-fxfx.lhe.gz", shower=True': f'"{SHARED / "pylhe-testfile-madgraph-2.2.1-Z-fxfx.lhe.gz"}", n_events=100, shower=True'},
}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_every_python_block_is_listed():
    for code in blocks("python"):
        assert sum(marker in code for marker in PYTHON_BLOCKS) == 1, f"a README block nobody runs:\n{code[:200]}"


@pytest.mark.parametrize("marker", PYTHON_BLOCKS)
def test_python_block_runs(marker, tmp_path, monkeypatch):
    (code,) = [c for c in blocks("python") if marker in c]
    for old, new in PYTHON_BLOCKS[marker].items():
        assert old in code, f"the README block changed: {old!r} is gone"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, f"README block ({marker})", "exec"), namespace)
    if marker == "analysis = WeightedAnalysis(":
        # the block's analysis gives what the library promises: truth at least as informative as the histogram
        fisher, profiled = namespace["fisher"], namespace["profiled"]
        assert set(profiled) == {"alices", "morphing", "truth"}
        assert set(fisher) == {"alices", "morphing", "truth", "rate", "histogram"}
        import numpy as np

        assert np.linalg.det(fisher["truth"]) > np.linalg.det(fisher["histogram"]) > 0


def hepsbi_lines() -> list[list[str]]:
    lines = []
    for code in blocks("bash"):
        for line in code.splitlines():
            command = line.split("#")[0].split("&")[-1].strip()
            if command.startswith("hepsbi "):
                lines.append(shlex.split(command)[1:])
    return lines


@pytest.mark.parametrize("args", hepsbi_lines(), ids=lambda a: " ".join(a)[:60])
def test_command_lines_parse(args):
    from typer.main import get_command

    from hepsbi.cli import app

    group = get_command(app)
    command = group.get_command(None, args[0])  # type: ignore[arg-type]
    assert command is not None, f"no command {args[0]!r}"
    command.make_context(args[0], args[1:])  # unknown options or missing arguments raise


@pytest.mark.skipif(not (SHARED / "pyhf-ins1748602-probability-models.tar.gz").is_file(), reason="no shared data")
def test_pyhf_limits_block_runs_as_written(tmp_path):
    (code,) = [c for c in blocks("bash") if "tar -xzf" in c]
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "shared").symlink_to(SHARED.parent)
    (project / "README.md").write_text("the project's own README\n")
    bin_dir = str(Path(sys.executable).parent)
    script = "\n".join(line for line in code.splitlines() if not line.startswith("#"))
    subprocess.run(["bash", "-euc", script], cwd=project, check=True, capture_output=True,
                   env={"PATH": f"{bin_dir}:/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert (project / "README.md").read_text() == "the project's own README\n"  # extracted into a folder of its own
    import json

    assert json.loads((project / "cls.json").read_text())["cls_obs"] == pytest.approx(0.24443627759085326, rel=1e-4)


def test_yaml_block_is_a_valid_spec_section():
    from hepsbi.workflow.spec import parse_spec

    for code in blocks("yaml"):
        parse_spec(yaml.safe_load(code))
