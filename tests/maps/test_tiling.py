"""Sliding windows and their blend: placement, seams, tile boundaries, streaming."""

import numpy as np
import pytest
from scipy import ndimage

from tf_landslide.maps.tiling import Tiling, blend, reflect

SHAPES = [
    (300, 257, Tiling(64, 16)),
    (50, 40, Tiling(64, 16)),
    (200, 130, Tiling(96, 32)),
    (64, 64, Tiling(64, 0)),
    (3, 5, Tiling(32, 8)),
]


def run(scene, predict, tiling, batch_size=3):
    """The blended map of ``scene`` [H, W, C], the emitted (row, rows) blocks and the row reads."""
    height, width = scene.shape[:2]
    out = np.full((height, width), -1.0, np.float32)
    blocks, reads = [], []

    def read_rows(a, b):
        reads.append((a, b))
        return scene[a:b]

    def emit(row, probability, inputs):
        blocks.append((row, probability.shape[0]))
        np.testing.assert_array_equal(inputs, scene[row : row + probability.shape[0]])
        out[row : row + probability.shape[0]] = probability

    counts = blend(read_rows, predict, tiling, height, width, batch_size, emit)
    return out, blocks, reads, counts


@pytest.mark.parametrize("height, width, tiling", SHAPES)
def test_an_identity_model_gives_back_the_scene_every_row_once(height, width, tiling):
    scene = np.random.default_rng(0).random((height, width, 2)).astype(np.float32)
    out, blocks, reads, counts = run(scene, lambda w: w[..., 0], tiling)
    np.testing.assert_allclose(out, scene[..., 0], atol=1e-6)  # weights sum to 1, windows placed right
    rows = [r for row, n in blocks for r in range(row, row + n)]
    assert rows == list(range(height))  # consecutive blocks, each row once
    assert counts["rows_read"] == height  # overlapping strips do not read rows twice
    assert max(b - a for a, b in reads) <= tiling.window  # bounded by the window, not the scene


def test_weights_are_zero_on_the_margin_and_sum_to_one_where_windows_overlap():
    tiling = Tiling(128, 32)
    w = tiling.weights()
    assert (w[: tiling.margin] == 0).all() and (w[-tiling.margin :] == 0).all()
    assert (w[tiling.pad : tiling.window - tiling.pad] == 1).all()
    total = np.zeros(tiling.stride * 5 + tiling.window)
    for k in range(6):
        total[k * tiling.stride : k * tiling.stride + tiling.window] += w
    np.testing.assert_allclose(total[tiling.pad : -tiling.pad], 1.0, atol=1e-6)


def test_a_constant_scene_gives_a_constant_map_whatever_the_window_borders_predict():
    """Padding artefacts at window borders must not reach the map: no seams."""
    tiling = Tiling(64, 16)

    def border_artefacts(windows):
        p = np.full(windows.shape[:3], 0.3, np.float32)
        m = tiling.margin
        p[:, :m], p[:, -m:], p[:, :, :m], p[:, :, -m:] = 0.9, 0.0, 1.0, 0.1
        return p

    out, *_ = run(np.ones((150, 170, 3), np.float32), border_artefacts, tiling)
    np.testing.assert_allclose(out, 0.3, atol=1e-6)


def box_filter(windows):
    """A 3 x 3 mean with zero padding: like a CNN, exact except next to a window's border."""
    return ndimage.uniform_filter(windows[..., 0], size=(1, 3, 3), mode="constant")


def test_tile_boundaries_do_not_change_predictions():
    scene = np.random.default_rng(1).random((181, 203, 1)).astype(np.float32)
    whole = ndimage.uniform_filter(np.pad(scene[..., 0], 1, mode="reflect"), size=3, mode="constant")[1:-1, 1:-1]
    small, *_ = run(scene, box_filter, Tiling(64, 16))
    large, *_ = run(scene, box_filter, Tiling(96, 32))
    np.testing.assert_allclose(small, whole, atol=1e-5)
    np.testing.assert_allclose(large, small, atol=1e-5)


def test_a_missing_input_pixel_has_no_prediction_and_its_neighbours_do():
    scene = np.random.default_rng(2).random((70, 80, 2)).astype(np.float32)
    scene[10, 20, 1] = np.nan
    out, *_ = run(scene, lambda w: np.nan_to_num(w[..., 0]), Tiling(32, 8))
    assert np.isnan(out[10, 20]) and np.isfinite(np.delete(out.ravel(), 10 * 80 + 20)).all()


def test_reflect_mirrors_without_repeating_the_edge():
    np.testing.assert_array_equal(reflect(np.arange(-3, 8), 5), [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1])
    np.testing.assert_array_equal(reflect(np.arange(-2, 3), 1), [0, 0, 0, 0, 0])
    assert reflect(np.arange(-40, 40), 3).max() == 2


@pytest.mark.parametrize(
    "window, overlap, message",
    [(100, 16, "multiples of 32"), (64, 10, "multiple of 4"), (64, 40, "at most 36"), (0, 0, "multiples of 32")],
)
def test_bad_tilings_name_the_flag(window, overlap, message):
    with pytest.raises(ValueError, match=message):
        Tiling(window, overlap)


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="--map_batch_size"):
        run(np.zeros((10, 10, 1), np.float32), lambda w: w[..., 0], Tiling(32, 8), batch_size=0)
