"""What a hostile user or a faulty machine must not achieve: a write outside the run directory, two runs in one
directory at once, a traceback for a full or read-only disk, a silently edited result."""

import errno
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hepsbi.cli import app
from hepsbi.errors import HepsbiError, SpecError
from hepsbi.files import atomic_path, inside, write_json
from hepsbi.workflow.spec import parse_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def tiny_gaussian(tmp_path: Path, **inference) -> Path:
    spec = yaml.safe_load((EXAMPLES / "gaussian.yaml").read_text())
    spec["data"]["n_samples"] = 400
    spec["training"] = {"estimators": [{"method": "alices", "epochs": 1}]}
    spec["inference"].update(n_mc=200, grid_points=5, **inference)
    spec["report"] = {"plots": False, "validation_events": 20}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("label", ["/some/other/dir", "../escape", ".", "a/member1", "a b", "", "é", "1abc", "x" * 65])
def test_estimator_labels_must_be_identifiers(label):
    with pytest.raises(SpecError, match="training.estimators.0.label"):
        parse_spec({"training": {"estimators": [{"method": "alices", "label": label}]}})
    assert parse_spec({"training": {"estimators": [{"label": "plain-carl_2", "method": "carl"}]}})


def test_paths_are_checked_to_lie_inside_the_run_directory(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "link").symlink_to(tmp_path)
    assert inside(run, "models", "alices", "weights.pt") == run / "models" / "alices" / "weights.pt"
    for parts in [("/etc/passwd",), ("..", "x"), ("models", "..", "..", "x"), ("link", "x")]:
        with pytest.raises(HepsbiError, match="outside"):
            inside(run, *parts)


def test_atomic_files_get_the_permissions_of_a_plain_open(tmp_path):
    """Written through a temporary file, yet readable as the umask allows (mkstemp alone would leave 0600), and an
    error leaves neither the target nor the temporary file behind."""
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    written = write_json(tmp_path / "results.json", {"a": 1})
    assert stat.S_IMODE(written.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "broken.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt", "results.json"]


def test_publishing_refuses_a_label_that_leaves_the_run_directory(tmp_path):
    """Labels are checked by the spec; the writer checks again (a library caller can pass anything)."""
    from hepsbi.workflow.cache import run_stage
    from hepsbi.workflow.graph import StageOutputs, _publish

    def work(tmp):
        (tmp / "weights.pt").write_bytes(b"w")
        (tmp / "training.h5").write_bytes(b"t")

    stage = run_stage(tmp_path / "run", "train_0", "x", work)  # a sealed stage, with its manifest
    outputs = StageOutputs(training=str(stage), merged=str(stage), estimators={"/tmp/outside": [str(stage)]},
                           sally=None, report=None, chunks=[], infer=[])
    with pytest.raises(HepsbiError, match="outside"):
        _publish(tmp_path / "run", outputs)
    assert not Path("/tmp/outside").exists()


def test_stage_names_cannot_leave_the_stages_directory(tmp_path):
    from hepsbi.workflow.cache import run_stage

    with pytest.raises(HepsbiError, match="outside"):
        run_stage(tmp_path, "../../escape", "0", lambda tmp: None)


def test_a_second_run_into_a_held_directory_refuses_and_names_the_holder(tmp_path):
    from hepsbi.workflow.lock import run_lock

    spec, out = tiny_gaussian(tmp_path), tmp_path / "run"
    with run_lock(out, "a test holding the directory"):
        result = CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--quiet"])
        assert result.exit_code == 2 and "in use by" in result.output and "a test holding the directory" in result.output
        clean = CliRunner().invoke(app, ["clean", str(out)])
        assert clean.exit_code == 2
    assert CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--quiet"]).exit_code == 0  # released


def test_two_concurrent_runs_one_refuses_the_other_finishes(tmp_path):
    spec, out = tiny_gaussian(tmp_path), tmp_path / "run"
    document = yaml.safe_load(spec.read_text())
    document["data"]["n_samples"] = 6000
    document["training"]["estimators"][0]["epochs"] = 60  # long enough for the second run to meet the first
    spec.write_text(yaml.safe_dump(document))
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "hepsbi.cli", "run", str(spec), "--out", str(out), "--quiet"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock, deadline = out / ".hepsbi.lock", time.monotonic() + 60
    while time.monotonic() < deadline and not (lock.is_file() and f'"pid": {first.pid}' in lock.read_text()):
        time.sleep(0.01)
    second = subprocess.run(command, env=env, capture_output=True, text=True)
    assert first.wait(timeout=300) == 0, first.stderr
    assert second.returncode == 2 and "in use by" in second.stderr and f'"pid": {first.pid}' in second.stderr
    assert not [p for p in (out / "stages").iterdir() if p.name.startswith(".")]  # no orphan temporary directory
    assert (out / "results.json").is_file()


def test_a_full_disk_is_a_named_error_and_the_run_resumes(tmp_path, monkeypatch):
    import hepsbi.data.training as training

    spec, out = tiny_gaussian(tmp_path), tmp_path / "run"
    real_save = training.TrainingData.save
    calls = {"n": 0}

    def full_after_the_first_file(self, path):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(self, path)

    monkeypatch.setattr(training.TrainingData, "save", full_after_the_first_file)
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--quiet"])
    assert result.exit_code == 2 and "the disk is full" in result.output and "finished stages are kept" in result.output
    done = {p.name for p in (out / "stages").iterdir() if not p.name.startswith(".")}
    assert any(name.startswith("simulate_0000") for name in done)
    monkeypatch.setattr(training.TrainingData, "save", real_save)
    assert CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--quiet"]).exit_code == 0
    provenance = json.loads((out / "provenance.json").read_text())
    assert [d for d in provenance["stages_used"] if d.startswith("simulate_0000")][0] in done  # resumed, not redone


def test_status_names_a_failed_stage_and_its_error_until_a_rerun_succeeds(tmp_path, monkeypatch):
    """A run whose report crashed was shown as "7/7 stages done, results.json: not yet"."""
    import hepsbi.workflow.infer as infer

    spec, out = tiny_gaussian(tmp_path), tmp_path / "run"
    real_report = infer.write_run_report

    def broken(*args, **kwargs):
        raise ValueError("the plotting backend is gone")

    monkeypatch.setattr(infer, "write_run_report", broken)
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--quiet"])
    assert result.exit_code != 0 and not (out / "results.json").exists()
    status = " ".join(CliRunner().invoke(app, ["status", str(out)]).output.split())
    assert "results.json: not yet" in status and "1 failed" in status
    assert "stage report failed: ValueError: the plotting backend is gone" in status
    record = json.loads(next((out / "stages").glob("report-*.failed.json")).read_text())
    assert record["stage"] == "report" and any("stage report" in line for line in record["log"])
    monkeypatch.setattr(infer, "write_run_report", real_report)
    assert CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--quiet"]).exit_code == 0
    status = " ".join(CliRunner().invoke(app, ["status", str(out)]).output.split())
    assert "1 failed" not in status and "stage report failed" not in status and "results.json: written" in status
    assert not list((out / "stages").glob("*.failed.json"))


def test_too_little_free_space_refuses_before_a_stage_starts(tmp_path, monkeypatch):
    import shutil

    import hepsbi.workflow.lock as lock

    spec, out = tiny_gaussian(tmp_path), tmp_path / "run"
    monkeypatch.setattr(lock.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 2**20, 2**20))
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--quiet"])
    assert result.exit_code == 2 and "1.0 MiB free" in result.output


def test_a_read_only_run_directory_is_a_named_error(tmp_path, monkeypatch):
    import hepsbi.workflow.lock as lock

    spec, out = tiny_gaussian(tmp_path), tmp_path / "run"
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(lock.os, "open", read_only)
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--quiet"])
    assert result.exit_code == 2 and "read-only" in result.output and str(out) in result.output.replace("\n", "")
    monkeypatch.setattr(lock.os, "open", real_open)  # writable again: the same command runs
    assert CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--quiet"]).exit_code == 0


def test_status_reports_published_files_edited_after_the_run(tmp_path):
    spec, out = tiny_gaussian(tmp_path), tmp_path / "run"
    assert CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--quiet"]).exit_code == 0
    assert "changed since" not in CliRunner().invoke(app, ["status", str(out)]).output
    results = json.loads((out / "results.json").read_text())
    results["mle"]["theta"] = 0.123
    (out / "results.json").write_text(json.dumps(results))
    (out / "models" / "alices" / "estimator.json").unlink()
    status = CliRunner().invoke(app, ["status", str(out)]).output
    assert "2 published file(s) changed" in status and "results.json" in status and "models/alices/estimator.json" in status
    assert CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--quiet"]).exit_code == 0  # restores them
    assert "changed since" not in CliRunner().invoke(app, ["status", str(out)]).output


def test_error_messages_are_printed_literally(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"data": {"balance": "[/]"}, "simulator": {"name": "[red]gauss"}}))
    result = CliRunner().invoke(app, ["check", str(bad)])
    assert result.exit_code == 2 and "[red]gauss" in result.output


@pytest.mark.parametrize("provenance", ["{not json", '{"stages_used": 5}', '{"stages_used": [1, 2]}', "[]"])
def test_clean_with_a_malformed_provenance_is_a_named_error(tmp_path, provenance):
    (tmp_path / "provenance.json").write_text(provenance)
    result = CliRunner().invoke(app, ["clean", str(tmp_path)])
    assert result.exit_code == 2 and "stages_used" in result.output
