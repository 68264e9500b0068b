"""Sliding overlapping windows over a whole scene and blending them without seams, in row
strips so memory does not grow with the scene's height.

Windows of ``window`` pixels step by ``stride = window - overlap``. A window's prediction is
weighted by ``w(i) * w(j)``: zero on a margin of ``overlap / 4`` pixels at its edges (where the
convolutions' zero padding distorts predictions), a ``sin^2`` ramp over ``overlap / 2`` pixels,
then 1. Where two windows overlap, one ramps down as ``cos^2`` of the angle the other ramps up
with as ``sin^2``, so the weights covering any pixel sum to exactly 1: the blend needs no
normalisation and leaves no seams. The scene is padded by reflection so that its own edges get
the full weight of some window too.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
from collections.abc import Callable

import numpy as np

# Windows pass through the encoder's five halvings.
WINDOW_MULTIPLE = 32


@dataclasses.dataclass(frozen=True)
class Tiling:
    """Window size and overlap (pixels); see the module docstring for the weights."""

    window: int = 512
    overlap: int = 128

    def __post_init__(self):
        if self.window <= 0 or self.window % WINDOW_MULTIPLE:
            raise ValueError(
                f"--map_window={self.window}: windows must be positive multiples of {WINDOW_MULTIPLE} "
                "(the U-Net halves them five times)"
            )
        if self.overlap < 0 or self.overlap % 4:
            raise ValueError(f"--map_overlap={self.overlap}: give a multiple of 4 (margin overlap/4, ramp overlap/2)")
        if 4 * self.window < 7 * self.overlap:
            raise ValueError(
                f"--map_overlap={self.overlap} is too large for --map_window={self.window}: at most "
                f"{self.window * 4 // 7 // 4 * 4} (7/4 of the overlap must fit in a window)"
            )

    @property
    def margin(self) -> int:
        return self.overlap // 4

    @property
    def ramp(self) -> int:
        return self.overlap // 2

    @property
    def stride(self) -> int:
        return self.window - self.overlap

    @property
    def pad(self) -> int:
        """Reflected pixels before a scene's first row/column: there the first window's weight reaches 1."""
        return self.margin + self.ramp

    def weights(self) -> np.ndarray:
        """The 1-D window weight w, float32 [window]."""
        w = np.ones(self.window)
        w[: self.margin] = 0.0
        w[self.window - self.margin :] = 0.0
        angle = np.pi * (np.arange(self.ramp) + 0.5) / (2 * self.ramp)
        w[self.margin : self.pad] = np.sin(angle) ** 2
        w[self.window - self.pad : self.window - self.margin] = np.sin(angle[::-1]) ** 2
        return w.astype(np.float32)

    def count(self, length: int) -> int:
        """Windows needed along an axis of ``length`` pixels so every pixel gets full weight."""
        return max(1, math.ceil((length + 2 * self.pad - self.window) / self.stride) + 1)

    def padded_length(self, length: int) -> int:
        return (self.count(length) - 1) * self.stride + self.window


def reflect(indices: np.ndarray, length: int) -> np.ndarray:
    """Indices mirrored into [0, length) without repeating the edge (numpy's 'reflect')."""
    if length == 1:
        return np.zeros_like(indices)
    period = 2 * (length - 1)
    folded = np.mod(indices, period)
    return np.where(folded < length, folded, period - folded)


class _RowCache:
    """Scene rows read so far; strips overlap, so each row is read from the cube once."""

    def __init__(self, read_rows: Callable[[int, int], np.ndarray]):
        self.read_rows = read_rows
        self.start, self.rows = 0, None
        self.rows_read = 0

    def get(self, start: int, stop: int) -> np.ndarray:
        if self.rows is not None and self.start <= start < self.start + len(self.rows):
            have = self.start + len(self.rows)
            parts = [self.rows[start - self.start : stop - self.start]]
            if stop > have:
                parts.append(self._read(have, stop))
            rows = np.concatenate(parts) if len(parts) > 1 else parts[0]
        else:
            rows = self._read(start, stop)
        self.start, self.rows = start, rows
        return rows

    def _read(self, start: int, stop: int) -> np.ndarray:
        self.rows_read += stop - start
        return self.read_rows(start, stop)


def _read_strip(cache: _RowCache, tiling: Tiling, height: int, columns: np.ndarray, j: int) -> np.ndarray:
    """The inputs under strip ``j``'s windows, float32 [window, padded width, C]: the scene's rows
    and ``columns``, reflected at its edges."""
    rows = reflect(np.arange(j * tiling.stride, j * tiling.stride + tiling.window) - tiling.pad, height)
    block = cache.get(int(rows.min()), int(rows.max()) + 1)
    return block[np.ix_(rows - rows.min(), columns)]  # one gather


def _add_strip(
    strip: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    tiling: Tiling,
    across: int,
    batch_size: int,
    weight: np.ndarray,
    accumulated: np.ndarray,
) -> None:
    """Predict the ``across`` windows of ``strip``, ``batch_size`` at a time, and add each one's
    probability times ``weight`` at its place in ``accumulated`` [window, padded width]."""
    size, stride = tiling.window, tiling.stride
    for first in range(0, across, batch_size):
        batch = [strip[:, i * stride : i * stride + size] for i in range(first, min(first + batch_size, across))]
        probabilities = np.asarray(predict(np.stack(batch)), np.float32)
        for k, probability in enumerate(probabilities, start=first):
            accumulated[:, k * stride : k * stride + size] += weight * probability.reshape(size, size)


def _final_rows(
    j: int, strip: np.ndarray, accumulated: np.ndarray, tiling: Tiling, strips: int, height: int, width: int
) -> tuple[int, np.ndarray, np.ndarray] | None:
    """The rows of strip ``j`` that no later window reaches, cropped to the scene, as ``emit``
    takes them: (first scene row, probability with NaN where an input is missing, inputs);
    None when the strip has no such rows in the scene."""
    size, stride, pad = tiling.window, tiling.stride, tiling.pad
    # Rows before the next strip's first row are final.
    final = stride if j + 1 < strips else size
    top, bottom = max(pad - j * stride, 0), min(final, pad + height - j * stride)
    if bottom <= top:
        return None
    inputs = strip[top:bottom, pad : pad + width]
    probability = accumulated[top:bottom, pad : pad + width].copy()
    probability[np.isnan(inputs).any(-1)] = np.nan
    return j * stride + top - pad, probability, inputs


def blend(
    read_rows: Callable[[int, int], np.ndarray],
    predict: Callable[[np.ndarray], np.ndarray],
    tiling: Tiling,
    height: int,
    width: int,
    batch_size: int,
    emit: Callable[[int, np.ndarray, np.ndarray], None],
) -> dict:
    """Map a ``height`` x ``width`` scene window by window and emit its blended rows in order.

    ``read_rows(a, b)`` gives the raw channels of scene rows [a, b) as float32 [b - a, width, C]
    (NaN = missing); ``predict(windows)`` maps float32 [N, window, window, C] to probabilities
    [N, window, window]; ``emit(row, probability, inputs)`` receives consecutive blocks of
    rows covering the scene once: probability float32 [rows, width], NaN where any input
    channel is missing, and those rows' inputs. The next strip is read, and the previous one
    emitted, while this one is predicted (each in its own thread; emit calls stay in order).
    Returns counts (windows, strips, rows read).
    """
    if batch_size <= 0:
        raise ValueError(f"--map_batch_size={batch_size}: give a positive number of windows per batch")
    size, stride = tiling.window, tiling.stride
    strips, across = tiling.count(height), tiling.count(width)
    columns = reflect(np.arange(tiling.padded_length(width)) - tiling.pad, width)
    w = tiling.weights()
    weight = np.outer(w, w)
    cache = _RowCache(read_rows)
    read_strip = functools.partial(_read_strip, cache, tiling, height, columns)
    accumulated = np.zeros((size, columns.size), np.float32)
    written = None  # the previous strip's rows, being written while this strip is predicted
    with (
        concurrent.futures.ThreadPoolExecutor(max_workers=1) as reader,
        concurrent.futures.ThreadPoolExecutor(max_workers=1) as writer,
    ):
        upcoming = reader.submit(read_strip, 0)
        for j in range(strips):
            strip = upcoming.result()
            if j + 1 < strips:
                upcoming = reader.submit(read_strip, j + 1)
            _add_strip(strip, predict, tiling, across, batch_size, weight, accumulated)
            rows = _final_rows(j, strip, accumulated, tiling, strips, height, width)
            if rows is not None:
                if written is not None:
                    written.result()  # in order, one strip at a time; raises what emit raised
                written = writer.submit(emit, *rows)
            # The next strip starts ``stride`` rows lower: the overlap moves up, the rest starts from 0.
            accumulated[: size - stride] = accumulated[stride:]
            accumulated[size - stride :] = 0.0
        if written is not None:
            written.result()
    return {"windows": strips * across, "strips": strips, "windows_per_strip": across, "rows_read": cache.rows_read}
