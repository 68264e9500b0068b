import numpy as np
import pytest
import xarray as xr

from tf_landslide import chips
from tf_landslide.config import SplitSpec
from tf_landslide.cube.open import CubeError


def _labels(array):
    return xr.Dataset({"landslides": (("y", "x"), array)})


def test_grid_drops_the_remainder_and_honours_stride():
    assert chips.grid_origins(300, 128, 128).tolist() == [0, 128]
    assert chips.grid_origins(300, 128, 64).tolist() == [0, 64, 128]
    assert chips.grid_origins(100, 128, 128).size == 0


def test_positive_counts_equal_numpy_whatever_the_band_height():
    rng = np.random.default_rng(1)
    labels = (rng.random((100, 70)) > 0.9).astype(np.float32)
    labels[3, 4] = np.nan
    expected = np.array(
        [[np.nansum(labels[r : r + 16, c : c + 16]) for c in range(0, 55, 16)] for r in range(0, 85, 16)]
    )
    for band_rows in (16, 48, 1000):
        rows, cols, counts, nan = chips.count_positives(_labels(labels), 16, 16, band_rows)
        assert rows.tolist() == [0, 16, 32, 48, 64, 80] and cols.tolist() == [0, 16, 32, 48]
        np.testing.assert_array_equal(counts, expected)
        assert nan == 1


@pytest.mark.parametrize("stride", [7, 16, 24])
def test_positive_counts_of_overlapping_or_spaced_chips_equal_numpy(stride):
    rng = np.random.default_rng(2)
    labels = (rng.random((90, 75)) > 0.8).astype(np.uint8)
    starts_r, starts_c = range(0, 90 - 16 + 1, stride), range(0, 75 - 16 + 1, stride)
    expected = np.array([[labels[r : r + 16, c : c + 16].sum() for c in starts_c] for r in starts_r])
    for band_rows in (16, 40, 1000):
        rows, cols, counts, _ = chips.count_positives(_labels(labels), 16, stride, band_rows)
        assert rows.tolist() == list(starts_r) and cols.tolist() == list(starts_c)
        np.testing.assert_array_equal(counts, expected)


def test_labels_other_than_0_1_are_refused():
    with pytest.raises(CubeError, match="255"):
        chips.count_positives(_labels(np.array([[0, 1], [255, 0]], np.uint8)), 1, 1, 1)


def test_random_split_is_seeded_stratified_and_exact():
    n = 200
    positive = np.arange(n) % 4 == 0
    spec = SplitSpec("random", (0.7, 0.2, 0.1), seed=42)
    split = chips.assign_splits(np.arange(n) // 20, np.arange(n) % 20, positive, spec)
    assert np.array_equal(split, chips.assign_splits(np.arange(n) // 20, np.arange(n) % 20, positive, spec))
    for members in (positive, ~positive):
        counts = np.bincount(split[members], minlength=3)
        total = members.sum()
        assert counts[0] == int(total * 0.7) and counts[1] == int(total * 0.2)
    other = chips.assign_splits(np.arange(n) // 20, np.arange(n) % 20, positive, SplitSpec(seed=7))
    assert not np.array_equal(split, other)


def test_blocked_split_keeps_blocks_together_and_roughly_meets_fractions():
    rows, cols = np.meshgrid(np.arange(40), np.arange(40), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    positive = np.random.default_rng(0).random(rows.size) < 0.5
    spec = SplitSpec("blocked", (0.7, 0.2, 0.1), seed=3, block=4)
    split = chips.assign_splits(rows, cols, positive, spec)
    blocks = (rows // 4) * 10 + cols // 4
    for block in np.unique(blocks):
        assert len(set(split[blocks == block].tolist())) == 1
    share = np.bincount(split[positive], minlength=3) / positive.sum()
    np.testing.assert_allclose(share, [0.7, 0.2, 0.1], atol=0.05)


@pytest.mark.parametrize("kwargs", [dict(method="nope"), dict(fractions=(0.5, 0.2, 0.1)), dict(block=0)])
def test_bad_split_settings_name_the_flag(kwargs):
    with pytest.raises(ValueError, match="--split"):
        SplitSpec(**kwargs)
