"""float32 -> IEEE float16 rounding, bit for bit numpy's, with its error, compiled by numba.

numpy converts half floats one value at a time in C (no SIMD: numpy issue 28753). ``half_of``
is F. Giesen's branch-free round-to-nearest-even (``float_to_half_fast3_rtne``) on one value's
bits: in a numba loop over a row the compiler vectorises it, its error included, and it runs
several times faster than numpy's cast (figures: ``bench/README.md``). NaN becomes the quiet
NaN 0x7E00 (with its sign); numpy keeps the top bits of a NaN's payload instead, which only
matters for NaNs that numpy does not produce itself. ``bench/float16_bench.py`` checks all
2**32 inputs.
"""

from __future__ import annotations

import numba
import numpy as np

from tf_landslide.jit import compiled

_U32 = np.uint32
_ABS = _U32(0x7FFF_FFFF)
_HALF_MIN_NORMAL = _U32(113 << 23)  # 2**-14: smaller magnitudes round to a subnormal half (or 0)
_HALF_OVERFLOW = _U32((127 + 16) << 23)  # 2**16: larger magnitudes are infinite in half
_INFINITY = _U32(0x7F80_0000)
_REBIAS = _U32((((15 - 127) << 23) + 0xFFF) & 0xFFFF_FFFF)  # exponent 127 -> 15, and round half down
_SUBNORMAL_MAGIC = np.float32(0.5)  # its ulp is 2**-24, the spacing of subnormal halves
_SUBNORMAL_MAGIC_BITS = _U32(126 << 23)
_HALF_INFINITY, _HALF_NAN = _U32(0x7C00), _U32(0x7E00)
_HALF_TO_FLOAT_SCALE = np.float32(2.0**112)  # a half's bits << 13 read as a float32, times this, is its value
_NO_ERROR, _OVERFLOW_ERROR = np.float32(0), np.float32(np.inf)


@numba.njit(inline="always")
def half_of(bits):
    """The float16 bits (uint32, low 16) of the float32 with ``bits``, and |value| - |half| as float32.

    The error is 0 for NaN and infinite values and infinite for a finite value that overflows,
    as numpy's ``abs(half - value)`` is, NaN ignored. numba widens uint32 arithmetic to uint64:
    every result is cast back, for uint32's wrap-around and twice as many values a vector.
    """
    magnitude = _U32(bits & _ABS)
    # Normal halves: add the exponent rebias and the rounding increment (0xFFF, plus one if the
    # kept mantissa is odd: ties to even), then drop the 13 extra mantissa bits.
    odd = _U32(_U32(magnitude >> _U32(13)) & _U32(1))
    normal = _U32(_U32(_U32(magnitude + _REBIAS) + odd) >> _U32(13))
    # Subnormal halves and zeros: adding 0.5 rounds to multiples of 2**-24 (ties to even).
    shifted = np.float32(_U32(magnitude).view(np.float32) + _SUBNORMAL_MAGIC)
    subnormal = _U32(shifted.view(np.uint32) - _SUBNORMAL_MAGIC_BITS)
    half = subnormal if magnitude < _HALF_MIN_NORMAL else normal
    too_large = _HALF_NAN if magnitude > _INFINITY else _HALF_INFINITY  # NaN, infinite, or overflows
    half = half if magnitude < _HALF_OVERFLOW else too_large
    back = _U32(half << _U32(13)).view(np.float32) * _HALF_TO_FLOAT_SCALE  # exact: a power of two
    error = abs(_U32(magnitude).view(np.float32) - back)
    error_if_infinite = _OVERFLOW_ERROR if magnitude < _INFINITY else _NO_ERROR
    error = error if half < _HALF_INFINITY else error_if_infinite
    return _U32(half | _U32(_U32(bits >> _U32(16)) & _U32(0x8000))), error


@numba.njit(inline="always")
def round_row(bits, out, errors):
    """Round a row of float32 ``bits`` (uint32) to float16 bits in ``out`` (uint16), keeping the
    largest error so far at each position in ``errors``: a max over the row would not vectorise."""
    for x in range(bits.shape[0]):
        half, error = half_of(bits[x])
        out[x] = np.uint16(half)
        errors[x] = max(errors[x], error)


_LANES = 128  # values rounded a call, each position keeping its largest error


@compiled
def _round_rows(bits, out, error):
    lanes = np.zeros(_LANES, np.float32)
    for c in range(bits.shape[0]):
        lanes[:] = error[c]
        for start in range(0, bits.shape[1], _LANES):
            end = min(start + _LANES, bits.shape[1])
            round_row(bits[c, start:end], out[c, start:end], lanes[: end - start])
        error[c] = lanes.max()


def round_half(values: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Write float32 ``values`` [C, ...] rounded to float16 into ``out`` (float16, same shape, any
    strides) and return the largest absolute rounding error per channel (axis 0) as float32."""
    if values.dtype != np.float32 or out.dtype != np.float16 or out.shape != values.shape:
        raise ValueError(
            f"round_half takes float32 values and a float16 out of their shape, got "
            f"{values.dtype} {values.shape} and {out.dtype} {out.shape}"
        )
    bits = np.ascontiguousarray(values).view(_U32).reshape(len(values), -1)
    halves = np.empty(bits.shape, np.uint16)
    error = np.zeros(len(values), np.float32)
    _round_rows(bits, halves, error)
    out.view(np.uint16)[...] = halves.reshape(values.shape)
    return error
