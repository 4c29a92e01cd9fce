"""What every stage of a run builds from the spec: the checked simulator and θ_true, the θ sampler, the dataset
to infer from, the histogram binning, and the outputs of earlier stages loaded from their directories."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hepsbi.data.events import Events
from hepsbi.errors import ParameterError, SimulatorError, SpecError
from hepsbi.estimators.base import LogRatioEstimator
from hepsbi.estimators.ensemble import RatioEnsemble
from hepsbi.estimators.registry import METHODS, load_estimator
from hepsbi.estimators.score import ScoreEstimator
from hepsbi.inference.analysis import PB_PER_FB, Systematic, Tilt, WeightedAnalysis, WeightVariation
from hepsbi.inference.datasets import Dataset, asimov_dataset, observed_dataset, weighted_asimov_dataset
from hepsbi.inference.nuisance import NormSys
from hepsbi.simulators.protocol import Simulator, has_quadratic_morphing, is_weighted
from hepsbi.simulators.registry import build_simulator
from hepsbi.space import BenchmarkSampler, BoxSampler, GridSampler, PriorSampler, ThetaSampler
from hepsbi.workflow.spec import RunSpec

__all__ = ["RESERVED_LABELS", "Training", "inference_dataset", "load_run", "load_stages", "prepare", "theta_sampler",
           "trainings", "weighted_analysis"]

#: labels of the likelihoods a run compares the learned ones with (and of their inference group)
RESERVED_LABELS = frozenset({"exact", "truth", "histogram", "sally", "sally_score", "rate", "comparisons"})


def prepare(spec: RunSpec) -> tuple[Simulator, torch.Tensor]:
    """Build the simulator and the checked θ_true; errors name the spec key."""
    try:
        sim = build_simulator(spec.simulator.name, spec.simulator.options)
    except SimulatorError as exc:
        raise SpecError(f"simulator.{exc.key}: {exc}") from None
    try:
        theta_true = sim.space.point(spec.inference.theta_true, what="inference.theta_true")
        for i, point in enumerate(spec.inference.closure.points if spec.inference.closure else []):
            sim.space.point({**sim.space.as_dict(theta_true), **point}, what=f"inference.closure.points.{i}")
    except ParameterError as exc:
        raise SpecError(str(exc)) from None
    labels = [e.label or e.method for e in spec.training.estimators]
    for i, label in enumerate(labels):
        if labels.index(label) != i:
            raise SpecError(f"training.estimators.{i}.label: duplicate label {label!r}; give each estimator a label")
        if label in RESERVED_LABELS:
            raise SpecError(f"training.estimators.{i}.label: {label!r} names a likelihood the run compares with "
                            f"(reserved: {sorted(RESERVED_LABELS)}); choose another label")
    for i, e in enumerate(spec.training.estimators):
        if "morphing" in METHODS[e.method].needs and not has_quadratic_morphing(sim):
            raise SpecError(f"training.estimators.{i}.method: {e.method!r} needs a weighted simulator whose morphing "
                            f"basis is quadratic in θ (e.g. drell_yan); {spec.simulator.name!r} has none")
    if spec.data.theta_sampler == "benchmarks" and not sim.space.benchmarks:
        raise SpecError("data.theta_sampler: 'benchmarks' needs a simulator whose parameter space defines benchmarks")
    pair = spec.inference.pair
    if pair is not None:
        unknown = [n for n in pair if n not in sim.space.names]
        if unknown or pair[0] == pair[1]:
            raise SpecError(f"inference.pair: two distinct parameters of {list(sim.space.names)} (got {pair})")
        if sim.space.dim <= 2:
            raise SpecError(f"inference.pair: only for more than two parameters; {list(sim.space.names)} are scanned "
                            "on a grid")
    weighted = is_weighted(sim)
    if getattr(sim, "fixed_sample", False):  # its events are those of its files: one pass, no second pool
        if spec.execution.chunks != 1:
            raise SpecError(f"execution.chunks: simulator {spec.simulator.name!r} reads its files in one pass; use 1")
        if spec.inference.held_out_events:
            raise SpecError(f"inference.held_out_events: simulator {spec.simulator.name!r} has no second, independent "
                            "pool (its events are those of its files); remove the key")
    if weighted and spec.inference.luminosity is None:
        raise SpecError("inference.luminosity: required for weighted simulators (fb^-1), e.g. 139")
    if not weighted and (spec.inference.histogram is not None or spec.training.sally is not None):
        raise SpecError("inference.histogram and training.sally need a weighted simulator (e.g. drell_yan)")
    names = list(getattr(sim, "observable_names", []))
    posterior = spec.training.posterior
    if posterior is not None and weighted:
        raise SpecError(f"training.posterior: neural posterior estimation needs an unweighted simulator (one x per "
                        f"simulation, e.g. two_moons); {spec.simulator.name!r} is weighted")
    if posterior is not None and posterior.observation is not None and names and len(posterior.observation) != len(names):
        raise SpecError(f"training.posterior.observation: one value per observable {names} (got "
                        f"{len(posterior.observation)})")
    if spec.data.balance is not None and spec.data.balance not in names:
        raise SpecError(f"data.balance: {spec.data.balance!r} is not an observable of the simulator ({names})")
    systematics = spec.inference.systematics
    if systematics and not weighted:
        raise SpecError("inference.systematics: nuisance parameters need a weighted simulator (e.g. drell_yan)")
    seen = [s.name for s in systematics]
    for i, syst in enumerate(systematics):
        if syst.name in seen[:i] or syst.name in sim.space.names:
            raise SpecError(f"inference.systematics.{i}.name: {syst.name!r} is used twice (names must be unique and "
                            f"differ from the parameters {list(sim.space.names)})")
        if syst.kind == "shape" and syst.observable not in names:
            raise SpecError(f"inference.systematics.{i}.observable: {syst.observable!r} is not an observable of the "
                            f"simulator ({names})")
        variations = list(getattr(sim, "variation_names", []))
        if syst.kind == "weights" and syst.name not in variations:
            raise SpecError(f"inference.systematics.{i}.name: {syst.name!r} is not a weight variation of the simulator "
                            f"({variations or 'it has none'}; name it in the simulator's variations option)")
    if spec.inference.histogram is not None:
        missing = [o for o in spec.inference.histogram.observables if o not in names]
        if missing:
            raise SpecError(f"inference.histogram.observable: {missing[0]!r} is not an observable of the simulator ({names})")
    return sim, theta_true


@dataclass(frozen=True)
class Training:
    """One estimator the spec trains: its stage name, label in results, registry method, the options of its kind
    (training options included), the file of the training stage it learns from, and its ensemble members."""

    stage: str
    label: str
    method: str
    options: dict[str, Any]
    data: str
    members: int = 1


#: the training data without data.balance, for methods that must not be balanced (Method.balance)
UNBALANCED = "training_unbalanced.h5"


def trainings(spec: RunSpec) -> list[Training]:
    """The estimators of ``training.estimators`` (stages ``train_<i>``), then SALLY (``train_sally``, on the local
    data at θ_ref) where the spec asks for it — every one built by :func:`hepsbi.estimators.build_estimator`."""
    out = []
    for i, e in enumerate(spec.training.estimators):
        given = {"alpha": e.alpha, "hidden": e.hidden, "log_r_clip": e.log_r_clip,
                 "scandal_alpha": e.alpha if e.method == "scandal" else None}
        options = {k: v for k, v in given.items() if k in METHODS[e.method].kind.OPTIONS} | e.training_options()
        file = "training.h5" if spec.data.balance is None or METHODS[e.method].balance else UNBALANCED
        out.append(Training(f"train_{i}", e.label or e.method, e.method, options, file, e.ensemble))
    if spec.training.sally is not None:
        cfg = spec.training.sally
        options = {"hidden": cfg.hidden, "seed": cfg.seed} | ({"epochs": cfg.epochs} if cfg.epochs else {})
        out.append(Training("train_sally", "sally", "sally", options, "local.h5"))
    return out


def weighted_analysis(spec: RunSpec, sim: Simulator, theta_true: torch.Tensor) -> WeightedAnalysis:
    """The spec's :class:`~hepsbi.inference.analysis.WeightedAnalysis`: Asimov dataset at θ_true, luminosity,
    Monte Carlo size and seed, and the systematics."""
    inf = spec.inference
    assert inf.luminosity is not None
    systematics: list[Systematic] = [
        NormSys(s.name, s.up, s.down) if s.kind == "norm"  # type: ignore[arg-type]
        else Tilt(s.name, s.observable, s.size) if s.kind == "shape"  # type: ignore[arg-type]
        else WeightVariation(s.name) for s in inf.systematics]
    return WeightedAnalysis(sim, theta_true, inf.luminosity, inf.n_mc, inf.seed, systematics)


def theta_sampler(spec: RunSpec, sim: Simulator, box: tuple[list[float], list[float]] | None = None) -> ThetaSampler:
    """The spec's θ sampler for training data (``data.theta_sampler``), or uniform in ``box`` (low, high) — a
    later training round's focus (``training.rounds``)."""
    if box is not None:
        return BoxSampler(sim.space, tuple(box[0]), tuple(box[1]))
    if spec.data.theta_sampler == "grid":
        return GridSampler(sim.space, spec.data.grid_points)
    if spec.data.theta_sampler == "benchmarks":
        return BenchmarkSampler(sim.space)
    return PriorSampler(sim.space)


#: the held-out pool of ``inference.held_out_events`` uses the simulator's seed plus this
HELD_OUT_SEED_OFFSET = 1_000_003


def held_out_events(spec: RunSpec, sim: Simulator) -> Events | None:
    """A second pool of ``inference.held_out_events`` events generated with the simulator's seed +
    :data:`HELD_OUT_SEED_OFFSET` — events no estimator saw — or None when the spec asks for none (or the simulator
    is not weighted). The ``held_out`` stage makes it once per run."""
    n = spec.inference.held_out_events
    if not n or not is_weighted(sim):
        return None
    held = build_simulator(spec.simulator.name, spec.simulator.options)
    return held.generate(n, seed=int(getattr(sim, "seed", 0)) + HELD_OUT_SEED_OFFSET)  # type: ignore[attr-defined]


def held_out_analysis(spec: RunSpec, theta_true: torch.Tensor, events: Events) -> WeightedAnalysis:
    """The spec's analysis (θ_true, luminosity) on the held-out pool ``events`` (:func:`held_out_events`), every
    event with its own weight."""
    held = build_simulator(spec.simulator.name, spec.simulator.options)
    held.use_events(events)  # type: ignore[attr-defined]
    inf = spec.inference
    assert inf.luminosity is not None
    return WeightedAnalysis(held, theta_true, inf.luminosity, None, inf.seed)


def inference_dataset(spec: RunSpec, sim: Simulator, theta_true: torch.Tensor) -> Dataset:
    """The dataset the run infers from: a weighted Asimov dataset (weighted simulators), else Asimov or observed."""
    inf = spec.inference
    if is_weighted(sim):
        assert inf.luminosity is not None
        return weighted_asimov_dataset(sim, theta_true, inf.luminosity * PB_PER_FB, inf.n_mc, inf.seed)
    if inf.dataset == "asimov":
        return asimov_dataset(sim, theta_true, inf.n_events, inf.n_mc, inf.seed)
    return observed_dataset(sim, theta_true, int(round(inf.n_events)), inf.seed)


def load_stages(sim: Simulator, merged: str, estimators: dict[str, list[str]], sally: str | None,
                device: str = "cpu") -> tuple[Any, dict[str, Any], ScoreEstimator | None]:
    """The pool (made the simulator's, weighted simulators only), the estimators (an ensemble where there are
    several members) and SALLY, from their stage directories, their networks on ``device`` (``execution.device``)."""
    pool = None
    if is_weighted(sim):
        pool = Events.load(Path(merged) / "events.h5")
        sim.use_events(pool)  # type: ignore[attr-defined]
    loaded = {label: _ratio_estimator([Path(d) for d in directories], device)
              for label, directories in estimators.items()}
    return pool, loaded, ScoreEstimator.load(sally, device=device) if sally else None


def _ratio_estimator(directories: list[Path], device: str = "cpu") -> Any:
    """The likelihood-ratio estimator saved in ``directories`` — an ensemble when there are several members — on
    ``device``."""
    members: list[LogRatioEstimator] = []
    for d in directories:
        member = load_estimator(d, device=device)
        if not isinstance(member, LogRatioEstimator):
            raise SpecError(f"{d}: holds a {member.kind}, not a likelihood-ratio estimator")
        members.append(member)
    return members[0] if len(members) == 1 else RatioEnsemble(members)


def published_labels(run_dir: str | Path) -> list[str]:
    """The estimators a finished run published in ``RUN_DIR/models/<label>/`` (SALLY included), sorted."""
    models = Path(run_dir) / "models"
    return sorted(d.name for d in models.iterdir() if (d / "estimator.json").is_file()) if models.is_dir() else []


def published_estimator(run_dir: str | Path, label: str) -> Any:
    """Estimator ``label`` of a finished run, of whatever kind it was saved as: ``models/<label>``, with its
    ``member<m>`` directories an ensemble of likelihood-ratio estimators."""
    directory = Path(run_dir) / "models" / label
    members = [directory, *sorted(directory.glob("member*"))]
    return load_estimator(directory) if len(members) == 1 else _ratio_estimator(members)


def load_run(spec: RunSpec, merged: str, estimators: dict[str, list[str]], sally: str | None
             ) -> tuple[Simulator, torch.Tensor, Any, dict[str, Any], ScoreEstimator | None]:
    """What a task rebuilds from the spec and its input stages: the simulator, θ_true (:func:`prepare`), the
    pool, the estimators and SALLY (:func:`load_stages`)."""
    sim, theta_true = prepare(spec)
    return (sim, theta_true, *load_stages(sim, merged, estimators, sally, spec.execution.device))
