"""Accept numpy arrays or tensors at the public surface, and give back the same kind."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hepsbi.errors import EstimatorError

__all__ = ["EVAL_BATCH", "give_back", "place", "to_tensor"]

#: events per network evaluation outside training (bounds the memory of a pass over a large pool)
EVAL_BATCH = 65536


def to_tensor(value: Any, name: str, shape: int | Sequence[int] | None = None) -> tuple[Tensor, bool]:
    """``value`` as a float32 tensor (n, \\*shape) and whether it came as numpy. ``shape`` is the shape of one
    event (an int: the number of columns); a 1-D value of a one-column estimator is read as a column."""
    was_numpy = not isinstance(value, Tensor)
    tensor = torch.as_tensor(np.asarray(value) if was_numpy else value).to(torch.float32)
    event = (shape,) if isinstance(shape, int) else (tuple(shape) if shape is not None else None)
    if tensor.dim() == 1 and event is not None and len(event) == 1:
        tensor = tensor.reshape(-1, event[0]) if event[0] > 1 else tensor.unsqueeze(1)
    if event is None:
        if tensor.dim() < 2:
            raise EstimatorError(f"{name} must have shape (n, d), got {tuple(tensor.shape)}")
    elif tuple(tensor.shape[1:]) != event:
        if len(event) == 1 and tensor.dim() == 2:
            raise EstimatorError(f"{name} has {tensor.shape[1]} columns, the estimator expects {event[0]}")
        raise EstimatorError(f"{name} must have shape (n, {', '.join(map(str, event))}), got {tuple(tensor.shape)}")
    return tensor, was_numpy


def give_back(value: Tensor, as_numpy: bool, device: torch.device | None = None) -> Any:
    """``value`` detached, as a numpy array when the input was one, else a tensor on ``device`` (the input's; where
    ``value`` is by default)."""
    value = value.detach()
    if as_numpy:
        return value.cpu().numpy()
    return value if device is None else value.to(device)


def place(value: Any) -> torch.device:
    """Where results for input ``value`` go: a tensor's device, the CPU for anything else."""
    return value.device if isinstance(value, Tensor) else torch.device("cpu")
