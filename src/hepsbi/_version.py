"""The package version, in one place: every module and the build (pyproject's dynamic version) read it here."""

__version__ = "0.1.0"
