"""Accept numpy arrays or tensors at the public surface, and give back the same kind."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from hepsbi.errors import EstimatorError


def to_tensor(value: Any, name: str, columns: int | None = None) -> tuple[Tensor, bool]:
    """``value`` as a float32 2-D tensor (n, columns) and whether it came as numpy."""
    was_numpy = not isinstance(value, Tensor)
    tensor = torch.as_tensor(np.asarray(value) if was_numpy else value).to(torch.float32)
    if tensor.dim() == 1 and columns is not None:
        tensor = tensor.reshape(-1, columns) if columns > 1 else tensor.unsqueeze(1)
    if tensor.dim() != 2:
        raise EstimatorError(f"{name} must have shape (n, {columns}), got {tuple(tensor.shape)}")
    if columns is not None and tensor.shape[1] != columns:
        raise EstimatorError(f"{name} has {tensor.shape[1]} columns, the estimator expects {columns}")
    return tensor, was_numpy


def give_back(value: Tensor, as_numpy: bool) -> Any:
    return value.detach().numpy() if as_numpy else value.detach()
