"""Full-scene maps of the tiny cube: georeferencing, outputs, scores, errors, the real model."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr

from tests.helpers import dem_probability, make_tiny_map, map_run_dir
from tf_landslide import model_folder
from tf_landslide.config import CubeConfig, MapConfig, ModelConfig
from tf_landslide.cube import schema
from tf_landslide.cube.channels import resolve_channel_config
from tf_landslide.cube.open import open_cube
from tf_landslide.maps import scene_map
from tf_landslide.metrics import PixelCurve

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tiny_cube, tmp_path_factory):
    return map_run_dir(tiny_cube, tmp_path_factory.mktemp("map_run"))


@pytest.fixture(scope="module")
def manifest(run_dir):
    return json.loads((run_dir / "manifest.json").read_text())


def expected(cube):
    ds = open_cube(cube)
    return dem_probability(ds["dem"].values.astype(np.float32)), ds


@pytest.fixture(scope="module")
def mapped(tiny_cube, run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("maps") / "map"
    return make_tiny_map(tiny_cube, run_dir, out), out


def test_the_geotiff_is_a_cog_on_the_cubes_grid_with_each_pixel_in_place(mapped, tiny_cube):
    summary, out = mapped
    probability, ds = expected(tiny_cube)
    with rasterio.open(out / "probability.tif") as tif:
        assert tif.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert tif.crs.to_epsg() == 32654
        x, y = ds.x.values, ds.y.values
        assert tif.transform.c == pytest.approx(x[0] - 5) and tif.transform.f == pytest.approx(y[0] + 5)
        assert tif.transform.a == 10 and tif.transform.e == -10
        assert tif.xy(7, 11) == pytest.approx((x[11], y[7]))  # pixel centres are the cube's coordinates
        values = tif.read(1)
    known = ~np.isnan(values)
    assert known.mean() > 0.8
    np.testing.assert_allclose(values[known], probability[known], atol=1e-5)
    assert summary["scores"]["pixels_without_prediction"] == int((~known).sum())


def test_the_zarr_has_the_cubes_coordinates_crs_and_the_same_values(mapped, tiny_cube):
    _, out = mapped
    ds = open_cube(tiny_cube)
    zarr_map = xr.open_zarr(out / "probability.zarr", decode_coords="all")  # CF grid mapping -> CRS
    np.testing.assert_array_equal(zarr_map.x, ds.x)
    np.testing.assert_array_equal(zarr_map.y, ds.y)
    assert zarr_map.rio.crs.to_epsg() == 32654
    with rasterio.open(out / "probability.tif") as tif:
        np.testing.assert_array_equal(zarr_map["probability"].values, tif.read(1))


def test_scene_scores_are_the_labels_against_the_map(mapped, tiny_cube):
    summary, out = mapped
    probability, ds = expected(tiny_cube)
    with rasterio.open(out / "probability.tif") as tif:
        known = ~np.isnan(tif.read(1))
    curve = PixelCurve()
    curve.update(probability[known], ds[schema.LABEL_VARIABLE].values[known] > 0)
    assert summary["scores"]["scene"]["pr_auc"] == pytest.approx(curve.summary()["pr_auc"], abs=1e-4)
    assert summary["same_cube_as_training"] and "test_chips" in summary["scores"]
    assert json.loads((out / "map.json").read_text())["scores"] == summary["scores"]


def test_quicklook_and_polygons_are_written(mapped):
    summary, out = mapped
    assert (out / "quicklook.png").read_bytes()[:4] == b"\x89PNG"
    features = json.loads((out / "landslides.geojson").read_text())["features"]
    assert len(features) == summary["geojson"]["polygons"] == summary["regions_above_threshold"]
    assert sum(f["properties"]["area_m2"] for f in features) == pytest.approx(summary["area_above_threshold_m2"])
    lon, lat = np.array(features[0]["geometry"]["coordinates"][0]).T
    assert 140 < lon.min() < 142 and 42 < lat.min() < 43.5  # UTM 54N near the synthetic origin, in WGS 84
    assert not list(out.parent.glob("*.partial-*"))


def test_an_existing_map_stays_unless_overwrite_is_given(mapped, tiny_cube, run_dir):
    _, out = mapped
    before = (out / "map.json").read_text()
    with pytest.raises(scene_map.MapError, match="--overwrite"):
        make_tiny_map(tiny_cube, run_dir, out)
    assert (out / "map.json").read_text() == before
    make_tiny_map(tiny_cube, run_dir, out, overwrite=True, outputs=("png",))
    assert sorted(p.name for p in out.iterdir()) == ["map.json", "quicklook.png"]


def test_a_cube_without_labels_is_mapped_without_scores(tiny_cube, run_dir, tmp_path):
    unlabelled = tmp_path / "new_event.zarr"
    open_cube(tiny_cube).drop_vars(schema.LABEL_VARIABLE).to_zarr(unlabelled, zarr_format=2, consolidated=True)
    summary = make_tiny_map(str(unlabelled), run_dir, tmp_path / "map", outputs=("geotiff", "geojson"))
    assert "scores" not in summary
    assert summary["geojson"]["polygons"] > 0


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"config": "vv_t1"}, "was trained on vv_vh_dem_t2"),
        ({"outputs": ("geotiff", "shapefile")}, "unknown"),
        ({"window": 100}, "--map_window"),
    ],
)
def test_bad_requests_are_clear_errors(tiny_cube, run_dir, tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        make_tiny_map(tiny_cube, run_dir, tmp_path / "map", **overrides)
    assert not (tmp_path / "map").exists()


@pytest.fixture(scope="module")
def keras_run(run_dir, tmp_path_factory):
    """The run folder with an untrained tiny U-Net/ResNet-18 as its best weights."""
    from tf_landslide import models

    root = tmp_path_factory.mktemp("keras_run")
    (root / "manifest.json").write_text((run_dir / "manifest.json").read_text())
    config = ModelConfig(backbone="resnet18")
    (root / "train_config.json").write_text(json.dumps({"model": dataclasses.asdict(config)}))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    models.build_model(config, len(manifest["channels"]), 32).save_weights(str(root / model_folder.BEST_WEIGHTS))
    return root


def test_the_map_of_one_window_is_the_model_on_the_reflected_scene(keras_run, tiny_cube, tmp_path):
    """Reading channels, normalisation and placement agree with the model applied by hand."""
    from tf_landslide import data
    from tf_landslide.cube.scene import open_scene
    from tf_landslide.maps.tiling import Tiling

    manifest = json.loads((keras_run / "manifest.json").read_text())
    cfg = MapConfig(
        cube=CubeConfig(cube=tiny_cube),
        model_dir=str(keras_run),
        map_dir=str(tmp_path / "m"),
        window=256,
        overlap=32,
        outputs=("geotiff",),
        bfloat16="off",  # float32 like the model applied by hand (auto computes bfloat16 on some CPUs)
    )
    summary = scene_map.make_map(cfg)
    assert summary["tiling"]["windows"] == 1
    config = resolve_channel_config(manifest["config"]["name"], manifest["channels"], manifest["config"]["timesteps"])
    scene = open_scene(tiny_cube, cfg.cube, config)
    raw = np.moveaxis(scene.plan.read_band(scene.ds, slice(0, 160)), 0, -1)
    pad = Tiling(256, 32).pad
    padded = np.pad(raw, ((pad, 256 - 160 - pad), (pad, 256 - 192 - pad), (0, 0)), mode="reflect")
    model = model_folder.load_trained_model(str(keras_run), "best", size=256)
    by_hand = model(data.standardise(padded[None], *data.normalisation(manifest)), training=False).numpy()
    by_hand = by_hand[0, pad : pad + 160, pad : pad + 192, 0]
    with rasterio.open(tmp_path / "m" / "probability.tif") as tif:
        mapped = tif.read(1)
    known = ~np.isnan(mapped)
    np.testing.assert_allclose(mapped[known], by_hand[known], atol=1e-4)  # graph vs eager oneDNN round-off


def test_predict_py_maps_from_the_command_line_and_refuses_bad_flags(keras_run, tiny_cube, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    base = [
        sys.executable,
        "predict.py",
        f"--model_dir={keras_run}",
        f"--cube={tiny_cube}",
        "--map_window=128",
        "--map_overlap=32",
        "--map_outputs=geotiff,png",
    ]
    done = subprocess.run(base + [f"--map_dir={tmp_path / 'map'}"], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "whole scene: PR-AUC" in done.stdout and (tmp_path / "map" / "probability.tif").exists()
    bad = subprocess.run(
        base + ["--map_overlap=10", f"--map_dir={tmp_path / 'bad'}"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--map_overlap=10" in bad.stderr and not (tmp_path / "bad").exists()


def test_the_quicklook_keeps_no_view_of_the_strips():
    """A view into a strip keeps the whole strip alive: memory would grow with the scene."""
    from tf_landslide.maps.outputs import Quicklook

    quicklook = Quicklook(height=100, width=4000, backdrop=1)
    probability, inputs = np.zeros((50, 4000), np.float32), np.zeros((50, 4000, 3), np.float32)
    quicklook.write(0, probability, inputs, probability > 0)
    for part in (quicklook.probability, quicklook.backdrop, quicklook.labels):
        assert part[0].base is None and part[0].size < 50 * 4000 / 4


def test_a_map_to_a_url_is_uploaded_with_its_summary_last(tiny_cube, run_dir, monkeypatch):
    from tf_landslide import storage

    uploads = []
    original = storage.put_file
    monkeypatch.setattr(storage, "put_file", lambda local, path: (uploads.append(path), original(local, path)))
    summary = make_tiny_map(tiny_cube, run_dir, "memory://maps/tiny", outputs=("geotiff", "zarr"))
    assert uploads[-1] == "memory://maps/tiny/map.json" and summary["map_dir"] == "memory://maps/tiny"
    assert storage.exists("memory://maps/tiny/probability.tif")
    assert storage.exists("memory://maps/tiny/probability.zarr/probability/.zarray")
    with pytest.raises(scene_map.MapError, match="--overwrite"):
        make_tiny_map(tiny_cube, run_dir, "memory://maps/tiny")
    storage.remove_tree("memory://maps")


def test_a_map_that_fails_midway_leaves_the_earlier_map_and_no_partial_files(mapped, tiny_cube, run_dir):
    _, out = mapped
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    calls = []

    def failing(windows):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the model broke")
        return np.zeros(windows.shape[:3], np.float32)

    cfg = MapConfig(
        cube=CubeConfig(cube=tiny_cube), model_dir=str(run_dir), map_dir=str(out), window=64, overlap=16, overwrite=True
    )
    with pytest.raises(RuntimeError, match="the model broke"):
        scene_map.make_map(cfg, predictor=failing)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert not list(out.parent.glob("*.partial-*"))


def test_the_map_cuts_at_the_runs_threshold_unless_one_is_given(tiny_cube, run_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    model_folder.write_threshold(str(run), {"threshold": 0.8, "rule": "best_f1", "asked": "best_f1", "split": "val"})
    summary = make_tiny_map(tiny_cube, run, tmp_path / "runs", outputs=("geojson",))
    assert summary["threshold"] == 0.8 and summary["threshold_source"] == "the run's (best_f1 on the val split)"
    given = make_tiny_map(tiny_cube, run, tmp_path / "given", outputs=("geojson",), threshold=0.3)
    assert given["threshold"] == 0.3 and given["threshold_source"] == "--threshold"
    # A lower cut finds at least the area of a higher one: the threshold reached the polygons.
    assert given["area_above_threshold_m2"] > summary["area_above_threshold_m2"]
