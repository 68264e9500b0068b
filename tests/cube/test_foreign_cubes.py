"""Cubes other tools wrote (``foreign.py``: plain xarray/zarr in every dialect, odc-stac, stackstac)
through every entry: opened to the canonical scene, read alike by both plane readers, exported to
the same records, and, for a representative few, trained, evaluated and mapped."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests.cube import foreign
from tests.helpers import tiny_export_config
from tf_landslide import evaluate, export
from tf_landslide.config import CubeConfig, EvalConfig, InputConfig, MapConfig, ModelConfig, TrainConfig
from tf_landslide.cube import planes, schema
from tf_landslide.cube.channels import resolve_orbit
from tf_landslide.cube.open import CubeError, open_conformed, orbit_codes
from tf_landslide.maps import scene_map

SCENE = foreign.canonical_scene()
NEEDS_ORBIT_ANY = foreign.VARIANTS_EXPECTED_ERROR
# Variants whose records differ from the baseline's: labels missing over some rows, or every
# acquisition taken whatever its orbit.
OTHER_RECORDS = {"labels_float_nan", *NEEDS_ORBIT_ANY}


@pytest.fixture(scope="module")
def written(foreign_store):
    """``written(name)``: the path of variant ``name`` as a string, as users give it."""
    return lambda name: str(foreign_store(name))


def _orbit_for(name: str) -> str:
    return "any" if name in NEEDS_ORBIT_ANY else "auto"


def _export_config(cube: CubeConfig, records_dir, **overrides):
    return dataclasses.replace(tiny_export_config(cube.cube, records_dir, **overrides), cube=cube)


@pytest.mark.parametrize("name", sorted(foreign.VARIANTS))
def test_every_variant_opens_to_the_canonical_scene(written, name):
    ds = open_conformed(written(name)).ds
    keep = np.flatnonzero(SCENE.orbits == "d") if name == "orbit_scalar" else np.arange(len(SCENE.times))
    assert ds[schema.TIME_DIM].dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(ds[schema.TIME_DIM].values, SCENE.times[keep])
    if name in NEEDS_ORBIT_ANY:
        assert set(orbit_codes(ds).tolist()) <= {"a", "d", ""} and "" in orbit_codes(ds)
    else:
        np.testing.assert_array_equal(orbit_codes(ds), SCENE.orbits[keep])
    assert ds[schema.ORBIT_COORD].dtype == np.dtype("<U1")
    assert ds[schema.PAIR_DIM].dtype.kind == "U"
    np.testing.assert_array_equal(ds.x.values, SCENE.x)
    np.testing.assert_array_equal(ds.y.values, SCENE.y)
    assert ds.x.dtype == ds.y.dtype == np.float64
    for t in (0, len(keep) - 1):
        np.testing.assert_array_equal(ds["vv"].isel(timestep=t).values.astype(np.float32), SCENE.vv[keep[t]])
    np.testing.assert_array_equal(ds["dem"].values.astype(np.float32), SCENE.dem)
    mask = planes.landslide_mask(ds["landslides"].values)
    expected = SCENE.landslides.astype(bool)
    if name == "labels_float_nan":
        expected[foreign.NO_LABEL_ROWS] = False
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize("name", sorted(NEEDS_ORBIT_ANY))
def test_unusable_orbits_need_orbit_any(written, name):
    ds = open_conformed(written(name)).ds
    with pytest.raises(CubeError, match="Pass --orbit=any"):
        resolve_orbit(ds, "auto")
    assert resolve_orbit(ds, "any") == "any"


WINDOWS = [(slice(None), slice(None)), (slice(30, 101), slice(17, 150)), (slice(0, 1), slice(191, 192))]


@pytest.mark.parametrize("name", sorted(foreign.VARIANTS))
def test_the_chunk_decoder_agrees_with_xarray(written, name):
    path = written(name)
    cube = open_conformed(path)
    direct = planes.CubePlanes(path, cube.ds, cube.stored)
    through_xarray = planes.DatasetPlanes(cube.ds)
    reads = [("vv", {schema.TIME_DIM: t}) for t in range(cube.ds.sizes[schema.TIME_DIM])]
    reads += [("vh", {schema.TIME_DIM: -1}), ("dem", {}), ("landslides", {}), ("coherence", {schema.PAIR_DIM: 2})]
    for variable, index in reads:
        for rows, cols in WINDOWS:
            got = direct.plane(variable, index, rows, cols)
            want = through_xarray.plane(variable, index, rows, cols)
            assert got.dtype == want.dtype, (variable, got.dtype, want.dtype)
            np.testing.assert_array_equal(got, want, err_msg=f"{name} {variable} {index} {rows} {cols}")


def test_the_chunk_decoder_takes_reordered_v2_cubes(written):
    """Reordering at open must not push zarr v2 cubes off the direct path."""
    for name in ("object_v2", "time_unsorted", "y_ascending", "odd_chunks", "time_chunked", "sar_float64"):
        cube = open_conformed(written(name))
        reader = planes.CubePlanes(written(name), cube.ds, cube.stored)
        assert reader.chunks is not None and reader.chunks.supports("vv"), name
    assert open_conformed(written("time_unsorted")).stored.timestep is not None
    assert open_conformed(written("y_ascending")).stored.flipped == ("y",)


@pytest.fixture(scope="module")
def baseline_export(written, tmp_path_factory):
    cfg = tiny_export_config(written("object_v2"), tmp_path_factory.mktemp("baseline"), config="vv_vh_dem_t2")
    return export.export(cfg)


def _shard_hashes(manifest: dict) -> dict:
    return {s["file"]: s["sha256"] for split in manifest["splits"].values() for s in split["shards"]}


@pytest.mark.parametrize("name", sorted(set(foreign.VARIANTS) - {"object_v2"}))
def test_every_variant_exports_what_the_baseline_does(written, tmp_path, baseline_export, name):
    cube = CubeConfig(cube=written(name), orbit=_orbit_for(name))
    manifest = export.export(_export_config(cube, tmp_path, config="vv_vh_dem_t2"))
    assert manifest["splits"]["train"]["chips"] > 0
    assert manifest["chip_size"] == 32
    if name in OTHER_RECORDS:
        assert _shard_hashes(manifest) != _shard_hashes(baseline_export)
    else:
        # The same scene, however stored: the same chips, bit for bit, and the same statistics.
        assert _shard_hashes(manifest) == _shard_hashes(baseline_export)
        assert manifest["normalisation"] == baseline_export["normalisation"]
        assert manifest["acquisitions"] == baseline_export["acquisitions"]


# --- representative cubes through training, evaluation and the map ---------------------------------


def _train_evaluate_map(source: str, root: Path, cube_cfg: CubeConfig | None = None) -> tuple[dict, Path]:
    from tf_landslide import train_lib  # TensorFlow at its top: .ci/oldest runs these tests' module without it

    cfg = TrainConfig(
        export=_export_config(cube_cfg or CubeConfig(cube=source), root / "records"),
        input=InputConfig(batch_size=4),
        model=ModelConfig(backbone="resnet18"),
        model_dir=str(root / "model"),
        epochs=1,
    )
    train_lib.train(cfg)
    metrics = evaluate.evaluate(EvalConfig(export=cfg.export, input=cfg.input, model_dir=cfg.model_dir, panel_chips=2))
    assert 0 < metrics["pr_auc"] <= 1 and metrics["chips"] > 0
    map_cfg = MapConfig(cube=cfg.export.cube, model_dir=cfg.model_dir, map_dir=str(root / "map"), outputs=("geotiff",))
    summary = scene_map.make_map(map_cfg)
    assert summary["cube"] == source
    return metrics, root / "model"


def _assert_north_up_on_the_scene_grid(tif: Path):
    with rasterio.open(tif) as raster:
        assert raster.crs.to_epsg() == foreign.EPSG
        assert raster.transform.e < 0 and raster.transform.a == foreign.PIXEL_SIZE
        assert (raster.transform.c, raster.transform.f) == (foreign.X_FIRST - 5.0, foreign.Y_FIRST + 5.0)
        assert raster.shape == (foreign.HEIGHT, foreign.WIDTH)


@pytest.fixture(scope="module")
def trained_on_plain_xarray(written, tmp_path_factory):
    """The issue's cube: plain ``to_zarr`` of object-string coordinates (zarr v2, consolidated)."""
    pytest.importorskip("tensorflow")
    root = tmp_path_factory.mktemp("plain")
    return _train_evaluate_map(written("object_v2"), root)


def test_a_plain_xarray_cube_trains_evaluates_and_maps(trained_on_plain_xarray):
    pytest.importorskip("tensorflow")
    metrics, model_dir = trained_on_plain_xarray
    _assert_north_up_on_the_scene_grid(model_dir.parent / "map" / "probability.tif")


def test_a_cube_of_every_oddity_at_once_trains_evaluates_and_maps(written, tmp_path):
    pytest.importorskip("tensorflow")
    _, model_dir = _train_evaluate_map(written("stackstac_like"), tmp_path)
    _assert_north_up_on_the_scene_grid(model_dir.parent / "map" / "probability.tif")


def test_an_odc_stac_dataset_in_memory_exports_and_maps(trained_on_plain_xarray, tmp_path, baseline_export):
    """The Python API: a lazy Dataset from odc-stac, exported by two threads and mapped."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("odc.stac")
    ds = foreign.odc_stac_dataset(SCENE, tmp_path / "cogs")
    cfg = tiny_export_config("", tmp_path / "records", config="vv_vh_dem_t2", workers=2)
    manifest = export.export(cfg, cube=ds)
    assert manifest["cube"]["location"] == "<in-memory Dataset>"
    assert _shard_hashes(manifest) == _shard_hashes(baseline_export)
    with pytest.raises(export.ExportError, match="Dataset in memory is read by threads of this process"):
        export.export(dataclasses.replace(cfg, worker_processes=True, overwrite=True), cube=ds)
    _, model_dir = trained_on_plain_xarray
    map_dir = tmp_path / "map"
    map_cfg = MapConfig(cube=CubeConfig(), model_dir=str(model_dir), map_dir=str(map_dir), outputs=("geotiff",))
    summary = scene_map.make_map(map_cfg, cube=ds)
    assert summary["cube"] == "<in-memory Dataset>"
    _assert_north_up_on_the_scene_grid(tmp_path / "map" / "probability.tif")
    assert json.loads((tmp_path / "map" / "map.json").read_text())["cube"] == "<in-memory Dataset>"


@pytest.mark.parametrize("tool", ["stackstac", "odc_stac"])
def test_datasets_of_the_stac_tools_conform_in_memory_and_written(tool, tmp_path):
    """stackstac keeps its CRS in attrs and odc-stac its times in microseconds: the canonical
    cube has the scene's grid, times, orbits and CRS either way, in memory or written by to_zarr."""
    pytest.importorskip("stackstac" if tool == "stackstac" else "odc.stac")
    ds = getattr(foreign, f"{tool}_dataset")(SCENE, tmp_path / "cogs")
    written = str(tmp_path / f"{tool}.zarr")
    ds.to_zarr(written, zarr_format=2, consolidated=True)
    for source in (ds, written):
        cube = open_conformed(source).ds
        np.testing.assert_array_equal(cube[schema.TIME_DIM].values, SCENE.times)
        np.testing.assert_array_equal(orbit_codes(cube), SCENE.orbits)
        np.testing.assert_array_equal(cube.x.values, SCENE.x)
        np.testing.assert_array_equal(cube.y.values, SCENE.y)
        assert cube.rio.crs.to_epsg() == foreign.EPSG
        np.testing.assert_array_equal(cube["vh"].isel(timestep=4).values.astype(np.float32), SCENE.vh[4])


def test_the_manifest_says_what_was_conformed(written, tmp_path, baseline_export):
    manifest = export.export(_export_config(CubeConfig(cube=written("y_ascending")), tmp_path))
    strings, flipped = manifest["cube"]["conformed"]
    assert strings.startswith("strings as numpy unicode: ") and flipped == "y flipped to descending (north-up)"
    assert baseline_export["cube"]["conformed"] == [strings]
