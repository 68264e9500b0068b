"""Compiled (numba) loops of the export's scan: each makes one pass, without the GIL, where
numpy makes several and takes the GIL between them.

Compiled on first use and cached (``jit.compiled``): later processes load the compiled loops,
which is much quicker than compiling them again.
"""

from __future__ import annotations

import numpy as np

from tf_landslide.float16 import round_row
from tf_landslide.jit import compiled


@compiled
def add_logs(plane, logs, total, count, first):
    """Add ``logs`` (the log of ``plane``) to ``total`` and 1 to ``count`` where ``plane`` > 0;
    where it is not (NaN too) nothing. ``first``: set them instead. 2-D arrays of one shape;
    ``count`` uint8."""
    for y in range(plane.shape[0]):
        values, row_logs, row_total, row_count = plane[y], logs[y], total[y], count[y]
        for x in range(values.shape[0]):
            valid = values[x] > 0
            addend = row_logs[x] if valid else np.float32(0)
            seen = np.uint8(1) if valid else np.uint8(0)
            row_total[x] = addend if first else row_total[x] + addend
            row_count[x] = seen if first else np.uint8(row_count[x] + seen)


@compiled
def mean_of(total, count, out):
    """``out`` = ``total`` / ``count`` (float32), NaN where ``count`` is 0."""
    for y in range(total.shape[0]):
        row_total, row_count, row_out = total[y], count[y], out[y]
        for x in range(row_total.shape[0]):
            n = row_count[x]
            row_out[x] = row_total[x] / np.float32(n) if n else np.float32(np.nan)


@compiled
def scan_chips(band, rows, cols, size, max_nodata, wants_moments, halves, floats, error, moments, nodata, kept):
    """The chip stage of a band [C, H, W] (float32) for candidate chips with top-left corners
    ``rows``, ``cols`` (band coordinates) of ``size`` x ``size`` pixels.

    For each chip n: ``nodata[n]``, its fraction of pixels where any channel is NaN; a chip with
    more than ``max_nodata`` is dropped (``kept[n]`` False). Kept chips, in order, go channels
    last into ``halves`` (float16 bits, uint16 [N, size, size, C]) with the largest rounding
    error per channel into ``error``, or into ``floats`` (float32) when ``halves`` has no rows;
    for chips with ``wants_moments[n]``, count, mean and sum of squared deviations per channel
    over finite values into ``moments[slot]`` ([N, 3, C], float64). Returns the number kept.
    """
    channels = band.shape[0]
    to_half = halves.shape[0] > 0
    bits = band.view(np.uint32)
    missing = np.empty(size, np.uint8)
    row_halves = np.empty((channels, size), np.uint16)
    row_errors = np.zeros((channels, size), np.float32)
    slot = 0
    for n in range(rows.shape[0]):
        top, left = rows[n], cols[n]
        # The first pass brings the chip from memory (the band is larger than the caches); the
        # passes after it find the chip in the cache.
        holes = 0
        for y in range(size):
            missing[:] = 0
            for c in range(channels):
                values = band[c, top + y, left : left + size]
                for x in range(size):
                    missing[x] |= np.uint8(values[x] != values[x])
            for x in range(size):
                holes += missing[x]
        nodata[n] = holes / (size * size)
        kept[n] = nodata[n] <= max_nodata
        if not kept[n]:
            continue
        if wants_moments[n]:
            channel_moments(band, top, left, size, size, moments[slot])
        for y in range(size):
            if to_half:
                for c in range(channels):
                    round_row(bits[c, top + y, left : left + size], row_halves[c], row_errors[c])
                target = halves[slot, y]
                for x in range(size):
                    for c in range(channels):
                        target[x, c] = row_halves[c, x]
            else:
                target = floats[slot, y]
                for x in range(size):
                    for c in range(channels):
                        target[x, c] = band[c, top + y, left + x]
        slot += 1
    for c in range(channels):
        error[c] = max(error[c], row_errors[c].max())
    return slot


@compiled
def channel_moments(values, top, left, height, width, out):
    """Count, mean and sum of squared deviations per channel of the window ``height`` x ``width``
    at (``top``, ``left``) of ``values`` [C, rows, cols] over finite values, into ``out`` [3, C]
    (float64; mean and sum 0 where a channel has none).

    Two passes (the mean, then deviations from it) with per-column accumulators: a fixed order
    the compiler can vectorise (a running sum over the whole could not), the same on every
    machine. The window is indexed here, not sliced by the caller: a row of a C-contiguous
    ``values`` is then known to be contiguous, and the loops vectorise.
    """
    sums, counts, squares = np.empty(width), np.empty(width), np.empty(width)
    for c in range(values.shape[0]):
        sums[:] = 0.0
        counts[:] = 0.0
        for y in range(height):
            row = values[c, top + y, left : left + width]
            for x in range(width):
                v = np.float64(row[x])
                finite = abs(v) < np.inf
                sums[x] += v if finite else 0.0
                counts[x] += 1.0 if finite else 0.0
        total, count = sums.sum(), counts.sum()
        mean = total / count if count > 0 else 0.0
        squares[:] = 0.0
        for y in range(height):
            row = values[c, top + y, left : left + width]
            for x in range(width):
                v = np.float64(row[x])
                deviation = v - mean
                squares[x] += deviation * deviation if abs(v) < np.inf else 0.0
        out[0, c], out[1, c], out[2, c] = count, mean, squares.sum()
