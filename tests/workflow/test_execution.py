"""Cached stages: a killed run resumes to byte-identical results, corrupted outputs are recomputed, and Dask
workers give the same results as the in-process default."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hepsbi.cli import app
from hepsbi.workflow.cache import stage_records

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def small_dy_spec(tmp_path: Path, chunks: int) -> Path:
    spec = yaml.safe_load((EXAMPLES / "drell_yan_contact.yaml").read_text())
    spec["simulator"]["options"].update(n_events=chunks * 1500, n_slices=2)
    spec["data"]["n_samples"] = 2000
    spec["training"] = {"estimators": [{"method": "alices", "epochs": 2}]}
    spec["inference"].update(n_mc=1000, grid_points=7, zoom=0, systematics=[], profile=None, held_out_events=3000)
    spec["execution"] = {"chunks": chunks}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def hdf5_content(path: Path) -> dict[str, bytes]:
    """Every dataset's values and every attribute of an HDF5 file."""
    import h5py

    with h5py.File(path) as f:
        got = {f"@{k}": str(v).encode() for k, v in f.attrs.items()}
        f.visititems(lambda name, obj: got.update({name: obj[...].tobytes()}) if isinstance(obj, h5py.Dataset) else None)
        return got


def outputs(run: Path, content: bool = False) -> dict[str, object]:
    """The files a run produces, as bytes (HDF5 files as their contents with ``content``: a Dask worker
    process lays out the same datasets at other offsets); the network weights as tensors (torch.save writes
    a random serialization id into every file, so its bytes differ between two saves of the same weights)."""
    import torch

    got: dict[str, object] = {"results.json": (run / "results.json").read_bytes()}
    for f in ("data/events.h5", "data/training.h5"):
        got[f] = hdf5_content(run / f) if content else (run / f).read_bytes()
    weights = torch.load(run / "models" / "alices" / "weights.pt", weights_only=True)
    got["weights"] = {k: v.numpy().tobytes() for k, v in weights.items()}
    return got


def test_killed_run_resumes_to_byte_identical_results(tmp_path):
    spec = small_dy_spec(tmp_path, chunks=8)
    killed, fresh = tmp_path / "killed", tmp_path / "fresh"
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "hepsbi.cli", "run", str(spec), "--out", str(killed), "--quiet"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = [r for r in stage_records(killed) if r["stage"].startswith("simulate") and r["state"] == "done"]
        if len(done) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = stage_records(killed)
    finished = sum(r["state"] == "done" and r["stage"].startswith("simulate") for r in before)
    assert 2 <= finished < 8 and not (killed / "results.json").exists()
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(killed), "--quiet"])
    assert result.exit_code == 0, result.output
    provenance = json.loads((killed / "provenance.json").read_text())
    assert all(r["state"] == "done" for r in provenance["stages"]) and len(provenance["stages"]) == 8 + 7, \
        [(r["stage"], r["state"]) for r in provenance["stages"]]
    assert CliRunner().invoke(app, ["run", str(spec), "--out", str(fresh), "--quiet"]).exit_code == 0
    assert outputs(killed) == outputs(fresh)
    status = CliRunner().invoke(app, ["status", str(killed)])
    assert status.exit_code == 0 and "15/15 stages done" in status.output


def test_corrupted_chunk_is_detected_and_recomputed(tmp_path):
    spec = small_dy_spec(tmp_path, chunks=2)
    run = tmp_path / "run"
    assert CliRunner().invoke(app, ["run", str(spec), "--out", str(run), "--quiet"]).exit_code == 0
    reference = outputs(run)
    chunk = next((run / "stages").glob("simulate_0001-*")) / "events.h5"
    stamp = chunk.stat().st_mtime
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    status = CliRunner().invoke(app, ["status", str(run)])
    assert "corrupt" in status.output
    assert CliRunner().invoke(app, ["run", str(spec), "--out", str(run), "--quiet"]).exit_code == 0
    assert chunk.stat().st_mtime != stamp and outputs(run) == reference
    assert all(r["state"] == "done" for r in stage_records(run))
    # a finished run is not redone: every stage, inference included, comes from the cache
    sealed = {m: m.stat().st_mtime for m in (run / "stages").glob("*/manifest.json")}
    assert len(sealed) == 2 + 7 and any("report-" in str(m) for m in sealed)
    assert CliRunner().invoke(app, ["run", str(spec), "--out", str(run), "--quiet"]).exit_code == 0
    assert {m: m.stat().st_mtime for m in sealed} == sealed and outputs(run) == reference


@pytest.mark.slow
def test_local_dask_cluster_gives_the_same_results(tmp_path):
    spec = small_dy_spec(tmp_path, chunks=3)
    default, dask_run = tmp_path / "default", tmp_path / "dask"
    assert CliRunner().invoke(app, ["run", str(spec), "--out", str(default), "--quiet"]).exit_code == 0
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(dask_run), "--quiet", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert outputs(default, content=True) == outputs(dask_run, content=True)
    provenance = json.loads((dask_run / "provenance.json").read_text())
    assert provenance["execution"]["workers"] == 2


def test_placement_options_and_batch_cluster_configuration():
    from hepsbi.errors import SpecError
    from hepsbi.workflow.placement import batch_cluster

    result = CliRunner().invoke(app, ["run", str(EXAMPLES / "gaussian.yaml"), "--workers", "2", "--scheduler", "tcp://x:1"])
    assert result.exit_code == 2 and "at most one of --workers, --scheduler, --cluster" in result.output
    cluster = batch_cluster("htcondor", {"cores": 1, "memory": "2GB", "disk": "1GB"})
    try:
        script = cluster.job_script()
        assert "RequestMemory" in script or "request_memory" in script.lower()
        assert "MALLOC_MMAP_THRESHOLD_=33554432" in script  # workers keep tensors on the heap
    finally:
        cluster.close()
    with pytest.raises(SpecError, match="execution.jobqueue"):
        batch_cluster("slurm", {"no_such_option": 1})


@pytest.mark.parametrize(("kind", "command"), [("htcondor", "condor_submit"), ("slurm", "sbatch")])
def test_a_batch_cluster_without_its_submit_command_fails_fast_with_a_named_error(tmp_path, monkeypatch, kind, command):
    """`--cluster htcondor` on a machine without HTCondor printed FileNotFoundError and then waited forever."""
    import time

    monkeypatch.setenv("PATH", str(tmp_path))  # no batch system here
    start = time.monotonic()
    result = CliRunner().invoke(app, ["run", str(EXAMPLES / "gaussian.yaml"), "--out", str(tmp_path / "run"),
                                      "--cluster", kind, "--quiet"])
    assert time.monotonic() - start < 60
    assert result.exit_code == 2 and f"execution.cluster: {kind} submits jobs with '{command}'" in result.output


def test_clean_removes_the_stages_an_earlier_spec_left(tmp_path):
    spec_path = EXAMPLES / "gaussian.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["data"]["n_samples"] = 1000
    spec["training"]["estimators"] = [{"method": "alices", "epochs": 2}]
    spec["inference"]["grid_points"] = 11
    first = tmp_path / "first.yaml"
    first.write_text(yaml.safe_dump(spec))
    spec["inference"]["grid_points"] = 13  # new inference stages; simulation and training are reused
    second = tmp_path / "second.yaml"
    second.write_text(yaml.safe_dump(spec))
    run = tmp_path / "run"
    missing = CliRunner().invoke(app, ["clean", str(run)])
    assert missing.exit_code == 2 and "no provenance.json" in missing.output
    for path in (first, second):
        assert CliRunner().invoke(app, ["run", str(path), "--out", str(run), "--quiet"]).exit_code == 0
    used = json.loads((run / "provenance.json").read_text())["stages_used"]
    stale = sorted(d.name for d in (run / "stages").iterdir() if d.name not in used)
    assert stale and all(name.startswith(("infer_", "report-")) for name in stale)
    assert "not used by the last run" in CliRunner().invoke(app, ["status", str(run)]).output
    dry = CliRunner().invoke(app, ["clean", str(run), "--dry-run"])
    assert dry.exit_code == 0 and f"{len(stale)} unused stage directories" in dry.output
    assert all((run / "stages" / name).is_dir() for name in stale)
    reference = (run / "results.json").read_bytes()
    assert CliRunner().invoke(app, ["clean", str(run)]).exit_code == 0
    assert sorted(d.name for d in (run / "stages").iterdir()) == sorted(used)
    sealed = {m: m.stat().st_mtime for m in (run / "stages").glob("*/manifest.json")}
    assert CliRunner().invoke(app, ["run", str(second), "--out", str(run), "--quiet"]).exit_code == 0
    assert {m: m.stat().st_mtime for m in sealed} == sealed and (run / "results.json").read_bytes() == reference


def test_coverage_toys_on_two_workers_equal_the_in_process_toys(tmp_path):
    """Toy batches on a LocalCluster (25 per task: here a batch of 25 and one of 5) give the same t values,
    in toy order, as the toys in-process: each toy draws from its own seed."""
    spec = yaml.safe_load((EXAMPLES / "gaussian.yaml").read_text())
    spec["data"]["n_samples"] = 1000
    spec["training"]["estimators"] = [{"method": "alices", "epochs": 2}]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    documents = []
    for name, placement in (("local", []), ("dask", ["--workers", "2"])):
        out = tmp_path / name
        result = CliRunner().invoke(app, ["coverage", str(path), "--toys", "30", "--out", str(out), "--quiet", *placement])
        assert result.exit_code == 0, result.output
        documents.append(json.loads((out / "coverage.json").read_text()))
    assert documents[0] == documents[1]
    assert set(documents[0]["likelihoods"]) == {"alices", "exact"}
    assert all(len(block["t"]) == 30 for block in documents[0]["likelihoods"].values())


def test_edited_estimator_code_retrains_and_keeps_the_simulation(tmp_path):
    """A stage's key covers the source of the code that computes it: after an edit to the losses a rerun into
    the same run directory retrains (and infers again) but reuses the simulated chunks and the training data."""
    import shutil

    source = tmp_path / "src"
    shutil.copytree(Path(__file__).resolve().parents[2] / "src" / "hepsbi", source / "hepsbi",
                    ignore=shutil.ignore_patterns("__pycache__"))
    spec = yaml.safe_load((EXAMPLES / "gaussian.yaml").read_text())
    spec["data"]["n_samples"] = 400
    spec["training"] = {"estimators": [{"method": "alices", "epochs": 1}]}
    spec["inference"].update(n_mc=200, grid_points=5)
    spec["report"] = {"plots": False, "validation_events": 20}
    spec_path, run = tmp_path / "spec.yaml", tmp_path / "run"
    spec_path.write_text(yaml.safe_dump(spec))
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(source)}
    command = [sys.executable, "-m", "hepsbi.cli", "run", str(spec_path), "--out", str(run), "--quiet"]

    def stages() -> dict[str, str]:
        subprocess.run(command, env=env, check=True, capture_output=True)
        used = json.loads((run / "provenance.json").read_text())["stages_used"]
        return {name.rpartition("-")[0]: name for name in used}

    before = stages()
    assert stages() == before  # unchanged code: everything reused
    losses = source / "hepsbi" / "estimators" / "losses.py"
    losses.write_text(losses.read_text().replace("return weighted_mean(F.binary_cross_entropy_with_logits(log_r_hat, torch.sigmoid",
                                                 "return 1.0 * weighted_mean(F.binary_cross_entropy_with_logits(log_r_hat, torch.sigmoid"))
    after = stages()
    assert after["train_0"] != before["train_0"] and after["report"] != before["report"]
    assert after["simulate_0000"] == before["simulate_0000"] and after["training"] == before["training"]
