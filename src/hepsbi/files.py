"""Atomic file writes: a file is either complete or absent, never half-written.

Write to a temporary file in the destination directory, flush it to disk, then rename it over the target
(``os.replace`` is atomic on POSIX and Windows within one file system).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "inside", "path_list", "write_json"]


def _process_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: read once at import (reading it means setting it, which must not race with threads writing files)
_UMASK = _process_umask()


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path`` with the permissions a plain
    ``open`` would give it (0666 less the umask: readable by the group on a shared cluster), on error removed.

    Example:
        >>> with atomic_path("out.h5") as tmp:  # doctest: +SKIP
        ...     write_everything(tmp)
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp made it 0600
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def inside(root: str | os.PathLike[str], *parts: str | os.PathLike[str]) -> Path:
    """``root / parts`` after checking that it resolves inside ``root`` (symbolic links followed): every path
    hepsbi writes under a run directory goes through here. Raises :class:`~hepsbi.errors.HepsbiError` naming
    the path otherwise (an absolute part, ``..``, or a link that leads out)."""
    from hepsbi.errors import HepsbiError

    base = Path(root).resolve()
    target = base.joinpath(*parts)
    resolved = target.resolve()
    if resolved != base and base not in resolved.parents:
        raise HepsbiError(f"refusing to write {target}: it resolves to {resolved}, outside {base}")
    return target


def write_json(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as indented JSON, atomically. Returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, allow_nan=True) + "\n")
    return Path(path)


def path_list(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """One path or a sequence of them (the input files of a sample) as a list of paths."""
    return [Path(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
