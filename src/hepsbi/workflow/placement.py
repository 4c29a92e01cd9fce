r"""Where the tasks of a run go: in-process (the default), local Dask worker processes, a running Dask scheduler,
or a batch cluster started with dask-jobqueue (HTCondor, Slurm). Placement never changes what a task computes."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from typing import Any

from hepsbi.errors import SpecError

__all__ = ["WORKER_MALLOC", "batch_cluster", "dask_client", "local_client"]

#: glibc malloc settings of worker processes (set before they start). Dask's default MALLOC_TRIM_THRESHOLD_
#: of 64 KiB (memory back to the OS at once) also freezes glibc's mmap threshold at 128 KiB, so every tensor of
#: a network pass over the events becomes a fresh mmap whose pages fault in again: an inference task ran 2.4×
#: slower in a worker than in-process. Arrays up to 32 MiB stay on the heap; the heap is trimmed above 128 MiB.
WORKER_MALLOC = {"MALLOC_TRIM_THRESHOLD_": str(128 * 2**20), "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20)}


#: the command each batch system submits jobs with (dask-jobqueue calls it)
SUBMIT_COMMANDS = {"htcondor": "condor_submit", "slurm": "sbatch"}


@contextlib.contextmanager
def local_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A client on ``workers`` local processes or on a running ``scheduler``; None (in-process) for neither."""
    if workers is not None and scheduler is not None:
        raise SpecError("give at most one of --workers, --scheduler")
    if workers is None and scheduler is None:
        yield None
        return
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    import dask

    environ = dask.config.get("distributed.nanny.pre-spawn-environ") | WORKER_MALLOC
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, env={"OMP_NUM_THREADS": "1"},
    ) as cluster, Client(cluster) as client:
        yield client


@contextlib.contextmanager
def dask_client(spec: Any) -> Iterator[Any]:
    """A ``distributed.Client`` for the execution settings, or None for the in-process default."""
    ex = spec.execution
    if ex.cluster is not None:
        from distributed import Client

        submit = SUBMIT_COMMANDS.get(ex.cluster)
        if submit is not None and shutil.which(submit) is None:  # else jobs fail unseen and the client waits forever
            raise SpecError(f"execution.cluster: {ex.cluster} submits jobs with {submit!r}, which is not on PATH here; "
                            f"run where {ex.cluster} jobs can be submitted, or use --workers N on this machine")
        cluster = batch_cluster(ex.cluster, ex.jobqueue)
        cluster.scale(jobs=ex.jobs)
        with cluster, Client(cluster) as client:
            yield client
        return
    if ex.scheduler is None:  # every task runs on this machine: a device it lacks fails now, not after simulating
        from hepsbi.estimators.devices import resolve_device

        resolve_device(ex.device, "execution.device")
    with local_client(ex.workers, ex.scheduler) as client:
        yield client


def batch_cluster(kind: str, options: dict[str, Any]) -> Any:
    """A dask-jobqueue cluster (``htcondor`` or ``slurm``) configured by ``options`` (cores, memory, …)."""
    try:
        import dask_jobqueue
    except ImportError:
        raise SpecError("execution.cluster: needs dask-jobqueue (pip install 'hepsbi[cluster]')") from None
    classes = {"htcondor": dask_jobqueue.HTCondorCluster, "slurm": dask_jobqueue.SLURMCluster}
    settings: dict[str, Any] = {"cores": 1, "memory": "4GB"} | dict(options)
    exports = [f"export {k}={v}" for k, v in WORKER_MALLOC.items()]  # see WORKER_MALLOC
    settings["job_script_prologue"] = exports + list(settings.get("job_script_prologue") or [])
    if kind == "htcondor":
        settings.setdefault("disk", "4GB")
    try:
        return classes[kind](**settings)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"execution.jobqueue: {str(exc).splitlines()[0]}") from None
