r"""Binned HistFactory models through pyhf: published workspaces, patches, CLs and upper limits.

hepsbi does not re-implement HistFactory: this module loads a pyhf JSON workspace (optionally patched with a
JSON Patch file or a HEPData patchset), builds the model with the interpolation codes analyses publish with,
and calls pyhf's hypothesis test and upper-limit scan. Every input problem is an
:class:`~hepsbi.errors.InferenceError` naming the file, patch or parameter.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepsbi.errors import InferenceError

__all__ = ["LimitResult", "load_workspace", "hypotest", "patch_names", "scan_patchset"]


@dataclass
class LimitResult:
    """CLs at one signal strength and, when asked, the 95 % CL upper limits on it.

    Attributes:
        workspace, patch: what was fitted.  poi: the parameter of interest.  mu: the tested value.
        cls_obs: observed CLs.  cls_exp: expected CLs at −2σ, −1σ, median, +1σ, +2σ.
        upper_limit_obs, upper_limit_exp: 95 % CL upper limits on the POI (observed; expected band).
        scan_mu, scan_cls_obs, scan_cls_exp: the CLs scan behind the limits (for a Brazil-band plot).
    """

    workspace: str
    patch: str | None
    poi: str
    mu: float
    test_stat: str
    cls_obs: float
    cls_exp: list[float]
    upper_limit_obs: float | None = None
    upper_limit_exp: list[float] = field(default_factory=list)
    scan_mu: list[float] = field(default_factory=list)
    scan_cls_obs: list[float] = field(default_factory=list)
    scan_cls_exp: list[list[float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_json(path: str | os.PathLike[str], what: str) -> Any:
    """A JSON file (UTF-8, standard JSON: no NaN or Infinity); problems name the file."""
    path = Path(path)
    if not path.is_file():
        raise InferenceError(f"{what} {path}: no such file")

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not a number JSON allows")

    try:
        return json.loads(path.read_bytes().decode("utf-8"), parse_constant=refuse)
    except UnicodeDecodeError as exc:
        raise InferenceError(f"{what} {path}: not UTF-8 text (byte {exc.start})") from None
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise InferenceError(f"{what} {path}: not valid JSON ({_first_line(exc)})") from None


def _channel_bins(spec: dict[str, Any]) -> dict[str, int]:
    """Bins of every channel (from its first sample), checking that channel names are unique."""
    names = [c.get("name") for c in spec.get("channels", [])]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InferenceError(f"channel name(s) {duplicates} appear more than once")
    return {c["name"]: len(c["samples"][0]["data"]) for c in spec["channels"] if c.get("samples")}


def _staterror_names(samples: list[dict[str, Any]]) -> set[str]:
    return {m.get("name") for s in samples for m in s.get("modifiers", []) if m.get("type") == "staterror"}


def _apply_verified_patch(spec: dict[str, Any], operations: Any, patch: str | os.PathLike[str]) -> dict[str, Any]:
    """Apply a JSON Patch operation by operation, verifying that every sample it adds or replaces in a channel
    (addressed by index) fits that channel: the same number of bins, and its MC-statistics modifier (named after
    its channel by HistFactory: ``staterror_<channel>``) the channel's own. A patch written for another ordering
    of the channels would otherwise put the signal in the wrong region without any error."""
    import re

    import jsonpatch

    if not isinstance(operations, list):
        raise InferenceError(f"patch {patch}: a JSON Patch is a list of operations")
    doc = spec
    for k, op in enumerate(operations):
        where = re.fullmatch(r"/channels/(\d+)/samples/(\d+|-)", str(op.get("path", ""))) if isinstance(op, dict) else None
        if where and op.get("op") in ("add", "replace") and isinstance(op.get("value"), dict):
            try:
                channel = doc["channels"][int(where[1])]
            except (KeyError, IndexError, TypeError):
                raise InferenceError(f"patch {patch}: operation {k} addresses channel {where[1]}, which does not exist") from None
            sample, name = op["value"], channel.get("name")
            bins = len(channel["samples"][0]["data"]) if channel.get("samples") else None
            if bins is not None and len(sample.get("data", [])) != bins:
                raise InferenceError(f"patch {patch}: operation {k} adds {len(sample.get('data', []))} bins of "
                                     f"{sample.get('name')!r} to channel {name!r}, which has {bins}")
            ours, theirs = _staterror_names(channel.get("samples", [])), _staterror_names([sample])
            if ours and theirs and not theirs <= ours:
                raise InferenceError(f"patch {patch}: operation {k} adds {sample.get('name')!r} with {sorted(theirs)} to "
                                     f"channel {name!r} (whose samples use {sorted(ours)}): the patch was written for "
                                     "another ordering of the channels")
        try:
            doc = jsonpatch.apply_patch(doc, [op])
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError, IndexError) as exc:
            raise InferenceError(f"patch {patch}: operation {k} cannot be applied ({_first_line(exc)})") from None
    return doc


def _check_numbers(spec: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Observations for every channel, of the channel's length, finite and non-negative; sample yields finite."""
    bins = _channel_bins(spec)
    observed = {o.get("name"): o.get("data") for o in spec.get("observations", [])}
    for name, n in bins.items():
        data = observed.get(name)
        if data is None:
            raise InferenceError(f"workspace {path}: no observation for channel {name!r}")
        values = np.asarray(data, dtype=float)
        if values.shape != (n,):
            raise InferenceError(f"workspace {path}: channel {name!r} has {n} bins but {values.size} observed counts")
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise InferenceError(f"workspace {path}: observed counts of {name!r} must be finite and >= 0 (got {data})")
    for channel in spec["channels"]:
        for sample in channel.get("samples", []):
            values = np.asarray(sample.get("data", []), dtype=float)
            if values.shape != (bins[channel["name"]],) or not np.all(np.isfinite(values)):
                raise InferenceError(f"workspace {path}: sample {sample.get('name')!r} of channel {channel['name']!r} "
                                     f"needs {bins[channel['name']]} finite yields (got {sample.get('data')})")


def load_workspace(
    path: str | os.PathLike[str],
    patch: str | os.PathLike[str] | None = None,
    patchset: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> Any:
    """A validated ``pyhf.Workspace`` from ``path``, with a JSON Patch file or a patchset entry applied."""
    import pyhf

    spec = _read_json(path, "workspace")
    if patch is not None and patchset is not None:
        raise InferenceError("give either --patch or --patchset, not both")
    if not isinstance(spec, dict) or not isinstance(spec.get("channels"), list):
        raise InferenceError(f"workspace {path}: not a pyhf workspace (no list of channels)")
    try:
        _channel_bins(spec)
    except (KeyError, TypeError) as exc:
        raise InferenceError(f"workspace {path}: malformed channels ({_first_line(exc)})") from None
    except InferenceError as exc:
        raise InferenceError(f"workspace {path}: {exc}") from None
    if patch is not None:
        spec = _apply_verified_patch(spec, _read_json(patch, "patch"), patch)
    if patchset is not None:
        if not name:
            raise InferenceError("--patchset needs --name: which patch of the set to apply")
        try:
            pset = pyhf.PatchSet(_read_json(patchset, "patchset"))
        except pyhf.exceptions.InvalidSpecification as exc:
            raise InferenceError(f"patchset {patchset}: fails pyhf's schema ({_first_line(exc)})") from None
        names = [p.name for p in pset.patches]
        if name not in names:
            raise InferenceError(f"patchset {patchset}: no patch named {name!r}; it has {names[:10]}{'…' if len(names) > 10 else ''}")
        try:
            spec = dict(pset.apply(spec, name))
        except pyhf.exceptions.PatchSetVerificationError as exc:
            raise InferenceError(f"patchset {patchset}: does not belong to workspace {path} ({_first_line(exc)})") from None
    try:
        workspace = pyhf.Workspace(spec)
    except (pyhf.exceptions.InvalidSpecification, pyhf.exceptions.SchemaNotFound) as exc:
        raise InferenceError(f"workspace {path}: fails pyhf's schema ({_first_line(exc)})") from None
    _check_numbers(spec, path)
    return workspace


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300]


#: the expected band's quantiles, in pyhf's order
BANDS = ("-2σ", "-1σ", "median", "+1σ", "+2σ")
#: how often an upper-limit scan doubles its range before refusing
MAX_WIDENINGS = 5


def hypotest(
    workspace: Any,
    mu: float = 1.0,
    test_stat: str = "qtilde",
    poi: str | None = None,
    upper_limit: bool = False,
    normsys: str = "code4",
    histosys: str = "code4p",
    scan: tuple[float, float, int] = (0.0, 5.0, 41),
    labels: tuple[str, str | None] = ("workspace", None),
) -> LimitResult:
    r"""CLs of signal strength ``mu`` (asymptotic formulae, arXiv:1007.1727) and optionally the 95 % CL
    upper limits, with pyhf.

    Arguments:
        workspace: a ``pyhf.Workspace`` (see :func:`load_workspace`).
        mu: tested value of the parameter of interest.
        test_stat: ``"qtilde"`` (default, for μ ≥ 0) or ``"q"``.
        poi: parameter of interest; default the workspace's measurement POI.
        upper_limit: also scan μ over ``scan`` = (low, high, points) for the observed and expected limits; a scan
            whose upper end does not contain every limit (observed and each of the expected band) doubles its range,
            up to :data:`MAX_WIDENINGS` times, then raises naming the limits it could not contain.
        normsys, histosys: interpolation codes (the published ATLAS likelihoods use code4 / code4p).
    """
    import pyhf

    if test_stat not in ("qtilde", "q"):
        raise InferenceError(f"test statistic must be 'qtilde' or 'q' (got {test_stat!r})")
    if not np.isfinite(mu) or (test_stat == "qtilde" and mu < 0):
        raise InferenceError(f"--mu must be finite{' and >= 0 for qtilde' if test_stat == 'qtilde' else ''} (got {mu})")
    low, high, points = scan
    if not (np.isfinite(low) and np.isfinite(high) and low < high and int(points) >= 2):
        raise InferenceError(f"the limit scan needs finite low < high and at least 2 points (got {scan})")
    pyhf.set_backend("numpy")
    settings = {"normsys": {"interpcode": normsys}, "histosys": {"interpcode": histosys}}
    overrides = {} if poi is None else {"poi_name": poi}
    try:
        model = workspace.model(modifier_settings=settings, **overrides)
    except (pyhf.exceptions.InvalidModel, KeyError) as exc:
        if poi is None:
            raise InferenceError(f"{labels[0]}: the workspace does not define a usable model ({_first_line(exc)})") from None
        names = sorted(workspace.parameters) if hasattr(workspace, "parameters") else []
        raise InferenceError(f"parameter {poi!r} is not in the model ({_first_line(exc)}); parameters: {names[:15]}") from None
    poi_name = model.config.poi_name
    if poi_name is None:
        raise InferenceError(f"{labels[0]}: the model has no parameter of interest; give --poi")
    if model.config.param_set(poi_name).constrained:
        raise InferenceError(f"--poi {poi_name!r} is a constrained nuisance parameter; the parameter of interest must be "
                             "a free normalisation factor (e.g. the signal strength)")
    data = workspace.data(model)
    try:
        cls_obs, cls_exp = pyhf.infer.hypotest(mu, data, model, test_stat=test_stat, return_expected_set=True)
    except (pyhf.exceptions.FailedMinimization, ValueError) as exc:
        raise InferenceError(f"{labels[0]}: the fit at {poi_name} = {mu} failed ({_first_line(exc)})") from None
    result = LimitResult(
        workspace=labels[0], patch=labels[1], poi=model.config.poi_name, mu=float(mu), test_stat=test_stat,
        cls_obs=float(cls_obs), cls_exp=[float(c) for c in np.asarray(cls_exp).ravel()],
    )
    if upper_limit:
        poi_index = model.config.poi_index
        for widening in range(MAX_WIDENINGS + 1):
            bounds = [list(b) for b in model.config.suggested_bounds()]
            bounds[poi_index] = [min(bounds[poi_index][0], low), max(bounds[poi_index][1], high)]
            try:
                obs, exp, (tested, results) = pyhf.infer.intervals.upper_limits.upper_limit(
                    data, model, scan=np.linspace(low, high, int(points)), test_stat=test_stat, return_results=True,
                    par_bounds=bounds)
            except (pyhf.exceptions.FailedMinimization, ValueError) as exc:
                raise InferenceError(f"{labels[0]}: the upper-limit scan failed ({_first_line(exc)})") from None
            limits = {"observed": float(obs), **{f"expected {band}": float(e)
                                                 for band, e in zip(BANDS, np.asarray(exp).ravel())}}
            outside = [name for name, value in limits.items() if not (np.isfinite(value) and value < high)]
            if not outside:
                break
            if widening == MAX_WIDENINGS:
                raise InferenceError(f"{labels[0]}: the {' and '.join(outside)} upper limit(s) on {poi_name} lie beyond "
                                     f"{high:g} even after widening the scan {MAX_WIDENINGS} times: the analysis has "
                                     "no sensitivity to this signal, or give a wider scan")
            high = low + 2 * (high - low)  # a limit at the scan's end is not a limit: widen and scan again
        result.scan_mu = [float(v) for v in tested]
        result.scan_cls_obs = [float(r[0]) for r in results]
        result.scan_cls_exp = [[float(c) for c in np.asarray(r[1]).ravel()] for r in results]
        result.upper_limit_obs = limits["observed"]
        result.upper_limit_exp = [limits[f"expected {band}"] for band in BANDS]
    return result


def patch_names(patchset: str | os.PathLike[str]) -> list[str]:
    """Names of the patches in a HEPData patchset file, in file order."""
    import pyhf

    try:
        return [p.name for p in pyhf.PatchSet(_read_json(patchset, "patchset")).patches]
    except pyhf.exceptions.InvalidSpecification as exc:
        raise InferenceError(f"patchset {patchset}: fails pyhf's schema ({_first_line(exc)})") from None


def _one_patch(workspace: str, patchset: str, name: str, options: dict[str, Any]) -> LimitResult:
    """One signal hypothesis of a patchset (a task that can run on any Dask worker)."""
    ws = load_workspace(workspace, patchset=patchset, name=name)
    return hypotest(ws, labels=(str(workspace), f"{patchset}:{name}"), **options)


def scan_patchset(workspace: str | os.PathLike[str], patchset: str | os.PathLike[str], names: list[str] | None = None,
                  client: Any = None, **options: Any) -> list[LimitResult]:
    """CLs (and limits) of every patch of a patchset — each signal hypothesis a task, fanned out over the
    workers of a ``distributed.Client`` when given, else run one after the other in this process.
    ``options`` go to :func:`hypotest` (mu, test_stat, poi, upper_limit, …)."""
    import dask
    from dask import delayed

    names = patch_names(patchset) if names is None else list(names)
    tasks = [delayed(_one_patch, pure=True)(str(workspace), str(patchset), n, options) for n in names]
    if client is None:
        return list(dask.compute(*tasks, scheduler="synchronous"))
    return list(dask.compute(*tasks, scheduler=client))
