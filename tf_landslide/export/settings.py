"""The export's settings: their checks, the fingerprint that identifies an export, and the
names and layouts its outputs use."""

from __future__ import annotations

import dataclasses
import json

from tf_landslide import chips as chips_lib
from tf_landslide import records
from tf_landslide.config import ExportConfig
from tf_landslide.cube import channels as channels_lib
from tf_landslide.cube import events

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


def identifying_settings(
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


def check_settings(cfg: ExportConfig, in_memory: bool = False) -> None:
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
