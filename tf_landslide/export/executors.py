"""Where the scan's tasks run: this process, a local Dask cluster of threads or processes, or a
running Dask scheduler; and the glibc malloc settings the workers' scan needs."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator

from tf_landslide.config import ExportConfig

log = logging.getLogger("tf_landslide.export")


class _SerialExecutor:
    """Runs tasks in this process, in order: for tests and tiny cubes."""

    in_process = True  # results are the tasks' own objects, not copies

    def map_unordered(self, fn: Callable, args: Iterable[tuple]) -> Iterator:
        for arg in args:
            yield fn(*arg)


class _DaskExecutor:
    def __init__(self, client, in_process: bool = False):
        self.client = client
        self.in_process = in_process  # a cluster of threads in this process: results are not copied

    def map_unordered(self, fn: Callable, args: Iterable[tuple]) -> Iterator:
        from distributed import as_completed

        completed = as_completed([self.client.submit(fn, *arg, pure=False) for arg in args], with_results=True)
        for future, result in completed:
            future.release()  # the worker keeps a result as long as its future lives: chips, maybe
            yield result


# glibc maps every allocation above M_MMAP_THRESHOLD afresh (the kernel zeroes its pages on first
# touch) and stops raising that threshold from 128 KB, as it otherwise does, once any of its
# MALLOC_* variables is set. Dask's nanny sets MALLOC_TRIM_THRESHOLD_ for the worker processes it
# starts: a band's scan, whose plane buffers are about 1 MB, then maps and zeroes them afresh and
# takes several times the CPU; with these two set it takes what it takes without the nanny.
WORKER_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20)}
_MALLOC_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_")


def malloc_environment() -> dict[str, str]:
    return {name: os.environ[name] for name in _MALLOC_SETTINGS if name in os.environ}


def malloc_advice(environments: dict[str, dict[str, str]]) -> str | None:
    """What to change in Dask workers' ``MALLOC_*`` environment (by worker address), or None.

    Workers whose glibc no longer raises its mmap threshold (a MALLOC_* variable is set) while
    that threshold is below 1 MB map and zero every plane-sized buffer of a scan afresh.
    """

    def mmap_threshold(env: dict[str, str]) -> int:
        try:
            return int(env.get("MALLOC_MMAP_THRESHOLD_", 128 << 10))
        except ValueError:  # glibc reads it with atoi: 0
            return 0

    slow = sorted(address for address, env in environments.items() if env and mmap_threshold(env) < (1 << 20))
    if not slow:
        return None
    shown = ", ".join(f"{name}={value}" for name, value in sorted(environments[slow[0]].items()))
    wanted = " ".join(f"{name}={value}" for name, value in WORKER_MALLOC_ENV.items())
    return (
        f"{len(slow)} of {len(environments)} Dask workers (e.g. {slow[0]}) run with {shown}: glibc then maps "
        f"every buffer over 128 KB afresh and the export's scan takes about 3x the CPU. Start the workers "
        f"with {wanted} (for `dask worker`, in the config key distributed.nanny.pre-spawn-environ)."
    )


@contextlib.contextmanager
def _environment_restored(names: Iterable[str]):
    """Puts ``names`` back as they were: Dask's nanny writes its workers' environment
    (``distributed.nanny.pre-spawn-environ``) into this process's and leaves it there, where
    later clusters and every child process would inherit it."""
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def executor(cfg: ExportConfig):
    """A Dask client on a remote scheduler, a local cluster, or (workers=0) this process."""
    if not cfg.dask_scheduler and cfg.workers <= 0:
        yield _SerialExecutor()
        return
    import dask
    from distributed import Client, LocalCluster

    # Dask logs every connection at INFO through the root handler absl installs.
    for name in ("distributed", "distributed.scheduler", "distributed.core"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if cfg.dask_scheduler:
        with Client(cfg.dask_scheduler) as client:
            log.info(
                "export on the Dask scheduler at %s (%d workers)",
                cfg.dask_scheduler,
                len(client.scheduler_info()["workers"]),
            )
            # Advice only: a worker that does not answer is left out, never fails the export.
            if advice := malloc_advice(client.run(malloc_environment, on_error="ignore")):
                log.warning("%s", advice)
            yield _DaskExecutor(client)
        return
    # Threads by default: numpy, blosc and our compiled loops release the GIL, and a threaded
    # cluster starts at once and passes results without pickling (processes spend much of a small
    # export starting and importing numba in each); processes isolate workers, for memory-hungry
    # cubes or GIL-bound plugins.
    processes = cfg.worker_processes
    # The worker's statistical profiler (stack walks every 10 ms) and GIL monitor feed the
    # dashboard we do not start; off, the export takes less time.
    quiet = {"distributed.worker.profile.enabled": False, "distributed.admin.system-monitor.gil.enabled": False}
    quiet |= {f"distributed.nanny.pre-spawn-environ.{name}": value for name, value in WORKER_MALLOC_ENV.items()}
    spawn_environment = {*dask.config.get("distributed.nanny.pre-spawn-environ"), *WORKER_MALLOC_ENV, "PYTHONHASHSEED"}
    with (
        _environment_restored(spawn_environment if processes else ()),
        dask.config.set(quiet),
        LocalCluster(
            n_workers=cfg.workers if processes else 1,
            threads_per_worker=1 if processes else cfg.workers,
            processes=processes,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield _DaskExecutor(client, in_process=not processes)
