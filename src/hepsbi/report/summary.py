"""The summary of a run: its warnings and tables (results, Fisher information, closure, posterior), printed at the end of a run
and written into its HTML report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["Grid", "closure_grid", "fisher_grid", "posterior_grid", "print_summary", "print_warnings", "results_grid", "summary_grids",
           "summary_table", "to_rich"]


def _number(value: float, scale: float) -> str:
    """``value`` to 4 significant digits, printing numerical noise far below ``scale`` as 0."""
    return "0" if abs(value) < 1e-9 * max(scale, 1e-300) else f"{value:.4g}"


def _interval(bounds: list[float], opened: list[bool]) -> str:
    lo = f"<{bounds[0]:.3g}" if opened[0] else f"{bounds[0]:.3g}"
    hi = f">{bounds[1]:.3g}" if opened[1] else f"{bounds[1]:.3g}"
    return f"[{lo},{hi}]"


@dataclass
class Grid:
    """A table as plain text: ``title``, ``columns``, ``rows`` of cells, and the (row, column) cells to flag (a
    failed check). :func:`to_rich` prints it on a terminal, :mod:`hepsbi.report.html` writes it into a page."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    flagged: set[tuple[int, int]] = field(default_factory=set)


def to_rich(grid: Grid) -> Table:
    """``grid`` as a rich table, flagged cells in red."""
    table = Table(title=grid.title, show_lines=False)
    for column in grid.columns:
        table.add_column(column, no_wrap=True)
    for i, row in enumerate(grid.rows):
        table.add_row(*(f"[red]{escape(c)}[/red]" if (i, j) in grid.flagged else escape(c) for j, c in enumerate(row)))
    return table


def results_grid(results: Mapping[str, Any]) -> Grid:
    """One row per (likelihood, parameter): MLE, 68 % and 95 % intervals, truth, and the log r MSE against the
    exact likelihood (a column only where there is one: toys)."""
    truth = results.get("truth") or {}
    rows = dict(results["estimators"])
    rows |= results.get("comparisons", {})
    if "exact" in results:
        rows["exact"] = results["exact"]
    rows |= {f"{label} (profiled)": block for label, block in results.get("profiled", {}).items()}
    with_mse = any(isinstance(block.get("log_ratio_mse"), float) for block in rows.values())
    grid = Grid("hepsbi results", ["likelihood", "parameter", "MLE", "68% CL", "95% CL", "truth",
                                   *(["MSE log r"] if with_mse else [])])
    for label, block in rows.items():
        for name in results["parameters"]:
            mse = block.get("log_ratio_mse")
            grid.rows.append([
                label,
                name,
                _number(block["mle"][name], abs(block["intervals"][name]["95"][1] - block["intervals"][name]["95"][0])),
                _interval(block["intervals"][name]["68"], block["intervals_open"][name]["68"]),
                _interval(block["intervals"][name]["95"], block["intervals_open"][name]["95"]),
                f"{truth[name]:.4g}" if name in truth else "-",
                *([f"{mse:.2e}" if isinstance(mse, float) else "-"] if with_mse else []),
            ])
    return grid


def fisher_grid(results: Mapping[str, Any]) -> Grid | None:
    """One row per likelihood: the Cramér–Rao error √(I⁻¹) of each parameter at the truth and det I; with a
    held-out pool, the det I each statistic keeps there (a lower bound on what the observables carry) ± its
    bootstrap error."""
    infos = results.get("fisher_information")
    if not infos:
        return None
    kept = results.get("fisher_information_kept") or {}
    grid = Grid("Fisher information at the truth", ["likelihood", *(f"σ({n})" for n in results["parameters"]), "det I",
                                                    *(["kept det I (held out)"] if kept else [])])
    for label, info in infos.items():
        errors = [info["errors"][n] for n in results["parameters"]]
        cells = [label, *("∞" if e is None else f"{e:.4g}" for e in errors), f"{info['determinant']:.4g}"]
        if kept:
            k = kept.get(label)
            cells.append("-" if k is None else f"{k['determinant']:.3g} ± {k.get('determinant_error', 0.0):.2g}")
        grid.rows.append(cells)
    return grid


def closure_grid(results: Mapping[str, Any]) -> Grid | None:
    """One row per (estimator, closure point): χ²/ndf of the reweighting closure in each observable (p-values
    below 1 % flagged: the learned ratio does not reproduce that observable at that θ), and in brackets the
    χ² of the same mis-closure against the Poisson errors of the expected events (far below ndf: it does not
    matter at this luminosity)."""
    blocks = {label: block["closure"] for label, block in results["estimators"].items() if block.get("closure")}
    if not blocks:
        return None
    observables = [h["observable"] for h in next(iter(blocks.values()))[0]["histograms"]]
    grid = Grid("closure: reference events reweighted by r̂(x|θ) vs events at θ, χ²/ndf (χ² vs data errors)",
                ["likelihood", "θ", *observables])
    for label, rows in blocks.items():
        for row in rows:
            theta = ", ".join(f"{v:.3g}" for v in row["theta"].values())
            grid.flagged |= {(len(grid.rows), 2 + j) for j, h in enumerate(row["histograms"]) if h["p_value"] < 0.01}
            grid.rows.append([label, f"({theta})", *(f"{h['chi2']:.1f}/{h['ndf']} ({h['chi2_poisson']:.2g})"
                                                     for h in row["histograms"])])
    return grid


def posterior_grid(results: Mapping[str, Any]) -> Grid | None:
    """One row per (posterior, parameter): mean ± sd, median, the central 68 % and 95 % credible intervals, the
    truth, and NPE's SBC p-value (below 1 % flagged: the posterior is miscalibrated in that parameter); the title
    holds TARP's p-value."""
    post = results.get("posterior")
    if not post:
        return None
    truth = post.get("theta_true") or {}
    tarp = post.get("tarp")
    title = "posterior at the observation (NPE" + (f"; TARP p = {tarp['p_value']:.2g}" if tarp else "") + ")"
    grid = Grid(title, ["posterior", "parameter", "mean ± sd", "median", "68% credible", "95% credible", "truth",
                        "SBC p"])
    sbc = post.get("sbc")
    for label in ("npe", "exact"):
        for k, (name, s) in enumerate(post.get(label, {}).items()):
            p_value = sbc["p_values"][k] if sbc and label == "npe" else None
            if p_value is not None and p_value < 0.01:
                grid.flagged.add((len(grid.rows), 7))
            grid.rows.append([label.upper() if label == "npe" else label, name, f"{s['mean']:.4g} ± {s['sd']:.2g}",
                              f"{s['median']:.4g}", _interval(s["interval_68"], [False, False]),
                              _interval(s["interval_95"], [False, False]),
                              f"{truth[name]:.4g}" if name in truth else "", f"{p_value:.2g}" if p_value is not None else ""])
    return grid


def summary_grids(results: Mapping[str, Any]) -> list[Grid]:
    """The results, Fisher information, closure and posterior tables of a results document (those it has)."""
    grids = (results_grid(results), fisher_grid(results), closure_grid(results), posterior_grid(results))
    return [g for g in grids if g is not None]


def summary_table(results: Mapping[str, Any]) -> Table:
    """:func:`results_grid` as a rich table."""
    return to_rich(results_grid(results))


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
    for grid in summary_grids(results):
        console.print(to_rich(grid))
