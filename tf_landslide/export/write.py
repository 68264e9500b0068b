"""The write stage: shards planned before the scan are written during it (``shards.ShardStream``,
fed by the scan loop); with negatives, the shards are cut from the kept chips after the scan
and written by one task each. Either way: each shard, and what its writer says of it."""

from __future__ import annotations

from tf_landslide import chips as chips_lib
from tf_landslide import shards as shards_lib
from tf_landslide.export import plan
from tf_landslide.export.progress import progress
from tf_landslide.shards import ShardStream

Written = tuple[list[shards_lib.Shard], dict[str, dict]]  # the shards, and each one's facts by file name


def streams_of_candidates(job: plan.Job, candidates: plan.Candidates) -> list[ShardStream]:
    """The shards of every candidate chip, to write while the scan goes on: for positive chips
    only, which the scan keeps unless mostly no-data (such chips are left out of their shard)."""
    planned = plan.shard_plan(job, candidates.table, candidates.indices)
    return [ShardStream(shard, job.out_dir, job.cfg.compression) for shard in planned]


def streamed(streams: list[ShardStream]) -> Written:
    """The shards the streams wrote during the scan; every one must be finished."""
    written = {stream.shard.name: stream.facts for stream in streams}
    if None in written.values():
        raise AssertionError(f"unfinished shards after the scan: {[k for k, v in written.items() if v is None]}")
    return [stream.shard for stream in streams], written


def after_scan(job: plan.Job, table: chips_lib.ChipTable, kept: list[int], slot: dict, pool) -> Written:
    """Cut the kept chips into shards and write them from the spool, one task each."""
    cfg = job.cfg
    planned = plan.shard_plan(job, table, kept)
    jobs = [
        (
            shard,
            {e.index: slot[e.index] for e in shard.chips},
            str(job.out_dir),
            str(job.spool),
            job.scene.config.channels,
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
    return planned, written
