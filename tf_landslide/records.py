"""The chip record format, shared by the exporter (writer) and the input pipeline (reader).

Records are ``tf.train.Example`` protos in TFRecord files. The writer side is plain
numpy + CRC32C: it encodes the protobuf wire format and the TFRecord framing itself, so
Dask export workers never load TensorFlow (seconds of start-up and hundreds of MB each).
Tests check the bytes against TensorFlow's own serialisation and reader.

Feature keys (one place only; the reader's spec below is built from the same names):

* ``image``: raw channel values (before standardisation), ``dtype`` bytes, HWC order,
  little-endian. NaN marks missing pixels; the reader standardises with the manifest's
  statistics and then sets NaN to 0, as the paper does.
* ``label``: uint8 bytes, H x W, 1 = landslide.
* ``shape``: int64 [H, W, C]; ``channels``: channel names in order; ``dtype``: 'float16'|'float32'.
* ``chip/row``, ``chip/col``: top-left pixel of the chip in the scene grid;
  ``chip/origin``: float64 bytes (x, y) of the chip's top-left corner in the cube's CRS.
* ``split``: 'train' | 'val' | 'test'; ``chip/positives``: landslide pixel count.

``encode_example`` writes all of them; ``encode_image_example`` only the first four, for chips sent
to a served model (its ``predict_examples`` signature reads those).
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import google_crc32c
import numpy as np

IMAGE, LABEL, SHAPE, CHANNELS, DTYPE = "image", "label", "shape", "channels", "dtype"
ROW, COL, ORIGIN, SPLIT, POSITIVES = "chip/row", "chip/col", "chip/origin", "split", "chip/positives"
RECORD_DTYPES = ("float16", "float32")
COMPRESSIONS = ("", "GZIP")
_WRITEBACK_BYTES = 8 << 20


class CorruptShardError(IOError):
    """A TFRecord shard is truncated or fails its checksums."""


# --- protobuf wire format (tf.train.Example), deterministic: map keys sorted ---------------


_ONE_BYTE = [bytes((n,)) for n in range(0x80)]


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:  # tags and most lengths: the bulk of the calls, so a lookup
        return _ONE_BYTE[value]
    value &= (1 << 64) - 1  # negative int64 as two's complement, as protobuf does
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _header(number: int, length: int) -> bytes:
    """The tag and length that open a length-delimited field."""
    return _varint(number << 3 | 2) + _varint(length)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _header(number, len(payload)) + payload


def _field_pieces(number: int, pieces: list) -> list:
    """A length-delimited field around ``pieces``, which stay uncopied."""
    return [_header(number, sum(map(len, pieces))), *pieces]


def _bytes_feature(values: Iterable[bytes]) -> bytes:
    return _field(1, b"".join(_field(1, v) for v in values))


def _int64_feature(values: Iterable[int]) -> bytes:
    return _field(3, _field(1, b"".join(_varint(int(v)) for v in values)))


def _raw(array: np.ndarray, dtype) -> np.ndarray:
    """The bytes of ``array`` in ``dtype`` as a flat uint8 array, a view when it already is.

    An ndarray, not a memoryview: google_crc32c takes numpy's buffers but not memoryviews.
    """
    return np.ascontiguousarray(array, dtype).reshape(-1).view(np.uint8)


def _image_features(image: np.ndarray, channels: tuple[str, ...]) -> dict:
    """The features that carry a chip's values: ``image``, ``shape``, ``channels`` and ``dtype``, each
    as pieces (the image uncopied)."""
    if image.dtype.name not in RECORD_DTYPES:
        raise ValueError(f"image dtype {image.dtype} is not one of {RECORD_DTYPES}")
    if image.ndim != 3 or image.shape[2] != len(channels):
        raise ValueError(f"image {image.shape} is not [H, W, C] with C = {len(channels)} channels {channels}")
    return {
        IMAGE: _field_pieces(1, _field_pieces(1, [_raw(image, image.dtype.newbyteorder("<"))])),
        SHAPE: [_int64_feature(image.shape)],
        CHANNELS: [_bytes_feature([name.encode() for name in channels])],
        DTYPE: [_bytes_feature([image.dtype.name.encode()])],
    }


def _example_pieces(features: dict) -> list:
    """A tf.train.Example of ``features`` (key -> the pieces of its Feature), keys sorted, as pieces."""
    entries = []
    for key in sorted(features):
        entries += _field_pieces(1, [_field(1, key.encode()), *_field_pieces(2, features[key])])
    # Join the runs of small header bytes: each piece costs a call to write, hash and CRC.
    pieces, run = [], []
    for piece in _field_pieces(1, entries):
        if isinstance(piece, bytes):
            run.append(piece)
        else:
            pieces += [b"".join(run), piece]
            run = []
    return [*pieces, b"".join(run)]


def encode_example_pieces(
    image: np.ndarray,
    label: np.ndarray,
    channels: tuple[str, ...],
    row: int,
    col: int,
    origin: tuple[float, float],
    split: str,
) -> list:
    """``encode_example`` as pieces to write in order: header ``bytes`` and, uncopied, the image
    and label as flat uint8 arrays (each a view of its input when that is contiguous)."""
    features = _image_features(image, channels)
    if label.shape != image.shape[:2]:
        raise ValueError(f"label {label.shape} does not match image {image.shape}")
    features.update(
        {
            LABEL: _field_pieces(1, _field_pieces(1, [_raw(label, np.uint8)])),
            ROW: [_int64_feature([row])],
            COL: [_int64_feature([col])],
            ORIGIN: [_bytes_feature([np.asarray(origin, "<f8").tobytes()])],
            SPLIT: [_bytes_feature([split.encode()])],
            POSITIVES: [_int64_feature([int(np.count_nonzero(label))])],
        }
    )
    return _example_pieces(features)


def encode_example(
    image: np.ndarray,
    label: np.ndarray,
    channels: tuple[str, ...],
    row: int,
    col: int,
    origin: tuple[float, float],
    split: str,
) -> bytes:
    """Serialise one chip: ``image`` [H, W, C] in its record dtype, ``label`` [H, W] uint8."""
    return b"".join(encode_example_pieces(image, label, channels, row, col, origin, split))


def encode_image_example(image: np.ndarray, channels: tuple[str, ...]) -> bytes:
    """Serialise a chip to predict, not to train on: ``image`` [H, W, C] in its record dtype with its
    shape, channel names and dtype, and no label or location (the ``predict_examples`` signature
    reads these four features only, and checks the last three against the model's)."""
    return b"".join(_example_pieces(_image_features(image, channels)))


# --- TFRecord framing -------------------------------------------------------------------


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    return _mask(google_crc32c.value(data))


def _frame(pieces: Sequence) -> list:
    """One TFRecord around a record given as pieces, which stay uncopied: length, its masked
    CRC32C, the pieces, the masked CRC32C of their concatenation."""
    length = struct.pack("<Q", sum(map(len, pieces)))
    crc = 0
    for piece in pieces:
        crc = google_crc32c.extend(crc, piece)
    return [length + struct.pack("<I", _masked_crc(length)), *pieces, struct.pack("<I", _mask(crc))]


class Written(NamedTuple):
    """What ``write_tfrecord`` wrote: the record count, file size and hex SHA-256 of the file."""

    records: int
    bytes: int
    sha256: str


class TFRecordWriter:
    """Writes one TFRecord file record by record, atomically: a temporary file, renamed into
    place by ``close`` after an fsync; ``abort`` (or an error inside ``with``) removes it.

    A record is ``bytes`` or a list or tuple of pieces to concatenate (``bytes`` or flat uint8
    numpy arrays, as ``encode_example_pieces`` gives), written without joining them. The file's
    size and SHA-256 are taken from the bytes as they are written, so nobody re-reads it. GZIP
    output is a single gzip stream with a zero timestamp, so the same records give the same bytes.
    """

    def __init__(self, path: str | os.PathLike, compression: str = ""):
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression {compression!r} is not one of {COMPRESSIONS}")
        self.path = os.fspath(path)
        self._partial = f"{self.path}.partial-{os.getpid()}"
        self._out = open(self._partial, "wb")  # noqa: SIM115 - closed by close() or abort()
        self._gzip = zlib.compressobj(6, zlib.DEFLATED, 31, 9) if compression == "GZIP" else None
        self._digest = hashlib.sha256()
        self._count = 0
        self._synced = 0  # bytes handed to the kernel's writeback

    def write(self, record) -> None:
        pieces = _frame(record if isinstance(record, list | tuple) else [record])
        if self._gzip:  # zlib's deflate output does not depend on how its input is split (tests check)
            pieces = [self._gzip.compress(piece) for piece in pieces]
        self._out.writelines(pieces)
        for piece in pieces:
            self._digest.update(piece)
        self._count += 1
        if self._out.tell() - self._synced >= _WRITEBACK_BYTES:
            self._start_writeback()

    def _start_writeback(self) -> None:
        """Have the kernel start writing what we wrote so far, without waiting: the fsync in
        ``close`` then waits only for the rest (Linux starts writeback on POSIX_FADV_DONTNEED)."""
        self._out.flush()
        end = self._out.tell()
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self._out.fileno(), self._synced, end - self._synced, os.POSIX_FADV_DONTNEED)
        self._synced = end

    def close(self) -> Written:
        """Finish the file and rename it into place; what was written."""
        try:
            if self._gzip:
                tail = self._gzip.flush()
                self._out.write(tail)
                self._digest.update(tail)
            self._out.flush()
            os.fsync(self._out.fileno())
            size = self._out.tell()
            self._out.close()
            os.replace(self._partial, self.path)
        except BaseException:
            self.abort()
            raise
        return Written(self._count, size, self._digest.hexdigest())

    def abort(self) -> None:
        """Drop the file being written (the target path is left as it was)."""
        self._out.close()
        if os.path.exists(self._partial):
            os.remove(self._partial)

    def __enter__(self) -> TFRecordWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is not None:
            self.abort()


def write_tfrecord(path: str | os.PathLike, records: Iterable, compression: str = "") -> Written:
    """Write ``records`` to ``path`` atomically with a ``TFRecordWriter``; what was written."""
    with TFRecordWriter(path, compression) as writer:
        for record in records:
            writer.write(record)
        return writer.close()


def _chunks(handle, compression: str, size: int = 1 << 22) -> Iterator[bytes]:
    gunzip = zlib.decompressobj(31) if compression == "GZIP" else None
    while True:
        block = handle.read(size)
        if not block:
            break
        yield gunzip.decompress(block) if gunzip else block
    if gunzip is not None:
        tail = gunzip.flush()
        if tail:
            yield tail
        if not gunzip.eof:
            raise CorruptShardError("gzip stream ends early")


def read_tfrecord(path: str | os.PathLike, compression: str = "") -> Iterator[bytes]:
    """Yield the records of a TFRecord file, checking every length and data CRC.

    Raises CorruptShardError naming the file on truncation or a checksum mismatch.
    """
    path = os.fspath(path)
    buffer = bytearray()
    offset = 0
    try:
        with open(path, "rb") as handle:
            for chunk in _chunks(handle, compression):
                buffer += chunk
                while len(buffer) >= 12:
                    (length,) = struct.unpack_from("<Q", buffer)
                    (length_crc,) = struct.unpack_from("<I", buffer, 8)
                    if _masked_crc(bytes(buffer[:8])) != length_crc:
                        raise CorruptShardError(f"bad length checksum at byte {offset}")
                    end = 12 + length + 4
                    if len(buffer) < end:
                        break
                    data = bytes(buffer[12 : 12 + length])
                    (data_crc,) = struct.unpack_from("<I", buffer, 12 + length)
                    if _masked_crc(data) != data_crc:
                        raise CorruptShardError(f"bad data checksum in the record at byte {offset}")
                    yield data
                    del buffer[:end]
                    offset += end
        if buffer:
            raise CorruptShardError(f"truncated: {len(buffer)} stray bytes at byte {offset}")
    except (CorruptShardError, zlib.error) as error:
        raise CorruptShardError(f"shard {path} is corrupt ({error}); delete it and re-run the export") from error


def count_records(path: str | os.PathLike, compression: str = "") -> int:
    """Number of records in a shard, verifying it end to end."""
    return sum(1 for _ in read_tfrecord(path, compression))


# --- reader side (TensorFlow) -------------------------------------------------------------


def feature_spec() -> dict:
    """The ``tf.io.parse_example`` spec of the record format."""
    import tensorflow as tf

    return {
        IMAGE: tf.io.FixedLenFeature([], tf.string),
        LABEL: tf.io.FixedLenFeature([], tf.string),
        SHAPE: tf.io.FixedLenFeature([3], tf.int64),
        CHANNELS: tf.io.VarLenFeature(tf.string),
        DTYPE: tf.io.FixedLenFeature([], tf.string),
        ROW: tf.io.FixedLenFeature([], tf.int64),
        COL: tf.io.FixedLenFeature([], tf.int64),
        ORIGIN: tf.io.FixedLenFeature([], tf.string),
        SPLIT: tf.io.FixedLenFeature([], tf.string),
        POSITIVES: tf.io.FixedLenFeature([], tf.int64),
    }


def decode_raw_batch(serialized, height: int, width: int, channels: int, dtype: str):
    """Parse a batch of serialised records into (image [N,H,W,C] in the record dtype with NaN
    kept, label uint8 [N,H,W,1]). Shapes come from the manifest so the graph is static."""
    import tensorflow as tf

    parsed = tf.io.parse_example(serialized, {k: v for k, v in feature_spec().items() if k in (IMAGE, LABEL)})
    image = tf.io.decode_raw(parsed[IMAGE], tf.dtypes.as_dtype(dtype), little_endian=True)
    label = tf.io.decode_raw(parsed[LABEL], tf.uint8)
    return tf.reshape(image, [-1, height, width, channels]), tf.reshape(label, [-1, height, width, 1])


def decode_batch(serialized, height: int, width: int, channels: int, dtype: str):
    """Like ``decode_raw_batch``, with image and label as float32."""
    import tensorflow as tf

    image, label = decode_raw_batch(serialized, height, width, channels, dtype)
    return tf.cast(image, tf.float32), tf.cast(label, tf.float32)
