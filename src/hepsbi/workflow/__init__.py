"""Workflow: the run specification and its execution."""

from hepsbi.workflow.run import run
from hepsbi.workflow.spec import RunSpec, load_spec, parse_spec

__all__ = ["RunSpec", "load_spec", "parse_spec", "run"]
