r"""Which device the networks train and evaluate on: ``cpu`` (the default), ``cuda`` / ``cuda:N``, or ``auto``
(the first CUDA device when torch sees one, else the CPU).

The estimators keep their inputs' kind and place at the surface: numpy arrays in, numpy arrays out; a tensor in,
a tensor on the same device out. Only the network runs on the chosen device; inference (fits, scans, Fisher
information) stays in float64 on the CPU, where each θ costs one network pass per event batch. Results on a GPU
agree with the CPU's to float32 rounding (~1e-6 relative in log r̂), not bit for bit.
"""

from __future__ import annotations

import re

import torch

from hepsbi.errors import EstimatorError

__all__ = ["DEVICE_PATTERN", "check_device_name", "resolve_device"]

#: the device names a spec or an option may give
DEVICE_PATTERN = r"^(cpu|auto|cuda(:[0-9]+)?)$"


def check_device_name(name: str, key: str = "device") -> str:
    """``name`` if it is a device name hepsbi knows (:data:`DEVICE_PATTERN`), else an :class:`EstimatorError`
    naming ``key``; whether the device is present is checked when it is used (:func:`resolve_device`)."""
    if not isinstance(name, str) or not re.match(DEVICE_PATTERN, name):
        raise EstimatorError(f"{key} must be cpu, cuda, cuda:N or auto (got {name!r})")
    return name


def resolve_device(name: str | torch.device, key: str = "device") -> torch.device:
    """The torch device for ``name``: ``auto`` is ``cuda`` when ``torch.cuda.is_available()``, else ``cpu``. A CUDA
    device that is not there is an :class:`EstimatorError` naming ``key`` and what torch sees."""
    if isinstance(name, torch.device):
        name = str(name)
    check_device_name(name, key)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise EstimatorError(f"{key} is {name!r}, but torch sees no CUDA device (torch {torch.__version__}, "
                                 f"{build}); use cpu or auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise EstimatorError(f"{key} is {name!r}, but torch sees {count} CUDA device(s) (cuda:0…cuda:{count - 1})")
    return device
