"""The console of a run: its logs and tables, timed phases, and torch's thread count."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from rich.console import Console

__all__ = ["run_console", "timed", "use_thread_setting"]


@contextmanager
def timed(name: str, timings: dict[str, float], console: Console) -> Iterator[None]:
    """Log the start and the end of a phase and record its wall time in ``timings[name]``."""
    console.log(f"[bold cyan]{name}[/] …")
    start = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - start, 3)
    console.log(f"[bold cyan]{name}[/] done in {timings[name]:.1f} s")


def run_console(progress: bool) -> Console:
    """The console of a run's logs and tables (quiet without ``progress``)."""
    # Off a terminal (logs, CI) rich would assume 80 columns and squeeze the tables.
    return Console(quiet=not progress, log_path=False, width=None if sys.stdout.isatty() else 120)


def use_thread_setting() -> None:
    """torch threads = OMP_NUM_THREADS where it is set (a worker process gets 1 from its cluster)."""
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))))
