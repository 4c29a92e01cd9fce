r"""The estimator contract: what every kind of estimator provides, and the part they share.

An :class:`Estimator` is configured by keyword options, trained by :meth:`~Estimator.fit` on
:class:`~hepsbi.data.TrainingData`, and saved to / loaded from a directory (``weights.pt`` + ``estimator.json``,
:mod:`hepsbi.estimators.persistence`). Its network is built from its options by :meth:`~Estimator.network`, once
when it is trained and again when it is loaded, so a saved estimator needs nothing but its directory — and, where
one was plugged in, its ``embedding`` module.

Kinds whose output is a likelihood ratio (:class:`LogRatioEstimator`) offer the one door into inference,
``log_ratio_of_theta(x)``: θ ↦ log r̂(x_i | θ, θ_ref), (n,), differentiable (:mod:`hepsbi.inference.ratios`).

Adding a kind = one module with a subclass (``kind``, ``OPTIONS``, :meth:`~Estimator.network`, and the four
steps of :meth:`~Estimator.fit`: ``check``, ``tensors``, ``prepare``, ``batch_loss``) and its registration in
:mod:`hepsbi.estimators.registry`.
"""

from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from hepsbi.data.training import TrainingData
from hepsbi.errors import EstimatorError, ExtrapolationWarning
from hepsbi.estimators._arrays import to_tensor
from hepsbi.estimators.devices import resolve_device
from hepsbi.estimators.persistence import check_features, load_weights, read_metadata, save_estimator
from hepsbi.estimators.training import TrainingConfig, TrainingHistory, train
from hepsbi.space import ParameterSpace

__all__ = ["Estimator", "LogRatioEstimator", "layer_widths", "training_config"]

E = TypeVar("E", bound="Estimator")


def layer_widths(hidden: Sequence[int]) -> tuple[int, ...]:
    """``hidden`` as a tuple of ints, or an :class:`EstimatorError` unless it lists positive layer widths."""
    widths = tuple(int(h) for h in hidden)
    if not widths or min(widths) < 1:
        raise EstimatorError(f"hidden must list positive layer widths (got {list(hidden)})")
    return widths


def training_config(config: TrainingConfig | None, options: dict[str, Any]) -> TrainingConfig:
    """``config`` (default :class:`TrainingConfig`) with the fields in ``options`` replaced; an unknown option
    is an :class:`EstimatorError` naming it."""
    base = (config or TrainingConfig()).to_dict()
    unknown = set(options) - set(base)
    if unknown:
        raise EstimatorError(f"unknown training option(s) {sorted(unknown)}; known: {sorted(base)}")
    base.update(options)
    return TrainingConfig(**base)


class Estimator(ABC):
    r"""Base of every estimator kind.

    Arguments:
        hidden: hidden layer widths of the network.
        embedding: a module that maps standardised x (n, \*shape_x) to features (n, d_e) before the network
            (an identity — the MLP sees x itself — by default). Give it ``out_features`` (d_e) or it is found
            by one forward pass. Its weights are saved with the estimator; pass the same module (untrained) to
            :meth:`load`.
        config: a :class:`TrainingConfig`; keyword ``options`` override its fields (``epochs=50``, ``seed=1``).

    Attributes:
        kind: the name in saved files and in :data:`hepsbi.estimators.registry.KINDS`.
        OPTIONS: constructor arguments saved in ``estimator.json`` (enough to rebuild the network).
        model: the trained network (None before :meth:`fit` / :meth:`load`).
        space, features, history: the parameter space and observable names it was trained on; the training curve.
        theta_range: (low, high), each (p,): the smallest and largest θ of the training data per parameter; a
            θ-conditioned network evaluated beyond it warns (:class:`~hepsbi.errors.ExtrapolationWarning`).
    """

    kind: ClassVar[str]
    OPTIONS: ClassVar[tuple[str, ...]] = ("hidden",)
    #: the options that shape the network without changing what the loss measures: estimators of one kind that differ
    #: only in these (and in training options other than the seed and the validation share) have comparable
    #: validation losses (:func:`~hepsbi.estimators.selection.select_by_validation`)
    ARCHITECTURE: ClassVar[tuple[str, ...]] = ("hidden",)

    def __init__(self, hidden: Sequence[int] = (64, 64, 64), embedding: nn.Module | None = None,
                 config: TrainingConfig | None = None, **options: Any):
        self.hidden = layer_widths(hidden)
        self.embedding = embedding
        self.config = training_config(config, options)
        self.model: nn.Module | None = None
        self.space: ParameterSpace | None = None
        self.features: list[str] = []
        self.history = TrainingHistory()
        self.theta_range: tuple[list[float], list[float]] | None = None
        #: what the loss keeps from the training set beside the network (e.g. the score term's per-component
        #: scales), set in :meth:`prepare`; :meth:`to` moves them with the network
        self.loss_scales: dict[str, Tensor] = {}
        self._warned_outside = False

    # -- what a kind implements -------------------------------------------------------------------------------
    @abstractmethod
    def network(self, x_shape: tuple[int, ...], space: ParameterSpace) -> nn.Module:
        """The untrained network for events of shape ``x_shape`` (without the batch axis) and ``space``."""

    @abstractmethod
    def check(self, data: TrainingData) -> None:
        """Raise :class:`EstimatorError` when ``data`` lacks what this kind's loss needs."""

    @abstractmethod
    def tensors(self, data: TrainingData) -> dict[str, Tensor]:
        """The float32 training columns of ``data`` that :meth:`batch_loss` reads, each with n rows."""

    @abstractmethod
    def prepare(self, tensors: dict[str, Tensor]) -> None:
        """Set what the network and the loss take from the whole training set (input scalings)."""

    @abstractmethod
    def batch_loss(self, batch: dict[str, Tensor], training: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss of a batch of :meth:`tensors` rows and its parts (detached, for monitoring)."""

    @property
    def description(self) -> str:
        """The label of the progress bar."""
        return self.kind

    def initialise(self: E, data: TrainingData) -> E:
        """Check ``data``, build the network with the training seed and prepare it on ``data`` (no training)."""
        self._initialise(data)
        return self

    def _initialise(self, data: TrainingData) -> dict[str, Tensor]:
        """:meth:`initialise`; returns the tensors the network was prepared on."""
        self._check(data)
        self._start(data)
        tensors = self.tensors(data)
        self.prepare(tensors)
        return tensors

    def loss(self, data: TrainingData) -> Tensor:
        """The training loss on all of ``data`` (after :meth:`initialise` or :meth:`fit`), differentiable in the
        network's parameters."""
        self._require_model()
        self._check(data)
        return self.batch_loss({k: v.to(self.device) for k, v in self.tensors(data).items()}, True)[0]

    def _check(self, data: TrainingData) -> None:
        if not isinstance(data, TrainingData):
            raise EstimatorError(f"fit expects TrainingData, got {type(data).__name__}")
        self.check(data)

    def fit(self: E, data: TrainingData) -> E:
        """Train on ``data`` with the shared loop (:func:`~hepsbi.estimators.training.train`) on the device of the
        ``device`` option; returns self, its network left on that device."""
        device = resolve_device(self.config.device, "training option device")  # before any work: a missing GPU
        tensors = self._initialise(data)
        self.to(device)
        self.history = train(self._require_model(), self.batch_loss, tensors, self.config, description=self.description)
        return self

    @property
    def device(self) -> torch.device:
        """Where the network is (and evaluates): the CPU before training and after :meth:`load`, unless moved."""
        model = self.model
        parameter = next(model.parameters(), None) if model is not None else None
        return parameter.device if parameter is not None else torch.device("cpu")

    def to(self: E, device: str | torch.device) -> E:
        """Move the network, and what the loss keeps from the training set, to ``device`` (``cpu``, ``cuda``,
        ``cuda:N``, ``auto``: :func:`~hepsbi.estimators.devices.resolve_device`); returns self. Inputs and outputs
        stay where the caller has them (numpy in, numpy out; a tensor comes back on the device it came from)."""
        where = resolve_device(device)
        self._require_model().to(where)
        self.loss_scales = {name: scale.to(where) for name, scale in self.loss_scales.items()}
        return self

    def metadata(self) -> dict[str, Any]:
        """What a kind adds to ``estimator.json`` beyond its options (e.g. the input scaling)."""
        return {}

    def restore(self, metadata: dict[str, Any]) -> None:
        """Read back what :meth:`metadata` wrote (after the network is built, before its weights load); by
        default there is nothing to read (the input scaling is part of the weights)."""
        return None

    # -- shared ---------------------------------------------------------------------------------------------------
    def _start(self, data: TrainingData) -> None:
        """Remember the space and features of ``data`` and build the network with the training seed."""
        self.space, self.features = data.space, list(data.observable_names)
        theta = data.theta.to(torch.float64)
        self.theta_range = (theta.min(dim=0).values.tolist(), theta.max(dim=0).values.tolist())
        self._warned_outside = False
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self.model = self.network(tuple(data.x.shape[1:]), data.space)

    def check_theta(self, theta: Tensor) -> None:
        """Warn once per estimator (:class:`~hepsbi.errors.ExtrapolationWarning`, naming parameter, value and
        range) when a θ (p,) or (m, p) lies outside :attr:`theta_range` by more than 1 % of its width: a
        θ-conditioned network has never seen such θ."""
        if self.theta_range is None or self._warned_outside or self.space is None:
            return
        values = torch.as_tensor(theta, dtype=torch.float64).detach().cpu().reshape(-1, self.space.dim)  # θ may be on a GPU
        low, high = (torch.tensor(v, dtype=torch.float64) for v in self.theta_range)
        slack = 1e-2 * (high - low).clamp_min(1e-12)
        below, above = values.min(dim=0).values < low - slack, values.max(dim=0).values > high + slack
        if bool((below | above).any()):
            j = int(torch.nonzero(below | above)[0, 0])
            value = float(values[:, j].min() if below[j] else values[:, j].max())
            self._warned_outside = True
            warnings.warn(ExtrapolationWarning(
                f"{getattr(self, 'method', self.kind)}: evaluated at {self.space.names[j]} = {value:.4g}, outside the range it was trained on "
                f"[{float(low[j]):.4g}, {float(high[j]):.4g}]: the result there is an extrapolation"), stacklevel=3)

    def _require_model(self) -> nn.Module:
        if self.model is None or self.space is None:
            raise EstimatorError("the estimator is not trained: call fit() or load() first")
        return self.model

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write weights and metadata into directory ``path``."""
        model = self._require_model()
        assert self.space is not None
        meta: dict[str, Any] = {"kind": self.kind}
        meta |= {name: _plain(getattr(self, name)) for name in self.OPTIONS}
        meta |= {
            "features": self.features,
            "x_shape": list(self._x_shape),
            "embedding": None if self.embedding is None else type(self.embedding).__qualname__,
            "parameter_space": self.space.to_dict(),
            "theta_range": None if self.theta_range is None else [list(v) for v in self.theta_range],
            **self.metadata(),
            "training": self.config.to_dict(),
            "history": self.history.to_dict(),
        }
        return save_estimator(path, model, meta)

    @property
    def _x_shape(self) -> tuple[int, ...]:
        shape = getattr(self.model, "x_shape", None)
        return tuple(shape) if shape is not None else (len(self.features),)

    @classmethod
    def load(cls: type[E], path: str | os.PathLike[str], features: Sequence[str] | None = None,
             embedding: nn.Module | None = None, device: str | torch.device = "cpu") -> E:
        """Load an estimator saved by :meth:`save` onto ``device`` (the CPU by default, wherever it was trained).
        With ``features``, check they match the trained ones; an estimator trained with an embedding needs the same
        (untrained) module as ``embedding``."""
        meta = read_metadata(path, cls.kind)
        check_features(meta["features"], list(features) if features is not None else None, str(path))
        if meta.get("embedding") and embedding is None:
            raise EstimatorError(f"{path}: trained with the embedding {meta['embedding']!r}; pass an instance as "
                                 "load(..., embedding=...)")
        options = {name: meta[name] for name in cls.OPTIONS if name in meta}
        est = cls(**options, embedding=embedding, config=TrainingConfig(**meta["training"]))
        est.space = ParameterSpace.from_dict(meta["parameter_space"])
        est.features = list(meta["features"])
        if meta.get("theta_range"):
            low, high = meta["theta_range"]
            est.theta_range = (list(low), list(high))
        x_shape = tuple(meta.get("x_shape") or (len(est.features),))
        est.model = est.network(x_shape, est.space)
        est.restore(meta)
        load_weights(path, est.model)
        est.model.eval()
        est.history = TrainingHistory(**meta.get("history", {}))
        return est.to(device)


class LogRatioEstimator(Estimator):
    """An estimator of log r(x | θ, θ_ref): the kinds inference can use (:mod:`hepsbi.inference.ratios`).

    Attributes:
        method: the registry method that trained it (results and ensembles name it).
    """

    method: str

    @property
    def description(self) -> str:
        """The progress bar's label: the method."""
        return self.method

    @abstractmethod
    def score(self, x: Any, theta: Any) -> Any:
        """t̂(x | θ) = ∇_θ log r̂(x | θ, θ_ref), (n, p)."""

    @abstractmethod
    def log_ratio_of_theta(self, x: Any) -> Callable[[Tensor], Tensor]:
        """For fixed events x (n, d_x): θ (p,) ↦ log r̂(x_i | θ, θ_ref) (n,), float64, differentiable in θ."""

    @abstractmethod
    def log_ratio(self, x: Any, theta: Any) -> Any:
        """log r̂(x | θ, θ_ref), (n,), for θ (p,) or one per event (n, p); same kind (tensor/array) as x."""

    def _theta_rows(self, theta: Any, n: int) -> Tensor:
        """θ (p,) or (n, p) as n float32 rows on the network's device, checked against the trained range."""
        self._require_model()
        assert self.space is not None
        th = torch.as_tensor(theta, dtype=torch.float32)
        if th.dim() <= 1:
            th = th.reshape(1, -1).expand(n, -1)
        if th.shape != (n, self.space.dim):
            raise EstimatorError(
                f"theta must have shape ({self.space.dim},) or ({n}, {self.space.dim}) for parameters "
                f"{list(self.space.names)}, got {tuple(th.shape)}"
            )
        self.check_theta(th)
        return th.to(self.device)

    def _inputs(self, x: Any, theta: Any) -> tuple[Tensor, Tensor, bool]:
        """x (n, d_x) and θ (n, p) as float32 tensors on the network's device (θ checked against the trained range),
        and whether x came as numpy."""
        self._require_model()
        xt, as_numpy = to_tensor(x, "x", self._x_shape)
        return xt.to(self.device), self._theta_rows(theta, xt.shape[0]), as_numpy


def _plain(option: Any) -> Any:
    """An option as JSON keeps it: tuples (e.g. hidden layer widths) as lists."""
    return list(option) if isinstance(option, tuple) else option
