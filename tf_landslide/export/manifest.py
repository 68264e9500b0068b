"""The manifest an export writes last, and its human summary."""

from __future__ import annotations

import dataclasses

import numpy as np

import tf_landslide
from tf_landslide import chips as chips_lib
from tf_landslide import shards as shards_lib
from tf_landslide.config import ExportConfig
from tf_landslide.cube import schema
from tf_landslide.cube.open import acquisitions_by_orbit, orbit_codes
from tf_landslide.cube.scene import georeference
from tf_landslide.export import plan
from tf_landslide.export.scan import ScanTotals
from tf_landslide.export.settings import MANIFEST_SCHEMA_VERSION, SHARD_LAYOUT
from tf_landslide.normalisation import ChannelMoments


def describe_export(
    job: plan.Job,
    candidates: plan.Candidates,
    kept: list,
    scanned: ScanTotals,
    stats: ChannelMoments,
    planned: list[shards_lib.Shard],
    written: dict[str, dict],
) -> dict:
    """The manifest: everything a reader of the shards needs, and how they were made.

    The settings and their fingerprint (which identify the export); where the pixels come from
    (cube, event, orbit, acquisitions); how the chips were chosen; the normalisation statistics;
    the record format; and per split its chips, their locations and the shard files with their
    checksums. Its presence vouches that every shard it lists is complete.
    """
    cfg, scene, ds = job.cfg, job.scene, job.scene.ds
    splits = _splits(cfg, candidates.table, kept, scanned.skipped, planned, written)
    return {
        "manifest_schema_version": MANIFEST_SCHEMA_VERSION,
        "code_version": tf_landslide.__version__,
        "fingerprint": job.fingerprint,
        "settings": job.settings,
        "cube": {**job.identity, **georeference(ds), "conformed": list(scene.changes)},
        "event": scene.event.as_dict(),
        "orbit": scene.acquisitions.orbit,
        "config": job.settings["config"],
        "channels": list(scene.config.channels),
        "chip_size": cfg.chip_size,
        "stride": cfg.chip_stride,
        "acquisitions": _acquisitions(job),
        "cube_acquisitions_per_orbit": acquisitions_by_orbit(ds),
        "insar_pairs": {name: str(ds[schema.PAIR_DIM].values[i]) for name, i in scene.pairs.items()},
        "selection": _selection(cfg, candidates.nan_labels),
        "normalisation": _normalisation(cfg, scene.config.channels, stats),
        "records": _records(cfg, scene.config.channels, scanned.quantisation, stats.std),
        "splits": splits,
        "totals": {
            "grid_chips": len(candidates.table),
            "chips": len(kept),
            "skipped_nodata_chips": len(scanned.skipped),
            "positive_pixels": int(sum(info["positive_pixels"] for info in splits.values())),
        },
    }


def _acquisitions(job: plan.Job) -> dict:
    """The time (UTC) and orbit of each acquisition the channels use, before and after the event."""
    ds, chosen = job.scene.ds, job.scene.acquisitions
    times = ds[schema.TIME_DIM].values
    orbit_of = orbit_codes(ds)
    return {
        side: [{"time": str(times[i])[:19] + "Z", "orbit": orbit_of[i]} for i in indices]
        for side, indices in (("before", chosen.before), ("after", chosen.after))
    }


def _selection(cfg: ExportConfig, nan_labels: int) -> dict:
    """How the acquisitions and the chips were chosen."""
    return {
        "rule": "k most recent acquisitions strictly before the event start, k earliest strictly after its end (UTC)"
        if cfg.cube.acquisition_rule == "paper"
        else "the authors' code: calendar-day windows, the k pre-event passes ending one before the last",
        "chips": "positive chips (>= 1 landslide pixel)"
        + (f" plus {cfg.negative_ratio} negatives per positive" if cfg.negative_ratio else ""),
        "max_nodata_fraction": cfg.max_nodata_fraction,
        "negative_ratio": cfg.negative_ratio,
        "nan_label_pixels": nan_labels,
        "split": dataclasses.asdict(cfg.split),
    }


def _normalisation(cfg: ExportConfig, channels: tuple[str, ...], stats: ChannelMoments) -> dict:
    """The statistics a reader standardises the channels with, and where they come from."""
    return {
        "source": "train split, kept chips" if cfg.stats_from == "train" else "whole scene (the authors' code)",
        "note": "the authors' code standardises with statistics of the whole scene; ours come from the training "
        "chips only (--stats_from=train, the default) so no test pixel informs the model",
        "mean": dict(zip(channels, stats.mean.tolist(), strict=False)),
        "std": dict(zip(channels, stats.std.tolist(), strict=False)),
        "pixels": dict(zip(channels, stats.count.astype(int).tolist(), strict=False)),
        "transform": "(x - mean) / std, then NaN -> 0",
    }


def _records(cfg: ExportConfig, channels: tuple[str, ...], quantisation: np.ndarray, std: np.ndarray) -> dict:
    """The records' format, and how far their values are from the channels' (rounding to the dtype)."""
    return {
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
        "quantisation_max_abs_error": dict(zip(channels, quantisation.tolist(), strict=False)),
        "quantisation_max_error_in_std": dict(
            zip(channels, (quantisation / np.where(std > 0, std, 1)).tolist(), strict=False)
        ),
    }


def _splits(
    cfg: ExportConfig,
    table: chips_lib.ChipTable,
    kept: list,
    skipped: dict[int, float],
    planned: list[shards_lib.Shard],
    written: dict[str, dict],
) -> dict:
    """Per split: its chips, their landslide pixels, the chips skipped as no-data, their
    locations (row order), and its shard files with what their writers said of them."""
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
    return split_info


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
