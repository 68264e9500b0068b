"""Output shards: which chips each file holds, and writing them from the scan's spool.

A shard's chips are in row order, so it can be written while the scan goes on: as soon as the
bands holding its next chips are scanned (``ShardStream.advance``). Files appear complete or
not at all (``records.TFRecordWriter``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np

from tf_landslide import records, storage

log = logging.getLogger(__name__)

Slot = tuple[int, str, int]  # a kept chip in the spool: (band, window, position in the window)


@dataclasses.dataclass(frozen=True)
class ChipEntry:
    """What a chip's record holds besides its pixels, and the band its pixels come from."""

    index: int
    band: int
    row: int
    col: int
    origin: tuple[float, float]
    split: str


@dataclasses.dataclass(frozen=True)
class Shard:
    name: str
    split: str
    chips: tuple[ChipEntry, ...]  # row order; chips the scan skips as no-data are left out


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}"


def plan(members: Mapping[str, Sequence[ChipEntry]], per_shard: int) -> list[Shard]:
    """Cut each split's chips (row order) into ``ceil(n / per_shard)`` shards of balanced size."""
    shards = []
    for split, entries in members.items():
        count = math.ceil(len(entries) / per_shard)
        for k, group in enumerate(np.array_split(np.arange(len(entries)), count) if count else []):
            shards.append(Shard(shard_name(split, k, count), split, tuple(entries[i] for i in group)))
    return shards


class SpoolReader:
    """The chips the scan spooled, memory-mapped, one window's files opened once; or handed over."""

    def __init__(self, spool: str | os.PathLike, channels: tuple[str, ...]):
        self.spool = Path(spool)
        self.channels = channels
        self._open: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}

    def add(self, band: int, window: str, images: np.ndarray, labels: np.ndarray) -> None:
        """A window's chips handed over in memory instead of spooled."""
        self._open[window] = (band, images, labels)

    def record(self, slot: Slot, entry: ChipEntry) -> list:
        """The chip's record as pieces; its image and label are views of the spool (page cache)."""
        band, window, position = slot
        if window not in self._open:
            self._open[window] = (
                band,
                np.load(self.spool / f"{window}-images.npy", mmap_mode="r"),
                np.load(self.spool / f"{window}-labels.npy", mmap_mode="r"),
            )
        _, images, labels = self._open[window]
        return records.encode_example_pieces(
            np.asarray(images[position]),
            np.asarray(labels[position]),
            self.channels,
            entry.row,
            entry.col,
            entry.origin,
            entry.split,
        )

    def release(self, before_band: int | None) -> None:
        """Unmap the windows of bands before ``before_band`` (all when None): nobody reads them again."""
        for window, (band, *_) in list(self._open.items()):
            if before_band is None or band < before_band:
                del self._open[window]


class ShardStream:
    """Writes one shard while the scan goes on, chip by chip as their bands are done.

    A complete file left by an earlier run is kept if it holds as many records as the shard's
    kept chips (checked once they are known), else rewritten.
    """

    def __init__(self, shard: Shard, out_dir: str | os.PathLike, compression: str):
        self.shard = shard
        self.path = Path(out_dir) / shard.name
        self.compression = compression
        self.facts: dict | None = None  # records, bytes, sha256: once finished
        self._next = 0  # chips[:_next] are written, or skipped as no-data
        self._writer: records.TFRecordWriter | None = None
        self._reuse = self.path.exists()

    @property
    def waiting_for(self) -> int | None:
        """The first band whose chips this shard may still read; None when finished.

        A file of an earlier run is checked once all its chips are known; if it has to be
        rewritten, that needs every chip again, so until then the answer is its first band.
        """
        if self.facts is not None or self._next == len(self.shard.chips):
            return None
        return self.shard.chips[0 if self._reuse else self._next].band

    def advance(self, done_bands: Collection[int], slots: Mapping[int, Slot], spool: SpoolReader) -> None:
        """Write the chips whose bands are done; finish the file once every chip is placed.

        ``slots``: the kept chips of the done bands; a chip of a done band without a slot was
        skipped as no-data.
        """
        chips = self.shard.chips
        while self.facts is None and self._next < len(chips) and chips[self._next].band in done_bands:
            entry = chips[self._next]
            if not self._reuse and entry.index in slots:
                if self._writer is None:
                    self._writer = records.TFRecordWriter(self.path, self.compression)
                self._writer.write(spool.record(slots[entry.index], entry))
            self._next += 1
        if self.facts is None and self._next == len(chips):
            self._finish(sum(entry.index in slots for entry in chips), done_bands, slots, spool)

    def _finish(self, kept: int, done_bands, slots, spool) -> None:
        if self._reuse:
            try:
                if records.count_records(self.path, self.compression) == kept:
                    self.facts = {
                        "records": kept,
                        "bytes": self.path.stat().st_size,
                        "sha256": storage.sha256(self.path),
                    }
                    return
            except records.CorruptShardError as error:
                log.warning("%s: rewriting", error)
            self._reuse, self._next = False, 0
            self.advance(done_bands, slots, spool)
            return
        # A shard whose every chip was skipped is an empty file: the manifest names n shards.
        writer = self._writer or records.TFRecordWriter(self.path, self.compression)
        self._writer = None
        self.facts = writer.close()._asdict()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None


def write_shard(
    shard: Shard, slots: Mapping[int, Slot], out_dir: str, spool: str, channels: tuple[str, ...], compression: str
) -> dict:
    """Write a shard whose chips are all scanned, in one go (a task for export workers)."""
    stream = ShardStream(shard, out_dir, compression)
    reader = SpoolReader(spool, channels)
    try:
        stream.advance({entry.band for entry in shard.chips}, slots, reader)
    finally:
        stream.abort()
    return {"file": shard.name, **stream.facts}
