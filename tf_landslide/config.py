"""Typed, frozen run configuration. Flags are parsed into these at the entry points
(``tf_landslide.flags``); library functions take them, never absl's FLAGS."""

from __future__ import annotations

import dataclasses

from tf_landslide.chips import SplitSpec


@dataclasses.dataclass(frozen=True)
class CubeConfig:
    """Which cube, which event, which orbit."""

    cube: str = ""  # path or URL; empty means the embedded synthetic cube
    cache_dir: str = ""  # where the embedded cube is generated
    event: str = ""
    event_start: str = ""
    event_end: str = ""
    orbit: str = "auto"
    acquisition_rule: str = "paper"  # or 'authors': their calendar-day windows


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """Everything that determines an export's records and manifest (plus how to run it)."""

    cube: CubeConfig
    config: str = "vv_vh_dem_t1"
    channels: tuple[str, ...] = ()  # a free channel list under a new --config name
    timesteps: int | None = None
    records_dir: str = "records"
    chip_size: int = 128
    stride: int = 0  # 0 means chip_size: non-overlapping tiles
    negative_ratio: float = 0.0
    max_nodata_fraction: float = 0.5
    split: SplitSpec = SplitSpec()
    stats_from: str = "train"  # 'train' (ours) or 'scene' (the authors' code)
    record_dtype: str = "float16"
    compression: str = ""
    shard_mb: float = 100.0
    band_rows: int = 512
    workers: int = 2  # local Dask worker processes; 0 runs in this process
    dask_scheduler: str = ""  # address of a running Dask scheduler, instead of a local cluster
    overwrite: bool = False
    progress: bool = True

    @property
    def chip_stride(self) -> int:
        return self.stride or self.chip_size

    def to_json(self) -> dict:
        return dataclasses.asdict(self)
