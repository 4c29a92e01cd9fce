"""The ``hepsbi`` command line: thin wrappers around the library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from hepsbi import __version__
from hepsbi.errors import HepsbiError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Neural simulation-based inference for particle physics.")
_err = Console(stderr=True)


def _fail(exc: Exception) -> None:
    _err.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


@app.command()
def run(
    spec: Annotated[Path, typer.Argument(help="YAML run specification")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="run directory (default: runs/<spec name>)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars or summary")] = False,
) -> None:
    """Simulate → train → infer → report: writes results.json, plots and models into the run directory."""
    from hepsbi.workflow import load_spec
    from hepsbi.workflow import run as run_spec

    try:
        parsed = load_spec(spec)
        directory = out or Path("runs") / spec.stem
        run_spec(parsed, directory, progress=not quiet)
    except HepsbiError as exc:
        _fail(exc)
    if not quiet:
        Console().print(f"results: [bold]{directory / 'results.json'}[/]")


@app.command()
def check(spec: Annotated[Path, typer.Argument(help="YAML run specification")]) -> None:
    """Validate a spec (keys, types, θ inside its ranges) without running it."""
    from hepsbi.workflow import load_spec
    from hepsbi.workflow.run import prepare

    try:
        prepare(load_spec(spec))
    except HepsbiError as exc:
        _fail(exc)
    Console().print(f"{spec}: valid")


@app.command()
def inspect(file: Annotated[Path, typer.Argument(help="events file (HDF5, hepsbi.Events)")]) -> None:
    """Summarise an events file: counts, weights (negative ones too), observable ranges, provenance."""
    from rich.table import Table

    from hepsbi.data import inspect_events

    try:
        summary = inspect_events(file)
    except HepsbiError as exc:
        _fail(exc)
    console = Console()
    neg = summary["negative_weights"]
    console.print(f"[bold]{summary['file']}[/]  {summary['format']}")
    console.print(f"events: {summary['events']}   sum of weights: {summary['sum_weights']:.6g}   "
                  f"negative weights: {neg['count']} (sum {neg['sum']:.6g})")
    table = Table("observable", "min", "max")
    for name, (lo, hi) in summary["observables"].items():
        table.add_row(name, f"{lo:.6g}", f"{hi:.6g}")
    console.print(table)
    prov = summary["provenance"]
    keys = [k for k in ("generator", "pythia_version", "hepsbi_version", "seed", "shower", "sigma_total_pb") if k in prov]
    for key in keys:
        console.print(f"{key}: {prov[key]}")
    for sl in prov.get("slices", []):
        console.print(f"  slice [{sl['m_min']:.0f}, {sl['m_max']:.0f}] GeV: sigma {sl['sigma_pb']:.4g} pb, "
                      f"{sl['n_passed']}/{sl['n_events']} events pass, seed {sl['seed']}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of run specifications."""
    from hepsbi.workflow.spec import RunSpec

    typer.echo(json.dumps(RunSpec.model_json_schema(), indent=2))


@app.command()
def version() -> None:
    """Print the hepsbi version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
