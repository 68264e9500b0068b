"""The scan: one task per window of a band of rows, in row order, on the executor's workers.

A task reads only the planes the channels need over its window, builds the channels, keeps the
chips that are not mostly no-data (``chip_stage``), computes the moments the statistics use,
and hands the kept chips over: in memory to workers of this process, else spooled to ``.work/``.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import math
import threading
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tf_landslide import shards as shards_lib
from tf_landslide.cube import channels as channels_lib
from tf_landslide.cube import planes
from tf_landslide.cube.open import IN_MEMORY, open_conformed
from tf_landslide.export.chip_stage import stage_chips
from tf_landslide.export.files import atomic_save_npy, atomic_write_bytes
from tf_landslide.export.plan import BandTask, Job
from tf_landslide.export.progress import progress
from tf_landslide.export.settings import ExportError
from tf_landslide.normalisation import ChannelMoments
from tf_landslide.shards import ShardStream, SpoolReader


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
    stage = stage_chips(band, task, chip_size, max_nodata_fraction, record_dtype)
    images = labels = None
    if stage.kept:
        images = stage.images
        labels = np.stack([mask[r : r + chip_size, c : c + chip_size] for r, c in stage.corners]).astype(np.uint8)
        if spool:
            atomic_save_npy(Path(spool) / f"{task.name}-images.npy", images)
            atomic_save_npy(Path(spool) / f"{task.name}-labels.npy", labels)
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
    atomic_write_bytes(meta_path, json.dumps(result).encode())
    return result


def band_scanner(job: Job, pool, in_memory: bool) -> Callable[[BandTask], dict]:
    """``scan_band`` for ``job``'s windows on ``pool``'s workers; ``in_memory``: chips are handed
    over in the results instead of spooled."""
    cfg = job.cfg
    return functools.partial(
        scan_band,
        SharedCube(job.scene.location, job.scene.reader() if pool.in_process else None),
        job.scene.plan,
        chip_size=cfg.chip_size,
        max_nodata_fraction=cfg.max_nodata_fraction,
        record_dtype=cfg.record_dtype,
        spool=None if in_memory else str(job.spool),
        buffers=BandBuffers(),
    )


def scan_windows(
    job: Job, tasks: list[BandTask], scanner: Callable[[BandTask], dict], pool, streams: list[ShardStream]
) -> tuple[dict, dict[int, shards_lib.Slot]]:
    """Scan every window, writing the streams' chips as their bands are done; the results by
    window, and where each kept chip sits (chip index -> band, window, position in the window)."""
    bar = progress(int(sum(len(t.chips) for t in tasks)), "chip", f"scan {job.scene.config.name}", job.cfg.progress)
    chips_in = {t.name: len(t.chips) for t in tasks}
    windows_left = collections.Counter(t.band for t in tasks)
    done_bands, slots, results = set(), {}, {}
    spool = SpoolReader(job.spool, job.scene.config.channels)
    for result in pool.map_unordered(scanner, ((t,) for t in tasks)):
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


@dataclasses.dataclass
class ScanTotals:
    """What the windows' results say together."""

    moments: dict[int, ChannelMoments]  # of the kept chips the statistics need, by chip index
    skipped: dict[int, float]  # no-data fraction of the chips left out, by chip index
    quantisation: np.ndarray  # [C] the largest rounding error to the record dtype per channel
    scene: ChannelMoments  # of the whole scene, when the statistics need it (else empty)


def totals(results: dict, channels: int) -> ScanTotals:
    """The windows' results merged, in band order: merging scene moments in another order would
    change their last bits."""
    merged = ScanTotals({}, {}, np.zeros(channels), ChannelMoments.empty(channels))
    for result in sorted(results.values(), key=lambda r: (r["band"], r["window"])):
        merged.moments.update({int(k): ChannelMoments.from_json(v) for k, v in result["moments"].items()})
        merged.skipped.update({int(i): f for i, f in result["skipped"]})
        merged.quantisation = np.maximum(merged.quantisation, result["quantisation"])
        if result["scene_moments"]:
            merged.scene = merged.scene.merge(ChannelMoments.from_json(result["scene_moments"]))
    return merged
