"""The export from start to end: plan, scan while writing shards, choose the chips and their
statistics, write the manifest; and the export to a URL, made in a local staging folder and
uploaded."""

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

from tf_landslide import chips as chips_lib
from tf_landslide import shards as shards_lib
from tf_landslide import storage
from tf_landslide.config import ExportConfig
from tf_landslide.cube import channels as channels_lib
from tf_landslide.cube.scene import cache_dir
from tf_landslide.export import plan, write
from tf_landslide.export.executors import executor
from tf_landslide.export.files import atomic_write_bytes
from tf_landslide.export.manifest import describe_export, summary
from tf_landslide.export.output import prepare_output
from tf_landslide.export.scan import ScanTotals, band_scanner, scan_windows, totals
from tf_landslide.export.settings import MANIFEST_NAME, TRAIN, ExportError, check_settings
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
    manifest = _scan_and_write(job)
    manifest["export_seconds"] = round(time.perf_counter() - started, 2)
    text = json.dumps(manifest, indent=1)
    atomic_write_bytes(job.out_dir / MANIFEST_NAME, text.encode())
    shutil.rmtree(job.spool, ignore_errors=True)
    log.info("%s", summary(manifest))
    return json.loads(text)  # exactly what a later run reads back


def _scan_and_write(job: plan.Job) -> dict:
    """Scan the candidate chips and write the shards; the manifest, but for its time."""
    cfg = job.cfg
    candidates = plan.candidates(job)
    height, width = job.scene.ds.sizes["y"], job.scene.ds.sizes["x"]
    tasks = plan.band_tasks(candidates.table, candidates.indices, cfg, height, width)
    # Positive chips only: the shards can be planned now and written while the scan goes on.
    streams = [] if cfg.negative_ratio else write.streams_of_candidates(job, candidates)
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
        return assemble(job, candidates, results, slots, pool, streams)


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
    scanned = totals(results, len(job.scene.config.channels))
    kept = _kept_chips(job.cfg, candidates, slot, scanned.skipped)
    stats = _statistics(job, candidates.table, kept, scanned)
    if streams:  # planned before the scan and written during it
        planned, written = write.streamed(streams)
    else:  # negatives are chosen after the scan: so are the shards
        planned, written = write.after_scan(job, candidates.table, kept, slot, pool)
    return describe_export(job, candidates, kept, scanned, stats, planned, written)


def _kept_chips(cfg: ExportConfig, candidates: plan.Candidates, slot: dict, skipped: dict) -> list:
    """The chips to export, in row order: every positive chip the scan kept, and the first kept
    negative chips in their seeded order, as many as asked."""
    table, wanted_negatives = candidates.table, candidates.wanted_negatives
    kept_positive = [i for i in np.flatnonzero(table.positives > 0) if i in slot]
    kept_negative = [int(i) for i in candidates.negatives if int(i) in slot][:wanted_negatives]
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
    return kept


def _statistics(job: plan.Job, table: chips_lib.ChipTable, kept: list, scanned: ScanTotals) -> ChannelMoments:
    """The normalisation moments: of the kept training chips, or of the whole scene."""
    stats = scanned.scene
    if job.cfg.stats_from == "train":
        stats = ChannelMoments.empty(len(job.scene.config.channels))
        for i in kept:
            if table.split[i] == TRAIN:
                stats = stats.merge(scanned.moments[i])
    if stats.count.min() == 0:
        raise ExportError(
            "the training split holds no valid pixel for some channel; cannot compute normalisation "
            "statistics. Use --stats_from=scene or another --split_seed"
        )
    return stats


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
