r"""``RUN_DIR/report.html``: one self-contained page of a run to send to a colleague.

The warnings first (:mod:`hepsbi.report.diagnostics`), then the tables of the summary
(:func:`hepsbi.report.summary.summary_grids`), every plot of ``plots/`` embedded as a data URI, the spec, the
stage timings and the provenance. No scripts, no external files or fonts: the page renders offline, in any
browser, and stays readable as text.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hepsbi.files import atomic_path, inside
from hepsbi.report.summary import Grid, summary_grids

__all__ = ["render_report", "write_html_report"]

#: plots in the order a reader wants them; any other PNG in plots/ follows, by name
PLOT_ORDER = ("likelihood_scan", "profiles", "fisher_information", "closure", "pulls", "correlation", "log_ratio", "training",
              "ensemble", "weights", "coverage", "posterior")

_STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto; max-width: 1100px;
       color: #1b1b1b; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; }
.meta { color: #555; }
table { border-collapse: collapse; margin: 0.8em 0 1.6em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; white-space: nowrap; }
th { background: #f2f2f2; } caption { text-align: left; font-weight: 600; padding-bottom: 0.3em; }
td.flag { color: #b00020; font-weight: 600; }
#warnings { background: #fff7e0; border: 1px solid #e0b000; padding: 0.6em 1em; border-radius: 4px; }
#warnings.none { background: #eef8ee; border-color: #6a6; }
#warnings li { margin: 0.3em 0; } code { background: #f4f4f4; padding: 0 0.2em; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def _table(grid: Grid) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in grid.columns)
    body = "".join(
        "<tr>" + "".join(f"<td class=\"flag\">{html.escape(c)}</td>" if (i, j) in grid.flagged else f"<td>{html.escape(c)}</td>"
                         for j, c in enumerate(row)) + "</tr>"
        for i, row in enumerate(grid.rows))
    return f"<table><caption>{html.escape(grid.title)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _warnings(found: list[Mapping[str, Any]]) -> str:
    if not found:
        return '<section id="warnings" class="none"><h2>Warnings</h2><p>None: every check passed.</p></section>'
    items = "".join(f"<li><code>{html.escape(str(w['code']))}</code> {html.escape(str(w['message']))}</li>" for w in found)
    return (f'<section id="warnings"><h2>Warnings ({len(found)})</h2><p>Check these before trusting the numbers '
            f"below.</p><ul>{items}</ul></section>")


def _plots(directory: Path) -> str:
    files = sorted(directory.glob("*.png")) if directory.is_dir() else []
    rank = {name: i for i, name in enumerate(PLOT_ORDER)}
    files.sort(key=lambda f: (min((rank[k] for k in rank if f.stem.startswith(k)), default=len(rank)), f.name))
    parts = []
    for f in files:
        data = base64.b64encode(f.read_bytes()).decode("ascii")
        parts.append(f'<figure id="plot-{html.escape(f.stem)}"><img alt="{html.escape(f.stem)}" '
                     f'src="data:image/png;base64,{data}"><figcaption>plots/{html.escape(f.name)}</figcaption></figure>')
    return "".join(parts) or "<p>No plots (report.plots: false).</p>"


def render_report(results: Mapping[str, Any], plots: str | os.PathLike[str] | None = None, spec: str | None = None,
                  provenance: Mapping[str, Any] | None = None) -> str:
    """The page of a results document: warnings, summary tables, the PNGs of directory ``plots``, the ``spec``
    text, stage timings and ``provenance``."""
    provenance = dict(provenance or results.get("provenance") or {})
    name = provenance.get("spec_name") or (results.get("provenance") or {}).get("spec_name") or "hepsbi run"
    meta = ", ".join(f"{k} {provenance[k]}" for k in ("hepsbi_version", "host") if provenance.get(k))
    timings = provenance.get("timings_s") or {}
    timing_grid = Grid("wall time per phase (s)", ["phase", "seconds"],
                       [[k, f"{v:.1f}"] for k, v in timings.items() if isinstance(v, int | float)])
    sections = [
        f"<h1>{html.escape(str(name))}</h1><p class=\"meta\">{html.escape(meta)}</p>",
        _warnings(list(results.get("warnings") or [])),
        "<h2>Results</h2>" + "".join(_table(g) for g in summary_grids(results)),
        "<h2>Plots</h2>" + (_plots(Path(plots)) if plots is not None else "<p>No plots.</p>"),
    ]
    if spec:
        sections.append(f"<h2>Spec</h2><pre>{html.escape(spec)}</pre>")
    if timing_grid.rows:
        sections.append("<h2>Timings</h2>" + _table(timing_grid))
    shown = {k: v for k, v in provenance.items() if k not in ("stages", "published", "timings_s")}
    sections.append(f"<h2>Provenance</h2><pre>{html.escape(json.dumps(shown, indent=2, default=str))}</pre>")
    body = "\n".join(f"<section>{s}</section>" if not s.startswith("<section") else s for s in sections)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(str(name))} — hepsbi"
            f"</title><style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")


def write_html_report(run_dir: str | os.PathLike[str], results: Mapping[str, Any],
                      provenance: Mapping[str, Any] | None = None) -> Path:
    """Write ``run_dir/report.html`` (atomically, inside the run directory) from ``results``, the run's
    ``plots/``, ``spec.yaml`` and ``provenance``. Returns its path."""
    run_dir = Path(run_dir)
    spec_file = run_dir / "spec.yaml"
    spec = spec_file.read_text() if spec_file.is_file() else None
    page = render_report(results, run_dir / "plots", spec, provenance)
    target = inside(run_dir, "report.html")
    with atomic_path(target) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return target
