import numpy as np
import pytest

from tf_landslide import records, shards
from tf_landslide.shards import ChipEntry, Shard, ShardStream, SpoolReader

CHANNELS = ("vv_before", "vv_after")


def entry(index: int, band: int, split: str = "train") -> ChipEntry:
    return ChipEntry(index, band, row=band * 8, col=index, origin=(100.0 + index, 200.0), split=split)


@pytest.fixture
def spool(tmp_path):
    """Two windows (bands 0 and 1) of spooled 4x4 chips: chip i's pixels are all i."""
    slots = {}
    for band, indices in ((0, [0, 1, 2]), (1, [3, 5])):
        window = f"band-{band:05d}"
        images = np.stack([np.full((4, 4, 2), i, np.float16) for i in indices])
        labels = np.stack([np.eye(4, dtype=np.uint8) * (i % 2) for i in indices])
        np.save(tmp_path / f"{window}-images.npy", images)
        np.save(tmp_path / f"{window}-labels.npy", labels)
        slots.update({i: (band, window, n) for n, i in enumerate(indices)})
    return tmp_path, slots  # chip 4 (band 1) has no slot: skipped as no-data


def expected_bytes(tmp_path, indices, chips):
    path = tmp_path / "expected"
    pieces = []
    for i in indices:
        e = chips[i]
        image, label = np.full((4, 4, 2), i, np.float16), np.eye(4, dtype=np.uint8) * (i % 2)
        pieces.append(records.encode_example(image, label, CHANNELS, e.row, e.col, e.origin, e.split))
    records.write_tfrecord(path, pieces)
    return path.read_bytes()


def test_plan_cuts_each_split_in_row_order_into_balanced_shards():
    members = {"train": [entry(i, i // 3) for i in range(7)], "val": [entry(9, 2, "val")], "test": []}
    planned = shards.plan(members, per_shard=3)
    assert [s.name for s in planned] == [
        "train-00000-of-00003",
        "train-00001-of-00003",
        "train-00002-of-00003",
        "val-00000-of-00001",
    ]
    assert [[c.index for c in s.chips] for s in planned] == [[0, 1, 2], [3, 4], [5, 6], [9]]


def test_a_stream_writes_as_bands_finish_and_matches_one_go(spool, tmp_path):
    folder, slots = spool
    chips = {i: entry(i, 0 if i < 3 else 1) for i in range(6)}
    shard = Shard("train-00000-of-00001", "train", tuple(chips[i] for i in (1, 2, 3, 4, 5)))
    out = tmp_path / "out"
    out.mkdir()
    stream = ShardStream(shard, out, "")
    reader = SpoolReader(folder, CHANNELS)
    stream.advance({1}, {i: s for i, s in slots.items() if s[0] == 1}, reader)  # band 1 before band 0: waits
    assert stream.waiting_for == 0 and not (out / shard.name).exists()
    stream.advance({0, 1}, slots, reader)
    assert stream.waiting_for is None and stream.facts["records"] == 4  # chip 4 was skipped
    written = (out / shard.name).read_bytes()
    assert written == expected_bytes(tmp_path, [1, 2, 3, 5], chips)
    assert stream.facts["bytes"] == len(written)
    assert not list(out.glob("*.partial-*"))

    again = tmp_path / "again"
    again.mkdir()
    facts = shards.write_shard(shard, slots, str(again), str(folder), CHANNELS, "")
    assert (again / shard.name).read_bytes() == written and facts == {"file": shard.name, **stream.facts}


def test_a_shard_of_skipped_chips_is_an_empty_file(spool, tmp_path):
    folder, slots = spool
    shard = Shard("val-00000-of-00001", "val", (entry(4, 1, "val"),))
    stream = ShardStream(shard, tmp_path, "")
    stream.advance({0, 1}, slots, SpoolReader(folder, CHANNELS))
    assert stream.facts["records"] == 0 and (tmp_path / shard.name).read_bytes() == b""


def test_a_finished_file_is_kept_when_its_count_is_right_and_rewritten_when_not(spool, tmp_path):
    folder, slots = spool
    chips = {i: entry(i, 0) for i in range(3)}
    shard = Shard("train-00000-of-00001", "train", tuple(chips.values()))
    good = expected_bytes(tmp_path, [0, 1, 2], chips)
    path = tmp_path / shard.name
    path.write_bytes(good)
    before = path.stat().st_mtime_ns
    stream = ShardStream(shard, tmp_path, "")
    stream.advance({0}, slots, SpoolReader(folder, CHANNELS))
    assert path.stat().st_mtime_ns == before and stream.facts["records"] == 3

    path.write_bytes(good[: len(good) // 2])  # truncated by a crash
    stream = ShardStream(shard, tmp_path, "")
    stream.advance({0}, slots, SpoolReader(folder, CHANNELS))
    assert path.read_bytes() == good and stream.facts["records"] == 3


def test_abort_leaves_no_partial_file_and_the_reader_releases_done_bands(spool, tmp_path):
    folder, slots = spool
    shard = Shard("test-00000-of-00001", "test", (entry(0, 0, "test"), entry(3, 1, "test")))
    stream = ShardStream(shard, tmp_path, "")
    reader = SpoolReader(folder, CHANNELS)
    stream.advance({0}, slots, reader)
    assert list(tmp_path.glob("*.partial-*")) and stream.waiting_for == 1
    stream.abort()
    assert not list(tmp_path.glob("*.partial-*")) and not (tmp_path / shard.name).exists()
    assert set(reader._open) == {"band-00000"}
    reader.release(1)
    assert not reader._open


def test_a_file_to_rewrite_keeps_its_first_band_in_memory_until_it_is_checked(spool, tmp_path):
    folder, slots = spool
    memory = SpoolReader(tmp_path / "nowhere", CHANNELS)  # chips handed over in memory only
    for window in ("band-00000", "band-00001"):
        images, labels = (np.load(folder / f"{window}-{kind}.npy") for kind in ("images", "labels"))
        memory.add(int(window[-1]), window, images, labels)
    chips = {0: entry(0, 0), 3: entry(3, 1)}
    shard = Shard("train-00000-of-00001", "train", tuple(chips.values()))
    (tmp_path / shard.name).write_bytes(b"left by a crash")
    stream = ShardStream(shard, tmp_path, "")
    stream.advance({0}, slots, memory)
    assert stream.waiting_for == 0  # not 1: the old file may have to be rewritten from chip 0
    memory.release(stream.waiting_for)
    stream.advance({0, 1}, slots, memory)
    assert (tmp_path / shard.name).read_bytes() == expected_bytes(tmp_path, [0, 3], chips)
