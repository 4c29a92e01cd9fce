r"""The report of a run: ``results.json`` and ``plots/`` from the results of its inference groups.

Takes plain results — scans, Fisher matrices, profiles, training histories — never a spec, so a notebook
analysis (:mod:`hepsbi.inference.analysis`) can write the same report as ``hepsbi run``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hepsbi.estimators.training import TrainingHistory
from hepsbi.inference.fisher import information_summary, kept_summary
from hepsbi.report.diagnostics import diagnose
from hepsbi.report.plots import (
    plot_closure,
    plot_correlation,
    plot_disagreement,
    plot_information_ellipses,
    plot_log_ratio,
    plot_profiles,
    plot_pulls,
    plot_scans,
    plot_training,
)
from hepsbi.report.results import build_results, write_results
from hepsbi.space import ParameterSpace

__all__ = ["write_run_report"]


def write_run_report(
    out: str | Path,
    space: ParameterSpace,
    truth: Tensor,
    groups: Sequence[Mapping[str, Any]],
    estimators: Mapping[str, Mapping[str, Any]],
    provenance: Mapping[str, Any],
    dataset: Mapping[str, Any],
    histories: Mapping[str, TrainingHistory] | None = None,
    comparison: tuple[Tensor, Tensor, Mapping[str, Tensor]] | None = None,
    plots: bool = True,
    caption: str | None = None,
) -> dict[str, Any]:
    """Gather inference ``groups`` into ``out/results.json`` and, with ``plots``, draw ``out/plots``.

    Arguments:
        out: the run directory.
        space, truth: the parameter space and θ_true (p,).
        groups: the learned likelihoods' groups first (in estimator order), the comparisons last; each a mapping
            with ``scans`` (label → ScanResult), ``informations`` (label → (p, p)), ``profiled`` (label →
            {scan, pulls, information}) and optionally ``kept`` (label → {information, replicas}), ``members``
            (ensemble label → each member's (p, p) information) and ``closure`` (label → reweighting-closure rows).
        estimators: label → what results.json says of each estimator (method, training summary, metrics); the
            first label is the primary result.
        provenance, dataset: the ``provenance`` and ``dataset`` blocks of results.json.
        histories: label → training history, for ``plots/training.png``.
        comparison: θ of each held-out event, exact log r and label → learned log r̂ (toys), for
            ``plots/log_ratio.png``.
        caption: what the scan plot says of the dataset, e.g. "√s = 13 TeV, 139 fb⁻¹".
    Returns:
        The results document, with ``warnings``: what :func:`hepsbi.report.diagnostics.diagnose` found.
    """
    out = Path(out)
    *learned_groups, others = groups
    scans = {label: s for g in learned_groups for label, s in g["scans"].items()}
    comparisons = others["scans"]
    informations = {label: i for g in groups for label, i in g["informations"].items()}
    profiled = {label: p for g in groups for label, p in g["profiled"].items()}
    closure = {label: rows for g in learned_groups for label, rows in g.get("closure", {}).items()}
    kept = {label: k for g in groups for label, k in g.get("kept", {}).items()}
    members = {label: m for g in learned_groups for label, m in g.get("members", {}).items()}
    disagreement = {label: d for g in learned_groups for label, d in g.get("disagreement", {}).items()}
    truth_dict = space.as_dict(truth)
    if plots:
        directory = out / "plots"
        units = {p.name: p.unit for p in space.parameters}
        every = {**scans, **comparisons, **{f"{k} (profiled)": v["scan"] for k, v in profiled.items()}}
        plot_scans(every, truth_dict, directory / "likelihood_scan.png", units, caption)
        if space.dim == 2:  # (more parameters: the intervals are MINOS's, the grid holds only the contour's pair)
            plot_profiles(every, truth_dict, directory / "profiles.png", units)
        if profiled:
            first = next(iter(profiled.values()))["pulls"]
            plot_pulls({n: (v["value"], v["error"]) for n, v in first.items()}, directory / "pulls.png")
            label, block = next(iter(profiled.items()))
            if block.get("correlation"):
                plot_correlation(block["correlation"], directory / "correlation.png", f"{label}, profiled: correlations")
        plot_training(dict(histories or {}), directory / "training.png")
        if space.dim == 2 and informations:
            plot_information_ellipses(informations, truth_dict, directory / "fisher_information.png", units)
        for label, rows in closure.items():
            plot_closure(rows, list(space.names), directory / f"closure_{label}.png", f"closure of {label}")
        for label, block in disagreement.items():
            plot_disagreement(block, list(space.names), directory / f"ensemble_{label}.png",
                              f"{label}: where its members disagree", units)
        if comparison is not None:
            theta_rows, exact_lr, learned = comparison
            plot_log_ratio(theta_rows.numpy(), exact_lr.numpy(), {k: v.numpy() for k, v in learned.items()},
                           directory / "log_ratio.png", list(space.names))
    primary = next(iter(estimators))
    results = build_results(primary, scans, truth_dict, provenance, estimators, comparisons, dataset)
    names = list(space.names)
    for label, infos in members.items():
        summaries = [information_summary(info, names) for info in infos]
        errors = {n: [s["errors"][n] for s in summaries] for n in names}  # type: ignore[index]
        results["estimators"][label]["members"] = {
            "fisher_information": summaries,
            "fisher_errors_spread": {n: float(np.std(v)) if None not in v else None for n, v in errors.items()},
            **({"disagreement": disagreement[label]} if label in disagreement else {}),
        }
    for label, rows in closure.items():
        results["estimators"][label]["closure"] = [{**row, "theta": space.as_dict(torch.tensor(row["theta"]))}
                                                   for row in rows]
    results["fisher_information"] = {label: information_summary(info, names) for label, info in informations.items()}
    if kept:
        results["fisher_information_kept"] = {label: kept_summary(k["information"], k["replicas"], names)
                                              for label, k in kept.items()}
    if profiled:
        results["profiled"] = {label: {**p["scan"].to_dict(), "nuisance_parameters": p["pulls"],
                                       **({"correlation": p["correlation"]} if p.get("correlation") else {})}
                               for label, p in profiled.items()}
        results["fisher_information_profiled"] = {label: information_summary(p["information"], names)
                                                  for label, p in profiled.items()}
        if space.dim == 2:
            results["expected_contour_area_profiled"] = {label: p["scan"].contour_area["68"]
                                                         for label, p in profiled.items()}
    results["warnings"] = [d.to_dict() for d in diagnose(results)]
    write_results(out / "results.json", results)
    return results
