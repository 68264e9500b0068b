"""float32 -> IEEE float16 rounding, bit for bit numpy's, 1.7x as fast, with its error.

numpy converts half floats one value at a time in C (1.5 ns a value here, no SIMD: numpy
issue 28753). Here the same round-to-nearest-even runs as a dozen whole-array integer
operations (F. Giesen's branch-free ``float_to_half_fast3_rtne``), each vectorised by numpy, on
buffers the size of one chip that stay in the cache. NaN becomes the quiet NaN 0x7E00 (with its
sign); numpy keeps the top bits of a NaN's payload instead, which only matters for NaNs that
numpy does not produce itself. ``bench/float16_bench.py`` checks every one of the 2**32 inputs.
"""

from __future__ import annotations

import numpy as np

_U32 = np.uint32
_SIGN = _U32(0x8000_0000)
_HALF_MIN_NORMAL = _U32(113 << 23)  # 2**-14: smaller magnitudes round to a subnormal half (or 0)
_HALF_OVERFLOW = _U32((127 + 16) << 23)  # 2**16: larger magnitudes are infinite in half
_INFINITY = _U32(0x7F80_0000)
_REBIAS = _U32((((15 - 127) << 23) + 0xFFF) & 0xFFFF_FFFF)  # exponent 127 -> 15, and round half down
_SUBNORMAL_MAGIC = np.float32(0.5)  # its ulp is 2**-24, the spacing of subnormal halves
_SUBNORMAL_MAGIC_BITS = _U32(126 << 23)
_HALF_INFINITY, _HALF_NAN = _U32(0x7C00), _U32(0x7E00)
_HALF_TO_FLOAT_SCALE = np.float32(2.0**112)  # a half's bits << 13 read as a float32, times this, is its value


class HalfRounder:
    """Rounds float32 arrays of one shape [C, ...] to float16 and measures the rounding error.

    Holds scratch buffers for that shape; one rounder per thread.
    """

    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(shape)
        self._magnitude = np.empty(self.shape, _U32)
        self._half = np.empty(self.shape, _U32)  # the half's bits, in the low 16
        self._scratch = np.empty(self.shape, _U32)
        self._mask = np.empty(self.shape, bool)

    def round(self, values: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write ``values`` [C, ...] (float32) rounded to float16 into ``out`` and return the largest
        absolute rounding error per channel (axis 0) as float32.

        ``out``: float16, ``values``' shape or a view of that shape (``np.moveaxis(out, -1, 0)``
        writes channels last in the same pass). NaN and infinite values count no error; a finite
        value that overflows to infinity counts an infinite one, as ``abs(half - value)`` would.
        """
        if values.shape != self.shape or values.dtype != np.float32:
            raise ValueError(f"HalfRounder for float32 {self.shape} got {values.dtype} {values.shape}")
        bits = values.view(_U32)
        magnitude, half, scratch, mask = self._magnitude, self._half, self._scratch, self._mask
        np.bitwise_and(bits, ~_SIGN, out=magnitude)
        # Normal halves: add the exponent rebias and the rounding increment (0xFFF, plus one if
        # the kept mantissa is odd: ties to even), then drop the 13 extra mantissa bits.
        np.right_shift(magnitude, _U32(13), out=half)
        np.bitwise_and(half, _U32(1), out=half)
        np.add(half, magnitude, out=half)
        np.add(half, _REBIAS, out=half)
        np.right_shift(half, _U32(13), out=half)
        np.less(magnitude, _HALF_MIN_NORMAL, out=mask)
        if mask.any():  # subnormal halves and zeros: adding 0.5 rounds to multiples of 2**-24 (ties to even)
            sums = scratch.view(np.float32)
            np.add(magnitude.view(np.float32), _SUBNORMAL_MAGIC, out=sums)
            np.subtract(scratch, _SUBNORMAL_MAGIC_BITS, out=scratch)
            np.copyto(half, scratch, where=mask)
        np.greater_equal(magnitude, _HALF_OVERFLOW, out=mask)
        if mask.any():  # infinite and NaN values, and finite ones too large for a half
            np.copyto(half, _HALF_INFINITY, where=mask)
            np.greater(magnitude, _INFINITY, out=mask)
            np.copyto(half, _HALF_NAN, where=mask)
        error = self._error(magnitude, half)
        np.right_shift(bits, _U32(16), out=scratch)
        np.bitwise_and(scratch, _U32(0x8000), out=scratch)
        np.bitwise_or(half, scratch, out=half)
        np.copyto(out.view(np.uint16), half, casting="unsafe")
        return error

    def _error(self, magnitude: np.ndarray, half: np.ndarray) -> np.ndarray:
        """The largest |value| - |half| per channel: magnitudes, so the sign never enters.

        Infinite and NaN halves read back as infinity: a finite value that overflowed then
        counts an infinite error, an infinite value inf - inf = NaN (none), as numpy's would.
        """
        scratch, mask = self._scratch, self._mask
        np.left_shift(half, _U32(13), out=scratch)
        rounded = scratch.view(np.float32)
        np.multiply(rounded, _HALF_TO_FLOAT_SCALE, out=rounded)  # exact: a power of two
        np.greater_equal(half, _HALF_INFINITY, out=mask)
        if mask.any():
            np.copyto(rounded, np.float32(np.inf), where=mask)
        with np.errstate(invalid="ignore"):
            np.subtract(magnitude.view(np.float32), rounded, out=rounded)
        np.abs(rounded, out=rounded)
        return np.fmax.reduce(rounded.reshape(len(rounded), -1), axis=1, initial=np.float32(0))
