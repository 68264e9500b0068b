"""The record format: our hand-rolled writer must match TensorFlow byte for byte."""

import hashlib
import os
import struct
import zlib

import google_crc32c
import numpy as np
import pytest
import tensorflow as tf

from tf_landslide import records


def _chip(dtype="float16", seed=0):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(16, 16, 3)).astype(dtype)
    image[0, 0, 1] = np.nan
    label = (rng.random((16, 16)) > 0.8).astype(np.uint8)
    return image, label


def _tf_example(image, label, channels, row, col, origin, split):
    def b(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))

    def i(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    return tf.train.Example(
        features=tf.train.Features(
            feature={
                records.IMAGE: b([image.tobytes()]),
                records.LABEL: b([label.tobytes()]),
                records.SHAPE: i(list(image.shape)),
                records.CHANNELS: b([c.encode() for c in channels]),
                records.DTYPE: b([image.dtype.name.encode()]),
                records.ROW: i([row]),
                records.COL: i([col]),
                records.ORIGIN: b([np.asarray(origin, "<f8").tobytes()]),
                records.SPLIT: b([split.encode()]),
                records.POSITIVES: i([int(label.sum())]),
            }
        )
    ).SerializeToString(deterministic=True)


@pytest.mark.parametrize("dtype", records.RECORD_DTYPES)
def test_example_bytes_equal_tensorflow_serialisation(dtype):
    image, label = _chip(dtype)
    args = (image, label, ("vv_before", "vv_after", "dem"), 4096, 300, (530000.5, 4739995.0), "val")
    assert records.encode_example(*args) == _tf_example(*args)


@pytest.mark.parametrize("compression", records.COMPRESSIONS)
def test_tfrecord_file_equals_tensorflow_writer(tmp_path, compression):
    payloads = [b"a" * 1000, b"", bytes(range(256)) * 3]
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    assert records.write_tfrecord(ours, payloads, compression).records == 3
    with tf.io.TFRecordWriter(str(theirs), compression) as writer:
        for payload in payloads:
            writer.write(payload)
    assert ours.read_bytes() == theirs.read_bytes()
    assert list(records.read_tfrecord(ours, compression)) == payloads
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(ours), compression)] == payloads
    assert not list(tmp_path.glob("*.partial-*"))


@pytest.mark.parametrize("compression", records.COMPRESSIONS)
def test_truncated_or_flipped_shard_is_an_error_naming_the_file(tmp_path, compression):
    path = tmp_path / "train-00000-of-00001"
    records.write_tfrecord(path, [b"x" * 5000, b"y" * 5000], compression)
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    with pytest.raises(records.CorruptShardError, match=str(path)):
        records.count_records(path, compression)
    if compression == "":
        flipped = bytearray(data)
        flipped[100] ^= 0x01
        path.write_bytes(bytes(flipped))
        with pytest.raises(records.CorruptShardError, match="checksum"):
            records.count_records(path, compression)


def test_failed_write_leaves_no_file(tmp_path):
    def broken():
        yield b"one"
        raise RuntimeError("killed")

    path = tmp_path / "shard"
    with pytest.raises(RuntimeError):
        records.write_tfrecord(path, broken())
    assert not path.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("dtype", records.RECORD_DTYPES)
def test_decode_batch_returns_the_chip(dtype):
    image, label = _chip(dtype, seed=3)
    serialized = records.encode_example(image, label, ("a", "b", "c"), 0, 0, (0.0, 0.0), "train")
    decoded_image, decoded_label = records.decode_batch(tf.constant([serialized, serialized]), 16, 16, 3, dtype)
    assert decoded_image.shape == (2, 16, 16, 3) and decoded_label.shape == (2, 16, 16, 1)
    np.testing.assert_array_equal(decoded_image.numpy()[1], image.astype(np.float32))
    np.testing.assert_array_equal(decoded_label.numpy()[0, ..., 0], label)


def test_full_feature_spec_parses_metadata():
    image, label = _chip()
    serialized = records.encode_example(image, label, ("a", "b", "c"), 128, 256, (1.5, -2.25), "test")
    parsed = tf.io.parse_single_example(serialized, records.feature_spec())
    assert parsed[records.ROW].numpy() == 128 and parsed[records.COL].numpy() == 256
    assert list(parsed[records.SHAPE].numpy()) == [16, 16, 3]
    assert tf.sparse.to_dense(parsed[records.CHANNELS]).numpy().tolist() == [b"a", b"b", b"c"]
    np.testing.assert_array_equal(tf.io.decode_raw(parsed[records.ORIGIN], tf.float64).numpy(), [1.5, -2.25])
    assert parsed[records.SPLIT].numpy() == b"test"
    assert parsed[records.POSITIVES].numpy() == label.sum()


def _odd_chips():
    """Chips of odd sizes and both record dtypes, one a strided view (encoded from a copy)."""
    rng = np.random.default_rng(7)
    for (h, w, c), dtype in [((1, 1, 1), "float16"), ((13, 7, 5), "float32"), ((128, 128, 8), "float16")]:
        image = rng.normal(size=(h, w, c)).astype(dtype)
        yield image, (rng.random((h, w)) > 0.7).astype(np.uint8), tuple(f"band{n}" for n in range(c))
    image = rng.normal(size=(9, 11, 4)).astype("float32")
    yield image[::-1, ::2], np.ones((9, 6), np.uint8), ("a", "bb", "ccc", "")


def _frame(record):
    """One TFRecord, framed the straightforward way."""
    length = struct.pack("<Q", len(record))
    masked = [records._mask(google_crc32c.value(part)) for part in (length, record)]
    return length + struct.pack("<I", masked[0]) + record + struct.pack("<I", masked[1])


def test_example_pieces_join_to_tensorflows_serialisation():
    for n, (image, label, channels) in enumerate(_odd_chips()):
        args = (image, label, channels, 4096 * n, -3, (530000.5, -1e300), "train")
        pieces = records.encode_example_pieces(*args)
        assert b"".join(pieces) == records.encode_example(*args) == _tf_example(*args)
        assert all(isinstance(p, bytes) or (p.dtype == np.uint8 and p.ndim == 1) for p in pieces)
        assert len(pieces) == 5  # header runs joined around the two payloads


def test_contiguous_chip_is_written_from_its_own_memory():
    image, label, channels = next(c for c in _odd_chips() if c[0].size > 1000)
    pieces = records.encode_example_pieces(image, label, channels, 0, 0, (0.0, 0.0), "val")
    assert np.shares_memory(pieces[1], image) and np.shares_memory(pieces[3], label)


@pytest.mark.parametrize("compression", records.COMPRESSIONS)
def test_pieces_and_bytes_records_write_the_same_file_and_report_its_facts(tmp_path, compression):
    chips = [records.encode_example_pieces(*chip, 1, 2, (3.0, 4.0), "test") for chip in _odd_chips()]
    mixed = [*chips, b"", tuple(chips[0])]  # lists, plain bytes and a tuple of pieces
    ours = tmp_path / "ours"
    written = records.write_tfrecord(ours, mixed, compression)
    joined = [b"".join(r) if isinstance(r, list | tuple) else r for r in mixed]
    expected = b"".join(_frame(r) for r in joined)
    if compression == "GZIP":  # one gzip stream of the whole, as the writer always made
        gzip = zlib.compressobj(6, zlib.DEFLATED, 31, 9)
        expected = gzip.compress(expected) + gzip.flush()
    data = ours.read_bytes()
    assert data == expected
    assert written == (len(mixed), os.stat(ours).st_size, hashlib.sha256(data).hexdigest())
    assert list(records.read_tfrecord(ours, compression)) == joined
