"""Simulators by name, for specs: one table of built-in names, simulators that installed packages declare under
the entry-point group ``hepsbi.simulators``, and any class given as ``"package.module:Class"``.

Entries are import paths, imported on first use: the physics stack (Pythia, fastjet) is loaded only for the
simulators that need it.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from hepsbi.errors import SimulatorError
from hepsbi.simulators.protocol import Simulator, check_simulator, check_weighted_simulator, is_weighted

__all__ = ["SIMULATORS", "ENTRY_POINT_GROUP", "build_simulator", "register_simulator", "simulator_names"]

#: built-in simulators: name → "module:Class"
SIMULATORS: dict[str, str] = {
    "gaussian": "hepsbi.simulators.toys:GaussianLatent",
    "galton": "hepsbi.simulators.toys:GaltonBoard",
    "multi_gaussian": "hepsbi.simulators.toys:MultiParameterGaussian",
    "two_moons": "hepsbi.simulators.toys:TwoMoons",
    "drell_yan": "hepsbi.physics.drell_yan:DrellYanContact",
    "lhe": "hepsbi.physics.lhe_model:LHEMorphed",
}
#: the entry-point group under which other packages name their simulators ("name = package.module:Class")
ENTRY_POINT_GROUP = "hepsbi.simulators"


def register_simulator(name: str, target: str) -> None:
    """Make ``name`` stand for the simulator class at ``target`` (``"package.module:Class"``) in specs."""
    if ":" not in target:
        raise SimulatorError(f"register_simulator: target must be 'package.module:Class' (got {target!r})")
    SIMULATORS[name] = target


def simulator_names() -> list[str]:
    """Every simulator name a spec can use (built-in, registered and from entry points)."""
    return sorted(set(SIMULATORS) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


_TARGET = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _import(target: str) -> type:
    if not _TARGET.match(target):
        raise SimulatorError(f"simulator {_short(target)}: give a known name or 'package.module:Class' (an absolute "
                             "module path and a class name)")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import runs arbitrary code: any failure is the simulator's, named here
        hint = (" (hepsbi finds a module that lies beside the spec file, or one on PYTHONPATH or installed)"
                if isinstance(exc, ModuleNotFoundError) else "")
        raise SimulatorError(f"cannot import simulator module {module_name!r}: {type(exc).__name__}: "
                             f"{_short(str(exc))}{hint}") from None
    try:
        cls = getattr(module, attr)
    except AttributeError:
        raise SimulatorError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(cls, type):
        raise SimulatorError(f"{target!r} is a {type(cls).__name__}, not a simulator class")
    return cls


def _resolve(name: str) -> type:
    if name in SIMULATORS:
        return _import(SIMULATORS[name])
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return _import(ep.value)
    if ":" not in name:
        raise SimulatorError(f"unknown simulator {_short(name)}; known: {simulator_names()}, or give "
                             "'package.module:Class'")
    return _import(name)


def build_simulator(name: str, options: Mapping[str, Any] | None = None) -> Simulator:
    """Instantiate simulator ``name`` with keyword ``options``; unknown options are an error naming them, and so
    is any exception the class raises (its message kept). A simulator with ``sample_weighted`` must implement
    the whole :class:`~hepsbi.simulators.protocol.WeightedSimulator` protocol (the error names what is missing)."""
    cls = _resolve(name)
    options = dict(options or {})
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        raise SimulatorError(f"simulator {name!r}: cannot read the arguments of {cls.__name__}") from None
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            raise SimulatorError(f"simulator {name!r} has no option(s) {_short(unknown)}; it takes {sorted(params)}",
                                 key="options")
    try:
        sim = cls(**options)
    except Exception as exc:  # user classes raise anything: name the options and keep the message
        raise SimulatorError(f"simulator {name!r} rejected its options {_short(options)}: "
                             f"{type(exc).__name__}: {_short(str(exc), 400)}", key="options") from None
    return check_weighted_simulator(sim) if is_weighted(sim) else check_simulator(sim)
