"""Maps from the SavedModel alone (maps/saved_model.py): the same map as from the run's folder,
without the run folder or segmentation-models."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import tensorflow as tf

from tf_landslide import data, model_folder, serving
from tf_landslide.config import CubeConfig, MapConfig
from tf_landslide.maps import scene_map

REPO = Path(__file__).resolve().parents[2]
# float32 (the SavedModel computes in float32; --bfloat16=auto would round the run's map on some CPUs)
SETTINGS = {"window": 64, "overlap": 16, "outputs": ("geotiff", "geojson"), "bfloat16": "off"}


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    cfg, _ = trained
    return cfg, serving.export_saved_model(cfg.model_dir, tmp_path_factory.mktemp("served"))


def read(path):
    with rasterio.open(path) as tif:
        return tif.read(1), tif.transform, tif.crs


def test_the_saved_model_maps_what_the_run_maps(exported, tiny_cube, tmp_path):
    cfg, saved = exported
    cube = CubeConfig(cube=tiny_cube)
    from_run = scene_map.make_map(
        MapConfig(cube=cube, model_dir=cfg.model_dir, map_dir=str(tmp_path / "run"), **SETTINGS)
    )
    from_saved = scene_map.make_map(
        MapConfig(cube=cube, model_dir="/nonexistent", saved_model=saved, map_dir=str(tmp_path / "saved"), **SETTINGS)
    )
    run_map, run_transform, run_crs = read(tmp_path / "run" / "probability.tif")
    saved_map, saved_transform, saved_crs = read(tmp_path / "saved" / "probability.tif")
    assert (run_transform, run_crs) == (saved_transform, saved_crs)
    np.testing.assert_array_equal(np.isnan(run_map), np.isnan(saved_map))
    known = ~np.isnan(run_map)
    np.testing.assert_allclose(saved_map[known], run_map[known], atol=1e-4)  # graph vs eager: round-off
    # The threshold travelled in the SavedModel's assets: the same cut, so the same polygons.
    assert from_saved["threshold"] == from_run["threshold"] == model_folder.read_threshold(cfg.model_dir)["threshold"]
    assert from_saved["threshold_source"].startswith("the SavedModel's (best_f1")
    assert abs(from_saved["regions_above_threshold"] - from_run["regions_above_threshold"]) <= 1
    assert "saved_model" in from_saved and "model_dir" not in from_saved
    assert "test_chips" not in from_saved.get("scores", {})  # the export's chips are not known from the model


def test_predict_py_maps_with_the_saved_model_without_segmentation_models(exported, tiny_cube, tmp_path):
    _, saved = exported
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    (blocker / "segmentation_models.py").write_text("raise ImportError('segmentation-models is not installed')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)]), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [
        sys.executable,
        str(REPO / "predict.py"),
        f"--saved_model={saved}",
        f"--cube={tiny_cube}",
        f"--map_dir={tmp_path / 'map'}",
        "--model_dir=/nonexistent",
        "--map_window=64",
        "--map_overlap=16",
        "--map_outputs=geotiff,png",
    ]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "map" / "probability.tif").exists() and "the SavedModel's" in done.stdout
    without_dir = subprocess.run(command[:4] + command[5:], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert without_dir.returncode == 2 and "--saved_model needs --map_dir" in without_dir.stderr


def test_a_folder_that_is_not_our_saved_model_is_named(tiny_cube, tmp_path):
    config = MapConfig(cube=CubeConfig(cube=tiny_cube), saved_model=str(tmp_path), map_dir=str(tmp_path / "m"))
    with pytest.raises(FileNotFoundError, match="is not a SavedModel exported by tf_landslide"):
        scene_map.make_map(config)


def test_the_runs_model_maps_in_bfloat16_within_its_round_off(exported, tiny_cube):
    """--bfloat16 (auto on CPUs with native bfloat16) computes the map's model in bfloat16: other
    probabilities than float32's, by bfloat16's round-off only."""
    cfg, _ = exported
    manifest = model_folder.read_manifest(cfg.model_dir)
    # Raw channels near the training mean: standardised, small values the tiny model does not saturate on.
    mean, std = (np.asarray(v, np.float32) for v in data.normalisation(manifest))
    windows = (0.1 * np.random.default_rng(0).normal(size=(2, 32, 32, len(mean)))).astype(np.float32) * std + mean
    exact = scene_map.keras_predictor(cfg.model_dir, "last", manifest, 32)(windows)
    rounded = scene_map.keras_predictor(cfg.model_dir, "last", manifest, 32, "mixed_bfloat16")(windows)
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # the map's policy stayed inside
    assert rounded.dtype == np.float32
    difference = np.abs(rounded - exact)
    assert 0 < difference.max() < 2e-2, difference.max()
