"""``tf_landslide.float16.round_half`` (compiled) against numpy's float32 -> float16 cast.

    .venv/bin/python bench/float16_bench.py [--exhaustive] [--repeats N]

1. Speed: one chip [8, 128, 128] of log backscatter-like values, rounded and its largest error
   per channel taken, written channels last; ``round_half`` against numpy's cast +
   ``abs(half - value)``. Medians of ``--repeats``. (The export rounds inside its compiled chip
   stage, ``kernels.scan_chips``, with the same ``round_row``.)
2. ``--exhaustive``: every one of the 2**32 float32 bit patterns, in blocks: the half's bits
   equal numpy's (NaNs: both NaN with the same sign; numpy keeps payload bits we do not), and
   the error per block equals numpy's. About 3 minutes on one core, mostly numpy's cast.
"""

from __future__ import annotations

import argparse
import statistics
import time

import machine  # noqa: E402  (bench/machine.py: a script's folder is on sys.path)
import numpy as np

from tf_landslide.float16 import round_half

CHIP = (8, 128, 128)


def numpy_round(values: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The reference: numpy's cast and the largest |half - value| per channel (NaN ignored)."""
    with np.errstate(invalid="ignore", over="ignore"):
        half = values.astype(np.float16)
        np.copyto(out, half)
        difference = np.abs(half.astype(np.float32) - values).reshape(len(values), -1)
        return np.fmax.reduce(difference, axis=1, initial=np.float32(0))


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def speed(repeats: int) -> None:
    rng = np.random.default_rng(0)
    chip = rng.normal(-3.0, 1.5, CHIP).astype(np.float32)
    chip[0, :4] = np.nan
    stored = np.empty(CHIP[1:] + CHIP[:1], np.float16)
    channels_first = np.moveaxis(stored, -1, 0)
    round_half(chip, channels_first)  # compiled (or loaded from the cache) before timing
    ours = timed(lambda: round_half(chip, channels_first), repeats)
    theirs = timed(lambda: numpy_round(chip, channels_first), repeats)
    print(f"chip {CHIP}, channels last, with the error per channel (median of {repeats}):")
    print(f"  round_half {ours / chip.size * 1e9:.2f} ns/value; numpy {theirs / chip.size * 1e9:.2f} ns/value; "
          f"ratio {theirs / ours:.2f}x")


def exhaustive(block_bits: int = 24) -> int:
    """Every float32 input; returns the number of mismatches (0 expected)."""
    rows = 4
    size = 1 << block_bits
    mismatches = 0
    started = time.perf_counter()
    ours = np.empty((rows, size // rows), np.float16)
    theirs = np.empty_like(ours)
    for block in range(1 << (32 - block_bits)):
        bits = np.arange(block * size, (block + 1) * size, dtype=np.uint64).astype(np.uint32).reshape(rows, -1)
        values = bits.view(np.float32)
        error = round_half(values, ours)
        expected = numpy_round(values, theirs)
        a, b = ours.view(np.uint16), theirs.view(np.uint16)
        nan_in = np.isnan(values)
        bad = (a != b) & ~nan_in
        bad |= nan_in & ~(np.isnan(ours) & ((a >> 15) == (b >> 15)))
        mismatches += int(bad.sum())
        if not np.array_equal(error, expected):
            mismatches += 1
            print(f"block {block}: error {error} != numpy's {expected}")
    print(f"exhaustive: 2**32 inputs, {mismatches} mismatches, {time.perf_counter() - started:.0f} s")
    return mismatches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--exhaustive", action="store_true")
    args = parser.parse_args()
    print(machine.describe(), flush=True)
    speed(args.repeats)
    return 1 if args.exhaustive and exhaustive() else 0


if __name__ == "__main__":
    raise SystemExit(main())
