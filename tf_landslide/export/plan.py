"""The plan: every choice that does not need the pixels.

Open and validate the cube, choose acquisitions (``open_job``); count landslide pixels per chip
from the labels, assign splits and pick the chips worth reading (``candidates``); group them
into the windows the scan reads (``band_tasks``); and cut chips into shards (``shard_plan``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import xarray as xr

from tf_landslide import chips as chips_lib
from tf_landslide import shards as shards_lib
from tf_landslide.config import ExportConfig
from tf_landslide.cube import channels as channels_lib
from tf_landslide.cube.scene import Scene, cube_identity, cube_location, georeference, open_scene
from tf_landslide.export.settings import TRAIN, WORK_DIR, identifying_settings
from tf_landslide.shards import ChipEntry

log = logging.getLogger("tf_landslide.export")


@dataclasses.dataclass
class Job:
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
class Candidates:
    """The chip grid and which of its chips are worth reading."""

    table: chips_lib.ChipTable
    nan_labels: int
    negatives: np.ndarray  # negative chips in their seeded order
    wanted_negatives: int
    indices: np.ndarray  # chips to read: positives and oversampled negatives


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


def open_job(cfg: ExportConfig, cube: xr.Dataset | None = None) -> Job:
    """Open and validate the cube and make every choice that does not need the pixels."""
    config = channels_lib.resolve_channel_config(cfg.config, cfg.channels, cfg.timesteps)
    scene = open_scene(cube_location(cfg.cube) if cube is None else cube, cfg.cube, config)
    identity = cube_identity(scene.ds, scene.location)
    job_settings = identifying_settings(cfg, identity, scene.event, config, scene.acquisitions, scene.pairs)
    fingerprint = hashlib.sha256(json.dumps(job_settings, sort_keys=True).encode()).hexdigest()
    out_dir = Path(cfg.records_dir) / config.name
    return Job(cfg, scene, identity, job_settings, fingerprint, out_dir)


def candidates(job: Job) -> Candidates:
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
    return Candidates(table, nan_labels, negatives, wanted, np.sort(np.concatenate([positive, read])))


def band_tasks(
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


def chip_entries(job: Job, table: chips_lib.ChipTable, indices: Iterable[int]) -> dict[str, list[ChipEntry]]:
    """What the records of chips ``indices`` hold besides pixels, by split, in row order."""
    transform = georeference(job.scene.ds)["transform"]
    members: dict[str, list[ChipEntry]] = {split: [] for split in chips_lib.SPLITS}
    for i in sorted(indices, key=lambda i: (table.row[i], table.col[i])):
        row, col, split = int(table.row[i]), int(table.col[i]), chips_lib.SPLITS[table.split[i]]
        origin = (transform[2] + col * transform[0], transform[5] + row * transform[4])
        members[split].append(ChipEntry(int(i), row // job.cfg.band_rows, row, col, origin, split))
    return members


def shard_plan(job: Job, table: chips_lib.ChipTable, indices: Iterable[int]) -> list[shards_lib.Shard]:
    cfg = job.cfg
    bytes_per_chip = cfg.chip_size**2 * (len(job.scene.config.channels) * np.dtype(cfg.record_dtype).itemsize + 1)
    per_shard = max(1, int(cfg.shard_mb * 1e6 // (bytes_per_chip + 400)))
    return shards_lib.plan(chip_entries(job, table, indices), per_shard)
