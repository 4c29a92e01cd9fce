r"""Run a spec: simulate → train → evaluate → infer → report, writing everything under one directory.

Layout of the run directory::

    RUN_DIR/
      spec.yaml               the validated spec, defaults filled in
      data/training.h5        training data (hepsbi.TrainingData)
      data/events.h5          weighted simulators: the generated event pool (hepsbi.Events)
      models/<label>/         each trained estimator (weights.pt + estimator.json)
      results.json            MLE, intervals, scans, truth, comparisons (deterministic: same spec, same bytes)
      provenance.json         versions, host, seeds, spec hash, wall times per stage, every stage's state
      stages/<stage>-<key>/   cached stage outputs with checksummed manifests (resume, see workflow.cache)
      plots/*.png             likelihood scans, log r learned vs exact (toys), training curves
      report.html             one self-contained page: warnings, tables, plots, spec, timings, provenance
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from hepsbi.estimators.registry import load_estimator
from hepsbi.files import atomic_path, inside, write_json
from hepsbi.report.html import write_html_report
from hepsbi.report.results import environment
from hepsbi.report.summary import print_summary
from hepsbi.workflow.cache import clear_failures, stage_records
from hepsbi.workflow.console import run_console, timed, use_thread_setting
from hepsbi.workflow.graph import build_and_run
from hepsbi.workflow.infer import stage_timings
from hepsbi.workflow.inputs import prepare
from hepsbi.workflow.lock import disk_errors, run_lock
from hepsbi.workflow.spec import RunSpec

__all__ = ["prepare", "run"]


def run(spec: RunSpec, out: str | os.PathLike[str], progress: bool = True, console: Console | None = None) -> dict[str, Any]:
    """Execute ``spec`` into directory ``out``; returns the results document (also in ``results.json``). The
    directory is locked for the run (a second run into it refuses, naming this one); a full or read-only disk is
    a :class:`~hepsbi.errors.RunDirectoryError` and the finished stages are kept for the next run."""
    console = console or run_console(progress)
    out = Path(out)
    prepare(spec)  # spec errors before any work
    with run_lock(out, "hepsbi run"), disk_errors(out):
        return _run_locked(spec, out, console, progress)


def _run_locked(spec: RunSpec, out: Path, console: Console, progress: bool) -> dict[str, Any]:
    with atomic_path(inside(out, "spec.yaml")) as tmp:
        tmp.write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    timings: dict[str, float] = {}
    use_thread_setting()

    with timed("stages", timings, console):
        stages = build_and_run(spec, out, progress)
    clear_failures(out)  # every stage of this run succeeded: earlier failures are history
    results = json.loads((out / "results.json").read_text())
    timings |= stage_timings(stages["report"])
    training = {}
    for label, directories in stages["estimators"].items():
        history = load_estimator(directories[0]).history
        training[label] = {"seconds": round(history.seconds, 3), "samples_per_second": round(history.samples_per_second, 1)}
    provenance = {
        **environment(), **results["provenance"],
        "execution": {k: getattr(spec.execution, k) for k in ("chunks", "workers", "scheduler", "cluster")},
        "timings_s": timings,
        "training": training,
        "stages": stage_records(out),
        "stages_used": stages.directories(),  # `hepsbi clean` removes the others
        "published": stages["published"],  # `hepsbi status` reports files edited since
    }
    write_json(inside(out, "provenance.json"), provenance)
    write_html_report(out, results, provenance)
    print_summary(results, console)
    return results
