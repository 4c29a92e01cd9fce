r"""``results.json``: what every inference run writes (schema in ``docs/formats.md``)."""

from __future__ import annotations

import os
import platform
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hepsbi._version import __version__
from hepsbi.files import write_json
from hepsbi.inference.scan import ScanResult

__all__ = ["RESULTS_SCHEMA_VERSION", "build_results", "write_results", "environment"]

RESULTS_SCHEMA_VERSION = 1


def environment() -> dict[str, str]:
    """Versions and host, for provenance."""
    return {
        "hepsbi_version": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "host": socket.gethostname(),
        "platform": platform.platform(),
    }


def build_results(
    primary: str,
    scans: Mapping[str, ScanResult],
    truth: Mapping[str, float] | None,
    provenance: Mapping[str, Any],
    extra: Mapping[str, Mapping[str, Any]] | None = None,
    comparisons: Mapping[str, ScanResult] | None = None,
    dataset: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the results document.

    The top level holds the ``primary`` estimator's scan (``parameters``, ``mle``, ``intervals``, ``scan``);
    ``estimators`` holds every estimator's scan plus ``extra[label]`` (metrics, training summary);
    ``comparisons`` the reference likelihoods: ``exact`` (toys), ``truth`` (parton level), ``histogram``,
    ``sally``. With two parameters, ``expected_contour_area`` lists the 68 % areas of the primary
    estimator (``ml``) and of every comparison.
    """
    comparisons = dict(comparisons or {})
    exact = comparisons.pop("exact", None)
    doc: dict[str, Any] = {"schema_version": RESULTS_SCHEMA_VERSION, "estimator": primary}
    doc.update(scans[primary].to_dict())
    doc["truth"] = dict(truth) if truth is not None else None
    doc["estimators"] = {label: {**scan.to_dict(), **dict((extra or {}).get(label, {}))} for label, scan in scans.items()}
    if exact is not None:
        doc["exact"] = exact.to_dict()
    if comparisons:
        doc["comparisons"] = {label: scan.to_dict() for label, scan in comparisons.items()}
    if scans[primary].contour_area:
        areas = {"ml": scans[primary].contour_area["68"]}
        areas |= {label: scan.contour_area["68"] for label, scan in comparisons.items() if scan.contour_area}
        if exact is not None and exact.contour_area:
            areas["exact"] = exact.contour_area["68"]
        doc["expected_contour_area"] = areas
    if dataset is not None:
        doc["dataset"] = dict(dataset)
    doc["provenance"] = {**environment(), **dict(provenance)}
    return doc


def write_results(path: str | os.PathLike[str], results: Mapping[str, Any]) -> Path:
    """Write ``results.json`` atomically."""
    return write_json(path, results)
