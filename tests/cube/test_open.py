"""Reading cubes through every path (directory, zip, URL) and the schema checks' messages."""

import os
import uuid
import zipfile
from pathlib import Path

import fsspec
import numpy as np
import pytest
import xarray as xr

from tests.helpers import ZARR_3, needs_zarr3, zip_store
from tf_landslide.cube import schema
from tf_landslide.cube.open import (
    CubeError,
    acquisitions_by_orbit,
    check_labels,
    open_cube,
    orbit_codes,
    validate_cube,
)

# The tiny cube's first descending pass after the Hokkaido trigger (on the event's day).
DESC_AFTER = "2018-09-05T20:40:12"
ASC_BEFORE = "2018-09-01T08:26:47"


@pytest.fixture(scope="module")
def cube(tiny_cube):
    return open_cube(tiny_cube)


@pytest.fixture(scope="module")
def reference(tiny_cube):
    """Arrays read straight from the v2 directory with zarr-python through xarray's defaults."""
    ds = xr.open_zarr(tiny_cube, chunks=None)
    return {
        "sizes": dict(ds.sizes),
        "timestep": ds[schema.TIME_DIM].values,
        "orbit": np.asarray(ds[schema.ORBIT_COORD].values).astype(str),
        "timepair": np.asarray(ds[schema.PAIR_DIM].values).astype(str),
        "vv": ds["vv"].isel(timestep=6).values,
        "vh": ds["vh"].isel(timestep=1).values,
        "landslides": ds["landslides"].values,
        "dem": ds["dem"].values,
        "coherence": ds["coherence"].isel(timepair=4).values,
    }


@pytest.fixture(scope="module")
def locations(tmp_path_factory, tiny_cube, request):
    """Every way a user can point at the tiny cube (the v3 ones only under zarr-python 3)."""
    folder = tmp_path_factory.mktemp("zips")
    zip_v2 = zip_store(tiny_cube, folder / "hokkaido_japan.zip")
    zip_flat = zip_store(tiny_cube, folder / "flat.zip", inner="", dir_entries=False)
    memory_path = f"/tf_landslide_tests/{uuid.uuid4().hex}/hokkaido_japan.zip"
    memory = fsspec.filesystem("memory")
    memory.pipe(memory_path, Path(zip_v2).read_bytes())
    paths = {
        "dir_v2": tiny_cube,
        "zip_v2": zip_v2,
        "zip_store_at_root": zip_flat,
        "url_dir_v2": "file://" + os.path.abspath(tiny_cube),
        "url_zip_v2": "file://" + os.path.abspath(zip_v2),
        "memory_zip": "memory://" + memory_path,
    }
    if ZARR_3:
        tiny_cube_v3 = request.getfixturevalue("tiny_cube_v3")
        zip_v3 = zip_store(tiny_cube_v3, folder / "hokkaido_japan_v3.zip")
        paths |= {
            "dir_v3": tiny_cube_v3,
            "zip_v3": zip_v3,
            "url_dir_v3": "file://" + os.path.abspath(tiny_cube_v3),
            "url_zip_v3": "file://" + os.path.abspath(zip_v3),
        }
    yield paths
    memory.rm(memory_path)


READERS = [
    "dir_v2",
    pytest.param("dir_v3", marks=needs_zarr3),
    "zip_v2",
    pytest.param("zip_v3", marks=needs_zarr3),
    "zip_store_at_root",
    "url_dir_v2",
    pytest.param("url_dir_v3", marks=needs_zarr3),
    "url_zip_v2",
    pytest.param("url_zip_v3", marks=needs_zarr3),
    "memory_zip",
]


@pytest.mark.parametrize("kind", READERS)
def test_every_reader_path_reads_the_same_data(kind, locations, reference):
    ds = open_cube(locations[kind])
    assert dict(ds.sizes) == reference["sizes"]
    np.testing.assert_array_equal(ds[schema.TIME_DIM].values, reference["timestep"])
    np.testing.assert_array_equal(orbit_codes(ds), reference["orbit"])
    np.testing.assert_array_equal(np.asarray(ds[schema.PAIR_DIM].values).astype(str), reference["timepair"])
    for name, plane in (
        ("vv", ds["vv"].isel(timestep=6)),
        ("vh", ds["vh"].isel(timestep=1)),
        ("landslides", ds["landslides"]),
        ("dem", ds["dem"]),
        ("coherence", ds["coherence"].isel(timepair=4)),
    ):
        np.testing.assert_array_equal(plane.values, reference[name], err_msg=f"{kind}: {name}")
    # The reference planes are not trivially equal (a NaN-only plane would compare equal everywhere).
    assert np.isfinite(reference["vv"]).mean() > 0.5
    assert reference["landslides"].sum() > 0


@pytest.mark.parametrize("kind", READERS)
def test_every_reader_path_gives_a_lazy_valid_cube_with_its_crs(kind, locations):
    ds = open_cube(locations[kind])
    validate_cube(ds, need_insar=True)
    assert "spatial_ref" in ds.coords and "spatial_ref" not in ds.data_vars
    assert "crs_wkt" in ds["spatial_ref"].attrs
    # Arrays stay on disk (no dask, no eager load) so callers read only the bands they need.
    assert ds["vv"].chunks is None


def test_zip_with_several_groups_uses_the_outermost_store(tmp_path, tiny_cube):
    # Nested groups (variables in v3, sub-folders) also carry markers: the shallowest one is the store.
    location = zip_store(tiny_cube, tmp_path / "kaikoura_newzealand.zip", inner="data/kaikoura_newzealand.zarr")
    ds = open_cube(location)
    assert ds.sizes["timestep"] == 12


# --- locations that are not cubes -------------------------------------------------------------


def test_missing_path_names_the_path(tmp_path):
    missing = str(tmp_path / "nowhere" / "hokkaido_japan.zarr")
    with pytest.raises(CubeError, match="does not exist") as info:
        open_cube(missing)
    assert missing in str(info.value)


def test_missing_zip_names_the_path(tmp_path):
    missing = str(tmp_path / "hokkaido_japan.zip")
    with pytest.raises(CubeError, match="does not exist") as info:
        open_cube(missing)
    assert missing in str(info.value)


def test_zip_without_a_zarr_store_says_so(tmp_path):
    location = tmp_path / "not_a_cube.zip"
    with zipfile.ZipFile(location, "w") as archive:
        archive.writestr("hokkaido_japan/readme.txt", "no zarr here")
        archive.writestr("hokkaido_japan/vv.tif", b"\x00\x01")
    with pytest.raises(CubeError, match="no zarr store") as info:
        open_cube(str(location))
    assert ".zgroup" in str(info.value) and "zarr.json" in str(info.value)


def test_zip_without_a_zarr_store_names_the_zip(tmp_path):
    location = tmp_path / "not_a_cube.zip"
    with zipfile.ZipFile(location, "w") as archive:
        archive.writestr("readme.txt", "no zarr here")
    with pytest.raises(CubeError) as info:
        open_cube(str(location))
    assert str(location) in str(info.value)


def test_file_that_is_not_a_zip_is_a_cube_error(tmp_path):
    location = tmp_path / "broken.zip"
    location.write_bytes(b"this is not a zip archive")
    with pytest.raises(CubeError, match="as a zarr datacube") as info:
        open_cube(str(location))
    assert str(location) in str(info.value)


def test_directory_without_a_store_is_a_cube_error(tmp_path):
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    with pytest.raises(CubeError) as info:
        open_cube(str(empty))
    assert str(empty) in str(info.value)


def test_url_to_nothing_is_a_cube_error(tmp_path):
    url = "file://" + str(tmp_path / "absent.zarr")
    with pytest.raises(CubeError) as info:
        open_cube(url)
    assert url in str(info.value)


# --- schema errors: each names the problem and what the cube holds ----------------------------


def _schema_error(ds, **kwargs) -> str:
    with pytest.raises(CubeError, match="does not follow the datacube schema") as info:
        validate_cube(ds, **kwargs)
    return str(info.value)


def test_fixture_cube_is_valid(cube):
    validate_cube(cube, need_insar=True)


def test_missing_variable_on_disk(tmp_path, tiny_cube):
    ds = xr.open_zarr(tiny_cube, chunks=None).drop_vars("dem_curvature")
    ds.to_zarr(tmp_path / "no_curvature.zarr", zarr_format=2, consolidated=True)
    message = _schema_error(open_cube(str(tmp_path / "no_curvature.zarr")))
    assert "variable 'dem_curvature' ('y', 'x') is missing" in message
    # What the cube holds: its variables with dims and its acquisitions per orbit.
    assert "It holds variables:" in message
    assert "dem_slope_radians('y', 'x')" in message and "vv('timestep', 'y', 'x')" in message
    assert "'timestep': 12" in message
    assert "d: 2018-07-31T20:40:12" in message and ASC_BEFORE in message
    # Only the missing variable is reported as a problem.
    assert message.count("is missing") == 1


def test_wrong_dims_name_the_variable_and_both_orders(cube):
    ds = cube.assign(vv=cube["vv"].transpose("timestep", "x", "y"))
    message = _schema_error(ds)
    assert "variable 'vv' has dims ('timestep', 'x', 'y'), expected ('timestep', 'y', 'x')" in message
    assert "'vh' has dims" not in message
    assert "vv('timestep', 'x', 'y')" in message  # what the cube holds


def test_missing_spatial_dimension(cube):
    ds = cube.rename_dims({"y": "row"})
    message = _schema_error(ds)
    assert "dimension 'y' is missing" in message
    assert "variable 'dem' has dims ('row', 'x'), expected ('y', 'x')" in message
    assert "'row': 160" in message


def test_missing_time_dimension(cube):
    message = _schema_error(cube.drop_dims("timestep"))
    assert "dimension 'timestep' is missing" in message
    assert "variable 'vv' ('timestep', 'y', 'x') is missing" in message
    assert "dem('y', 'x')" in message


def test_single_acquisition_cube_with_scalar_timestep_is_a_cube_error(cube):
    message = _schema_error(cube.isel(timestep=0))
    assert "dimension 'timestep' is missing" in message


def test_insar_variables_are_required_only_when_asked(cube):
    ds = cube.drop_vars("coherence")
    validate_cube(ds)
    message = _schema_error(ds, need_insar=True)
    assert "variable 'coherence' ('timepair', 'y', 'x') is missing" in message


def test_acquisitions_by_orbit_lists_every_time(cube):
    per_orbit = acquisitions_by_orbit(cube)
    assert sorted(per_orbit) == ["a", "d"]
    assert len(per_orbit["a"]) == len(per_orbit["d"]) == 6
    assert DESC_AFTER in per_orbit["d"] and ASC_BEFORE in per_orbit["a"]


# --- labels -----------------------------------------------------------------------------------


def test_labels_of_the_fixture_are_binary(cube):
    assert check_labels(cube["landslides"].values) == 0


@pytest.mark.parametrize("bad", [2, 255])
def test_label_values_other_than_0_1_are_refused(tmp_path, tiny_cube, bad):
    ds = xr.open_zarr(tiny_cube, chunks=None)
    labels = ds["landslides"].values.copy()
    labels[:5, :5] = bad
    ds = ds.assign(landslides=(schema.SPATIAL_DIMS, labels))
    path = tmp_path / f"labels_{bad}.zarr"
    ds.to_zarr(path, zarr_format=2, consolidated=True)
    read = open_cube(str(path))["landslides"].values
    with pytest.raises(CubeError) as info:
        check_labels(read, " (rows 0..64)")
    message = str(info.value)
    assert f"must be a 0/1 landslide mask but holds {bad};" in message
    assert "(rows 0..64)" in message
    assert "binarise it" in message and "ds['landslides'] > 0" in message


def test_label_message_lists_every_bad_value():
    labels = np.array([[0, 1, 2], [255, 0, 1]], np.uint8)
    with pytest.raises(CubeError, match=r"holds 2, 255;"):
        check_labels(labels)


def test_fractional_and_negative_labels_are_refused():
    with pytest.raises(CubeError, match=r"holds -1\.0, 0\.5;"):
        check_labels(np.array([0.0, 1.0, 0.5, -1.0, np.nan]))


def test_labels_with_nan_are_accepted_and_counted():
    labels = np.array([[0.0, 1.0, np.nan], [np.nan, 1.0, np.nan]], np.float32)
    assert check_labels(labels) == 3
    assert check_labels(np.array([0.0, 1.0])) == 0
    assert check_labels(np.array([True, False])) == 0
