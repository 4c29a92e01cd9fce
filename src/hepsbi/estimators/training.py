r"""The training loop shared by every estimator.

Validation split, mini-batches drawn from a seeded generator, AdamW, and one of two learning-rate schedules:

- ``cosine`` (default): the rate decays per step from ``learning_rate`` to ``min_learning_rate`` along half a
  cosine over the planned steps, max(epochs · ⌈n_train / batch_size⌉, min_steps), and the *last* weights are
  kept. The validation loss does not stop the loop: on weighted physics samples and joint-ratio targets it
  carries an irreducible noise far larger than the epoch-to-epoch change of the model (Galton board, 10k
  events: the ALICES validation loss stays within 1e-4 of 0.8239 from epoch 15 to 60 while MSE(log r)
  falls from 0.0031 to 0.0016), so choosing the "best" epoch on it picks noise and stops early. Only when
  it ends more than ``overfit_tolerance`` (1 %) above its minimum — overfitting, on small data sets with
  noisy labels — are the weights of its minimum restored.
- ``plateau``: reduce the rate on a validation plateau and stop after ``patience`` epochs without improvement,
  restoring the best epoch's weights (the classic loop; right when the validation loss is precise).

A rich progress bar shows epoch and losses.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import Tensor, nn

from hepsbi.errors import EstimatorError
from hepsbi.estimators.devices import check_device_name

__all__ = ["TrainingConfig", "TrainingHistory", "train", "normalised_weights"]

#: learning-rate schedules (see the module docstring)
SCHEDULES = ("cosine", "plateau")

BatchLoss = Callable[[dict[str, Tensor], bool], tuple[Tensor, dict[str, Tensor]]]


@dataclass
class TrainingConfig:
    """Options of the training loop. The defaults work without tuning on the toys and the physics model.

    Attributes:
        epochs: passes over the training set (``plateau``: the most before early stopping). Default (None):
            ``cosine`` plans max(50, enough for ``min_steps`` steps), ``plateau`` allows 200.
        batch_size: events per gradient step.
        learning_rate: initial AdamW learning rate.
        weight_decay: AdamW weight decay.
        validation_fraction: share of events held out (the validation curve; the ``plateau`` decisions).
        schedule: ``cosine`` (decay per step, keep the last weights) or ``plateau`` (reduce on plateau, stop early,
            keep the best epoch).
        min_steps: with ``epochs`` unset, ``cosine`` runs at least this many gradient steps, so that small data
            sets are not under-trained (2k Galton events: MSE(log r) 0.0055 → 0.0039, mean of 3 seeds).
        overfit_tolerance: ``cosine``: when the last epoch's validation loss exceeds the lowest by more than this
            fraction, the model overfitted (a small data set, noisy labels) and the lowest epoch's weights are
            restored; below it, the difference is the validation loss's own noise (Galton board, 1k events: CARL's
            validation loss ends 8.8 % above its minimum, MSE(log r) 4.0 with the last weights; 10k: ALICE's
            ends 3e-5 above it).
        patience: ``plateau``: epochs without validation improvement before stopping.
        lr_patience, lr_factor: ``plateau``: epochs of plateau before the rate is multiplied by ``lr_factor``.
        min_learning_rate: the floor of both schedules.
        seed: seeds the initial weights, the split and the batch order.
        progress: show a progress bar.
        device: where the network trains: ``cpu`` (default), ``cuda``, ``cuda:N`` or ``auto`` (CUDA when present;
            :mod:`hepsbi.estimators.devices`). The training set is moved there once; the split and the batch order
            are drawn on the CPU, so they are the same on every device.
    """

    epochs: int | None = None
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    validation_fraction: float = 0.2
    schedule: str = "cosine"
    min_steps: int = 4000
    overfit_tolerance: float = 0.01
    patience: int = 15
    lr_patience: int = 4
    lr_factor: float = 0.5
    min_learning_rate: float = 1e-5
    seed: int = 0
    progress: bool = True
    device: str = "cpu"

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs is None or self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "learning_rate": self.learning_rate > 0,
            "weight_decay": self.weight_decay >= 0,
            "validation_fraction": 0.0 <= self.validation_fraction < 1.0,
            "patience": self.patience >= 1,
            "lr_patience": self.lr_patience >= 0,
            "lr_factor": 0.0 < self.lr_factor <= 1.0,
            "schedule": self.schedule in SCHEDULES,
            "min_steps": self.min_steps >= 0,
            "overfit_tolerance": self.overfit_tolerance >= 0,
        }
        for key, ok in checks.items():
            if not ok:
                raise EstimatorError(f"training option {key} has an invalid value {getattr(self, key)!r}")
        check_device_name(self.device, "training option device")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingHistory:
    """Per-epoch losses and what the loop decided: ``best_epoch`` is the epoch whose weights were kept (the last
    one for ``cosine``), ``stopped_early`` whether ``plateau`` stopped before ``epochs``; ``train_parts`` and
    ``val_parts`` the loss's terms per epoch (e.g. ALICES' ``ratio`` and ``score``, the latter before α)."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_parts: dict[str, list[float]] = field(default_factory=dict)
    val_parts: dict[str, list[float]] = field(default_factory=dict)
    learning_rate: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    samples_per_second: float = 0.0

    @property
    def kept_val_loss(self) -> float:
        """The validation loss of the kept weights (epoch ``best_epoch``); the training loss without a validation
        share."""
        if not self.val_loss:
            raise EstimatorError("no training history: fit the estimator first")
        return self.val_loss[max(self.best_epoch, 1) - 1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalised_weights(weights: Tensor) -> Tensor:
    """Scale weights to mean 1 over the data set, keeping signs. Raises if the sum is not positive."""
    total = weights.sum()
    if not torch.isfinite(total) or total <= 0:
        raise EstimatorError(f"the sum of event weights must be positive and finite (got {total.item():g})")
    return weights * (weights.numel() / total)


def _batches(n: int, size: int, generator: torch.Generator | None, device: torch.device) -> list[Tensor]:
    """Row indices of the mini-batches, on ``device``: a permutation drawn on the CPU from ``generator`` (the same
    on every device), or in order without one."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return list(order.to(device).split(size))


def train(
    model: nn.Module,
    batch_loss: BatchLoss,
    tensors: dict[str, Tensor],
    config: TrainingConfig,
    description: str = "training",
) -> TrainingHistory:
    r"""Minimise ``batch_loss`` over ``tensors``; ``model`` is left at its last (``cosine``) or best validation
    (``plateau``) epoch, ``history.best_epoch``.

    Arguments:
        model: the module whose parameters are trained.
        batch_loss: ``(batch, training) -> (loss, parts)``; ``batch`` maps the keys of ``tensors`` to rows.
        tensors: columns of equal length n, e.g. ``{"x": (n, d), "theta": (n, p), "weights": (n,), ...}``.
        config: loop options.
        description: label of the progress bar.
    """
    n = next(iter(tensors.values())).shape[0]
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(config.seed)  # on the CPU: the same split and batches on every device
    perm = torch.randperm(n, generator=gen).to(device)
    n_val = int(round(config.validation_fraction * n)) if config.validation_fraction > 0 else 0
    if n_val and n - n_val < 1:
        raise EstimatorError(f"too few events ({n}) for validation_fraction {config.validation_fraction}")
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    tensors = {k: v.to(device) for k, v in tensors.items()}  # once: batches are then cut where the model is
    train_set = {k: v[train_idx] for k, v in tensors.items()}
    val_set = {k: v[val_idx] for k, v in tensors.items()}

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil((n - n_val) / config.batch_size)
    cosine = config.schedule == "cosine"
    epochs = config.epochs or (max(50, math.ceil(config.min_steps / steps_per_epoch)) if cosine else 200)
    decay = _cosine(optimizer, epochs * steps_per_epoch, config) if cosine else None
    plateau = None if cosine else torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_learning_rate)
    history = TrainingHistory()
    best_loss, best_state, since_best, best_epoch = float("inf"), {}, 0, 0
    start = time.perf_counter()
    samples = 0
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs  {task.fields[losses]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, disable=not config.progress, transient=False) as bar:
        task = bar.add_task(description, total=epochs, losses="")
        for epoch in range(epochs):
            model.train()
            # sums stay on the device (no synchronisation per step); read once per epoch
            total, count = torch.zeros((), dtype=torch.float64, device=device), 0
            part_sums: dict[str, Tensor] = {}
            for idx in _batches(n - n_val, config.batch_size, gen, device):
                batch = {k: v[idx] for k, v in train_set.items()}
                loss, parts = batch_loss(batch, True)
                for key, value in parts.items():
                    part_sums[key] = part_sums.get(key, 0.0) + value.detach().double() * len(idx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if decay is not None:
                    decay.step()
                total += loss.detach().double() * len(idx)
                count += len(idx)
            if not torch.isfinite(total):
                raise EstimatorError(f"{description}: the loss became {total.item()} in epoch {epoch + 1}; "
                                     "try a smaller learning_rate")
            samples += count
            history.train_loss.append(total.item() / count)
            for key, summed in part_sums.items():
                history.train_parts.setdefault(key, []).append(float(summed) / count)
            if n_val:
                monitor, val_parts = _evaluate(model, batch_loss, val_set, config.batch_size * 16)
                for key, mean in val_parts.items():
                    history.val_parts.setdefault(key, []).append(mean)
            else:
                monitor = history.train_loss[-1]
            history.val_loss.append(monitor)
            history.learning_rate.append(optimizer.param_groups[0]["lr"])
            if plateau is not None:
                plateau.step(monitor)
            if epoch == 0 or monitor < best_loss - 1e-7 * abs(best_loss):
                best_loss, best_state, since_best, best_epoch = monitor, copy.deepcopy(model.state_dict()), 0, epoch + 1
            else:
                since_best += 1
            bar.update(task, advance=1, losses=f"train {history.train_loss[-1]:.5g}  val {monitor:.5g}")
            if not cosine and since_best >= config.patience:
                history.stopped_early = True
                break
    overfitted = history.val_loss[-1] > best_loss + config.overfit_tolerance * abs(best_loss)
    if not cosine or overfitted:
        model.load_state_dict(best_state)
        history.best_epoch = best_epoch
    else:
        history.best_epoch = len(history.train_loss)  # the last weights are kept
    model.eval()
    history.seconds = time.perf_counter() - start
    history.samples_per_second = samples / history.seconds if history.seconds > 0 else 0.0
    return history


def _cosine(optimizer: torch.optim.Optimizer, steps: int, config: TrainingConfig) -> torch.optim.lr_scheduler.LambdaLR:
    r"""Per-step factor of the learning rate: f(k) = φ + (1 − φ) · ½ (1 + cos(π k / K)), K = ``steps``,
    φ = min_learning_rate / learning_rate."""
    floor = min(config.min_learning_rate / config.learning_rate, 1.0)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(k, steps) / steps)))


def _evaluate(model: nn.Module, batch_loss: BatchLoss, tensors: dict[str, Tensor], batch_size: int
              ) -> tuple[float, dict[str, float]]:
    """The mean loss over ``tensors`` and the mean of each of its parts."""
    model.eval()
    first = next(iter(tensors.values()))
    n = first.shape[0]
    total, part_sums = torch.zeros((), dtype=torch.float64, device=first.device), dict[str, Tensor]()
    for idx in _batches(n, batch_size, None, first.device):
        loss, parts = batch_loss({k: v[idx] for k, v in tensors.items()}, False)
        total += loss.detach().double() * len(idx)
        for key, value in parts.items():
            part_sums[key] = part_sums.get(key, 0.0) + value.detach().double() * len(idx)
    return total.item() / n, {key: float(value) / n for key, value in part_sums.items()}
