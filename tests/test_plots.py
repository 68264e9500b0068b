"""Figures a person reads: the scene quick-look's outcome colours against the labels."""

import numpy as np
from PIL import Image

from tf_landslide import plots


def test_outcomes_tell_hits_misses_and_false_alarms_apart():
    probability = np.array([[0.9, 0.2, 0.7, 0.1, np.nan]], np.float32)
    labels = np.array([[1, 1, 0, 0, 1]], np.uint8)
    np.testing.assert_array_equal(plots.outcomes(probability, labels, 0.5), [[1, 2, 3, 0, 0]])  # no prediction: none


def colour_pixels(path, hex_colour: str) -> int:
    rgb = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int(np.sum(np.all(np.abs(rgb.astype(int) - target) <= 2, axis=1)))


def test_the_labelled_quicklook_paints_each_outcome_in_its_colour_with_the_threshold_in_the_title(tmp_path):
    probability = np.zeros((120, 180), np.float32)
    labels = np.zeros((120, 180), np.uint8)
    probability[10:50, 10:60], labels[10:50, 10:60] = 0.9, 1  # hits
    labels[60:100, 10:60] = 1  # misses
    probability[10:50, 100:150] = 0.8  # false alarms
    backdrop = np.random.default_rng(0).normal(size=(120, 180)).astype(np.float32)
    path = tmp_path / "quicklook.png"
    plots.scene_quicklook(probability, backdrop, labels, "scene", "vv_after", 0.42, path)
    for name, colour in plots.OUTCOMES.values():
        assert colour_pixels(path, colour) > 1000, name  # each block, plus its legend patch
    unlabelled = tmp_path / "unlabelled.png"
    plots.scene_quicklook(probability, backdrop, None, "scene", "vv_after", 0.42, unlabelled)
    assert all(colour_pixels(unlabelled, colour) < 50 for _, colour in plots.OUTCOMES.values())


def test_the_title_names_the_threshold(tmp_path, monkeypatch):
    titles = []
    plt = plots._pyplot()
    original = plt.Axes.set_title
    monkeypatch.setattr(
        plt.Axes, "set_title", lambda self, text, **kw: titles.append(text) or original(self, text, **kw)
    )
    plots.scene_quicklook(
        np.zeros((8, 8), np.float32), None, np.zeros((8, 8)), "scene", "none", 0.315, tmp_path / "q.png"
    )
    assert "landslide where probability >= 0.315" in titles[0]
