"""Simulators by name, for specs: the built-in toys, or any class given as ``"package.module:Class"``."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from hepsbi.errors import SimulatorError
from hepsbi.simulators.protocol import Simulator, check_simulator
from hepsbi.simulators.toys import GaltonBoard, GaussianLatent, MultiParameterGaussian

__all__ = ["BUILTIN", "build_simulator"]

BUILTIN: dict[str, type] = {
    "gaussian": GaussianLatent,
    "galton": GaltonBoard,
    "multi_gaussian": MultiParameterGaussian,
}


def _physics(name: str) -> type | None:
    # Imported lazily: the physics stack (Pythia, fastjet) is not needed for the toys.
    if name == "drell_yan":
        from hepsbi.physics.drell_yan import DrellYanContact

        return DrellYanContact
    return None


def _resolve(name: str) -> type:
    if name in BUILTIN:
        return BUILTIN[name]
    physics = _physics(name)
    if physics is not None:
        return physics
    if ":" not in name:
        raise SimulatorError(
            f"unknown simulator {name!r}; built-in: {sorted(BUILTIN) + ['drell_yan']}, or give 'package.module:Class'"
        )
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SimulatorError(f"cannot import simulator module {module_name!r}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise SimulatorError(f"module {module_name!r} has no attribute {attr!r}") from None


def build_simulator(name: str, options: Mapping[str, Any] | None = None) -> Simulator:
    """Instantiate simulator ``name`` with keyword ``options``; unknown options are an error naming them."""
    cls = _resolve(name)
    options = dict(options or {})
    params = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            raise SimulatorError(f"simulator {name!r} has no option(s) {unknown}; it takes {sorted(params)}")
    try:
        sim = cls(**options)
    except (TypeError, ValueError) as exc:
        raise SimulatorError(f"simulator {name!r} rejected its options {options}: {exc}") from None
    return check_simulator(sim)
