"""Exception types raised by hepsbi.

Every message is written for the user: it names the offending key, file or value, says what was expected
and what was given.
"""

from __future__ import annotations

__all__ = [
    "HepsbiError",
    "SpecError",
    "ParameterError",
    "SimulatorError",
    "DataError",
    "EstimatorError",
    "InferenceError",
    "RunDirectoryError",
    "HepsbiWarning",
    "ExtrapolationWarning",
]


class HepsbiError(Exception):
    """Base class of every error hepsbi raises on purpose."""


class SpecError(HepsbiError):
    """A run specification (YAML) is invalid: unknown key, wrong type, value out of range."""


class ParameterError(HepsbiError):
    """A parameter point or parameter name does not fit the parameter space."""


class SimulatorError(HepsbiError):
    """A simulator was misconfigured or does not implement the protocol; ``key`` is what a spec gets wrong:
    ``"name"`` (the class) or ``"options"`` (its keyword arguments)."""

    def __init__(self, message: str, key: str = "name"):
        super().__init__(message)
        self.key = key


class DataError(HepsbiError):
    """A data file or array is malformed, inconsistent or of an unknown format."""


class EstimatorError(HepsbiError):
    """An estimator was configured, trained, saved or loaded inconsistently."""


class RunDirectoryError(HepsbiError):
    """A run directory cannot be used: another run holds it, or it is read-only or full. Finished stages are
    kept; fix the cause and rerun to resume."""


class InferenceError(HepsbiError):
    """An inference step cannot give a trustworthy answer (e.g. an interval open at the scan edge)."""


class HepsbiWarning(UserWarning):
    """Base class of the warnings hepsbi gives: a result computed, but one to check before trusting it."""


class ExtrapolationWarning(HepsbiWarning):
    """An estimator evaluated at θ outside the range it was trained on: its answer there is an extrapolation."""
