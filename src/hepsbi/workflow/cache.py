r"""Cached, verified stage outputs: what makes a run resumable.

Every stage writes into its own directory ``RUN_DIR/stages/<stage>-<key>/``, where the key is a hash of the
stage's configuration, the keys of its inputs, the hepsbi version and a fingerprint of the source code that
computes the stage (:func:`code_fingerprint`): after an edit to a loss, a network or the training loop a rerun
into the same directory retrains instead of reusing the old stage. The outputs are written into a
temporary directory that is renamed into place when the stage finishes, and a ``manifest.json`` (SHA-256 of
every file, configuration, inputs, wall and CPU time, host) is written last; ``stage.log`` holds the
stage's log (messages of the ``hepsbi`` logger while it ran). A stage counts as done only
when its manifest exists and every checksum matches; anything else — a run killed mid-stage, a truncated or
edited file — is removed and recomputed. A rerun therefore skips what is done and loses nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from hepsbi._version import __version__
from hepsbi.files import inside, write_json
from hepsbi.workflow.lock import check_free_space

__all__ = ["FAILED_SUFFIX", "MANIFEST", "STAGE_CODE", "StageRecord", "clear_failures", "code_fingerprint", "edited_files", "run_stage", "stage_digests", "stage_key", "stage_records", "unused_stages", "verify_stage"]

MANIFEST = "manifest.json"

#: The package's source: what :func:`code_fingerprint` hashes.
SOURCE_ROOT = Path(__file__).resolve().parents[1]
_COMMON = ("_version.py", "errors.py", "files.py", "space.py", "simulators", "physics", "data", "workflow")
#: Per stage, the modules and subpackages of hepsbi whose source its key covers: the code that can change what
#: the stage computes (a stage's inputs carry the fingerprints of the stages before it through their keys).
STAGE_CODE: dict[str, tuple[str, ...]] = {
    "simulate": _COMMON,
    "merge": _COMMON,
    "held_out": _COMMON,
    "training": _COMMON,
    "train": (*_COMMON, "estimators"),
    "infer": (*_COMMON, "estimators", "inference"),
    "report": (*_COMMON, "estimators", "inference", "report"),
}


@functools.cache
def code_fingerprint(parts: tuple[str, ...], root: Path = SOURCE_ROOT) -> str:
    """SHA-256 over the path and bytes of every ``.py`` file of ``parts`` (modules or subpackages under
    ``root``), in path order. Any edit — comments included — gives another fingerprint."""
    digest = hashlib.sha256()
    for part in sorted(parts):
        target = root / part
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
        for file in files:
            digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def stage_key(name: str, config: Mapping[str, Any], inputs: Sequence[str] = ()) -> str:
    """16 hex digits of SHA-256 over the stage name, its configuration (canonical JSON), its inputs' keys, the
    hepsbi version and the fingerprint of the stage's code (:data:`STAGE_CODE`, :func:`code_fingerprint`)."""
    code = code_fingerprint(STAGE_CODE.get(name, STAGE_CODE["report"]))
    payload = json.dumps({"stage": name, "config": config, "inputs": list(inputs), "hepsbi": __version__,
                          "code": code}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def stage_digests(directory: Path) -> dict[str, str]:
    """The SHA-256 of every file of a sealed stage directory by its path relative to it, as its manifest lists
    them (computed when the stage was sealed, checked by :func:`verify_stage` whenever it is reused)."""
    return dict(json.loads((directory / MANIFEST).read_text())["files"])


def edited_files(run_dir: str | os.PathLike[str], published: Mapping[str, str]) -> list[str]:
    """The published files of a run (path relative to the run directory → SHA-256, from ``provenance.json``)
    that are missing or whose bytes changed since the run published them."""
    root = Path(run_dir)
    return [name for name, digest in published.items()
            if not (root / name).is_file() or _sha256(root / name) != digest]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): _sha256(p) for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def verify_stage(directory: Path) -> bool:
    """True when ``directory`` holds a manifest and every file it lists, unchanged (checksums)."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return False
    try:
        listed = json.loads(manifest.read_text())["files"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return False
    return listed == _files(directory)


def run_stage(run_dir: str | os.PathLike[str], name: str, key: str, work: Callable[[Path], Any],
              config: Mapping[str, Any] | None = None, inputs: Sequence[str] = ()) -> Path:
    """The directory of stage ``name`` with ``key``: reused when verified, else made by ``work(tmp_dir)``
    (which writes its outputs into ``tmp_dir``), renamed into place and sealed with a manifest."""
    root = Path(run_dir) / "stages"
    final = inside(root, f"{name}-{key}")
    if verify_stage(final):
        return final
    if final.exists():  # corrupted, or killed between rename and manifest: start it again
        shutil.rmtree(final)
    root.mkdir(parents=True, exist_ok=True)
    check_free_space(root)
    for stale in root.glob(f".{name}-{key}.*"):  # the temporary directory of an attempt that was killed
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-{key}.", dir=root))
    wall, cpu = time.perf_counter(), time.process_time()
    log = logging.getLogger("hepsbi")
    handler = logging.FileHandler(tmp / "stage.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    previous = log.level
    log.setLevel(logging.INFO)
    try:
        log.info("stage %s (key %s) on %s: config %s, inputs %s", name, key, socket.gethostname(),
                 json.dumps(dict(config or {}), default=str), list(inputs))
        work(tmp)
        log.info("stage %s done: %s", name, sorted(p.name for p in tmp.iterdir()))
    except BaseException as exc:
        log.removeHandler(handler)
        handler.close()
        if isinstance(exc, Exception):  # (an interrupt is not a failure: the stage stays incomplete)
            try:
                _record_failure(root, name, key, exc, tmp / "stage.log")
            except OSError:  # a full or read-only disk: the error itself is what the user must see
                pass
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        log.setLevel(previous)
    log.removeHandler(handler)
    handler.close()
    os.replace(tmp, final)
    (root / f"{name}-{key}{FAILED_SUFFIX}").unlink(missing_ok=True)  # an earlier attempt's failure is history now
    write_json(final / MANIFEST, {
        "stage": name, "key": key, "config": dict(config or {}), "inputs": list(inputs),
        "files": _files(final), "wall_s": round(time.perf_counter() - wall, 3),
        "cpu_s": round(time.process_time() - cpu, 3), "host": socket.gethostname(), "hepsbi_version": __version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    return final


#: a stage whose work raised leaves ``stages/<stage>-<key>.failed.json``: the error and its log's last lines
FAILED_SUFFIX = ".failed.json"


def _record_failure(root: Path, name: str, key: str, exc: Exception, log: Path) -> None:
    try:
        tail = log.read_text(errors="replace").splitlines()[-30:]
    except OSError:
        tail = []
    write_json(root / f"{name}-{key}{FAILED_SUFFIX}", {
        "stage": name, "key": key, "error": f"{type(exc).__name__}: {exc}"[:2000], "log": tail,
        "host": socket.gethostname(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def clear_failures(run_dir: str | os.PathLike[str]) -> None:
    """Remove the failure records of a run directory (a run that finished has superseded them)."""
    for path in (Path(run_dir) / "stages").glob(f"*{FAILED_SUFFIX}"):
        path.unlink(missing_ok=True)


class StageRecord(dict):
    """One stage directory as ``hepsbi status`` shows it: name, key, state (done / corrupt / incomplete / failed),
    its directory name, times; a failed stage's ``error``."""


def stage_records(run_dir: str | os.PathLike[str]) -> list[StageRecord]:
    """Every stage directory of a run with its state, in name order, then every stage whose last attempt failed
    (state ``failed``, ``error`` its exception) and has not succeeded since."""
    root = Path(run_dir) / "stages"
    records = []
    for directory in sorted(root.glob("*")) if root.is_dir() else []:
        if not directory.is_dir():
            continue
        hidden = directory.name.startswith(".")
        base = directory.name.lstrip(".")
        if hidden:
            base = base.rsplit(".", 1)[0]  # temporary directory of a stage still running, or killed
        name, _, key = base.rpartition("-")
        manifest = directory / MANIFEST
        info: dict[str, Any] = {}
        if manifest.is_file():
            try:
                info = json.loads(manifest.read_text())
            except json.JSONDecodeError:
                info = {}
        state = "incomplete" if hidden or not manifest.is_file() else ("done" if verify_stage(directory) else "corrupt")
        records.append(StageRecord(stage=info.get("stage", name), key=key, state=state, directory=directory.name,
                                   wall_s=info.get("wall_s"),
                                   cpu_s=info.get("cpu_s"), host=info.get("host"), finished=info.get("finished")))
    for path in sorted(root.glob(f"*{FAILED_SUFFIX}")) if root.is_dir() else []:
        try:
            info = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            info = {}
        base = path.name[: -len(FAILED_SUFFIX)]
        name, _, key = base.rpartition("-")
        records.append(StageRecord(stage=info.get("stage", name), key=key, state="failed", directory=path.name,
                                   wall_s=None, cpu_s=None, host=info.get("host"), finished=info.get("finished"),
                                   error=str(info.get("error", "unknown error"))))
    return records


def unused_stages(run_dir: str | os.PathLike[str], used: Collection[str]) -> list[Path]:
    """Stage directories of a run — finished, corrupt, or left by killed attempts — whose names are not in
    ``used`` (the directories of the last run: older specs' stages), in name order."""
    root = Path(run_dir) / "stages"
    return [d for d in sorted(root.iterdir()) if d.is_dir() and d.name not in set(used)] if root.is_dir() else []
