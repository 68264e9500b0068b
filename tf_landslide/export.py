"""Export one channel configuration of a cube to sharded TFRecords and a manifest.

The work runs in three stages:

1. *plan* (this process): open and validate the cube, choose acquisitions, count landslide
   pixels per chip from the labels (read in bands), assign splits per location, pick the
   chips worth reading (positives, and seeded negative candidates when asked), and, for
   positive chips only, cut each split's chips (row order) into shards;
2. *scan* (Dask, one task per band of rows, in row order): read only the planes the channels
   need, over the columns the band's candidate chips span (every column for whole-scene
   statistics), build the channels, drop mostly-empty chips, compute the normalisation
   moments the statistics use, and hand over the kept chips (in the record dtype): in memory
   when the workers are threads of this process, else spooled to ``.work/``;
3. *write*: planned shards are written by this process while the scan goes on, each as soon
   as the bands holding its next chips are done (``shards.ShardStream``); with negatives, the
   shards are cut after the scan and written by one Dask task each. Each shard is written to
   a temporary name and renamed, so a shard file is complete or absent; its writer hashes it.

The manifest is written last, atomically, and only after every shard is finished; a run
that stops early leaves no manifest, and a re-run reuses finished shards (and spooled bands);
their bytes are a pure function of the plan, so re-running gives identical files.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import re
import shutil
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import xarray as xr

import tf_landslide
from tf_landslide import chips as chips_lib
from tf_landslide import records, storage
from tf_landslide import shards as shards_lib
from tf_landslide.config import ExportConfig
from tf_landslide.cube import channels as channels_lib
from tf_landslide.cube import events, planes, schema
from tf_landslide.cube.open import IN_MEMORY, acquisitions_by_orbit, open_conformed, orbit_codes
from tf_landslide.cube.scene import Scene, cache_dir, cube_identity, cube_location, georeference, open_scene
from tf_landslide.normalisation import ChannelMoments
from tf_landslide.shards import ChipEntry, ShardStream, SpoolReader

log = logging.getLogger("tf_landslide.export")

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1
# How chips are cut into shards; files cut another way are never reused. 2: planned from the
# candidate chips before the scan (1, unrecorded: from the kept chips after it).
SHARD_LAYOUT = 2
WORK_DIR = ".work"
STATS_SOURCES = ("train", "scene")
TRAIN = chips_lib.SPLITS.index("train")


class ExportError(RuntimeError):
    """The export cannot proceed as asked (existing outputs, bad settings)."""


@dataclasses.dataclass(frozen=True)
class BandTask:
    """One window of a band of rows to scan and the candidate chips inside it."""

    band: int
    y0: int  # rows read: [y0, y1)
    y1: int
    x0: int  # columns read: [x0, x1)
    x1: int
    chips: tuple[tuple[int, int, int], ...]  # (chip index, row, col)
    scene_rows: tuple[int, int] | None = None  # rows [a, b) for whole-scene statistics
    moments_for: frozenset[int] = frozenset()  # chips whose moments the statistics need

    @property
    def name(self) -> str:
        """Names the window's spool files."""
        return f"band-{self.band:05d}-cols-{self.x0:05d}-{self.x1:05d}"

    @property
    def pixels(self) -> int:
        return (self.y1 - self.y0) * (self.x1 - self.x0)


class BandBuffers:
    """One float32 band buffer per worker thread, reused from band to band.

    A band of the Hokkaido-size cube is 88 MB: allocated afresh, the kernel zeroes its pages
    on first touch, and with several threads glibc returns them after every band. Dask pickles
    a task's function for every task, even for workers in this process: a set unpickles as
    itself while it lives in this process, and as a new, empty set elsewhere.
    """

    _live: weakref.WeakValueDictionary[str, BandBuffers] = weakref.WeakValueDictionary()

    def __init__(self, token: str | None = None):
        self.token = token or uuid.uuid4().hex
        self._local = threading.local()
        BandBuffers._live[self.token] = self

    def __reduce__(self):
        return BandBuffers._unpickle, (self.token,)

    @staticmethod
    def _unpickle(token: str) -> BandBuffers:
        return BandBuffers._live.get(token) or BandBuffers(token)

    def get(self, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 array of ``shape``, C-contiguous, for this thread's next band (contents undefined)."""
        size = math.prod(shape)
        buffer = getattr(self._local, "buffer", None)
        if buffer is None or buffer.size < size:
            buffer = self._local.buffer = np.empty(size, np.float32)
        return buffer[:size].reshape(shape)


@functools.lru_cache(maxsize=4)
def _open_cached(location: str) -> planes.CubePlanes:
    """Workers scan many bands of one cube: open it once per process."""
    conformed = open_conformed(location)
    return planes.CubePlanes(location, conformed.ds, conformed.stored)


class SharedCube:
    """The cube's reader as scan tasks receive it: tasks in this process share the scene's own
    reader (the only way to a Dataset given in memory); workers in other processes open the
    cube again from its location. Pickled by token, as ``BandBuffers``."""

    _live: weakref.WeakValueDictionary[str, SharedCube] = weakref.WeakValueDictionary()

    def __init__(self, location: str, reader: planes.PlaneReader | None = None, token: str | None = None):
        self.location = location
        self.token = token or uuid.uuid4().hex
        self._reader = reader
        SharedCube._live[self.token] = self

    def __reduce__(self):
        return SharedCube._unpickle, (self.location, self.token)

    @staticmethod
    def _unpickle(location: str, token: str) -> SharedCube:
        return SharedCube._live.get(token) or SharedCube(location, token=token)

    def reader(self) -> planes.PlaneReader:
        if self._reader is None:
            if self.location == IN_MEMORY:
                raise ExportError(
                    "a cube given as a Dataset in memory is read only by workers in its own process: "
                    "export it with thread workers, or save it (ds.to_zarr) and give its path"
                )
            self._reader = _open_cached(self.location)
        return self._reader


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    partial.write_bytes(data)
    os.replace(partial, path)


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}.npy")
    np.save(partial, array)
    os.replace(partial, path)


def scan_band(
    cube: SharedCube,
    plan: channels_lib.ChannelPlan,
    task: BandTask,
    chip_size: int,
    max_nodata_fraction: float,
    record_dtype: str,
    spool: str | None,
    buffers: BandBuffers | None = None,
) -> dict:
    """Read one window, keep chips that are not mostly no-data, spool them; return their metadata.

    Idempotent: a window whose metadata file exists was finished by an earlier run.
    ``spool=None``: nothing is written; the chips come back in the result (``images``, ``labels``).
    ``buffers``: where the band is read into (else a new array); nothing returned refers to it.
    """
    meta_path = Path(spool) / f"{task.name}.json" if spool else None
    if meta_path and meta_path.exists():
        return json.loads(meta_path.read_text())
    reader = cube.reader()
    window = slice(task.y0, task.y1), slice(task.x0, task.x1)
    shape = (len(plan.channels), task.y1 - task.y0, task.x1 - task.x0)
    band = plan.read_band(reader, *window, out=buffers.get(shape) if buffers else None)  # [C, rows, cols]
    mask = planes.label_plane(reader, *window)
    stage = _chip_stage(band, task, chip_size, max_nodata_fraction, record_dtype)
    images = labels = None
    if stage.kept:
        images = stage.images
        labels = np.stack([mask[r : r + chip_size, c : c + chip_size] for r, c in stage.corners]).astype(np.uint8)
        if spool:
            _atomic_save_npy(Path(spool) / f"{task.name}-images.npy", images)
            _atomic_save_npy(Path(spool) / f"{task.name}-labels.npy", labels)
    result = {
        "band": task.band,
        "window": task.name,
        "kept": stage.kept,
        "skipped": stage.skipped,
        "moments": stage.moments,
        "quantisation": stage.error.tolist(),
        "scene_moments": None,
    }
    if task.scene_rows:
        first, last = (r - task.y0 for r in task.scene_rows)
        result["scene_moments"] = ChannelMoments.of(band[:, first:last], channel_axis=0).to_json()
    if not meta_path:
        return {**result, "images": images, "labels": labels}
    _atomic_write_bytes(meta_path, json.dumps(result).encode())
    return result


@dataclasses.dataclass(frozen=True)
class ChipStage:
    """A window's candidate chips after the chip stage (``_chip_stage``)."""

    kept: list[int]  # chip indices of the chips that are not mostly no-data, in the task's order
    skipped: list[list]  # [chip index, no-data fraction] of the others
    corners: list[tuple[int, int]]  # the kept chips' top-left (row, col) in the window
    images: np.ndarray  # [len(kept), size, size, C] the kept chips, channels last, in the record dtype
    error: np.ndarray  # [C] float32: the largest rounding error to the record dtype per channel
    moments: dict[str, dict]  # ChannelMoments (JSON) of the kept chips in the task's moments_for, by chip index


def _chip_stage(
    band: np.ndarray, task: BandTask, chip_size: int, max_nodata_fraction: float, record_dtype: str
) -> ChipStage:
    """The no-data check, record layout and moments of ``task``'s chips in ``band`` [C, rows, cols]:
    a compiled loop (``kernels.scan_chips``), one pass a chip where numpy would make a dozen."""
    from tf_landslide import kernels  # numba is slow to import: train.py and predict.py need it only to export

    n, channels = len(task.chips), band.shape[0]
    corners = [(row - task.y0, col - task.x0) for _, row, col in task.chips]
    last_row, last_col = band.shape[1] - chip_size, band.shape[2] - chip_size
    outside = [(r, c) for r, c in corners if not (0 <= r <= last_row and 0 <= c <= last_col)]
    if outside:  # the compiled loop does not check its indices
        raise ValueError(f"chips at {outside[:3]} of window {task.name} are not inside its band {band.shape[1:]}")
    rows, cols = (np.array([corner[k] for corner in corners], np.int64).reshape(n) for k in (0, 1))
    wants_moments = np.array([index in task.moments_for for index, _, _ in task.chips], bool).reshape(n)
    to_half = record_dtype == "float16"
    shape = (n, chip_size, chip_size, channels)
    halves = np.empty(shape if to_half else (0, *shape[1:]), np.uint16)
    floats = np.empty((0, *shape[1:]) if to_half else shape, np.float32)
    error = np.zeros(channels, np.float32)
    moments = np.empty((n, 3, channels))
    nodata, kept = np.empty(n), np.empty(n, bool)
    count = kernels.scan_chips(
        band, rows, cols, chip_size, max_nodata_fraction, wants_moments, halves, floats, error, moments, nodata, kept
    )
    indices = [index for index, _, _ in task.chips]
    kept_indices = [index for index, keep in zip(indices, kept, strict=True) if keep]
    return ChipStage(
        kept=kept_indices,
        skipped=[[index, float(f)] for index, f, keep in zip(indices, nodata, kept, strict=True) if not keep],
        corners=[corner for corner, keep in zip(corners, kept, strict=True) if keep],
        images=halves[:count].view(np.float16) if to_half else floats[:count],
        error=error,
        moments={
            str(index): ChannelMoments(*moments[slot]).to_json()
            for slot, index in enumerate(kept_indices)
            if index in task.moments_for
        },
    )


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


def _malloc_environment() -> dict[str, str]:
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
            if advice := malloc_advice(client.run(_malloc_environment, on_error="ignore")):
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


def _settings(
    cfg: ExportConfig,
    identity: dict,
    event: events.Event,
    config: channels_lib.ChannelConfig,
    acquisitions: channels_lib.Acquisitions,
    pairs: dict,
) -> dict:
    """Everything the output bytes depend on; its hash identifies an export."""
    return {
        "manifest_schema_version": MANIFEST_SCHEMA_VERSION,
        "cube": identity,
        "event": event.as_dict(),
        "orbit": acquisitions.orbit,
        "acquisition_indices": {"before": list(acquisitions.before), "after": list(acquisitions.after)},
        "insar_pairs": pairs,
        **comparable_settings(cfg, config),
        "compression": cfg.compression,
        "shard_mb": cfg.shard_mb,
    }


def comparable_settings(cfg: ExportConfig, config: channels_lib.ChannelConfig) -> dict:
    """The export settings a reader can check against a manifest without opening the cube."""
    return {
        "config": {"name": config.name, "channels": list(config.channels), "timesteps": config.timesteps},
        "acquisition_rule": cfg.cube.acquisition_rule,
        "chip_size": cfg.chip_size,
        "stride": cfg.chip_stride,
        "negative_ratio": cfg.negative_ratio,
        "max_nodata_fraction": cfg.max_nodata_fraction,
        "split": json.loads(json.dumps(dataclasses.asdict(cfg.split))),
        "stats_from": cfg.stats_from,
        "record_dtype": cfg.record_dtype,
    }


def _check_settings(cfg: ExportConfig, in_memory: bool = False) -> None:
    problems = []
    if in_memory and (cfg.worker_processes or cfg.dask_scheduler):
        problems.append(
            "a cube given as a Dataset in memory is read by threads of this process: drop --export_processes "
            "and --dask_scheduler, or save the cube (ds.to_zarr) and give its path"
        )
    if cfg.chip_size < 8 or cfg.chip_size % 8:
        problems.append(f"--chip_size={cfg.chip_size} must be a multiple of 8 (the U-Net halves it 5 times: use 32k)")
    if cfg.chip_stride < 1:
        problems.append(f"--stride={cfg.stride} must be >= 1")
    if cfg.band_rows < cfg.chip_size:
        problems.append(f"--band_rows={cfg.band_rows} must be at least --chip_size={cfg.chip_size}")
    if not 0 <= cfg.max_nodata_fraction <= 1:
        problems.append(f"--max_nodata_fraction={cfg.max_nodata_fraction} must be within [0, 1]")
    if cfg.negative_ratio < 0:
        problems.append(f"--negative_ratio={cfg.negative_ratio} must be >= 0")
    if cfg.stats_from not in STATS_SOURCES:
        problems.append(f"--stats_from={cfg.stats_from!r}; choose one of {list(STATS_SOURCES)}")
    if cfg.record_dtype not in records.RECORD_DTYPES:
        problems.append(f"--record_dtype={cfg.record_dtype!r}; choose one of {list(records.RECORD_DTYPES)}")
    if cfg.compression not in records.COMPRESSIONS:
        problems.append(f"--compression={cfg.compression!r}; choose '' or GZIP")
    if cfg.shard_mb <= 0:
        problems.append(f"--shard_mb={cfg.shard_mb} must be > 0")
    if problems:
        raise ExportError("; ".join(problems))


def _band_tasks(
    table: chips_lib.ChipTable, candidates: np.ndarray, cfg: ExportConfig, height: int, width: int
) -> list[BandTask]:
    """Group candidate chips by the band of ``band_rows`` rows their top row falls in; in row order.

    Each band is read over the columns its candidates span: bands without candidates are not
    read, unless whole-scene statistics need every pixel. In row order, the order of the chips
    in the shards, so that shards are written while the scan goes on.
    """
    band_of = table.row[candidates] // cfg.band_rows
    scene = cfg.stats_from == "scene"
    bands = range(math.ceil(height / cfg.band_rows)) if scene else np.unique(band_of)
    tasks = []
    for band in bands:
        members = candidates[band_of == band]
        band_rows = (band * cfg.band_rows, min(height, (band + 1) * cfg.band_rows))
        rows, cols = table.row[members], table.col[members]
        if scene:  # the whole band for the statistics, and the chips reaching below it
            y0, y1 = band_rows[0], max(band_rows[1], int(rows.max()) + cfg.chip_size if members.size else 0)
            x0, x1 = 0, width
        else:  # the candidates' bounding box
            y0, y1 = int(rows.min()), int(rows.max()) + cfg.chip_size
            x0, x1 = int(cols.min()), int(cols.max()) + cfg.chip_size
        chips = tuple((int(i), int(table.row[i]), int(table.col[i])) for i in members)
        # Train statistics merge the moments of kept training chips; scene statistics need none.
        train = frozenset(int(i) for i in members if table.split[i] == TRAIN) if not scene else frozenset()
        tasks.append(BandTask(int(band), y0, y1, x0, x1, chips, band_rows if scene else None, train))
    return tasks


def _progress(total: int, unit: str, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, disable=not enabled, dynamic_ncols=True, smoothing=0.1)


def _existing_manifest(out_dir: Path) -> dict | None:
    path = out_dir / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ExportError(f"{path} is not valid JSON ({error}); pass --overwrite to export again") from error


def _verify_shards(out_dir: Path, manifest: dict) -> list[str]:
    """Problems with the shards a manifest lists (missing, wrong count or checksum)."""
    problems = []
    for split in manifest["splits"].values():
        for shard in split["shards"]:
            path = out_dir / shard["file"]
            if not path.exists():
                problems.append(f"{path} is missing")
            elif path.stat().st_size != shard["bytes"] or storage.sha256(path) != shard["sha256"]:
                problems.append(f"{path} does not match its checksum")
    return problems


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process
        return True
    return True


def _prepare_output(out_dir: Path, fingerprint: str, overwrite: bool) -> dict | None:
    """Return an up-to-date manifest to reuse, or make the folder ready for this export."""
    manifest = _existing_manifest(out_dir)
    work = out_dir / WORK_DIR
    plan_path = work / "plan.json"
    if manifest is not None and not overwrite:
        if manifest.get("fingerprint") != fingerprint:
            raise ExportError(
                f"{out_dir} holds an export made with other settings (see its {MANIFEST_NAME}); "
                "pass --overwrite to replace it or choose another --records_dir"
            )
        problems = _verify_shards(out_dir, manifest)
        if not problems:
            return manifest
        log.warning(
            "the finished export in %s is damaged (%s): rebuilding the bad shards", out_dir, "; ".join(problems)
        )
    plan = json.loads(plan_path.read_text()) if plan_path.exists() else None
    if plan is not None and not overwrite and plan.get("fingerprint") != fingerprint:
        raise ExportError(
            f"{out_dir} holds an unfinished export made with other settings; "
            "pass --overwrite to discard it or choose another --records_dir"
        )
    if plan is not None:
        layout = plan.get("shard_layout")
    else:
        layout = manifest["records"].get("shard_layout") if manifest is not None else None
    shards = list(out_dir.glob("*-of-?????"))
    if shards and layout != SHARD_LAYOUT and not overwrite:
        log.warning("%s holds shards of an earlier version, cut another way: writing them again", out_dir)
    if (overwrite or layout != SHARD_LAYOUT) and out_dir.exists():
        # The manifest goes first: from here on no manifest can vouch for these shards.
        (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
        for shard in shards:
            shard.unlink()
    else:
        (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    for partial in out_dir.glob("*.partial-*"):  # unfinished files of killed runs
        owner = re.search(r"\.partial-(\d+)", partial.name)
        if owner and not _running(int(owner.group(1))):
            partial.unlink()
    work.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(plan_path, json.dumps({"fingerprint": fingerprint, "shard_layout": SHARD_LAYOUT}).encode())
    return None


@dataclasses.dataclass
class _Job:
    """One export being made: its settings, the cube, and the choices made from them."""

    cfg: ExportConfig
    scene: Scene
    identity: dict
    settings: dict
    fingerprint: str
    out_dir: Path

    @property
    def spool(self) -> Path:
        return self.out_dir / WORK_DIR


@dataclasses.dataclass
class _Candidates:
    """The chip grid and which of its chips are worth reading."""

    table: chips_lib.ChipTable
    nan_labels: int
    negatives: np.ndarray  # negative chips in their seeded order
    wanted_negatives: int
    indices: np.ndarray  # chips to read: positives and oversampled negatives


def _plan(cfg: ExportConfig, cube: xr.Dataset | None = None) -> _Job:
    """Open and validate the cube and make every choice that does not need the pixels."""
    config = channels_lib.resolve_channel_config(cfg.config, cfg.channels, cfg.timesteps)
    scene = open_scene(cube_location(cfg.cube) if cube is None else cube, cfg.cube, config)
    identity = cube_identity(scene.ds, scene.location)
    settings = _settings(cfg, identity, scene.event, config, scene.acquisitions, scene.pairs)
    fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    out_dir = Path(cfg.records_dir) / config.name
    return _Job(cfg, scene, identity, settings, fingerprint, out_dir)


def _candidates(job: _Job) -> _Candidates:
    cfg = job.cfg
    labels = job.scene.reader()
    table, nan_labels = chips_lib.build_chip_table(labels, cfg.chip_size, cfg.chip_stride, cfg.split, cfg.band_rows)
    if nan_labels:
        log.warning("%d label pixels are NaN: counted as no landslide", nan_labels)
    positive = np.flatnonzero(table.positives > 0)
    negatives = chips_lib.negative_order(table, cfg.split.seed)
    # Oversample negative candidates: some will turn out to be mostly no-data.
    wanted = math.ceil(cfg.negative_ratio * positive.size)
    read = negatives[: math.ceil(wanted * 1.5) + (8 if wanted else 0)]
    return _Candidates(table, nan_labels, negatives, wanted, np.sort(np.concatenate([positive, read])))


def _chip_entries(job: _Job, table: chips_lib.ChipTable, indices: Iterable[int]) -> dict[str, list[ChipEntry]]:
    """What the records of chips ``indices`` hold besides pixels, by split, in row order."""
    transform = georeference(job.scene.ds)["transform"]
    members: dict[str, list[ChipEntry]] = {split: [] for split in chips_lib.SPLITS}
    for i in sorted(indices, key=lambda i: (table.row[i], table.col[i])):
        row, col, split = int(table.row[i]), int(table.col[i]), chips_lib.SPLITS[table.split[i]]
        origin = (transform[2] + col * transform[0], transform[5] + row * transform[4])
        members[split].append(ChipEntry(int(i), row // job.cfg.band_rows, row, col, origin, split))
    return members


def _shard_plan(job: _Job, table: chips_lib.ChipTable, indices: Iterable[int]) -> list[shards_lib.Shard]:
    cfg = job.cfg
    bytes_per_chip = cfg.chip_size**2 * (len(job.scene.config.channels) * np.dtype(cfg.record_dtype).itemsize + 1)
    per_shard = max(1, int(cfg.shard_mb * 1e6 // (bytes_per_chip + 400)))
    return shards_lib.plan(_chip_entries(job, table, indices), per_shard)


def _scan(
    job: _Job, tasks: list[BandTask], scan: Callable, pool, streams: list[ShardStream]
) -> tuple[dict, dict[int, shards_lib.Slot]]:
    """Scan every window, writing the streams' chips as their bands are done; the results by
    window, and where each kept chip sits (chip index -> band, window, position in the window)."""
    bar = _progress(int(sum(len(t.chips) for t in tasks)), "chip", f"scan {job.scene.config.name}", job.cfg.progress)
    chips_in = {t.name: len(t.chips) for t in tasks}
    windows_left = collections.Counter(t.band for t in tasks)
    done_bands, slots, results = set(), {}, {}
    spool = SpoolReader(job.spool, job.scene.config.channels)
    for result in pool.map_unordered(scan, ((t,) for t in tasks)):
        images, labels = result.pop("images", None), result.pop("labels", None)
        if images is not None:
            spool.add(result["band"], result["window"], images, labels)
        results[result["window"]] = result
        slots.update({index: (result["band"], result["window"], n) for n, index in enumerate(result["kept"])})
        windows_left[result["band"]] -= 1
        if not windows_left[result["band"]]:
            done_bands.add(result["band"])
        for stream in streams:
            stream.advance(done_bands, slots, spool)
        waiting = [band for stream in streams if (band := stream.waiting_for) is not None]
        spool.release(min(waiting) if waiting else None)
        bar.update(chips_in[result["window"]])
    bar.close()
    return results, slots


def export(cfg: ExportConfig, cube: xr.Dataset | None = None) -> dict:
    """Export ``cfg``'s configuration of its cube; return the manifest (also on disk).

    ``cube``: a Dataset in memory (from stackstac, odc-stac, a notebook) to export instead of
    ``cfg.cube``; conformed as a stored cube is, and read by workers of this process.
    """
    if storage.is_remote(cfg.records_dir):
        return _export_then_upload(cfg, cube)
    if storage.local_path(cfg.records_dir) != cfg.records_dir:  # a file:// URL
        cfg = dataclasses.replace(cfg, records_dir=storage.local_path(cfg.records_dir))
    _check_settings(cfg, in_memory=cube is not None)
    started = time.perf_counter()
    job = _plan(cfg, cube)
    job.out_dir.mkdir(parents=True, exist_ok=True)
    reused = _prepare_output(job.out_dir, job.fingerprint, cfg.overwrite)
    if reused is not None:
        log.info("%s is up to date (fingerprint %s): nothing to do", job.out_dir / MANIFEST_NAME, job.fingerprint[:12])
        return reused
    log.info(
        "exporting %s from %s: event %s, orbit %s, channels %s",
        job.scene.config.name,
        job.scene.location,
        job.scene.event.as_dict(),
        job.scene.acquisitions.orbit,
        ",".join(job.scene.config.channels),
    )
    candidates = _candidates(job)
    table = candidates.table
    height, width = job.scene.ds.sizes["y"], job.scene.ds.sizes["x"]
    tasks = _band_tasks(table, candidates.indices, cfg, height, width)
    # Positive chips only: the shards can be planned now and written while the scan goes on.
    streams = []
    if not cfg.negative_ratio:
        streams = [ShardStream(s, job.out_dir, cfg.compression) for s in _shard_plan(job, table, candidates.indices)]
    with executor(cfg) as pool:
        # Streamed shards take each band's chips as it is done: workers sharing this process hand
        # them over in memory (a killed export then scans again instead of reading a spool).
        in_memory = bool(streams) and pool.in_process
        scan = functools.partial(
            scan_band,
            SharedCube(job.scene.location, job.scene.reader() if pool.in_process else None),
            job.scene.plan,
            chip_size=cfg.chip_size,
            max_nodata_fraction=cfg.max_nodata_fraction,
            record_dtype=cfg.record_dtype,
            spool=None if in_memory else str(job.spool),
            buffers=BandBuffers(),
        )
        try:
            results, slots = _scan(job, tasks, scan, pool, streams)
        except BaseException:
            for stream in streams:
                stream.abort()
            raise
        manifest = _assemble(job, candidates, results, slots, pool, streams)
    manifest["export_seconds"] = round(time.perf_counter() - started, 2)
    text = json.dumps(manifest, indent=1)
    _atomic_write_bytes(job.out_dir / MANIFEST_NAME, text.encode())
    shutil.rmtree(job.spool, ignore_errors=True)
    log.info("%s", summary(manifest))
    return json.loads(text)  # exactly what a later run reads back


def _assemble(
    job: _Job,
    candidates: _Candidates,
    results: dict,
    slot: dict[int, shards_lib.Slot],
    pool,
    streams: list[ShardStream],
) -> dict:
    """Choose the final chips, compute statistics, write the shards and build the manifest.

    ``slot``: where each kept chip sits in the scan's output, as ``_scan`` gives it.
    """
    cfg, config, ds, out_dir, spool = job.cfg, job.scene.config, job.scene.ds, job.out_dir, job.spool
    table, negatives, wanted_negatives = candidates.table, candidates.negatives, candidates.wanted_negatives
    moments = {}
    skipped = {}
    quantisation = np.zeros(len(config.channels))
    scene = ChannelMoments.empty(len(config.channels))
    # Band order: merging scene moments in another order would change their last bits.
    for result in sorted(results.values(), key=lambda r: (r["band"], r["window"])):
        moments.update({int(k): ChannelMoments.from_json(v) for k, v in result["moments"].items()})
        skipped.update({int(i): f for i, f in result["skipped"]})
        quantisation = np.maximum(quantisation, result["quantisation"])
        if result["scene_moments"]:
            scene = scene.merge(ChannelMoments.from_json(result["scene_moments"]))
    kept_positive = [i for i in np.flatnonzero(table.positives > 0) if i in slot]
    kept_negative = [int(i) for i in negatives if int(i) in slot][:wanted_negatives]
    if wanted_negatives and len(kept_negative) < wanted_negatives:
        log.warning(
            "only %d valid negative chips for the %d asked (--negative_ratio=%s)",
            len(kept_negative),
            wanted_negatives,
            cfg.negative_ratio,
        )
    kept = sorted(kept_positive + kept_negative, key=lambda i: (table.row[i], table.col[i]))
    if not kept:
        raise ExportError(
            f"no chip to export: {len(skipped)} candidate chips are more than "
            f"{cfg.max_nodata_fraction:.0%} no-data and {int((table.positives > 0).sum())} hold landslides. "
            "Check the labels, or raise --max_nodata_fraction"
        )

    stats = scene
    if cfg.stats_from == "train":
        stats = ChannelMoments.empty(len(config.channels))
        for i in kept:
            if table.split[i] == TRAIN:
                stats = stats.merge(moments[i])
    if stats.count.min() == 0:
        raise ExportError(
            "the training split holds no valid pixel for some channel; cannot compute normalisation "
            "statistics. Use --stats_from=scene or another --split_seed"
        )

    geo = georeference(ds)
    if streams:  # planned before the scan and written during it
        written = {stream.shard.name: stream.facts for stream in streams}
        if None in written.values():
            raise AssertionError(f"unfinished shards after the scan: {[k for k, v in written.items() if v is None]}")
        planned = [stream.shard for stream in streams]
    else:  # negatives are chosen after the scan: so are the shards
        planned = _shard_plan(job, table, kept)
        jobs = [
            (
                shard,
                {e.index: slot[e.index] for e in shard.chips},
                str(out_dir),
                str(spool),
                config.channels,
                cfg.compression,
            )
            for shard in planned
        ]
        bar = _progress(len(kept), "chip", "write shards", cfg.progress)
        written = {}
        for done in pool.map_unordered(shards_lib.write_shard, jobs):
            written[done.pop("file")] = done
            bar.update(done["records"])
        bar.close()
    split_info = {}
    for s, split in enumerate(chips_lib.SPLITS):
        members = [i for i in kept if table.split[i] == s]
        positives = int(sum(table.positives[i] for i in members))
        pixels = len(members) * cfg.chip_size**2
        split_info[split] = {
            "chips": len(members),
            "positive_chips": int(sum(table.positives[i] > 0 for i in members)),
            "positive_pixels": positives,
            "pixels": pixels,
            "positive_fraction": positives / pixels if pixels else 0.0,
            "skipped_nodata_chips": int(sum(1 for i in skipped if table.split[i] == s)),
            "locations": [[int(table.row[i]), int(table.col[i])] for i in members],
            "shards": [{"file": shard.name, **written[shard.name]} for shard in planned if shard.split == split],
        }

    times = ds[schema.TIME_DIM].values
    orbit_of = orbit_codes(ds)
    std = stats.std
    return {
        "manifest_schema_version": MANIFEST_SCHEMA_VERSION,
        "code_version": tf_landslide.__version__,
        "fingerprint": job.fingerprint,
        "settings": job.settings,
        "cube": {**job.identity, **geo, "conformed": list(job.scene.changes)},
        "event": job.scene.event.as_dict(),
        "orbit": job.scene.acquisitions.orbit,
        "config": job.settings["config"],
        "channels": list(config.channels),
        "chip_size": cfg.chip_size,
        "stride": cfg.chip_stride,
        "acquisitions": {
            side: [{"time": str(times[i])[:19] + "Z", "orbit": orbit_of[i]} for i in indices]
            for side, indices in (("before", job.scene.acquisitions.before), ("after", job.scene.acquisitions.after))
        },
        "cube_acquisitions_per_orbit": acquisitions_by_orbit(ds),
        "insar_pairs": {name: str(ds[schema.PAIR_DIM].values[i]) for name, i in job.scene.pairs.items()},
        "selection": {
            "rule": "k most recent acquisitions strictly before the event start, "
            "k earliest strictly after its end (UTC)"
            if cfg.cube.acquisition_rule == "paper"
            else "the authors' code: calendar-day windows, the k pre-event passes ending one before the last",
            "chips": "positive chips (>= 1 landslide pixel)"
            + (f" plus {cfg.negative_ratio} negatives per positive" if cfg.negative_ratio else ""),
            "max_nodata_fraction": cfg.max_nodata_fraction,
            "negative_ratio": cfg.negative_ratio,
            "nan_label_pixels": candidates.nan_labels,
            "split": dataclasses.asdict(cfg.split),
        },
        "normalisation": {
            "source": "train split, kept chips" if cfg.stats_from == "train" else "whole scene (the authors' code)",
            "note": "the authors' code standardises with statistics of the whole scene; ours come from the training "
            "chips only (--stats_from=train, the default) so no test pixel informs the model",
            "mean": dict(zip(config.channels, stats.mean.tolist(), strict=False)),
            "std": dict(zip(config.channels, std.tolist(), strict=False)),
            "pixels": dict(zip(config.channels, stats.count.astype(int).tolist(), strict=False)),
            "transform": "(x - mean) / std, then NaN -> 0",
        },
        "records": {
            "values": "raw channel values (log backscatter, DEM units); standardise with 'normalisation'",
            "dtype": cfg.record_dtype,
            "layout": "HWC",
            "shard_layout": SHARD_LAYOUT,
            "compression": cfg.compression,
            "features": {
                "image": f"{cfg.record_dtype} bytes",
                "label": "uint8 bytes",
                "shape": "int64 [H, W, C]",
                "channels": "bytes list",
                "dtype": "bytes",
                "chip/row": "int64",
                "chip/col": "int64",
                "chip/origin": "float64 bytes (x, y)",
                "split": "bytes",
                "chip/positives": "int64",
            },
            "quantisation_max_abs_error": dict(zip(config.channels, quantisation.tolist(), strict=False)),
            "quantisation_max_error_in_std": dict(
                zip(config.channels, (quantisation / np.where(std > 0, std, 1)).tolist(), strict=False)
            ),
        },
        "splits": split_info,
        "totals": {
            "grid_chips": len(table),
            "chips": len(kept),
            "skipped_nodata_chips": len(skipped),
            "positive_pixels": int(sum(info["positive_pixels"] for info in split_info.values())),
        },
    }


def summary(manifest: dict) -> str:
    """Human summary of an export: chips per split, positive fractions, skips, time."""
    lines = [
        f"export {manifest['config']['name']}: {manifest['totals']['chips']} chips "
        f"({manifest['totals']['skipped_nodata_chips']} skipped as mostly no-data) in "
        f"{manifest.get('export_seconds', float('nan')):.1f} s"
    ]
    for split, info in manifest["splits"].items():
        lines.append(
            f"  {split:5s} {info['chips']:6d} chips  positive fraction {info['positive_fraction']:.3f}  "
            f"{len(info['shards'])} shard(s)"
        )
    return "\n".join(lines)


def _export_then_upload(cfg: ExportConfig, cube: xr.Dataset | None) -> dict:
    """Export to a URL (gs://...): the export runs, and resumes, in a local staging folder (its
    spool needs a local disk), then the shards are uploaded and the manifest last, so a reader
    never finds a manifest whose shards are not all there."""
    config = channels_lib.resolve_channel_config(cfg.config, cfg.channels, cfg.timesteps)
    remote = storage.join(cfg.records_dir, config.name)
    staging = os.path.join(cache_dir(cfg.cube), "staging", hashlib.sha256(cfg.records_dir.encode()).hexdigest()[:12])
    manifest = export(dataclasses.replace(cfg, records_dir=staging), cube)
    remote_manifest = storage.join(remote, MANIFEST_NAME)
    if storage.exists(remote_manifest):
        existing = storage.read_json(remote_manifest)
        shards = [shard for split in existing["splits"].values() for shard in split["shards"]]
        paths = [storage.join(remote, shard["file"]) for shard in shards]
        intact = all(storage.exists(p) and storage.size(p) == s["bytes"] for p, s in zip(paths, shards, strict=True))
        if existing.get("fingerprint") == manifest["fingerprint"] and intact:
            log.info("%s is up to date: nothing to upload", remote_manifest)
            return existing
        if existing.get("fingerprint") != manifest["fingerprint"] and not cfg.overwrite:
            raise ExportError(
                f"{remote} holds an export made with other settings (see its {MANIFEST_NAME}); "
                "pass --overwrite to replace it or choose another --records_dir"
            )
        storage.remove(remote_manifest)  # first: no manifest may vouch for shards being replaced
        for shard in storage.glob(storage.join(remote, "*-of-*")):
            storage.remove(shard)
    uploaded = storage.upload_tree(os.path.join(staging, config.name), remote, last=(MANIFEST_NAME,))
    log.info("uploaded %d files to %s (the local copy stays in %s)", len(uploaded), remote, staging)
    return manifest
