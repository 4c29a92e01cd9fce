r"""One run at a time per run directory, and what a full or read-only disk turns into.

:func:`run_lock` holds an exclusive ``flock`` on ``RUN_DIR/.hepsbi.lock`` for as long as a run, a coverage
study or a clean-up uses the directory; a second one refuses at once with a :class:`RunDirectoryError` that names
the holder (process, host, command, start time). The kernel releases the lock when its holder exits, however it
exits — a killed run leaves no stale lock behind, and the lock file itself is never deleted (deleting it would
let two processes lock two different files).

:func:`disk_errors` turns the operating system's "no space left" and "read-only file system" (and permission)
errors during a run into a :class:`RunDirectoryError` naming the path; stages written before it are complete and
checksummed, so the run resumes once the cause is fixed. :func:`check_free_space` refuses to start a stage with
less than :data:`MIN_FREE_BYTES` free: HDF5 was seen to crash the process (segmentation fault) when the disk
filled up while it wrote.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hepsbi.errors import RunDirectoryError

__all__ = ["LOCK_FILE", "MIN_FREE_BYTES", "check_free_space", "disk_errors", "run_lock"]

LOCK_FILE = ".hepsbi.lock"
#: a stage does not start with less free space than this in the run directory
MIN_FREE_BYTES = 64 * 2**20
_DISK = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
         errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied", errno.EPERM: "permission denied"}


@contextmanager
def run_lock(run_dir: str | os.PathLike[str], what: str = "hepsbi") -> Iterator[Path]:
    """Hold the run directory (created if needed) for this process; yields the lock file's path."""
    directory = Path(run_dir)
    with disk_errors(directory):
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            raise RunDirectoryError(f"{directory}: in use by {holder}; wait for it to finish or choose another "
                                    "run directory") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": what,
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": " ".join(sys.argv)[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield directory / LOCK_FILE
    finally:
        os.close(fd)  # releases the flock


def check_free_space(directory: str | os.PathLike[str], needed: int = MIN_FREE_BYTES) -> None:
    """Raise :class:`RunDirectoryError` when ``directory`` has less than ``needed`` bytes free."""
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise RunDirectoryError(f"{directory}: only {free / 2**20:.1f} MiB free (a stage needs at least "
                                f"{needed / 2**20:.0f} MiB); free some space and rerun — finished stages are kept")


@contextmanager
def disk_errors(directory: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a full disk, a read-only file system or a permission error inside the block into a
    :class:`RunDirectoryError` naming the file."""
    try:
        yield
    except OSError as exc:
        cause = _DISK.get(exc.errno or -1)
        if cause is None and "No space left" in str(exc):  # h5py reports ENOSPC in its message only
            cause = _DISK[errno.ENOSPC]
        if cause is None:
            raise
        where = exc.filename or directory
        raise RunDirectoryError(f"{where}: {cause}; fix it and rerun {directory} — finished stages are kept") from None
