"""The ``hepsbi`` command line: thin wrappers around the library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from hepsbi._version import __version__
from hepsbi.errors import HepsbiError


def _flag(option: Any) -> Any:
    """``--help`` is a flag: shown without typer's ``<bool>`` beside it (as every flag here, metavar="")."""
    if option is not None:
        option.metavar = ""
    return option


class _Group(TyperGroup):
    """The ``hepsbi`` group: its own and every command's ``--help`` shown as the flag it is."""

    def get_help_option(self, ctx: Any) -> Any:
        return _flag(super().get_help_option(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None and ctx is not None:  # (no context: looked up without running, nothing shown)
            _flag(command.get_help_option(ctx))
        return command


app = typer.Typer(cls=_Group, add_completion=False, no_args_is_help=True, rich_markup_mode="markdown",
                  help="Neural simulation-based inference for particle physics.")


def _print_version(value: bool) -> None:
    if value:
        from hepsbi._version import __version__

        typer.echo(f"hepsbi {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", help="print the version and exit", metavar="",
                                                callback=_print_version, is_eager=True)] = False) -> None:
    """Neural simulation-based inference for particle physics."""
_err = Console(stderr=True)


def _fail(exc: Exception) -> None:
    """Print ``exc`` literally (user text is never read as rich markup) and exit with status 2."""
    _err.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
    raise typer.Exit(code=2)


def _say(*parts: str | tuple[str, str], width: int | None = None) -> None:
    """Print text literally, parts given as (text, style) in that style."""
    Console(width=width).print(Text.assemble(*parts), soft_wrap=width is None)


@app.command()
def run(
    spec: Annotated[Path, typer.Argument(help="YAML run specification")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run directory (default: runs/<spec name>)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars or summary", metavar="")] = False,
    workers: Annotated[int | None, typer.Option("--workers", help="run the stages on N local Dask worker processes")] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="address of a running Dask scheduler (tcp://HOST:PORT)")] = None,
    cluster: Annotated[str | None, typer.Option("--cluster", help="htcondor or slurm: start workers with dask-jobqueue (spec section execution.jobqueue)")] = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:N or auto: where networks train and evaluate (execution.device)")] = None,
) -> None:
    """Simulate → train → infer → report: writes results.json, plots and models into the run directory.
    Rerunning into the same directory resumes: finished stages are reused (see hepsbi status)."""
    from hepsbi.workflow import load_spec
    from hepsbi.workflow import run as run_spec

    try:
        parsed = _with_execution(load_spec(spec), workers, scheduler, cluster, device)
        directory = out or Path("runs") / spec.stem
        run_spec(parsed, directory, progress=not quiet)
    except HepsbiError as exc:
        _fail(exc)
    if not quiet:
        _say("results: ", (str(directory / "results.json"), "bold"))


def _with_execution(spec, workers: int | None, scheduler: str | None, cluster: str | None,  # noqa: ANN001, ANN202
                    device: str | None = None):
    """The spec with command-line placement settings applied (they override execution.*)."""
    from hepsbi.errors import SpecError

    given = {k: v for k, v in (("workers", workers), ("scheduler", scheduler), ("cluster", cluster)) if v is not None}
    if len(given) > 1:
        raise SpecError(f"give at most one of --workers, --scheduler, --cluster (got {sorted(given)})")
    if cluster is not None and cluster not in ("htcondor", "slurm"):
        raise SpecError(f"--cluster must be htcondor or slurm (got {cluster!r})")
    if not given and device is None:
        return spec
    placement: dict[str, Any] = {"workers": None, "scheduler": None, "cluster": None} | given if given else {}
    if device is not None:  # where networks run: independent of where tasks run
        placement["device"] = device
    from pydantic import ValidationError

    from hepsbi.workflow.spec import ExecutionSpec

    try:  # validated like the spec's own execution section (model_copy would not check --workers 0)
        execution = ExecutionSpec.model_validate(spec.execution.model_dump() | placement)
    except ValidationError as exc:
        problems = "; ".join(f"--{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SpecError(problems) from None
    return spec.model_copy(update={"execution": execution})


@app.command()
def status(run_dir: Annotated[Path, typer.Argument(help="run directory")]) -> None:
    """Each stage of a run: done, corrupt (checksum mismatch: recomputed on the next run), incomplete or failed
    (its error named)."""
    import json

    from rich.table import Table

    from hepsbi.workflow.cache import edited_files, stage_records

    if not run_dir.is_dir():
        _fail(HepsbiError(f"{run_dir}: no such run directory"))
    records = stage_records(run_dir)
    table = Table(title=f"stages of {run_dir}")
    for column in ("stage", "key", "state", "wall s", "cpu s", "host", "finished"):
        table.add_column(column, no_wrap=True)
    colours = {"done": "green", "corrupt": "red", "incomplete": "yellow", "failed": "bold red"}
    for r in records:
        table.add_row(r["stage"], r["key"], f"[{colours[r['state']]}]{r['state']}[/]", str(r["wall_s"] or "-"),
                      str(r["cpu_s"] or "-"), r["host"] or "-", r["finished"] or "-")
    Console(width=160).print(table)
    results = run_dir / "results.json"
    failed = [r for r in records if r["state"] == "failed"]
    stages = [r for r in records if r["state"] != "failed"]
    Console(width=160).print(f"results.json: {'written' if results.is_file() else 'not yet'}; "
                             f"{sum(r['state'] == 'done' for r in stages)}/{len(stages)} stages done"
                             + (f"; {len(failed)} failed" if failed else ""))
    for r in failed:
        _say((f"stage {r['stage']} failed: ", "bold red"), r["error"],
             f" (stages/{r['directory']} keeps its log; rerun to retry)", width=160)
    try:
        provenance = json.loads((run_dir / "provenance.json").read_text())
        used = set(provenance["stages_used"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        return
    unused = sum(r["directory"] not in used for r in records)
    if unused:
        Console(width=160).print(f"{unused} stage directories not used by the last run (hepsbi clean removes them)")
    edited = edited_files(run_dir, provenance.get("published") or {})
    if edited:
        _say((f"{len(edited)} published file(s) changed since the run wrote them: ", "bold red"), ", ".join(edited),
             " (a rerun restores them from the stages)", width=160)


@app.command()
def clean(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="list what would be removed, remove nothing", metavar="")] = False,
) -> None:
    """Remove the stage directories the last run did not use (stages of earlier specs, killed attempts).
    Refuses while a run holds the directory."""
    import json
    import shutil

    from hepsbi.workflow.cache import unused_stages
    from hepsbi.workflow.lock import run_lock

    provenance = run_dir / "provenance.json"
    if not provenance.is_file():
        _fail(HepsbiError(f"{run_dir}: no provenance.json (no finished run), so no stage is known to be unused"))
    try:
        used = json.loads(provenance.read_text())["stages_used"]
        if not isinstance(used, list) or not all(isinstance(u, str) for u in used):
            raise TypeError
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        _fail(HepsbiError(f"{provenance}: no 'stages_used' list of names (written by hepsbi run; run the spec again)"))
    try:
        with run_lock(run_dir, "hepsbi clean"):
            unused = unused_stages(run_dir, used)
            size = sum(f.stat().st_size for d in unused for f in d.rglob("*") if f.is_file())
            for directory in unused:
                Console().print(f"{'would remove' if dry_run else 'removing'} {directory}", markup=False)
                if not dry_run:
                    shutil.rmtree(directory)
    except HepsbiError as exc:
        _fail(exc)
    Console().print(f"{len(unused)} unused stage directories, {size / 1e6:.1f} MB"
                    f"{' (nothing removed: --dry-run)' if dry_run else ' removed'}; {len(used)} in use kept")


@app.command()
def coverage(
    spec: Annotated[Path, typer.Argument(help="YAML run specification")],
    toys: Annotated[int, typer.Option("--toys", "-n", help="number of pseudo-experiments")] = 300,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run directory (default: runs/<spec name>, where hepsbi run puts it: its stages are reused)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars or table", metavar="")] = False,
    workers: Annotated[int | None, typer.Option("--workers", help="run stages and toy batches on N local Dask worker processes")] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="address of a running Dask scheduler")] = None,
    cluster: Annotated[str | None, typer.Option("--cluster", help="htcondor or slurm (dask-jobqueue, execution.jobqueue)")] = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:N or auto (execution.device)")] = None,
) -> None:
    """Coverage of the spec's 68%/95% intervals over toys at θ_true: writes coverage.json and plots/coverage.png."""
    from hepsbi.workflow import load_spec
    from hepsbi.workflow.coverage import run_coverage

    try:
        parsed = _with_execution(load_spec(spec), workers, scheduler, cluster, device)
        directory = out or Path("runs") / spec.stem  # the run's own directory: its simulation and training are reused
        run_coverage(parsed, directory, n_toys=toys, progress=not quiet)
    except HepsbiError as exc:
        _fail(exc)
    if not quiet:
        _say("coverage: ", (str(directory / "coverage.json"), "bold"))


@app.command()
def check(spec: Annotated[Path, typer.Argument(help="YAML run specification")]) -> None:
    """Validate a spec (keys, types, θ inside its ranges) without running it."""
    from hepsbi.workflow import load_spec
    from hepsbi.workflow.inputs import prepare

    try:
        prepare(load_spec(spec))
    except HepsbiError as exc:
        _fail(exc)
    _say(f"{spec}: valid")


@app.command()
def inspect(file: Annotated[Path, typer.Argument(help="events file or training data (HDF5), or an LHE file (.lhe, .lhe.gz)")]) -> None:
    """Summarise an events file (counts, weights with their unit, negative ones too, observable ranges, provenance),
    a training-data file (rows, θ ranges, weights) or an LHE file (beams, processes, weights, the declared weight
    variations: scale, PDF or other, each with its sum)."""
    from rich.table import Table

    from hepsbi.data import inspect_events, inspect_training
    from hepsbi.data.hdf5 import file_format
    from hepsbi.data.training import FORMAT as TRAINING_FORMAT

    if ".lhe" in file.suffixes:
        _inspect_lhe(file)
        return
    try:
        training = file_format(file) == TRAINING_FORMAT
        summary = inspect_training(file) if training else inspect_events(file)
    except HepsbiError as exc:
        _fail(exc)
    console = Console()
    neg = summary["negative_weights"]
    prov = summary["provenance"]
    unit = f" {prov['weight_unit']}" if prov.get("weight_unit") else ""
    console.print(Text.assemble((str(summary["file"]), "bold"), f"  {summary['format']}"))
    if training:
        console.print(f"rows: {summary['rows']} ({summary['at_theta']} drawn at θ, y = 1; the rest at θ_ref)   "
                      f"sum of weights: {summary['sum_weights']:.6g}   negative weights: {neg['count']} "
                      f"(sum {neg['sum']:.6g}){'   morphing coefficients: yes' if summary['morphing'] else ''}")
    else:
        console.print(f"events: {summary['events']}   sum of weights: {summary['sum_weights']:.6g}"
                      f"{unit or ' (no unit recorded)'}   "
                      f"negative weights: {neg['count']} (sum {neg['sum']:.6g}{unit})")
    table = Table("observable", "min", "max")
    for name, (lo, hi) in summary["observables"].items():
        table.add_row(name, f"{lo:.6g}", f"{hi:.6g}")
    for name, (lo, hi) in summary.get("theta", {}).items():
        table.add_row(f"θ: {name}", f"{lo:.6g}", f"{hi:.6g}")
    console.print(table)
    keys = [k for k in ("generator", "pythia_version", "hepsbi_version", "seed", "shower", "sigma_total_pb") if k in prov]
    for key in keys:
        console.print(f"{key}: {prov[key]}", markup=False)
    for sl in prov.get("slices", []):
        console.print(f"  slice [{sl['m_min']:.0f}, {sl['m_max']:.0f}] GeV: sigma {sl['sigma_pb']:.4g} pb, "
                      f"{sl['n_passed']}/{sl['n_events']} events pass, seed {sl['seed']}")


def _inspect_lhe(file: Path) -> None:
    """``hepsbi inspect`` of an LHE file (:func:`hepsbi.physics.lhe.summarise`)."""
    from rich.table import Table

    from hepsbi.physics.lhe import summarise

    try:
        summary = summarise(file)
    except HepsbiError as exc:
        _fail(exc)
    header, console = summary["header"], Console()
    events = max(summary["events"], 1)
    console.print(Text.assemble((str(file), "bold"), "  Les Houches events"))
    console.print(f"beams: {header.beams[0]} {header.beams[1]} at {header.energies[0]:g} + {header.energies[1]:g} GeV "
                  f"(sqrt(s) = {header.sqrt_s / 1000:g} TeV)   PDF sets: {header.pdf_sets[0]} {header.pdf_sets[1]}   "
                  f"IDWTUP: {header.weighting}", markup=False)
    for proc in header.processes:
        console.print(f"  process {proc['id']}: {proc['cross_section_pb']:.6g} ± {proc['error_pb']:.3g} pb", markup=False)
    console.print(f"events: {summary['events']}   sum of weights: {summary['weight_sum']:.6g}   sum/events: "
                  f"{summary['weight_sum'] / events:.6g} (pb, for IDWTUP ±3 and ±4; the header says "
                  f"{header.cross_section_pb:.6g} pb)   negative weights: {summary['negative']} "
                  f"({100 * summary['negative'] / events:.1f} %, sum {summary['negative_weight_sum']:.6g})", markup=False)
    if not header.weights:
        console.print("weight variations: none declared (no <initrwgt>)")
        return
    table = Table("id", "group", "kind", "muR", "muF", "PDF", "sum / nominal sum", title="weight variations")
    for w in header.weights:
        ratio = summary["variation_sums"].get(w.id)
        table.add_row(w.id, w.group, w.kind, *(("-" if v is None else f"{v:g}") for v in (w.mur, w.muf, w.pdf)),
                      "-" if ratio is None else f"{ratio / summary['weight_sum']:.4g}")
    console.print(table)
    if summary["undeclared_weights"]:
        console.print(f"weights in events but not in <initrwgt>: {summary['undeclared_weights']}", markup=False)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    label: Annotated[list[str] | None, typer.Option("--label", help="estimator to export (repeatable; default: every one)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="onnx or pt2 (torch.export)")] = "onnx",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="directory (default: RUN_DIR/export)")] = None,
) -> None:
    """Export a run's learned likelihoods (and SALLY) as ONNX or torch.export files, each with a JSON sidecar saying
    what it computes; an ONNX file is checked against torch with onnxruntime."""
    from hepsbi.estimators.export import check_onnx, export_onnx, export_program
    from hepsbi.files import inside
    from hepsbi.workflow.inputs import published_estimator, published_labels

    if fmt not in ("onnx", "pt2"):
        _fail(HepsbiError(f"--format must be onnx or pt2 (got {fmt!r})"))
    available = published_labels(run_dir)
    if not available:
        _fail(HepsbiError(f"{run_dir}: no trained estimators in {run_dir / 'models'} (run hepsbi run first)"))
    chosen = list(label or available)
    unknown = [name for name in chosen if name not in available]
    if unknown:
        _fail(HepsbiError(f"--label {unknown[0]!r}: not an estimator of this run; it has {available}"))
    target = out if out is not None else inside(run_dir, "export")
    try:
        for name in chosen:
            estimator = published_estimator(run_dir, name)
            file = target / f"{name}.{fmt}"
            if fmt == "onnx":
                export_onnx(estimator, file)
                _say(("exported ", ""), (str(file), "bold"), f"  (onnxruntime vs torch: {check_onnx(estimator, file):.1e} relative)")
            else:
                export_program(estimator, file)
                _say(("exported ", ""), (str(file), "bold"))
    except HepsbiError as exc:
        _fail(exc)


@app.command()
def limits(
    workspace: Annotated[Path, typer.Argument(help="pyhf JSON workspace (e.g. a HEPData BkgOnly.json), or a run directory")],
    patch: Annotated[Path | None, typer.Option("--patch", help="JSON Patch file applied to the workspace")] = None,
    patchset: Annotated[Path | None, typer.Option("--patchset", help="HEPData patchset file")] = None,
    name: Annotated[str | None, typer.Option("--name", help="patch of the patchset to apply")] = None,
    mu: Annotated[float, typer.Option("--mu", help="tested signal strength")] = 1.0,
    test_stat: Annotated[str, typer.Option("--test-stat", help="qtilde or q")] = "qtilde",
    poi: Annotated[str | None, typer.Option("--poi", help="parameter of interest (default: the workspace's)")] = None,
    upper_limit: Annotated[bool, typer.Option("--upper-limit", help="also compute 95% CL upper limits on the POI", metavar="")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the result as JSON")] = None,
    brazil: Annotated[Path | None, typer.Option("--brazil", help="plot CLs against the POI with the expected bands (PNG; implies --upper-limit)")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="patchset scans: N local Dask worker processes")] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="patchset scans: address of a running Dask scheduler")] = None,
    label: Annotated[str | None, typer.Option("--label", help="run directory: the learned likelihood (default: the run's first)")] = None,
    negative: Annotated[bool, typer.Option("--negative", help="run directory: limit the parameter's negative values", metavar="")] = False,
) -> None:
    """CLs (observed and expected band) of a pyhf workspace, optionally patched; upper limits on request.
    With --patchset and no --name, every patch of the set (one signal hypothesis each), fanned out over Dask
    workers with --workers N or --scheduler ADDRESS. Given a run directory: the 95 % CL upper limits of its learned
    likelihood on --poi (q̃, every other parameter and the nuisance parameters profiled, on the run's Asimov
    dataset), positive values or --negative ones."""
    from rich.table import Table

    from hepsbi.files import write_json
    from hepsbi.inference.pyhf_bridge import hypotest, load_workspace, scan_patchset

    if workspace.is_dir():
        _run_limits(workspace, poi, label, negative, json_out, brazil)
        return
    from hepsbi.workflow.placement import local_client

    for flag, target in (("--json", json_out), ("--brazil", brazil)):
        if target is not None and (target.is_dir() or not target.parent.is_dir()):
            _fail(HepsbiError(f"{flag} {target}: give a file name in an existing directory"))
    options: dict[str, Any] = {"mu": mu, "test_stat": test_stat, "poi": poi, "upper_limit": upper_limit or brazil is not None}
    if patchset is not None and name is None:
        if patch is not None:
            _fail(HepsbiError("give either --patch or --patchset, not both"))
        try:
            with local_client(workers, scheduler) as client:
                results = scan_patchset(workspace, patchset, client=client, **options)
        except HepsbiError as exc:
            _fail(exc)
        table = Table(title=f"CLs of {len(results)} signal hypotheses at {results[0].poi} = {mu:g} ({test_stat})")
        for column in ("patch", "CLs obs", "-2σ", "-1σ", "median", "+1σ", "+2σ", *(["UL obs", "UL exp"] if options["upper_limit"] else [])):
            table.add_column(column)
        for r in results:
            limits = [f"{r.upper_limit_obs:.3g}", f"{r.upper_limit_exp[2]:.3g}"] if r.upper_limit_obs is not None else []
            table.add_row(str(r.patch).split(":")[-1], f"{r.cls_obs:.4g}", *(f"{c:.3g}" for c in r.cls_exp), *limits)
        Console(width=160).print(table)
        if json_out is not None:
            write_json(json_out, [r.to_dict() for r in results])
        return
    try:
        ws = load_workspace(workspace, patch=patch, patchset=patchset, name=name)
        label = str(patch) if patch is not None else (f"{patchset}:{name}" if patchset is not None else None)
        result = hypotest(ws, labels=(str(workspace), label), **options)
    except HepsbiError as exc:
        _fail(exc)
    table = Table(title=f"CLs at {result.poi} = {result.mu:g} ({result.test_stat})")
    for column in ("", "observed", "-2σ", "-1σ", "median", "+1σ", "+2σ"):
        table.add_column(column)
    table.add_row("CLs", f"{result.cls_obs:.6g}", *(f"{c:.4g}" for c in result.cls_exp))
    if result.upper_limit_obs is not None:
        table.add_row("95% CL upper limit", f"{result.upper_limit_obs:.4g}", *(f"{u:.4g}" for u in result.upper_limit_exp))
    Console().print(table)
    if json_out is not None:
        write_json(json_out, result.to_dict())
    if brazil is not None:
        from hepsbi.report.plots import plot_brazil

        plot_brazil(result.scan_mu, result.scan_cls_obs, result.scan_cls_exp, brazil, poi=result.poi)


def _run_limits(run_dir: Path, poi: str | None, label: str | None, negative: bool, json_out: Path | None,
                brazil: Path | None) -> None:
    """`hepsbi limits RUN_DIR`: see :func:`hepsbi.workflow.limits.run_limits`."""
    from rich.table import Table

    from hepsbi.files import write_json
    from hepsbi.workflow.limits import run_limits

    try:
        result = run_limits(run_dir, poi, label, negative)
    except HepsbiError as exc:
        _fail(exc)
    table = Table(title=f"95% CL upper limits on {'−' if negative else ''}{result['poi']} from {result['likelihood']} "
                        "(Asimov dataset of the run)")
    for column in ("", "observed", "-2σ", "-1σ", "median", "+1σ", "+2σ"):
        table.add_column(column)
    table.add_row(result["poi"], f"{result['upper_limit_obs']:.4g}", *(f"{u:.4g}" for u in result["upper_limit_exp"]))
    if "scale_tev" in result:
        scale = result["scale_tev"]
        table.add_row("Λ > [TeV]", f"{scale['observed']:.3g}", *(f"{v:.3g}" for v in scale["expected"]))
    Console().print(table)
    if json_out is not None:
        write_json(json_out, result)
    if brazil is not None:
        from hepsbi.report.plots import plot_brazil

        plot_brazil(result["scan_mu"], result["scan_cls_obs"], result["scan_cls_exp"], brazil, poi=result["poi"])


@app.command()
def methods() -> None:
    """List the training methods: the estimator kind each trains, what its loss needs, its reference."""
    from rich.table import Table

    from hepsbi.estimators.registry import method_table

    table = Table(title="training methods (hepsbi.estimators.registry.METHODS)")
    for column in ("method", "kind", "needs", "what it learns", "reference"):
        table.add_column(column)
    for row in method_table():
        table.add_row(*row)
    Console().print(table)


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
