"""The export's compiled loops (``tf_landslide.kernels``) called directly, each against a plain,
slow numpy reference written here, on seeded random inputs with the edge cases their contracts name."""

import numpy as np

from tf_landslide import kernels

# float64 sums of float32 values, in the loops' order (per column, then across columns) or
# numpy's (pairwise), err by at most about (terms in one chain) * 2.2e-16 * sum(|v|): here under
# 200 chained terms, so under 5e-14 relative. 1e-12 leaves a margin of 20 and still catches what
# a real mistake moves by 1e-7 or more (one value missed or counted twice, a float32 accumulator,
# a window shifted by a pixel). The sum of squared deviations is not sensitive to the mean's own
# rounding (its derivative in the mean is zero there), so it takes the same tolerance.
MOMENTS_RTOL = 1e-12


# --- references --------------------------------------------------------------------------------


def reference_log_sums(planes):
    """Sum of log and count over the values > 0 of each pixel, float32 in plane order."""
    total = np.zeros(planes[0].shape, np.float32)
    count = np.zeros(planes[0].shape, np.uint8)
    for plane in planes:
        valid = plane > 0  # False for 0, -0, negatives and NaN
        with np.errstate(divide="ignore", invalid="ignore"):
            total = total + np.where(valid, np.log(plane), np.float32(0))
        count = count + valid.astype(np.uint8)
    return total, count


def reference_moments(values):
    """Count, mean and sum of squared deviations per channel of [C, ...] over finite values, float64."""
    out = np.zeros((3, len(values)))
    for c, channel in enumerate(values.astype(np.float64)):
        finite = channel[np.isfinite(channel)]
        if finite.size:
            out[:, c] = finite.size, finite.mean(), ((finite - finite.mean()) ** 2).sum()
    return out


def reference_scan(band, corners, size, max_nodata):
    """What the chip stage is: each chip's no-data fraction, whether it is kept, and the kept chips
    channels last."""
    nodata, kept, chips = [], [], []
    for top, left in corners:
        chip = band[:, top : top + size, left : left + size]
        fraction = np.isnan(chip).any(axis=0).sum() / (size * size)
        nodata.append(fraction)
        kept.append(fraction <= max_nodata)
        if kept[-1]:
            chips.append(np.moveaxis(chip, 0, -1))
    return np.array(nodata), np.array(kept), chips


def reference_half_error(chips):
    """The largest |float16(v) - v| per channel over all values of ``chips`` [..., C]; NaN and
    infinite values count nothing (their difference is NaN), overflowing ones an infinite error."""
    values = np.stack(chips)
    with np.errstate(over="ignore", invalid="ignore"):
        difference = np.abs(values.astype(np.float16).astype(np.float32) - values)
    return np.fmax.reduce(difference.reshape(-1, values.shape[-1]), axis=0, initial=np.float32(0))


def scan(band, corners, size, max_nodata, wants_moments=None, to_half=True):
    """``kernels.scan_chips`` with the buffers ``chip_stage.stage_chips`` gives it; moments
    pre-filled with -7 to show which slots it wrote."""
    n, channels = len(corners), band.shape[0]
    rows, cols = (np.array([corner[k] for corner in corners], np.int64) for k in (0, 1))
    wants = np.zeros(n, bool) if wants_moments is None else np.asarray(wants_moments, bool)
    shape = (n, size, size, channels)
    halves = np.empty(shape if to_half else (0, *shape[1:]), np.uint16)
    floats = np.empty((0, *shape[1:]) if to_half else shape, np.float32)
    error = np.zeros(channels, np.float32)
    moments = np.full((n, 3, channels), -7.0)
    nodata, kept = np.empty(n), np.empty(n, bool)
    count = kernels.scan_chips(band, rows, cols, size, max_nodata, wants, halves, floats, error, moments, nodata, kept)
    return count, (halves if to_half else floats)[:count], error, moments, nodata, kept


def float16_edges():
    """float32 values whose rounding to float16 is delicate, both signs: ties to even rounding down
    and up, their float32 neighbours, subnormal halves and their ties, float32 subnormals, the
    largest half and the values either side of the overflow boundary (65520 is a tie: to inf)."""
    ulp = 2.0**-10  # the spacing of halves in [1, 2)
    ties = np.array([1 + ulp / 2, 1 + 3 * ulp / 2, 2049.0, 2051.0, 32784.0, 32816.0], np.float32)
    neighbours = np.concatenate([np.nextafter(ties, np.float32(0)), np.nextafter(ties, np.float32(np.inf))])
    subnormal = np.array(
        [2.0**-24, 2.0**-25, 3 * 2.0**-25, 5 * 2.0**-26, 2.0**-26, 2.0**-14 - 2.0**-25, 2.0**-14, 1e-42, 0.0],
        np.float32,
    )
    largest = np.array([65504.0, 65519.99], np.float32)  # 65519.99 still rounds down to 65504
    magnitudes = np.concatenate([ties, neighbours, subnormal, largest])
    return np.concatenate([magnitudes, -magnitudes])


OVERFLOWING = np.array([65520.0, -70000.0, 1e38, -np.finfo(np.float32).max], np.float32)


# --- add_logs and mean_of ----------------------------------------------------------------------


def sar_planes(rng, count, shape):
    """Linear-power planes with NaN, zeros of both signs, negatives, float32 subnormals and inf."""
    planes = []
    for _ in range(count):
        plane = rng.lognormal(-3, 2, shape).astype(np.float32)
        draw = rng.random(shape)
        plane[draw < 0.15] = np.nan
        plane[(draw >= 0.15) & (draw < 0.2)] = 0.0
        plane[(draw >= 0.2) & (draw < 0.22)] = -0.0
        plane[(draw >= 0.22) & (draw < 0.3)] = -rng.random(((draw >= 0.22) & (draw < 0.3)).sum())
        plane[(draw >= 0.3) & (draw < 0.32)] = np.float32(1e-42)
        plane[(draw >= 0.32) & (draw < 0.33)] = -np.nan
        planes.append(plane)
    planes[0][0, :4] = planes[1][0, :4] = planes[2][0, :4] = [np.nan, 0.0, -1.0, -np.nan]  # never valid
    planes[2][1, 0] = np.inf  # > 0: counts, and its log makes the sum infinite
    return planes


def test_add_logs_sums_the_logs_and_counts_only_values_above_zero_first_setting_then_adding():
    rng = np.random.default_rng(0)
    planes = sar_planes(rng, 3, (23, 41))
    total = np.full(planes[0].shape, 123.0, np.float32)  # what a previous window left: first overwrites it
    count = np.full(planes[0].shape, 9, np.uint8)
    for index, plane in enumerate(planes):
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(plane)
        kernels.add_logs(plane, logs, total, count, index == 0)
        expected_total, expected_count = reference_log_sums(planes[: index + 1])
        np.testing.assert_array_equal(total.view(np.uint32), expected_total.view(np.uint32))
        np.testing.assert_array_equal(count, expected_count)
    assert count[0, :4].tolist() == [0, 0, 0, 0] and total[0, :4].view(np.uint32).tolist() == [0, 0, 0, 0]  # +0.0
    assert total[1, 0] == np.inf
    assert np.unique(count).tolist() == [0, 1, 2, 3]


def test_add_logs_takes_the_log_it_is_given_and_accumulates_onto_existing_totals():
    plane = np.array([[2.0, 0.0, np.nan, -3.0, 1e-42]], np.float32)
    logs = np.array([[10.0, 20.0, 30.0, 40.0, 50.0]], np.float32)  # not log(plane): the loop adds what it is given
    total = np.array([[1.5, 1.5, 1.5, 1.5, 1.5]], np.float32)
    count = np.array([[254, 7, 7, 7, 0]], np.uint8)
    kernels.add_logs(plane, logs, total, count, False)
    assert total.tolist() == [[11.5, 1.5, 1.5, 1.5, 51.5]]
    assert count.tolist() == [[255, 7, 7, 7, 1]] and count.dtype == np.uint8


def test_mean_of_divides_in_float32_and_is_nan_exactly_where_the_count_is_zero():
    rng = np.random.default_rng(1)
    total = rng.normal(0, 50, (17, 29)).astype(np.float32)
    count = rng.integers(0, 256, total.shape).astype(np.uint8)
    count[rng.random(total.shape) < 0.2] = 0
    total[0, :6] = [np.inf, -np.inf, np.nan, 0.0, 5.0, np.inf]
    count[0, :6] = [3, 1, 2, 4, 0, 0]  # an infinite sum, NaN, zero; a sum with no count is still NaN
    out = np.full(total.shape, 99.0, np.float32)
    kernels.mean_of(total, count, out)
    expected = np.full(total.shape, np.nan, np.float32)
    np.divide(total, count.astype(np.float32), out=expected, where=count > 0)
    np.testing.assert_array_equal(out.view(np.uint32), expected.view(np.uint32))
    assert np.isnan(out[count == 0]).all() and out.dtype == np.float32
    assert out[0, 0] == np.inf and out[0, 1] == -np.inf and np.isnan(out[0, 2]) and out[0, 3] == 0


# --- channel_moments ---------------------------------------------------------------------------


def test_channel_moments_of_a_window_match_float64_numpy_over_finite_values():
    rng = np.random.default_rng(2)
    values = np.stack(
        [
            rng.normal(2500.0, 300.0, (50, 70)),  # elevations: a naive sum of squares would cancel
            rng.normal(-2.0, 0.7, (50, 70)),  # log-backscatter
            rng.normal(0.0, 1e-3, (50, 70)),  # coherence differences: mean near zero
            np.full((50, 70), np.nan),  # no finite value in the window: count, mean and sum 0
            np.full((50, 70), np.nan),  # one finite value: no deviation
        ]
    ).astype(np.float32)
    top, left, height, width = 7, 11, 31, 43
    window = (slice(None), slice(top, top + height), slice(left, left + width))
    values[0][rng.random((50, 70)) < 0.1] = np.nan
    values[1, top + 3, left : left + 5] = [np.inf, -np.inf, np.nan, -np.nan, np.inf]
    values[3, top, left] = np.inf
    values[4, top + height - 1, left + width - 1] = 42.5  # the window's last pixel
    # Outside the window: values that would show if the loop read one pixel too many.
    values[:, top - 1, :] = values[:, top + height, :] = 1e30
    values[:, :, left - 1] = values[:, :, left + width] = -1e30
    out = np.full((3, len(values)), -7.0)
    kernels.channel_moments(values, top, left, height, width, out)
    expected = reference_moments(values[window])
    np.testing.assert_array_equal(out[0], expected[0])  # counts are exact
    for c, channel in enumerate(values[window].astype(np.float64)):
        finite = channel[np.isfinite(channel)]
        scale = np.abs(finite).mean() if finite.size else 0.0  # the mean's error is relative to it
        np.testing.assert_allclose(out[1, c], expected[1, c], rtol=MOMENTS_RTOL, atol=MOMENTS_RTOL * scale)
        np.testing.assert_allclose(out[2, c], expected[2, c], rtol=MOMENTS_RTOL, atol=0)
    assert out[:, 3].tolist() == [0.0, 0.0, 0.0] and out[:, 4].tolist() == [1.0, 42.5, 0.0]
    assert out[0, 1] == height * width - 5


# --- scan_chips --------------------------------------------------------------------------------


def holed_scene(rng, channels, shape, size, corners, holes):
    """A scene of normal values (sd 300) with ``holes[i]`` no-data pixels in the chip at
    ``corners[i]`` (chips apart), each NaN (either sign) in a random, non-empty set of channels:
    a pixel counts once however many."""
    band = rng.normal(0, 300, (channels, *shape)).astype(np.float32)
    for (top, left), count in zip(corners, holes, strict=True):
        for pixel in rng.choice(size * size, count, replace=False):
            y, x = top + pixel // size, left + pixel % size
            which = rng.random(channels) < 0.5
            which[rng.integers(channels)] = True
            band[which, y, x] = rng.choice([np.nan, -np.nan])
    return band


def test_scan_chips_keeps_exactly_the_chips_at_or_under_the_nodata_threshold():
    rng = np.random.default_rng(3)
    size = 10  # 100 pixels: 35 of them is 0.35, which 35 * 0.01 is not
    corners = [(row, col) for row in range(0, 40, size) for col in range(0, 50, size)][:13]
    holes = [0, 9, 10, 11, 34, 35, 36, 49, 50, 51, 99, 100, 0]
    band = holed_scene(rng, 3, (40, 50), size, corners, holes)
    band[:, 30:40, 20:30] = np.inf  # chip 12: infinite everywhere, but no NaN: complete
    for max_nodata in (0.0, 0.1, 0.35, 0.5, 1.0):
        count, _, _, _, nodata, kept = scan(band, corners, size, max_nodata)
        expected_nodata, expected_kept, _ = reference_scan(band, corners, size, max_nodata)
        np.testing.assert_array_equal(nodata, expected_nodata)
        np.testing.assert_array_equal(kept, expected_kept)
        assert count == expected_kept.sum()
    assert nodata.tolist() == [h / 100 for h in holes]
    _, _, _, _, _, kept = scan(band, corners, size, 0.35)
    assert kept.tolist() == [True] * 6 + [False] * 6 + [True]  # 34 and 35 of 100 kept, 36 not
    _, _, _, _, _, kept = scan(band, corners, size, 0.0)
    assert kept.tolist() == [True] + [False] * 11 + [True]


def test_scan_chips_writes_kept_chips_in_order_channels_last_as_numpys_float16_bits_with_the_largest_error():
    rng = np.random.default_rng(4)
    size, shape = 16, (37, 53)
    # At the scene's four corners, one overlapping the first, one mostly no-data (dropped) between.
    corners = [(0, 0), (0, 37), (21, 0), (21, 37), (3, 5), (10, 18)]
    band = holed_scene(rng, 3, shape, size, corners[:4] + corners[5:], [5, 0, 120, 0, 200])
    edges = np.resize(float16_edges(), (4, 16))
    band[0, 12:16, 0:16] = edges  # chip 0's last rows, read by chip 4 too
    band[1, 0:4, 37:53] = edges[::-1]  # chip 1, at the right border
    band[2, 33:37, 37:53] = edges  # chip 3, the bottom-right pixel last
    band[0, 36, 0:2] = [np.nan, np.inf]  # chip 2's NaN and inf: halves but no error
    band[2, 30, 40 : 40 + len(OVERFLOWING)] = OVERFLOWING  # chip 3: an infinite error in channel 2
    band[1, 20, 25 : 25 + len(OVERFLOWING)] = OVERFLOWING  # dropped chip 5 only: channel 1 stays finite
    count, halves, error, _, _, kept = scan(band, corners, size, 0.5)
    _, expected_kept, chips = reference_scan(band, corners, size, 0.5)
    assert kept.tolist() == expected_kept.tolist() == [True] * 5 + [False] and count == 5
    with np.errstate(over="ignore"):
        expected = np.stack(chips).astype(np.float16)
    assert halves.shape == expected.shape == (5, size, size, 3) and halves.dtype == np.uint16
    np.testing.assert_array_equal(halves, expected.view(np.uint16))
    np.testing.assert_array_equal(error, reference_half_error(chips))
    assert np.isfinite(error[:2]).all() and error[2] == np.inf  # the edges made it into the kept chips
    assert {0x7C00, 0xFC00, 0x7E00, 0x0001, 0x8001, 0x0002}.issubset(set(halves.ravel().tolist()))


def test_scan_chips_without_half_rows_copies_kept_chips_as_float32_and_records_no_error():
    rng = np.random.default_rng(5)
    size, corners = 12, [(0, 0), (18, 28), (5, 9), (18, 0)]
    band = holed_scene(rng, 2, (30, 40), size, corners[:2] + corners[3:], [3, 72, 73])
    band[0, 20, 30:34] = [70000.0, np.inf, 1 + 2.0**-11, np.nan]
    count, floats, error, _, _, kept = scan(band, corners, size, 0.5, to_half=False)
    _, expected_kept, chips = reference_scan(band, corners, size, 0.5)
    assert kept.tolist() == expected_kept.tolist() == [True, True, True, False] and count == 3
    assert floats.dtype == np.float32
    np.testing.assert_array_equal(floats.view(np.uint32), np.stack(chips).view(np.uint32))
    assert error.tolist() == [0.0, 0.0]


def test_scan_chips_moments_of_each_wanted_kept_chip_go_to_its_slot_among_the_kept():
    rng = np.random.default_rng(6)
    size, corners = 8, [(0, 0), (0, 8), (8, 0), (8, 8), (4, 4), (16, 16)]
    band = holed_scene(rng, 3, (24, 24), size, corners[:4] + corners[5:], [40, 3, 0, 33, 8])
    band[0] += 2500.0  # an elevation channel
    band[2, 9, 9] = np.inf  # in chips 3 (dropped) and 4: left out of chip 4's moments
    wants = [True, True, False, True, True, True]  # chips 0 and 3 are dropped: no slot for them
    count, _, _, moments, _, kept = scan(band, corners, size, 0.5, wants_moments=wants)
    assert kept.tolist() == [False, True, True, False, True, True] and count == 4
    slots = {1: 0, 4: 2, 5: 3}  # kept chips that want moments -> their place among the kept
    for chip, slot in slots.items():
        top, left = corners[chip]
        expected = reference_moments(band[:, top : top + size, left : left + size])
        np.testing.assert_array_equal(moments[slot, 0], expected[0])
        # The means' error is relative to the values' scale (sd 300), not to a mean near zero.
        np.testing.assert_allclose(moments[slot, 1:], expected[1:], rtol=MOMENTS_RTOL, atol=MOMENTS_RTOL * 300)
    assert (moments[[1, 4, 5]] == -7.0).all()  # chip 2's slot (it wants none) and unused slots: untouched
    assert moments[2, 0, 2] == 64 - np.isnan(band[2, 4:12, 4:12]).sum() - 1  # chip 4: NaN and inf left out
