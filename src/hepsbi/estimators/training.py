r"""The training loop shared by every estimator.

Validation split, mini-batches drawn from a seeded generator, Adam with a reduce-on-plateau learning-rate
schedule, early stopping that restores the best weights, and a rich progress bar with epoch and losses.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import Tensor, nn

from hepsbi.errors import EstimatorError

__all__ = ["TrainingConfig", "TrainingHistory", "train", "normalised_weights"]

BatchLoss = Callable[[dict[str, Tensor], bool], tuple[Tensor, dict[str, Tensor]]]


@dataclass
class TrainingConfig:
    """Options of the training loop. The defaults work without tuning on the toys and the physics model.

    Attributes:
        epochs: maximum number of passes over the training set.
        batch_size: events per gradient step.
        learning_rate: initial Adam learning rate.
        weight_decay: AdamW weight decay.
        validation_fraction: share of events held out for early stopping and the schedule.
        patience: epochs without validation improvement before stopping.
        lr_patience, lr_factor, min_learning_rate: reduce-on-plateau schedule.
        seed: seeds the initial weights, the split and the batch order.
        progress: show a progress bar.
    """

    epochs: int = 200
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    validation_fraction: float = 0.2
    patience: int = 15
    lr_patience: int = 4
    lr_factor: float = 0.5
    min_learning_rate: float = 1e-5
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "learning_rate": self.learning_rate > 0,
            "weight_decay": self.weight_decay >= 0,
            "validation_fraction": 0.0 <= self.validation_fraction < 1.0,
            "patience": self.patience >= 1,
            "lr_patience": self.lr_patience >= 0,
            "lr_factor": 0.0 < self.lr_factor <= 1.0,
        }
        for key, ok in checks.items():
            if not ok:
                raise EstimatorError(f"training option {key} has an invalid value {getattr(self, key)!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingHistory:
    """Per-epoch losses and what the loop decided."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    samples_per_second: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalised_weights(weights: Tensor) -> Tensor:
    """Scale weights to mean 1 over the data set, keeping signs. Raises if the sum is not positive."""
    total = weights.sum()
    if not torch.isfinite(total) or total <= 0:
        raise EstimatorError(f"the sum of event weights must be positive and finite (got {total.item():g})")
    return weights * (weights.numel() / total)


def _batches(n: int, size: int, generator: torch.Generator | None) -> list[Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return list(order.split(size))


def train(
    model: nn.Module,
    batch_loss: BatchLoss,
    tensors: dict[str, Tensor],
    config: TrainingConfig,
    description: str = "training",
) -> TrainingHistory:
    r"""Minimise ``batch_loss`` over ``tensors`` and leave ``model`` at its best validation epoch.

    Arguments:
        model: the module whose parameters are trained.
        batch_loss: ``(batch, training) -> (loss, parts)``; ``batch`` maps the keys of ``tensors`` to rows.
        tensors: columns of equal length n, e.g. ``{"x": (n, d), "theta": (n, p), "weights": (n,), ...}``.
        config: loop options.
        description: label of the progress bar.
    """
    n = next(iter(tensors.values())).shape[0]
    gen = torch.Generator().manual_seed(config.seed)
    perm = torch.randperm(n, generator=gen)
    n_val = int(round(config.validation_fraction * n)) if config.validation_fraction > 0 else 0
    if n_val and n - n_val < 1:
        raise EstimatorError(f"too few events ({n}) for validation_fraction {config.validation_fraction}")
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    train_set = {k: v[train_idx] for k, v in tensors.items()}
    val_set = {k: v[val_idx] for k, v in tensors.items()}

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_learning_rate
    )
    history = TrainingHistory()
    best_loss, best_state, since_best = float("inf"), copy.deepcopy(model.state_dict()), 0
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
        task = bar.add_task(description, total=config.epochs, losses="")
        for epoch in range(config.epochs):
            model.train()
            total, count = 0.0, 0
            for idx in _batches(n - n_val, config.batch_size, gen):
                batch = {k: v[idx] for k, v in train_set.items()}
                loss, _ = batch_loss(batch, True)
                if not torch.isfinite(loss):
                    raise EstimatorError(f"{description}: the loss became {loss.item()} at epoch {epoch + 1}; "
                                         "try a smaller learning_rate")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
                count += len(idx)
            samples += count
            history.train_loss.append(total / count)
            monitor = _evaluate(model, batch_loss, val_set, config.batch_size * 16) if n_val else history.train_loss[-1]
            history.val_loss.append(monitor)
            history.learning_rate.append(optimizer.param_groups[0]["lr"])
            scheduler.step(monitor)
            if epoch == 0 or monitor < best_loss - 1e-7 * abs(best_loss):
                best_loss, best_state, since_best = monitor, copy.deepcopy(model.state_dict()), 0
                history.best_epoch = epoch + 1
            else:
                since_best += 1
            bar.update(task, advance=1, losses=f"train {history.train_loss[-1]:.5g}  val {monitor:.5g}")
            if since_best >= config.patience:
                history.stopped_early = True
                break
    model.load_state_dict(best_state)
    model.eval()
    history.seconds = time.perf_counter() - start
    history.samples_per_second = samples / history.seconds if history.seconds > 0 else 0.0
    return history


def _evaluate(model: nn.Module, batch_loss: BatchLoss, tensors: dict[str, Tensor], batch_size: int) -> float:
    model.eval()
    n = next(iter(tensors.values())).shape[0]
    total = 0.0
    for idx in _batches(n, batch_size, None):
        loss, _ = batch_loss({k: v[idx] for k, v in tensors.items()}, False)
        total += loss.item() * len(idx)
    return total / n
