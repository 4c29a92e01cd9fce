"""The summary table printed at the end of a run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["closure_table", "fisher_table", "summary_table", "print_summary", "print_warnings"]


def _number(value: float, scale: float) -> str:
    """``value`` to 4 significant digits, printing numerical noise far below ``scale`` as 0."""
    return "0" if abs(value) < 1e-9 * max(scale, 1e-300) else f"{value:.4g}"


def _interval(bounds: list[float], opened: list[bool]) -> str:
    lo = f"<{bounds[0]:.3g}" if opened[0] else f"{bounds[0]:.3g}"
    hi = f">{bounds[1]:.3g}" if opened[1] else f"{bounds[1]:.3g}"
    return f"[{lo},{hi}]"


def summary_table(results: Mapping[str, Any]) -> Table:
    """One row per (likelihood, parameter): MLE, 68 % and 95 % intervals, truth, and the log r MSE."""
    table = Table(title="hepsbi results", show_lines=False)
    for column in ("likelihood", "parameter", "MLE", "68% CL", "95% CL", "truth", "MSE log r"):
        table.add_column(column, no_wrap=True)
    truth = results.get("truth") or {}
    rows = dict(results["estimators"])
    rows |= results.get("comparisons", {})
    if "exact" in results:
        rows["exact"] = results["exact"]
    rows |= {f"{label} (profiled)": block for label, block in results.get("profiled", {}).items()}
    for label, block in rows.items():
        for name in results["parameters"]:
            mse = block.get("log_ratio_mse")
            table.add_row(
                label,
                name,
                _number(block["mle"][name], abs(block["intervals"][name]["95"][1] - block["intervals"][name]["95"][0])),
                _interval(block["intervals"][name]["68"], block["intervals_open"][name]["68"]),
                _interval(block["intervals"][name]["95"], block["intervals_open"][name]["95"]),
                f"{truth[name]:.4g}" if name in truth else "-",
                f"{mse:.2e}" if isinstance(mse, float) else "-",
            )
    return table


def fisher_table(results: Mapping[str, Any]) -> Table | None:
    """One row per likelihood: the Cramér–Rao error √(I⁻¹) of each parameter at the truth and det I; with a
    held-out pool, the det I each statistic keeps there (a lower bound on what the observables carry) ± its
    bootstrap error."""
    infos = results.get("fisher_information")
    if not infos:
        return None
    table = Table(title="Fisher information at the truth")
    table.add_column("likelihood", no_wrap=True)
    for name in results["parameters"]:
        table.add_column(f"σ({name})", no_wrap=True)
    table.add_column("det I", no_wrap=True)
    kept = results.get("fisher_information_kept") or {}
    if kept:
        table.add_column("kept det I (held out)", no_wrap=True)
    for label, info in infos.items():
        errors = [info["errors"][n] for n in results["parameters"]]
        cells = [*("∞" if e is None else f"{e:.4g}" for e in errors), f"{info['determinant']:.4g}"]
        if kept:
            k = kept.get(label)
            cells.append("-" if k is None else f"{k['determinant']:.3g} ± {k.get('determinant_error', 0.0):.2g}")
        table.add_row(label, *cells)
    return table


def closure_table(results: Mapping[str, Any]) -> Table | None:
    """One row per (estimator, closure point): χ²/ndf of the reweighting closure in each observable (p-values
    below 1 % in red: the learned ratio does not reproduce that observable at that θ), and in brackets the
    χ² of the same mis-closure against the Poisson errors of the expected events (far below ndf: it does not
    matter at this luminosity)."""
    blocks = {label: block["closure"] for label, block in results["estimators"].items() if block.get("closure")}
    if not blocks:
        return None
    observables = [h["observable"] for h in next(iter(blocks.values()))[0]["histograms"]]
    table = Table(title="closure: reference events reweighted by r̂(x|θ) vs events at θ, χ²/ndf (χ² vs data errors)")
    for column in ("likelihood", "θ", *observables):
        table.add_column(column, no_wrap=True)
    for label, rows in blocks.items():
        for row in rows:
            theta = ", ".join(f"{v:.3g}" for v in row["theta"].values())
            cells = [(f"[red]{h['chi2']:.1f}/{h['ndf']}[/red]" if h["p_value"] < 0.01 else f"{h['chi2']:.1f}/{h['ndf']}")
                     + f" ({h['chi2_poisson']:.2g})" for h in row["histograms"]]
            table.add_row(label, f"({theta})", *cells)
    return table


def print_warnings(results: Mapping[str, Any], console: Console) -> None:
    """The run's ``warnings`` (:mod:`hepsbi.report.diagnostics`), one line each, in yellow."""
    found = results.get("warnings") or []
    if found:
        console.print(f"[bold yellow]{len(found)} warning{'s' if len(found) > 1 else ''}[/] — check before trusting "
                      "these numbers:")
    for w in found:
        console.print(f"[yellow]⚠ {escape('[' + w['code'] + ']')}[/] {escape(w['message'])}", highlight=False)


def print_summary(results: Mapping[str, Any], console: Console | None = None) -> None:
    """The warnings, then the results, Fisher information and closure tables."""
    console = console or Console()
    print_warnings(results, console)
    console.print(summary_table(results))
    for table in (fisher_table(results), closure_table(results)):
        if table is not None:
            console.print(table)
