r"""The run specification: a YAML file validated by pydantic.

Every section rejects unknown keys; every error names the key (``training.estimators.0.epochs``), what
was expected and what was given. ``RunSpec.model_json_schema()`` is the JSON Schema (``hepsbi schema``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from hepsbi.errors import SpecError
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
    "ReportSpec",
    "load_spec",
    "parse_spec",
    "spec_hash",
]

#: the ratio methods of the estimator registry (:data:`hepsbi.estimators.registry.RATIO_METHODS`)
Method = Literal[RATIO_METHODS]  # type: ignore[valid-type]


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

    n_samples: int = Field(20_000, ge=2, description="events (rows) of training data")
    theta_sampler: Literal["prior", "grid", "benchmarks"] = "prior"
    grid_points: int = Field(11, ge=2, description="nodes per parameter for theta_sampler = grid")
    balance: str | None = Field(None, description="observable to balance training weights on (TrainingData.balanced)")
    balance_bins: int = Field(20, ge=2)
    seed: int = Field(0, ge=0)


class EstimatorSpec(_Strict):
    """One likelihood-ratio estimator and its training options (unset options take the library defaults)."""

    method: Method = "alices"
    label: str | None = Field(None, pattern=LABEL_PATTERN, max_length=64,
                              description="name in results, plots and models/<label>/ (letters, digits, _ and -, "
                              "starting with a letter); default: the method")
    alpha: float = Field(1.0, ge=0, description="weight of the score term (cascal, rascal, alices)")
    log_r_clip: float = Field(10.0, gt=0, description="clip of the joint log ratio for rolr and rascal")
    hidden: list[int] = Field(default_factory=lambda: [64, 64, 64], min_length=1)
    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    learning_rate: float | None = Field(None, gt=0)
    patience: int | None = Field(None, ge=1)
    validation_fraction: float | None = Field(None, ge=0, lt=1)
    seed: int | None = Field(None, ge=0)
    ensemble: int = Field(1, ge=1, le=50, description="members trained with seeds seed, seed + 1, …; log r̂ is their mean")

    def training_options(self) -> dict[str, Any]:
        keys = ("epochs", "batch_size", "learning_rate", "patience", "validation_fraction", "seed")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


class SallySpec(_Strict):
    """A local score estimator (SALLY) at θ_ref; inference histograms its output (quantile bins)."""

    n_samples: int = Field(20_000, ge=10, description="events at θ_ref for score training")
    bins: int = Field(6, ge=2, description="quantile bins per score component for the binned likelihood")
    hidden: list[int] = Field(default_factory=lambda: [64, 64, 64], min_length=1)
    epochs: int | None = Field(None, ge=1)
    seed: int = Field(0, ge=0)


class TrainingSpec(_Strict):
    """The estimators to train; the first one is the primary result."""

    estimators: list[EstimatorSpec] = Field(default_factory=lambda: [EstimatorSpec()], min_length=1)
    sally: SallySpec | None = None


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
        return self


class SystematicSpec(_Strict):
    """A nuisance parameter α ~ N(0, 1), profiled in the ``profile`` scans.

    ``norm``: the expected yield scales by ``up`` at α = +1 and ``down`` at α = −1 (e.g. luminosity 1.017/0.983).
    ``shape``: every event's weight is multiplied by 1 ± ``size`` (2F(x) − 1) at α = ±1, with F the cumulative
    distribution of ``observable`` at the reference: the distribution tilts by ±``size`` at its two ends.
    """

    name: str
    kind: Literal["norm", "shape"]
    up: float | None = Field(None, gt=0, description="norm: yield factor at α = +1")
    down: float | None = Field(None, gt=0, description="norm: yield factor at α = −1")
    observable: str | None = Field(None, description="shape: the tilted observable")
    size: float | None = Field(None, gt=0, lt=1, description="shape: relative tilt at the ends of the distribution")

    @model_validator(mode="after")
    def _complete(self) -> SystematicSpec:
        needed = ("up", "down") if self.kind == "norm" else ("observable", "size")
        missing = [k for k in needed if getattr(self, k) is None]
        if missing:
            raise ValueError(f"systematic {self.name!r} ({self.kind}) needs {', '.join(missing)}")
        return self


class ProfileSpec(_Strict):
    """Profile-likelihood scans with the systematics' nuisance parameters minimised at every node."""

    grid_points: int = Field(15, ge=3, description="nodes per parameter, over the 95 % region of the plain scan")


class InferenceSpec(_Strict):
    """What to infer on and how finely to scan."""

    theta_true: dict[str, float] = Field(default_factory=dict, description="θ_true; missing names take the reference")
    dataset: Literal["asimov", "observed"] = "asimov"
    n_events: float = Field(100.0, gt=0, description="expected (asimov) or observed number of events")
    n_mc: int = Field(20_000, ge=1, description="Monte Carlo events behind the Asimov sample (at most the pool)")
    grid_points: int = Field(101, ge=3, description="scan nodes per parameter")
    zoom: int = Field(0, ge=0, le=5, description="rescans narrowed to the 95% region")
    luminosity: float | None = Field(None, gt=0, description="fb^-1; weighted simulators: extended likelihood")
    histogram: HistogramSpec | None = None
    parton_level: bool = Field(True, validation_alias=AliasChoices("parton_level", "truth"),
                               description="compare with the parton-level likelihood (label 'truth' in results) "
                               "when the dataset keeps z; 'truth' is accepted as the old name of this key")
    systematics: list[SystematicSpec] = Field(default_factory=list, description="nuisance parameters (weighted simulators)")
    profile: ProfileSpec | None = Field(None, description="profile scans over the systematics (default on when there are any)")
    seed: int = Field(1, ge=0)


class ReportSpec(_Strict):
    """Plots and validation."""

    plots: bool = True
    validation_events: int = Field(2000, ge=10, description="held-out events per θ for the log r MSE")


class ExecutionSpec(_Strict):
    """Where and in how many pieces the stages run. Only ``chunks`` changes results (each chunk has its own
    seed); the rest says where tasks run, and the command line (``--workers``, ``--scheduler``, ``--cluster``)
    overrides it."""

    chunks: int = Field(1, ge=1, description="simulation tasks (chunk k uses seed + 100 k); merged in order")
    workers: int | None = Field(None, ge=1, description="local Dask workers (processes); none: in-process")
    scheduler: str | None = Field(None, description="address of a running Dask scheduler, e.g. tcp://host:8786")
    cluster: Literal["htcondor", "slurm"] | None = Field(None, description="start a batch cluster with dask-jobqueue")
    jobs: int = Field(2, ge=1, description="batch jobs (one worker each) for cluster")
    jobqueue: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of dask_jobqueue's "
                                     "HTCondorCluster / SLURMCluster, e.g. {cores: 1, memory: 4GB, disk: 4GB}")


class RunSpec(_Strict):
    """A complete run: simulate → train → infer → report."""

    name: str = "run"
    simulator: SimulatorSpec = Field(default_factory=SimulatorSpec)
    data: DataSpec = Field(default_factory=DataSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    inference: InferenceSpec = Field(default_factory=InferenceSpec)
    report: ReportSpec = Field(default_factory=ReportSpec)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key"
    return f"{where}: {error['msg']} (got {error.get('input')!r})"


def parse_spec(data: Any, source: str = "spec") -> RunSpec:
    """Validate a mapping as a :class:`RunSpec`; raise :class:`SpecError` listing every problem by key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    try:
        return RunSpec.model_validate(data)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(e) for e in exc.errors())
        raise SpecError(f"{source}: invalid spec\n  {problems}") from None


def load_spec(path: str | os.PathLike[str]) -> RunSpec:
    """Read and validate a YAML spec file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such spec file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({exc})") from None
    return parse_spec(data, source=str(path))


#: Execution settings that say where tasks run, not what they compute: left out of the spec hash.
PLACEMENT_KEYS = ("workers", "scheduler", "cluster", "jobs", "jobqueue")


def spec_hash(spec: RunSpec) -> str:
    """SHA-256 of the canonical JSON of the validated spec (defaults filled in), without the placement
    settings of ``execution`` (the same analysis run elsewhere has the same hash)."""
    document = spec.model_dump(mode="json")
    for key in PLACEMENT_KEYS:
        document["execution"].pop(key, None)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
