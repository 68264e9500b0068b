import numpy as np

from tf_landslide.normalisation import ChannelMoments


def test_merged_moments_equal_direct_computation_with_nan():
    rng = np.random.default_rng(0)
    data = np.stack([rng.normal(-2.0, 0.7, 5000), rng.normal(1500.0, 300.0, 5000)], -1).astype(np.float32)
    data[rng.random(5000) < 0.1, 0] = np.nan
    parts = np.array_split(data, [7, 1000, 1001, 3500])
    merged = ChannelMoments.empty(2)
    for part in parts:
        merged = merged.merge(ChannelMoments.of(part))
    np.testing.assert_allclose(merged.mean, np.nanmean(data.astype(np.float64), 0), rtol=1e-12)
    np.testing.assert_allclose(merged.std, np.nanstd(data.astype(np.float64), 0), rtol=1e-10)
    assert merged.count.tolist() == np.isfinite(data).sum(0).tolist()


def test_large_offset_does_not_cancel():
    values = (1e6 + np.arange(10, dtype=np.float64) * 1e-3)[:, None]
    merged = ChannelMoments.of(values[:5]).merge(ChannelMoments.of(values[5:]))
    np.testing.assert_allclose(merged.std, values.std(), rtol=1e-6)


def test_json_round_trip_and_empty_chips():
    moments = ChannelMoments.of(np.full((4, 4, 2), np.nan))
    assert moments.count.tolist() == [0, 0]
    again = ChannelMoments.from_json(ChannelMoments.of(np.ones((3, 2))).to_json())
    assert again.merge(moments).mean.tolist() == [1.0, 1.0]


def test_moments_of_each_item_equal_moments_of_that_item():
    rng = np.random.default_rng(5)
    stack = rng.normal(3.0, 2.0, size=(4, 8, 8, 3)).astype(np.float32)
    stack[1, :2, :, 0] = np.nan
    stack[2, ..., 1] = np.nan  # an item with no valid value in a channel
    for item, moments in zip(stack, ChannelMoments.of_each(stack), strict=True):
        single = ChannelMoments.of(item)
        np.testing.assert_array_equal(moments.count, single.count)
        np.testing.assert_allclose(moments.mean, single.mean, rtol=1e-12)
        np.testing.assert_allclose(moments.m2, single.m2, rtol=1e-9)


def test_channels_first_and_channels_last_give_the_same_bits():
    rng = np.random.default_rng(5)
    band = (1000 + 300 * rng.random((3, 40, 50))).astype(np.float32)
    band[1, rng.random((40, 50)) < 0.1] = np.nan
    first = ChannelMoments.of(band, channel_axis=0)
    last = ChannelMoments.of(np.moveaxis(band, 0, -1))
    for a, b in ((first.count, last.count), (first.mean, last.mean), (first.m2, last.m2)):
        np.testing.assert_array_equal(a, b)
    assert first.count.tolist() == [2000, int(np.isfinite(band[1]).sum()), 2000]


def test_moments_of_each_same_bits_channels_first_or_last_and_with_or_without_missing_values():
    rng = np.random.default_rng(6)
    stack = (1000 + 300 * rng.random((3, 2, 16, 16))).astype(np.float32)  # [N, C, H, W]
    first = ChannelMoments.of_each(stack, channel_axis=1)
    last = ChannelMoments.of_each(np.moveaxis(stack, 1, -1))
    holed = stack.copy()
    holed[2, 0, 3, 3] = np.nan  # channel 0 now takes the masked path for every item
    masked = ChannelMoments.of_each(holed, channel_axis=1)
    for a, b in zip(first, last, strict=True):
        np.testing.assert_array_equal(a.to_json()["m2"], b.to_json()["m2"])
        np.testing.assert_array_equal(a.mean, b.mean)
    for a, c in zip(first[:2], masked[:2], strict=True):  # items without the hole: identical bits
        assert a.to_json() == c.to_json()
    assert masked[2].count.tolist() == [255, 256]
    np.testing.assert_allclose(masked[2].mean[0], np.nanmean(holed[2, 0].astype(np.float64)), rtol=1e-12)
