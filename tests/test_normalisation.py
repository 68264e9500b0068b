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


def test_channels_first_and_channels_last_give_the_same_bits():
    rng = np.random.default_rng(5)
    band = (1000 + 300 * rng.random((3, 40, 50))).astype(np.float32)
    band[1, rng.random((40, 50)) < 0.1] = np.nan
    first = ChannelMoments.of(band, channel_axis=0)
    last = ChannelMoments.of(np.moveaxis(band, 0, -1))
    for a, b in ((first.count, last.count), (first.mean, last.mean), (first.m2, last.m2)):
        np.testing.assert_array_equal(a, b)
    assert first.count.tolist() == [2000, int(np.isfinite(band[1]).sum()), 2000]


def test_moments_of_no_values_and_of_one_value_per_channel():
    assert ChannelMoments.of(np.zeros((0, 3), np.float32)).count.tolist() == [0, 0, 0]
    single = ChannelMoments.of(np.array([2.5, -1.0], np.float32))  # one value per channel, channels last
    assert single.count.tolist() == [1, 1] and single.mean.tolist() == [2.5, -1.0] and single.m2.tolist() == [0, 0]
