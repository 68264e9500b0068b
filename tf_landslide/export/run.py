"""The export from start to end: plan, scan while writing shards, assemble the manifest; and the
export to a URL, made in a local staging folder and uploaded."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time

import numpy as np
import xarray as xr

import tf_landslide
from tf_landslide import chips as chips_lib
from tf_landslide import shards as shards_lib
from tf_landslide import storage
from tf_landslide.config import ExportConfig
from tf_landslide.cube import channels as channels_lib
from tf_landslide.cube import schema
from tf_landslide.cube.open import acquisitions_by_orbit, orbit_codes
from tf_landslide.cube.scene import cache_dir, georeference
from tf_landslide.export import plan
from tf_landslide.export.executors import executor
from tf_landslide.export.files import atomic_write_bytes
from tf_landslide.export.manifest import summary
from tf_landslide.export.output import prepare_output
from tf_landslide.export.progress import progress
from tf_landslide.export.scan import band_scanner, scan_windows
from tf_landslide.export.settings import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA_VERSION,
    SHARD_LAYOUT,
    TRAIN,
    ExportError,
    check_settings,
)
from tf_landslide.normalisation import ChannelMoments
from tf_landslide.shards import ShardStream

log = logging.getLogger("tf_landslide.export")


def export(cfg: ExportConfig, cube: xr.Dataset | None = None) -> dict:
    """Export ``cfg``'s configuration of its cube; return the manifest (also on disk).

    ``cube``: a Dataset in memory (from stackstac, odc-stac, a notebook) to export instead of
    ``cfg.cube``; conformed as a stored cube is, and read by workers of this process.
    """
    if storage.is_remote(cfg.records_dir):
        return export_then_upload(cfg, cube)
    if storage.local_path(cfg.records_dir) != cfg.records_dir:  # a file:// URL
        cfg = dataclasses.replace(cfg, records_dir=storage.local_path(cfg.records_dir))
    check_settings(cfg, in_memory=cube is not None)
    started = time.perf_counter()
    job = plan.open_job(cfg, cube)
    job.out_dir.mkdir(parents=True, exist_ok=True)
    reused = prepare_output(job.out_dir, job.fingerprint, cfg.overwrite)
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
    candidates = plan.candidates(job)
    table = candidates.table
    height, width = job.scene.ds.sizes["y"], job.scene.ds.sizes["x"]
    tasks = plan.band_tasks(table, candidates.indices, cfg, height, width)
    # Positive chips only: the shards can be planned now and written while the scan goes on.
    streams = []
    if not cfg.negative_ratio:
        planned = plan.shard_plan(job, table, candidates.indices)
        streams = [ShardStream(s, job.out_dir, cfg.compression) for s in planned]
    with executor(cfg) as pool:
        # Streamed shards take each band's chips as it is done: workers sharing this process hand
        # them over in memory (a killed export then scans again instead of reading a spool).
        in_memory = bool(streams) and pool.in_process
        try:
            results, slots = scan_windows(job, tasks, band_scanner(job, pool, in_memory), pool, streams)
        except BaseException:
            for stream in streams:
                stream.abort()
            raise
        manifest = assemble(job, candidates, results, slots, pool, streams)
    manifest["export_seconds"] = round(time.perf_counter() - started, 2)
    text = json.dumps(manifest, indent=1)
    atomic_write_bytes(job.out_dir / MANIFEST_NAME, text.encode())
    shutil.rmtree(job.spool, ignore_errors=True)
    log.info("%s", summary(manifest))
    return json.loads(text)  # exactly what a later run reads back


def assemble(
    job: plan.Job,
    candidates: plan.Candidates,
    results: dict,
    slot: dict[int, shards_lib.Slot],
    pool,
    streams: list[ShardStream],
) -> dict:
    """Choose the final chips, compute statistics, write the shards and build the manifest.

    ``slot``: where each kept chip sits in the scan's output, as ``scan.scan_windows`` gives it.
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
        planned = plan.shard_plan(job, table, kept)
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
        bar = progress(len(kept), "chip", "write shards", cfg.progress)
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


def export_then_upload(cfg: ExportConfig, cube: xr.Dataset | None) -> dict:
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
