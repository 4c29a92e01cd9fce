r"""Saving and loading estimators: a directory with ``weights.pt`` (the state dict) and ``estimator.json``
(kind, method, options, features, parameter space, input scaling, versions, training history).

Both files are written atomically; loading checks the kind, the format version and that the weights fit
the architecture the metadata describes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hepsbi._version import __version__
from hepsbi.errors import EstimatorError
from hepsbi.files import atomic_path, write_json

__all__ = ["save_estimator", "read_metadata", "load_weights", "check_features", "FORMAT_VERSION"]

FORMAT_VERSION = 1
WEIGHTS, METADATA = "weights.pt", "estimator.json"


def save_estimator(path: str | os.PathLike[str], model: nn.Module, metadata: dict[str, Any]) -> Path:
    """Write ``model``'s weights and ``metadata`` into directory ``path`` (created if needed)."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / WEIGHTS) as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)  # the same file from any device
    meta = dict(metadata)
    meta.update(format_version=FORMAT_VERSION, hepsbi_version=__version__, torch_version=torch.__version__)
    write_json(directory / METADATA, meta)
    return directory


def read_metadata(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """The metadata of a saved estimator of ``kind`` (``"RatioEstimator"`` or ``"ScoreEstimator"``)."""
    directory = Path(path)
    meta_file = directory / METADATA
    if not meta_file.is_file() or not (directory / WEIGHTS).is_file():
        raise EstimatorError(f"{directory}: not a saved estimator (needs {METADATA} and {WEIGHTS})")
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as exc:
        raise EstimatorError(f"{meta_file}: invalid JSON ({exc})") from None
    if meta.get("kind") != kind:
        raise EstimatorError(f"{directory}: holds a {meta.get('kind')!r}, not a {kind!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise EstimatorError(f"{directory}: format_version {meta.get('format_version')} is not {FORMAT_VERSION}")
    return meta


def load_weights(path: str | os.PathLike[str], model: nn.Module) -> None:
    """Load ``weights.pt`` into ``model``; a shape or key mismatch is an :class:`EstimatorError`."""
    file = Path(path) / WEIGHTS
    state = torch.load(file, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise EstimatorError(f"{file}: weights do not match the architecture in {METADATA}: {' '.join(first)}") from None


def check_features(expected: list[str], given: list[str] | None, where: str) -> None:
    """Raise if ``given`` feature names differ from the ``expected`` ones the estimator was trained on."""
    if given is not None and list(given) != list(expected):
        raise EstimatorError(f"{where}: the estimator was trained on features {expected}, not {list(given)}")
