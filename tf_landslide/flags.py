"""Every command-line flag, and their parsing into the frozen config objects.

One flagfile drives export, training and evaluation: ``configs/*.flags`` set these flags
and the entry points (``python -m export``, ``train.py``, ``eval.py``) read them. Importing
this module defines the flags; nothing else in the library reads them.

Vertex AI's job contract is honoured here too, from the ``environ`` the entry points pass in
(the library never reads the environment): a folder flag not set on the command line or in a
flagfile takes its Vertex AI variable when that is set (see ``VERTEX_ENVIRONMENT``), and
``--export_savedmodel`` defaults to on when the model folder is ``AIP_MODEL_DIR``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from absl import flags

from tf_landslide import chips, metrics, records
from tf_landslide.config import (
    ARCHITECTURES,
    BFLOAT16_CHOICES,
    ENCODER_WEIGHTS,
    SPLIT_METHODS,
    CubeConfig,
    EvalConfig,
    ExportConfig,
    InputConfig,
    MapConfig,
    ModelConfig,
    SplitSpec,
    TrainConfig,
)
from tf_landslide.cube import channels, events

FLAGS = flags.FLAGS

# --- the cube --------------------------------------------------------------------------
flags.DEFINE_string(
    "cube",
    "",
    "Datacube: a .zarr directory, a .zip of one (as on Zenodo), or an fsspec URL. "
    "Empty: the embedded synthetic cube (generated once into --cache_dir).",
)
flags.DEFINE_string(
    "cache_dir",
    os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "tf_landslide"),
    "Where the embedded cube is generated.",
)
flags.DEFINE_enum(
    "event",
    None,
    sorted(events.PRESETS),
    "Preset event of a published cube (its trigger time, UTC). "
    "Default: the cube's own event attributes, or the preset matching the cube's file name.",
)
flags.DEFINE_string("event_start", "", "Event start, UTC ISO time: pre-event acquisitions are strictly before it.")
flags.DEFINE_string(
    "event_end", "", "Event end, UTC ISO time: post-event acquisitions are strictly after it. Default: --event_start."
)
flags.DEFINE_enum(
    "orbit",
    "auto",
    list(channels.ORBIT_CHOICES),
    "Orbit of the SAR acquisitions; auto takes the cube's only orbit, or descending (the authors' "
    "choice) when it holds both; both mixes the two; any uses every acquisition whatever the cube "
    "says (or does not say) of its orbit.",
)

flags.DEFINE_enum(
    "acquisition_rule",
    "paper",
    list(channels.ACQUISITION_RULES),
    "paper: the k acquisitions nearest the event strictly before its start and after its end (UTC). "
    "authors: the authors' code, calendar-day windows and the k pre-event passes ending one before the last.",
)

# --- channels and chips ------------------------------------------------------------------
flags.DEFINE_string(
    "config",
    "vv_vh_dem_t1",
    "Channel configuration: one of the study's 17 (vv_t1..vv_vh_dem_t4, "
    "dem) or a new name for --channels. Records go to <records_dir>/<config>/.",
)
flags.DEFINE_list("channels", [], f"Free channel list (with a new --config name), from {list(channels.ALL_CHANNELS)}.")
flags.DEFINE_integer("timesteps", None, "Acquisitions averaged on each side of the event, for --channels.")
flags.DEFINE_string("records_dir", "records", "Root folder of the exported TFRecords.")
flags.DEFINE_integer("chip_size", 128, "Chip height and width in pixels (a multiple of 32 for the U-Net).")
flags.DEFINE_integer("stride", 0, "Chip stride in pixels; 0 means --chip_size (non-overlapping tiles, as the paper).")
flags.DEFINE_float("negative_ratio", 0.0, "Negative (landslide-free) chips to add per positive chip; 0 as the paper.")
flags.DEFINE_float(
    "max_nodata_fraction", 0.5, "Skip chips with more than this fraction of pixels missing in any channel."
)
flags.DEFINE_enum(
    "split",
    "random",
    list(SPLIT_METHODS),
    "random: seeded 70/20/10 over locations as the "
    "authors' code; blocked: spatial blocks of --split_block chips share a split (less leakage).",
)
flags.DEFINE_list("split_fractions", ["0.7", "0.2", "0.1"], "Train, validation and test fractions.")
flags.DEFINE_integer("split_seed", 42, "Seed of the split (42 as the authors' code).")
flags.DEFINE_integer("split_block", 4, "Block side in chips for --split=blocked.")
flags.DEFINE_enum(
    "stats_from",
    "train",
    ["train", "scene"],
    "Normalisation statistics from the training chips (ours) or the whole scene (the authors' code).",
)
flags.DEFINE_enum("record_dtype", "float16", list(records.RECORD_DTYPES), "Stored dtype of channel values.")
flags.DEFINE_enum("compression", "", list(records.COMPRESSIONS), "TFRecord compression.")
flags.DEFINE_float("shard_mb", 100.0, "Target shard size in MB.")
flags.DEFINE_integer("band_rows", 512, "Rows of the cube read per export task (bounds memory).")
flags.DEFINE_integer("export_workers", 2, "Local Dask workers for the export; 0 runs in this process.")
flags.DEFINE_bool(
    "export_processes",
    False,
    "Local Dask workers as processes (isolated) instead of threads "
    "(numpy, zarr and blosc release the GIL: threads are faster on few cores).",
)
flags.DEFINE_string(
    "dask_scheduler",
    "",
    "Address of a running Dask scheduler (e.g. tcp://host:8786) to export on, "
    "instead of a local cluster. Workers must see --cube and --records_dir.",
)
flags.DEFINE_bool("overwrite", False, "Replace an existing export made with other settings.")
flags.DEFINE_bool("progress", True, "Show progress bars.")

# --- input pipeline ----------------------------------------------------------------------
flags.DEFINE_integer("batch_size", 64, "Global batch size (split over replicas), 64 as the authors' code.")
flags.DEFINE_integer("shuffle_buffer", 2048, "Records in the training shuffle buffer.")
flags.DEFINE_bool("augment", False, "Random flips and 90-degree rotations (the paper used none).")
flags.DEFINE_float("cache_mb", 2048.0, "Cache a split in memory when its shards total less than this (0: never).")
flags.DEFINE_bool("deterministic", False, "Reproducible runs: fixed input order and deterministic ops (slower).")
flags.DEFINE_integer("seed", 42, "Seed of weights initialisation, shuffling and augmentation.")
flags.DEFINE_bool("verify_records", True, "Check every record's checksum before reading a split.")

# --- model and training ------------------------------------------------------------------
flags.DEFINE_enum(
    "arch",
    "unet",
    list(ARCHITECTURES),
    "Segmentation architecture; unetplusplus is what the authors' code trains (smp UnetPlusPlus).",
)
flags.DEFINE_string("backbone", "resnet50", "Encoder: any segmentation-models backbone.")
flags.DEFINE_enum(
    "encoder_weights",
    "",
    list(ENCODER_WEIGHTS),
    "imagenet downloads pretrained encoder "
    "weights (needs internet); with C != 3 channels the first layers are adapted as smp does.",
)
flags.DEFINE_string(
    "model_dir",
    "runs/model",
    "Where the trained model, its flags, manifest, history and metrics go (a path or a gs:// URL). "
    "Default under Vertex AI: AIP_MODEL_DIR.",
)
flags.DEFINE_string(
    "checkpoint_dir",
    "",
    "BackupAndRestore folder, from which a killed or preempted run resumes (a path or a gs:// URL). "
    "Default: AIP_CHECKPOINT_DIR under Vertex AI, else <model_dir>/backup.",
)
flags.DEFINE_string(
    "tensorboard_dir",
    "",
    "TensorBoard log folder (a path or a gs:// URL). Default: AIP_TENSORBOARD_LOG_DIR under Vertex AI, "
    "else <model_dir>/logs.",
)
flags.DEFINE_bool(
    "export_savedmodel",
    None,
    "After training, the chief exports the best model as a SavedModel directly into --model_dir "
    "(saved_model.pb beside the run's files), as Vertex AI's model upload expects. "
    "Default: on when --model_dir comes from AIP_MODEL_DIR, else off.",
)
flags.DEFINE_integer("epochs", 100, "Training epochs (the paper: 100).")
flags.DEFINE_float("learning_rate", 0.01, "Initial Adam learning rate (the paper: 0.01).")
flags.DEFINE_float("weight_decay", 1e-4, "Weight decay (the paper: 1e-4).")
flags.DEFINE_enum(
    "weight_decay_mode",
    "l2",
    ["l2", "decoupled"],
    "l2: added to the gradient, as torch.optim.Adam(weight_decay=...) in the authors' code; decoupled: AdamW.",
)
flags.DEFINE_float("lr_factor", 0.1, "ReduceLROnPlateau factor.")
flags.DEFINE_integer("lr_patience", 10, "ReduceLROnPlateau patience in epochs.")
flags.DEFINE_float("lr_threshold", 1e-4, "ReduceLROnPlateau relative threshold (PyTorch semantics).")
flags.DEFINE_bool("mixed_precision", False, "mixed_float16 compute (GPUs); outputs stay float32.")
flags.DEFINE_enum(
    "bfloat16",
    "auto",
    list(BFLOAT16_CHOICES),
    "mixed_bfloat16 compute for training and the run's maps: auto = on CPUs with native bfloat16 instructions "
    "(AVX512_BF16, AMX) when no GPU is visible; on; off (float32). Weights, outputs, evaluation and serving "
    "stay float32.",
)
flags.DEFINE_bool("jit_compile", False, "XLA-compile the train step (GPUs).")

# --- evaluation --------------------------------------------------------------------------
flags.DEFINE_enum("split_to_evaluate", "test", list(chips.SPLITS), "Split that eval.py evaluates.")
flags.DEFINE_float(
    "threshold",
    None,
    "Probability at and above which a pixel is called a landslide (IoU, precision, recall, polygons, maps). "
    "Default: the run's operating threshold, chosen on the validation split after training (--threshold_rule).",
)
flags.DEFINE_string(
    "threshold_rule",
    "best_f1",
    "How training chooses the operating threshold on the validation split: best_f1, recall:R (the highest "
    "threshold finding R of the landslide pixels) or precision:P (the lowest threshold at precision P).",
)


def _rule_is_valid(rule: str) -> bool:
    try:
        metrics.parse_threshold_rule(rule)
    except ValueError:
        return False
    return True


flags.register_validator("threshold_rule", _rule_is_valid, "give best_f1, recall:R or precision:P (0 < R, P <= 1)")
flags.DEFINE_enum("checkpoint", "best", ["best", "last"], "Model to evaluate: best validation PR-AUC, or last epoch.")
flags.DEFINE_integer("panel_chips", 8, "Chips in the predicted-vs-ground-truth figure.")

# --- full-scene maps (predict.py) --------------------------------------------------------------
flags.DEFINE_string("map_dir", "", "Where predict.py writes the map ('' = <model_dir>/map).")
flags.DEFINE_string(
    "saved_model",
    "",
    "Map with this SavedModel (export_savedmodel.py's version folder, or a Vertex AI model folder) instead of "
    "the run in --model_dir: channels, normalisation and threshold come from its assets; needs --map_dir.",
)
flags.DEFINE_integer("map_window", 512, "Window size (pixels, a multiple of 32) slid over the scene.")
flags.DEFINE_integer("map_overlap", 128, "Overlap of neighbouring windows (pixels, a multiple of 4).")
flags.DEFINE_integer("map_batch_size", 4, "Windows predicted at once.")
flags.DEFINE_list(
    "map_outputs", "geotiff,zarr,png,geojson,html", "Map outputs to write: geotiff, zarr, png, geojson, html."
)
flags.DEFINE_string(
    "map_basemap",
    "",
    "The map page's web base layer: '' = none (the page then loads nothing from the network), 'osm' "
    "(OpenStreetMap) or an XYZ tile URL with {z}, {x} and {y}.",
)
flags.DEFINE_float("min_area_m2", 0.0, "GeoJSON polygons smaller than this area (m2) are left out.")


# Folder flags that Vertex AI's custom-job variables set when the flag itself is not given.
VERTEX_ENVIRONMENT = {
    "model_dir": "AIP_MODEL_DIR",
    "checkpoint_dir": "AIP_CHECKPOINT_DIR",
    "tensorboard_dir": "AIP_TENSORBOARD_LOG_DIR",
}


def _explicit(values, name: str) -> bool:
    """Whether the flag was given on the command line or in a flagfile."""
    return bool(values[name].present)


def from_environment(name: str, values=FLAGS, environ: Mapping[str, str] | None = None) -> str:
    """A folder flag's value: given explicitly, else its Vertex AI variable when set, else its default."""
    variable = (environ or {}).get(VERTEX_ENVIRONMENT[name], "")
    if variable and not _explicit(values, name):
        return variable
    return getattr(values, name)


def export_savedmodel(values=FLAGS, environ: Mapping[str, str] | None = None) -> bool:
    """--export_savedmodel as given, else whether the model folder comes from AIP_MODEL_DIR."""
    if values.export_savedmodel is not None:
        return bool(values.export_savedmodel)
    return bool((environ or {}).get("AIP_MODEL_DIR")) and not _explicit(values, "model_dir")


def cube_config(values=FLAGS) -> CubeConfig:
    return CubeConfig(
        cube=values.cube,
        cache_dir=values.cache_dir,
        event=values.event or "",
        event_start=values.event_start,
        event_end=values.event_end,
        orbit=values.orbit,
        acquisition_rule=values.acquisition_rule,
    )


def export_config(values=FLAGS) -> ExportConfig:
    """The export configuration the parsed flags describe (raises ValueError on bad values)."""
    try:
        fractions = tuple(float(f) for f in values.split_fractions)
    except ValueError as error:
        raise ValueError(f"--split_fractions={','.join(values.split_fractions)} must be numbers") from error
    return ExportConfig(
        cube=cube_config(values),
        config=values.config,
        channels=tuple(values.channels),
        timesteps=values.timesteps,
        records_dir=values.records_dir,
        chip_size=values.chip_size,
        stride=values.stride,
        negative_ratio=values.negative_ratio,
        max_nodata_fraction=values.max_nodata_fraction,
        split=SplitSpec(values.split, fractions, values.split_seed, values.split_block),
        stats_from=values.stats_from,
        record_dtype=values.record_dtype,
        compression=values.compression,
        shard_mb=values.shard_mb,
        band_rows=values.band_rows,
        workers=values.export_workers,
        worker_processes=values.export_processes,
        dask_scheduler=values.dask_scheduler,
        overwrite=values.overwrite,
        progress=values.progress,
    )


def input_config(values=FLAGS) -> InputConfig:
    return InputConfig(
        batch_size=values.batch_size,
        shuffle_buffer=values.shuffle_buffer,
        augment=values.augment,
        cache_mb=values.cache_mb,
        deterministic=values.deterministic,
        seed=values.seed,
        verify_records=values.verify_records,
    )


def train_config(values=FLAGS, cluster: str = "", environ: Mapping[str, str] | None = None) -> TrainConfig:
    """The training configuration; ``cluster`` is TF_CONFIG-style JSON from the environment,
    ``environ`` the environment itself (for Vertex AI's AIP_* folders)."""
    if values.batch_size < 1 or values.epochs < 1:
        raise ValueError(f"--batch_size={values.batch_size} and --epochs={values.epochs} must be >= 1")
    model_dir = from_environment("model_dir", values, environ)
    return TrainConfig(
        export=export_config(values),
        input=input_config(values),
        model=ModelConfig(values.arch, values.backbone, values.encoder_weights),
        model_dir=model_dir,
        epochs=values.epochs,
        learning_rate=values.learning_rate,
        weight_decay=values.weight_decay,
        weight_decay_mode=values.weight_decay_mode,
        lr_factor=values.lr_factor,
        lr_patience=values.lr_patience,
        lr_threshold=values.lr_threshold,
        mixed_precision=values.mixed_precision,
        bfloat16=values.bfloat16,
        jit_compile=values.jit_compile,
        seed=values.seed,
        cluster=cluster,
        tensorboard_dir=from_environment("tensorboard_dir", values, environ),
        checkpoint_dir=from_environment("checkpoint_dir", values, environ),
        savedmodel_dir=model_dir if export_savedmodel(values, environ) else "",
        threshold_rule=values.threshold_rule,
    )


def eval_config(values=FLAGS, environ: Mapping[str, str] | None = None) -> EvalConfig:
    return EvalConfig(
        export=export_config(values),
        input=input_config(values),
        model_dir=from_environment("model_dir", values, environ),
        split=values.split_to_evaluate,
        threshold=values.threshold,
        checkpoint=values.checkpoint,
        panel_chips=values.panel_chips,
    )


def map_config(values=FLAGS, environ: Mapping[str, str] | None = None) -> MapConfig:
    return MapConfig(
        cube=cube_config(values),
        model_dir=from_environment("model_dir", values, environ),
        config=values.config if _explicit(values, "config") else "",
        checkpoint=values.checkpoint,
        map_dir=values.map_dir,
        saved_model=values.saved_model,
        window=values.map_window,
        overlap=values.map_overlap,
        batch_size=values.map_batch_size,
        bfloat16=values.bfloat16,
        threshold=values.threshold,
        min_area_m2=values.min_area_m2,
        outputs=tuple(values.map_outputs),
        overwrite=values.overwrite,
        basemap=values.map_basemap,
    )


def flags_text(values=FLAGS, environ: Mapping[str, str] | None = None) -> str:
    """This project's flags with their values, as a flagfile that reproduces the run (folders
    taken from Vertex AI's variables written out as the flags they stood for)."""
    lines = []
    for flag in values.get_flags_for_module(__name__):
        if flag.name in VERTEX_ENVIRONMENT:
            value = from_environment(flag.name, values, environ)
            line = f"--{flag.name}={value}" if value != flag.value else flag.serialize()
        elif flag.name == "export_savedmodel":
            line = f"--export_savedmodel={str(export_savedmodel(values, environ)).lower()}"
        else:
            line = flag.serialize()
        if line:
            lines.append(line)
    return "\n".join(lines) + "\n"
