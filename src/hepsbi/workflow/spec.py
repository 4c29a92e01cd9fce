r"""The run specification: a YAML file validated by pydantic.

Every section rejects unknown keys; every error names the key (``training.estimators.0.epochs``), what
was expected and what was given. ``RunSpec.model_json_schema()`` is the JSON Schema (``hepsbi schema``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import reprlib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hepsbi.errors import SpecError
from hepsbi.estimators.devices import DEVICE_PATTERN
from hepsbi.estimators.registry import RATIO_METHODS

__all__ = [
    "RunSpec",
    "SimulatorSpec",
    "DataSpec",
    "EstimatorSpec",
    "TrainingSpec",
    "InferenceSpec",
    "HistogramSpec",
    "SallySpec",
    "PosteriorSpec",
    "ReportSpec",
    "load_spec",
    "parse_spec",
    "spec_hash",
]

#: the ratio methods of the estimator registry (:data:`hepsbi.estimators.registry.RATIO_METHODS`)
Method = Literal[RATIO_METHODS]  # type: ignore[valid-type]


#: seeds are combined with offsets (chunks, toys, held-out events) and must stay within every generator's range
MAX_SEED = 2**31 - 1
#: a hidden layer width
Width = Annotated[int, Field(ge=1, le=65_536)]

#: estimator labels name directories (models/<label>/): a letter, then letters, digits, _ or -
LABEL_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, validate_default=True)


class SimulatorSpec(_Strict):
    """Which simulator: a built-in name (``gaussian``, ``galton``, ``multi_gaussian``) or ``module:Class``."""

    name: str = "gaussian"
    options: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the simulator")


class DataSpec(_Strict):
    """Training data: how many events and where θ comes from."""

    n_samples: int = Field(20_000, ge=2, le=10**9, description="events (rows) of training data")
    theta_sampler: Literal["prior", "grid", "benchmarks"] = "prior"
    grid_points: int = Field(11, ge=2, le=1001, description="nodes per parameter for theta_sampler = grid")
    balance: str | None = Field(None, description="observable to balance training weights on (TrainingData.balanced); "
                                "on Drell-Yan it biased the learned likelihoods toward θ_ref (benchmarks/information.py)")
    balance_bins: int = Field(20, ge=2, le=10_000)
    seed: int = Field(0, ge=0, le=MAX_SEED)


class EstimatorSpec(_Strict):
    """One likelihood-ratio estimator and its training options (unset options take the library defaults)."""

    method: Method = "alices"
    label: str | None = Field(None, pattern=LABEL_PATTERN, max_length=64,
                              description="name in results, plots and models/<label>/ (letters, digits, _ and -, "
                              "starting with a letter); default: the method")
    alpha: float = Field(1.0, ge=0, description="weight of the score term (cascal, rascal, alices, scandal)")
    log_r_clip: float = Field(10.0, gt=0, description="clip of the joint log ratio for rolr and rascal")
    hidden: list[Width] = Field(default_factory=lambda: [64, 64, 64], min_length=1, max_length=32)
    epochs: int | None = Field(None, ge=1, le=100_000)
    batch_size: int | None = Field(None, ge=1, le=10**8)
    learning_rate: float | None = Field(None, gt=0, le=10)
    schedule: Literal["cosine", "plateau"] | None = Field(
        None, description="cosine: per-step decay, last weights kept (default); plateau: early stopping on validation")
    min_steps: int | None = Field(None, ge=0, le=10**8, description="cosine: at least this many gradient steps")
    patience: int | None = Field(None, ge=1, le=100_000)
    validation_fraction: float | None = Field(None, ge=0, lt=1)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    ensemble: int = Field(1, ge=1, le=50, description="members trained with seeds seed, seed + 1, …; log r̂ is their mean")

    def training_options(self) -> dict[str, Any]:
        keys = ("epochs", "batch_size", "learning_rate", "schedule", "min_steps", "patience", "validation_fraction",
                "seed")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


class SallySpec(_Strict):
    """A local score estimator (SALLY) at θ_ref; inference histograms its output (quantile bins)."""

    n_samples: int = Field(20_000, ge=10, le=10**9, description="events at θ_ref for score training")
    bins: int = Field(6, ge=2, le=100, description="quantile bins per score component for the binned likelihood")
    hidden: list[Width] = Field(default_factory=lambda: [64, 64, 64], min_length=1, max_length=32)
    epochs: int | None = Field(None, ge=1, le=100_000)
    seed: int = Field(0, ge=0, le=MAX_SEED)


class PosteriorSpec(_Strict):
    """Neural posterior estimation (NPE) of θ given one observation x: a flow q̂(θ | x) trained on prior draws and
    their simulations, sampled at the observation, checked by SBC and TARP on fresh simulations and by a posterior
    predictive check (``posterior.json``, ``plots/posterior*.png``, ``models/posterior/``). Unweighted simulators:
    one x is one simulator row."""

    n_samples: int = Field(20_000, ge=10, le=10**9, description="simulations (θ from the prior, x at θ) to train on")
    flow: Literal["nsf", "maf", "realnvp"] = "nsf"
    transforms: int = Field(5, ge=1, le=64)
    hidden: list[Width] = Field(default_factory=lambda: [64, 64], min_length=1, max_length=32)
    ensemble: int = Field(1, ge=1, le=50, description="flows trained side by side, the posterior their equal mixture "
                         "(a deep ensemble: more accurate and more conservative at small n_samples; K times the cost)")
    adjust: Literal["none", "linear"] = Field("none", description="linear: the flows model θ's residual from its "
                                              "linear regression on x (for posteriors that move linearly with x)")
    activation: Literal["relu", "tanh", "silu"] = Field("relu", description="the flows' conditioner activation "
                                                        "(tanh: smooth in x, which near-Gaussian posteriors suit)")
    epochs: int | None = Field(None, ge=1, le=100_000)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    observation: list[float] | None = Field(None, min_length=1, description="the observed x; default: one simulation "
                                            "at inference.theta_true (seed inference.seed)")
    draws: int = Field(10_000, ge=10, le=10**7, description="posterior draws at the observation")
    calibration: int = Field(300, ge=0, le=10**6, description="simulations for SBC and TARP (0: none)")
    calibration_draws: int = Field(100, ge=2, le=10**5, description="posterior draws per calibration simulation")
    predictive: int = Field(1000, ge=0, le=10**7, description="posterior predictive simulations (0: none)")


class TrainingSpec(_Strict):
    """The estimators to train; the first one is the primary result."""

    estimators: list[EstimatorSpec] = Field(default_factory=lambda: [EstimatorSpec()], min_length=1)
    sally: SallySpec | None = None
    posterior: PosteriorSpec | None = Field(None, description="neural posterior estimation at one observation")
    rounds: int = Field(1, ge=1, le=5, description="training rounds: round r + 1 draws θ uniformly in the box around "
                        "round r's scan of the first estimator (its 95% interval widened by focus_width, within the "
                        "prior); the estimators are trained on the last round's data")
    focus_width: float = Field(2.0, ge=1.0, le=100.0, description="rounds: the box spans this many times the 95% "
                               "interval, on each side of the MLE")


class HistogramSpec(_Strict):
    """The binned baseline: one observable and its bin edges, or a list of observables (a k-D histogram) with
    one list of edges each."""

    observable: str | list[str] = "m_ll"
    bins: list[float] | list[list[float]] = Field(min_length=1, description="increasing bin edges (one list per observable)")

    @property
    def observables(self) -> list[str]:
        return [self.observable] if isinstance(self.observable, str) else list(self.observable)

    @property
    def edges(self) -> list[list[float]]:
        return [list(self.bins)] if isinstance(self.observable, str) else [list(b) for b in self.bins]  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _consistent(self) -> HistogramSpec:
        nested = all(isinstance(b, list) for b in self.bins)
        if isinstance(self.observable, str) == nested or (nested and len(self.bins) != len(self.observable)):
            raise ValueError("give one observable with a list of edges, or k observables with k lists of edges")
        if any(len(e) < 2 for e in self.edges):
            raise ValueError("every list of bin edges needs at least two edges")
        for e in self.edges:
            if any(not b < a for b, a in zip(e, e[1:])):  # NaN fails every comparison
                raise ValueError(f"bin edges must increase strictly (got {_short(e)})")
        return self


class SystematicSpec(_Strict):
    """A nuisance parameter α ~ N(0, 1), profiled in the ``profile`` scans.

    ``norm``: the expected yield scales by ``up`` at α = +1 and ``down`` at α = −1 (e.g. luminosity 1.017/0.983).
    ``shape``: every event's weight is multiplied by 1 ± ``size`` (2F(x) − 1) at α = ±1, with F the cumulative
    distribution of ``observable`` at the reference: the distribution tilts by ±``size`` at its two ends.
    ``weights``: the simulator's weight variation of the same ``name`` (``lhe``: its ``variations`` option, scale or
    PDF weights of the files) multiplies every event's weight by its own up or down factor at α = ±1.
    """

    name: str
    kind: Literal["norm", "shape", "weights"]
    up: float | None = Field(None, gt=0, description="norm: yield factor at α = +1")
    down: float | None = Field(None, gt=0, description="norm: yield factor at α = −1")
    observable: str | None = Field(None, description="shape: the tilted observable")
    size: float | None = Field(None, gt=0, lt=1, description="shape: relative tilt at the ends of the distribution")

    @model_validator(mode="after")
    def _complete(self) -> SystematicSpec:
        needed = {"norm": ("up", "down"), "shape": ("observable", "size"), "weights": ()}[self.kind]
        missing = [k for k in needed if getattr(self, k) is None]
        if missing:
            raise ValueError(f"systematic {self.name!r} ({self.kind}) needs {', '.join(missing)}")
        return self


class ProfileSpec(_Strict):
    """Profile-likelihood scans with the systematics' nuisance parameters minimised at every node."""

    grid_points: int = Field(15, ge=3, le=201, description="nodes per parameter, over the 95 % region of the plain scan")


class ClosureSpec(_Strict):
    """Closure of every learned ratio by reweighting (``results.json`` ``estimators.<label>.closure``,
    ``plots/closure_<label>.png``)."""

    points: list[dict[str, float]] = Field(default_factory=list, description="θ points; none: θ_true with each "
                                           "parameter in turn at both ends of the estimator's 95% interval")
    bins: int = Field(10, ge=2, le=200, description="bins of equal content at θ, per observable")
    events: int = Field(20_000, ge=100, le=10**8, description="events drawn at θ_ref and at each θ (simulators "
                        "without weights; weighted ones use the analysis' own n_mc events)")


#: the largest integrated luminosity a spec accepts, fb⁻¹: above what any collider plans (HL-LHC 3000 fb⁻¹, FCC-hh
#: 30000 fb⁻¹), where a value typed in pb⁻¹ lands (139 fb⁻¹ = 139000 pb⁻¹)
MAX_LUMINOSITY_FB = 50_000.0


class InferenceSpec(_Strict):
    """What to infer on and how finely to scan."""

    theta_true: dict[str, float] = Field(default_factory=dict, description="θ_true; missing names take the reference")
    dataset: Literal["asimov", "observed"] = "asimov"
    n_events: float = Field(100.0, gt=0, le=1e12, description="expected (asimov) or observed number of events")
    n_mc: int = Field(20_000, ge=1, le=10**9, description="Monte Carlo events behind the Asimov sample (at most the pool)")
    grid_points: int = Field(101, ge=3, le=2001, description="scan nodes per parameter")
    zoom: int = Field(0, ge=0, le=5, description="rescans narrowed to the 95% region")
    luminosity: float | None = Field(None, gt=0, description="fb^-1; weighted simulators: "
                                     "extended likelihood (at most 50000: a value in pb^-1 is refused)")
    histogram: HistogramSpec | None = None
    parton_level: bool = Field(True, validation_alias=AliasChoices("parton_level", "truth"),
                               description="compare with the parton-level likelihood (label 'truth' in results) "
                               "when the dataset keeps z; 'truth' is accepted as the old name of this key")
    systematics: list[SystematicSpec] = Field(default_factory=list, description="nuisance parameters (weighted simulators)")
    profile: ProfileSpec | None = Field(None, description="profile scans over the systematics (default on when there are any)")
    held_out_events: int | None = Field(None, ge=100, le=10**9, description="weighted simulators: generate a second "
                                        "pool of this many events (another seed) and measure on it the information each "
                                        "learned likelihood and SALLY's score keep (fisher_information_kept)")
    closure: ClosureSpec | None = Field(default_factory=ClosureSpec, description="reweighting closure of the learned "
                                        "ratios; null: none")
    pair: list[str] | None = Field(None, min_length=2, max_length=2, description="more than two parameters: the pair "
                                   "of the 2-D profile contour (default: the first two); every parameter gets its "
                                   "profile interval with the others free")
    seed: int = Field(1, ge=0, le=MAX_SEED)

    @field_validator("luminosity")
    @classmethod
    def _luminosity_in_fb(cls, value: float | None) -> float | None:
        if value is not None and not value <= MAX_LUMINOSITY_FB:  # (NaN and inf too)
            raise ValueError(f"{value:g} fb^-1 is more than any collider plans (HL-LHC 3000, FCC-hh 30000 fb^-1); the "
                             f"unit is fb^-1 — in pb^-1 this would be {value / 1000:g} fb^-1")
        return value


class ReportSpec(_Strict):
    """Plots and validation."""

    plots: bool = True
    validation_events: int = Field(2000, ge=10, le=10**7, description="held-out events per θ for the log r MSE")


class ExecutionSpec(_Strict):
    """Where and in how many pieces the stages run. Only ``chunks`` changes results (each chunk has its own
    seed; ``device`` changes them at float32 rounding); the rest says where tasks run, and the command line
    (``--workers``, ``--scheduler``, ``--cluster``, ``--device``) overrides it."""

    chunks: int = Field(1, ge=1, le=100_000, description="simulation tasks (chunk k uses seed + 100 k); merged in order")
    workers: int | None = Field(None, ge=1, le=4096, description="local Dask workers (processes); none: in-process")
    scheduler: str | None = Field(None, description="address of a running Dask scheduler, e.g. tcp://host:8786")
    cluster: Literal["htcondor", "slurm"] | None = Field(None, description="start a batch cluster with dask-jobqueue")
    jobs: int = Field(2, ge=1, le=100_000, description="batch jobs (one worker each) for cluster")
    jobqueue: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of dask_jobqueue's "
                                     "HTCondorCluster / SLURMCluster, e.g. {cores: 1, memory: 4GB, disk: 4GB}")
    device: str = Field("cpu", pattern=DEVICE_PATTERN, description="where networks train and evaluate: cpu, cuda, "
                        "cuda:N or auto (CUDA when the task's machine has it); results agree with the CPU's to float32 "
                        "rounding, and a stage trained on one device is reused on another")


class RunSpec(_Strict):
    """A complete run: simulate → train → infer → report."""

    name: str = "run"
    simulator: SimulatorSpec = Field(default_factory=SimulatorSpec)
    data: DataSpec = Field(default_factory=DataSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    inference: InferenceSpec = Field(default_factory=InferenceSpec)
    report: ReportSpec = Field(default_factory=ReportSpec)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)


#: the most values (scalars, after YAML aliases are expanded) and bytes a spec may have
MAX_SPEC_VALUES = 100_000
MAX_SPEC_BYTES = 1_000_000


def _short(value: Any, limit: int = 120) -> str:
    """``repr(value)`` cut to ``limit`` characters: error messages never print a whole (possibly huge) input."""
    short = reprlib.Repr()
    short.maxstring, short.maxother, short.maxlist, short.maxdict, short.maxlevel = limit, limit, 8, 8, 3
    text = short.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key"
    return f"{where}: {error['msg']} (got {_short(error.get('input'))})"


def _check_document(data: Any, source: str) -> None:
    """Refuse documents whose expanded size is absurd (a YAML alias bomb expands exponentially) and non-finite
    numbers anywhere (NaN/inf in simulator options would reach the run as null), naming the key."""
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:  # expanded size, each shared node counted once per use but computed once
        if id(node) in sizes:
            return sizes[id(node)]
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        total = 1 + sum(size(child) for child in children)
        sizes[id(node)] = min(total, MAX_SPEC_VALUES + 1)
        return sizes[id(node)]

    if size(data) > MAX_SPEC_VALUES:
        raise SpecError(f"{source}: the spec expands to more than {MAX_SPEC_VALUES} values (nested YAML aliases?)")
    todo: list[tuple[str, Any]] = [("", data)]
    seen: set[int] = set()
    while todo:
        where, node = todo.pop()
        if isinstance(node, (dict, list)):
            if id(node) in seen:
                continue
            seen.add(id(node))
            items = node.items() if isinstance(node, dict) else enumerate(node)
            todo += [(f"{where}.{key}" if where else str(key), child) for key, child in items]
        elif isinstance(node, float) and not math.isfinite(node):
            raise SpecError(f"{source}: {where or '(top level)'}: numbers must be finite (got {node})")


def parse_spec(data: Any, source: str = "spec") -> RunSpec:
    """Validate a mapping as a :class:`RunSpec`; raise :class:`SpecError` listing every problem by key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    _check_document(data, source)
    try:
        return RunSpec.model_validate(data)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(e) for e in exc.errors())
        raise SpecError(f"{source}: invalid spec\n  {problems}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (the last would silently win)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    for i, key in enumerate(keys):
        if isinstance(key, (str, int, float, bool)) and key in keys[:i]:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {_short(key)}", node.start_mark)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML ``text`` with the checks every spec gets: at most :data:`MAX_SPEC_BYTES`, no duplicate keys."""
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"{source}: {len(text)} characters; a spec has at most {MAX_SPEC_BYTES}")
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        message = " ".join(str(exc).split())
        raise SpecError(f"{source}: not valid YAML ({message[:400]})") from None
    except RecursionError:
        raise SpecError(f"{source}: nested too deeply") from None


def load_spec(path: str | os.PathLike[str]) -> RunSpec:
    """Read and validate a YAML spec file (UTF-8)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such spec file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    spec = parse_spec(load_yaml(text, str(path)), source=str(path))
    _simulator_beside(spec.simulator.name, path.resolve().parent)
    return spec


def _simulator_beside(name: str, folder: Path) -> None:
    """A simulator given as ``module:Class`` whose module is not importable but lies in the spec's ``folder``
    (``module.py`` or a package ``module/``): put the folder on the module path — of this process, and through
    ``PYTHONPATH`` of the worker processes it starts — so the spec works without setting ``PYTHONPATH=.``."""
    import importlib.util
    import sys

    if ":" not in name:
        return
    top = name.partition(":")[0].split(".")[0]
    beside = (folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file()
    if not beside or str(folder) in sys.path:
        return
    try:
        if importlib.util.find_spec(top) is not None:
            return  # importable already (installed, or on the path): that one is meant
    except (ImportError, ValueError):
        pass
    sys.path.insert(0, str(folder))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(folder), *filter(None, [os.environ.get("PYTHONPATH")])])


#: Execution settings that say where tasks run, not what they compute: left out of the spec hash.
PLACEMENT_KEYS = ("workers", "scheduler", "cluster", "jobs", "jobqueue", "device")


def spec_hash(spec: RunSpec) -> str:
    """SHA-256 of the canonical JSON of the validated spec (defaults filled in), without the placement
    settings of ``execution`` (the same analysis run elsewhere has the same hash)."""
    document = spec.model_dump(mode="json")
    for key in PLACEMENT_KEYS:
        document["execution"].pop(key, None)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
