import numpy as np
import pytest

from tf_landslide.float16 import round_half


def every_kind_of_float32() -> np.ndarray:
    """Each exponent with mantissas that round down, up, and tie to even from both sides,
    both signs, the overflow and subnormal boundaries, zeros, infinities and NaN."""
    rng = np.random.default_rng(0)
    exponents = np.arange(256, dtype=np.uint32) << 23
    mantissas = np.concatenate(
        [
            np.array([0, 1, 0xFFF, 0x1000, 0x1001, 0x2000, 0x3000, 0x5000, 0x7FE000, 0x7FF000, 0x7FFFFF], np.uint32),
            rng.integers(0, 1 << 23, 40, dtype=np.uint32),
        ]
    )
    magnitudes = (exponents[:, None] | mantissas[None, :]).ravel()
    bits = np.concatenate([magnitudes, magnitudes | np.uint32(0x8000_0000)])
    values = bits.view(np.float32)
    extras = np.array([65504, 65519.99, 65520, 65536, 2.0**-14, 2.0**-24, 2.0**-25, 3 * 2.0**-25, 2.0**-26], np.float32)
    specials = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0], np.float32)
    values = np.concatenate([values, extras, -extras, specials])
    # NaN with a payload numpy would keep: we give the quiet NaN; the sign is the same.
    return values[~np.isnan(values) | (values.view(np.uint32) & 0x7FFFFF == 0x400000)]


def numpy_reference(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(over="ignore", invalid="ignore"):
        half = values.astype(np.float16)
        difference = np.abs(half.astype(np.float32) - values).reshape(len(values), -1)
    return half, np.fmax.reduce(difference, axis=1, initial=np.float32(0))


def test_half_bits_and_errors_equal_numpys_cast_for_every_kind_of_value():
    values = every_kind_of_float32()
    values = values[: len(values) // 4 * 4].reshape(4, -1)  # four channels
    out = np.empty(values.shape, np.float16)
    error = round_half(values, out)
    half, expected = numpy_reference(values)
    np.testing.assert_array_equal(out.view(np.uint16), half.view(np.uint16))
    np.testing.assert_array_equal(error, expected)
    assert error.dtype == np.float32


def test_errors_per_channel_overflow_is_infinite_and_nan_or_inf_count_nothing():
    values = np.array([[1.0, 1 + 2.0**-11, np.nan], [np.inf, -np.inf, 2.0], [3.0, 70000.0, np.nan]], np.float32)
    out = np.empty(values.shape, np.float16)
    error = round_half(values, out)
    assert error.tolist() == [2.0**-11, 0.0, np.inf]  # 1 + 2**-11 is a tie: rounds to even (1.0)
    assert out[2, 1] == np.inf and np.isnan(out[0, 2]) and out[1, 1] == -np.inf


def test_writes_channels_last_through_a_view_from_strided_values():
    rng = np.random.default_rng(1)
    stored = np.empty((2, 16, 16, 3), np.float16)
    chips = [rng.normal(0, 500, (3, 20, 20)).astype(np.float32)[:, 2:18, 4:20] for _ in range(2)]  # strided views
    for chip, out in zip(chips, stored, strict=True):
        round_half(chip, np.moveaxis(out, -1, 0))
    expected = np.stack([np.moveaxis(chip, 0, -1) for chip in chips]).astype(np.float16)
    np.testing.assert_array_equal(stored.view(np.uint16), expected.view(np.uint16))


def test_other_shapes_and_dtypes_are_refused():
    with pytest.raises(ValueError, match=r"got float64 \(2, 4\) and float16 \(2, 4\)"):
        round_half(np.zeros((2, 4)), np.empty((2, 4), np.float16))
    with pytest.raises(ValueError, match=r"got float32 \(4, 2\) and float16 \(2, 4\)"):
        round_half(np.zeros((4, 2), np.float32), np.empty((2, 4), np.float16))
