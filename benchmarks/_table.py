"""Shared output of the benchmark scripts: a rich table on stdout and a JSON file — in benchmarks/out/ (not
tracked), or with HEPSBI_RECORD=1 in benchmarks/results/, the recorded numbers the READMEs quote."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from hepsbi._version import __version__
from hepsbi.files import write_json

RESULTS = Path(__file__).resolve().parent / "results"
SCRATCH = Path(__file__).resolve().parent / "out"


def output_dir() -> Path:
    """benchmarks/results/ when HEPSBI_RECORD=1 (replacing the recorded numbers is a decision), else benchmarks/out/."""
    return RESULTS if os.environ.get("HEPSBI_RECORD") == "1" else SCRATCH


def report(name: str, title: str, columns: list[str], rows: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> Path:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*(f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns))
    Console(width=max(Console().width, 160)).print(table)
    payload = {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "hepsbi_version": __version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        **(extra or {}),
        "rows": rows,
    }
    path = write_json(output_dir() / f"{name}.json", payload)
    Console().print(f"wrote {path}" + ("" if output_dir() == RESULTS else " (HEPSBI_RECORD=1 records it in results/)"))
    return path
