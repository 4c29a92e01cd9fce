r"""What a physicist must be told before trusting a run's numbers: checks of a results document.

Every check reads only the results document (``results.json``, :func:`hepsbi.report.results.build_results`), so a
notebook analysis gets the same warnings as ``hepsbi run``. Each finding is a :class:`Diagnostic` — a ``code``
a script can test for, the likelihood it concerns and a sentence that names the parameter, the value and what
to do. :func:`diagnose` runs them all; a run writes the list to ``results.json`` (``warnings``) and prints it
above the summary.

Checks and their thresholds:

* ``mle_at_scan_edge`` — the MLE of a parameter within half a grid step of the end of its scan: the likelihood may
  keep rising beyond the range (a badly trained estimator often puts its MLE on the boundary).
* ``interval_open`` — a 68 % or 95 % interval that reaches the end of the scan: only a bound.
* ``interval_unresolved`` — a closed interval narrower than one step of the scan: the grid does not resolve it
  (interpolating between nodes that all lie above the threshold can even give lower > upper).
* ``closure`` — the reference events reweighted by r̂(x|θ) miss the events at θ in an observable with p < 10⁻³,
  by more than the expected events' Poisson errors (χ² against them above the number of bins).
* ``calibration`` — a reliability bin holding ≥ 1 % of the weight whose observed class fraction is more than 0.1
  from the predicted one.
* ``ensemble_disagreement`` — the ensemble members' Cramér–Rao errors spread by more than 20 % of the ensemble's.
* ``extrapolation`` — a scan that reaches beyond the θ range the estimator was trained on (by > 1 % of its width).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["Diagnostic", "diagnose", "scan_diagnostics"]

#: closure: p-value below which a mis-closure counts (if it also exceeds the data's Poisson errors)
CLOSURE_P_VALUE = 1e-3
#: calibration: the largest |observed − predicted| class fraction of a reliability bin, and the bins considered
CALIBRATION_GAP, CALIBRATION_MIN_WEIGHT = 0.1, 0.01
#: ensembles: the largest spread of the members' Cramér–Rao errors, relative to the ensemble's own
ENSEMBLE_SPREAD = 0.2


@dataclass(frozen=True)
class Diagnostic:
    """One warning: ``code`` (see the module), the ``likelihood`` it concerns (None: the run) and ``message``."""

    code: str
    likelihood: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def scan_diagnostics(label: str, block: Mapping[str, Any]) -> list[Diagnostic]:
    """``mle_at_scan_edge``, ``interval_unresolved`` and ``interval_open`` of one likelihood's scan block (``parameters``, ``mle``,
    ``intervals``, ``intervals_open``, ``scan.axes``)."""
    out = []
    for name in block["parameters"]:
        axis = np.asarray(block["scan"]["axes"].get(name, []), dtype=float)  # (a fit in N-D scans a pair only)
        mle = float(block["mle"][name])
        step = float(np.min(np.diff(axis))) if len(axis) > 1 else 0.0
        for end, edge in (("lower", axis[0]), ("upper", axis[-1])) if len(axis) else ():
            if abs(mle - edge) <= 0.5 * step:
                out.append(Diagnostic("mle_at_scan_edge", label, (
                    f"{label}: the MLE of {name} ({mle:.4g}) lies at the {end} end of its scan ({edge:.4g}); the "
                    "likelihood may keep rising beyond it — widen the parameter's range, or distrust this estimator "
                    "(check its closure and its log r against a reference)")))
        unresolved = [lv for lv in ("68", "95") if len(axis) > 1
                      and np.diff(block["intervals"][name][lv])[0] < step and not any(block["intervals_open"][name][lv])]
        if unresolved:
            lo, hi = block["intervals"][name][unresolved[-1]]
            out.append(Diagnostic("interval_unresolved", label, (
                f"{label}: the {' and '.join(lv + ' %' for lv in unresolved)} interval of {name} is narrower than one "
                f"step of its scan ({step:.3g}; [{lo:.4g}, {hi:.4g}] at {unresolved[-1]} %): the grid does not resolve "
                "it — raise inference.zoom (rescans narrowed to the 95 % region) or inference.grid_points")))
        opened = [level for level in ("68", "95") if any(block["intervals_open"][name][level])]
        if opened:
            level = opened[0]
            lo, hi = block["intervals"][name][level]
            out.append(Diagnostic("interval_open", label, (
                f"{label}: the {' and '.join(lv + ' %' for lv in opened)} interval of {name} reaches the end of the "
                f"scan ([{lo:.4g}, {hi:.4g}] at {level} %): it is only a bound there; widen the scan range")))
    return out


def _closure(label: str, rows: list[Mapping[str, Any]]) -> Iterator[Diagnostic]:
    for row in rows:
        theta = ", ".join(f"{k} = {v:.3g}" for k, v in row["theta"].items()) if isinstance(row["theta"], Mapping) \
            else ", ".join(f"{v:.3g}" for v in row["theta"])
        failed = [h for h in row["histograms"] if h["p_value"] < CLOSURE_P_VALUE and h["chi2_poisson"] > h["ndf"]]
        if failed:
            worst = ", ".join(f"{h['observable']} (χ²/ndf {h['chi2']:.1f}/{h['ndf']}, {h['chi2_poisson']:.1f} against "
                              "the data's errors)" for h in failed)
            yield Diagnostic("closure", label, (
                f"{label}: reweighting closure fails at ({theta}) in {worst}: the learned ratio does not reproduce "
                "these distributions; see plots/closure_" + label + ".png"))
        rel = row.get("reliability")
        if rel:
            gaps = [abs(o - p) for p, o, w in zip(rel["predicted"], rel["observed"], rel["weight"])
                    if w >= CALIBRATION_MIN_WEIGHT]
            if gaps and max(gaps) > CALIBRATION_GAP:
                yield Diagnostic("calibration", label, (
                    f"{label}: its classifier between ({theta}) and the reference is badly calibrated (observed "
                    f"class fraction off the predicted one by {max(gaps):.2f} in a reliability bin)"))


def _ensemble(label: str, block: Mapping[str, Any], information: Mapping[str, Any] | None) -> Iterator[Diagnostic]:
    spread = (block.get("members") or {}).get("fisher_errors_spread") or {}
    errors = (information or {}).get("errors") or {}
    for name, s in spread.items():
        e = errors.get(name)
        if s is not None and e and s > ENSEMBLE_SPREAD * e:
            yield Diagnostic("ensemble_disagreement", label, (
                f"{label}: its ensemble members disagree on the Cramér–Rao error of {name} (spread {s:.3g} against "
                f"{e:.3g}, > {ENSEMBLE_SPREAD:.0%}): train longer or on more data before trusting its intervals"))


def _extrapolation(label: str, block: Mapping[str, Any]) -> Iterator[Diagnostic]:
    trained = (block.get("training") or {}).get("theta_range") or {}
    for name, (low, high) in trained.items():
        axis = block["scan"]["axes"].get(name)
        if axis is None:
            continue
        slack = 1e-2 * max(high - low, 1e-12)
        if axis[0] < low - slack or axis[-1] > high + slack:
            yield Diagnostic("extrapolation", label, (
                f"{label}: scanned over {name} ∈ [{axis[0]:.4g}, {axis[-1]:.4g}] but trained on [{low:.4g}, "
                f"{high:.4g}] only: the likelihood outside is an extrapolation"))


def diagnose(results: Mapping[str, Any]) -> list[Diagnostic]:
    """Every check of the module on a results document, learned likelihoods first, then the comparisons and the
    profiled scans."""
    out: list[Diagnostic] = []
    fisher = results.get("fisher_information") or {}
    for label, block in results["estimators"].items():
        out += scan_diagnostics(label, block)
        out += _extrapolation(label, block)
        out += _closure(label, block.get("closure") or [])
        out += _ensemble(label, block, fisher.get(label))
    if results.get("exact"):
        out += scan_diagnostics("exact", results["exact"])
    for label, block in (results.get("comparisons") or {}).items():
        out += scan_diagnostics(label, block)
    for label, block in (results.get("profiled") or {}).items():
        out += scan_diagnostics(f"{label} (profiled)", block)
    return out
