"""Typed, frozen run configuration. Flags are parsed into these at the entry points
(``tf_landslide.flags``); library functions take them, never absl's FLAGS. Every folder may
be a local path or a URL (``gs://...``).

The bottom of the package: it imports nothing of it, so every layer (the cube, the export, the
input pipeline, the models, training) can take its configuration from here without pulling in
another layer.
"""

from __future__ import annotations

import dataclasses

SPLIT_METHODS = ("random", "blocked")
ARCHITECTURES = ("unet", "unetplusplus", "fpn", "linknet")
ENCODER_WEIGHTS = ("", "imagenet")
BFLOAT16_CHOICES = ("auto", "on", "off")


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """How chip locations are assigned to train/val/test."""

    method: str = "random"
    fractions: tuple[float, float, float] = (0.7, 0.2, 0.1)
    seed: int = 42
    block: int = 4  # chips per side of a spatial block ('blocked' only)

    def __post_init__(self):
        if self.method not in SPLIT_METHODS:
            raise ValueError(f"--split={self.method!r}; choose one of {list(SPLIT_METHODS)}")
        if len(self.fractions) != 3 or min(self.fractions) < 0 or abs(sum(self.fractions) - 1) > 1e-6:
            raise ValueError(
                f"--split_fractions={list(self.fractions)} must be three non-negative numbers summing to 1"
            )
        if self.block < 1:
            raise ValueError(f"--split_block must be >= 1, got {self.block}")


@dataclasses.dataclass(frozen=True)
class InputConfig:
    """How batches are made. ``batch_size`` is global: the strategy splits it over replicas."""

    batch_size: int = 64
    shuffle_buffer: int = 2048
    augment: bool = False
    cache_mb: float = 2048.0  # cache a split whose shards total less than this; 0 disables
    deterministic: bool = False
    seed: int = 42
    verify_records: bool = True


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    arch: str = "unet"
    backbone: str = "resnet50"
    encoder_weights: str = ""  # '' (random init, as in our tests) or 'imagenet' (downloads weights)


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
    workers: int = 2  # local Dask workers (threads, or processes); 0 runs in this process
    worker_processes: bool = False  # local Dask workers as processes instead of threads
    dask_scheduler: str = ""  # address of a running Dask scheduler, instead of a local cluster
    overwrite: bool = False
    progress: bool = True

    @property
    def chip_stride(self) -> int:
        return self.stride or self.chip_size

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run: the export it reads, batching, model, optimisation and where it writes."""

    export: ExportConfig
    input: InputConfig = InputConfig()
    model: ModelConfig = ModelConfig()
    model_dir: str = "runs/model"
    epochs: int = 100
    learning_rate: float = 0.01
    weight_decay: float = 1e-4
    weight_decay_mode: str = "l2"  # 'l2' as torch.optim.Adam(weight_decay=...), or 'decoupled' (AdamW)
    lr_factor: float = 0.1
    lr_patience: int = 10
    lr_threshold: float = 1e-4  # relative, as torch's ReduceLROnPlateau (threshold_mode='rel')
    mixed_precision: bool = False
    bfloat16: str = "auto"  # mixed_bfloat16 compute: 'auto' (CPUs with native bfloat16, no GPU), 'on' or 'off'
    jit_compile: bool = False
    seed: int = 42
    cluster: str = ""  # TF_CONFIG-style JSON naming the workers ('' = this machine only)
    tensorboard_dir: str = ""  # '' = <model_dir>/logs
    checkpoint_dir: str = ""  # '' = <model_dir>/backup (BackupAndRestore)
    savedmodel_dir: str = ""  # the chief exports a SavedModel here after training ('' = none)
    threshold_rule: str = "best_f1"  # how the operating threshold is chosen on the val split (operating_point)


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Evaluation of a trained model on one split of its export."""

    export: ExportConfig
    input: InputConfig = InputConfig()
    model_dir: str = "runs/model"
    split: str = "test"
    threshold: float | None = None  # None: the run's operating threshold (model_folder.operating_threshold)
    checkpoint: str = "best"  # 'best' (validation PR-AUC) or 'last'
    panel_chips: int = 8


@dataclasses.dataclass(frozen=True)
class MapConfig:
    """A full-scene map of one cube by a trained model (channels and normalisation from its run)."""

    cube: CubeConfig
    model_dir: str = "runs/model"
    saved_model: str = ""  # a SavedModel to map with instead of the run in model_dir (maps/saved_model.py)
    config: str = ""  # the flags' --config, checked against the run's; '' = the run's
    checkpoint: str = "best"
    map_dir: str = ""  # '' = <model_dir>/map
    window: int = 512
    overlap: int = 128
    batch_size: int = 4
    bfloat16: str = "auto"  # the model computes in mixed_bfloat16: 'auto' (CPUs with native bfloat16), 'on', 'off'
    threshold: float | None = None  # None: the run's operating threshold (model_folder.operating_threshold)
    min_area_m2: float = 0.0
    outputs: tuple[str, ...] = ("geotiff", "zarr", "png", "geojson", "html")
    overwrite: bool = False
    basemap: str = ""  # the page's web base layer: '' = none (the page works offline), 'osm' or an XYZ URL
