"""The cube builder end to end on the offline demo catalog (``cube/demo_catalog.py``): the cube it
writes is the synthetic scene it was drawn from, opens and exports like any cube of the schema,
resumes after a stop, and refuses bad requests by name."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from tests.helpers import tiny_export_config
from tf_landslide import export
from tf_landslide.cube import schema
from tf_landslide.cube.build import BuildRequest, build
from tf_landslide.cube.check import preflight
from tf_landslide.cube.demo_catalog import write_demo_catalog
from tf_landslide.cube.open import open_cube
from tf_landslide.cube.synthetic import write_cube
from tf_landslide.cube.terrain import slope_aspect_curvature


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo_catalog(tmp_path_factory.mktemp("stac") / "demo", "tiny")


@pytest.fixture(scope="module")
def synthetic_path(demo, tmp_path_factory):
    """The synthetic cube the demo catalog was drawn from."""
    return str(write_cube(demo.spec, tmp_path_factory.mktemp("synthetic") / "tiny.zarr"))


@pytest.fixture(scope="module")
def synthetic(synthetic_path):
    return xr.open_zarr(synthetic_path)


def request_for(demo, out, **overrides) -> BuildRequest:
    settings = dict(
        out=str(out),
        stac=str(demo.root),
        bbox=demo.aoi_bbox,
        event_start=demo.event_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        event_name="demo",
        acquisitions=0,
        labels=str(demo.inventory),
        phase_dir=str(demo.phase_dir),
        chunk=64,
    )
    return BuildRequest(**(settings | overrides))


@pytest.fixture(scope="module")
def built(demo, tmp_path_factory):
    lines = []
    out = tmp_path_factory.mktemp("built") / "demo.zarr"
    # The inventory doubles as the extraction mask: a mask is rasterised like the labels.
    path = build(request_for(demo, out, extraction_mask=str(demo.inventory)), log=lines.append)
    return path, lines


def on_synthetic_grid(cube: xr.Dataset, synthetic: xr.Dataset) -> dict:
    """Row and column indices of the synthetic cube under the built cube's pixel centres."""
    columns = np.round((cube.x.values - synthetic.x.values[0]) / 10.0).astype(int)
    rows = np.round((synthetic.y.values[0] - cube.y.values) / 10.0).astype(int)
    assert np.allclose(synthetic.x.values[columns], cube.x.values) and np.allclose(
        synthetic.y.values[rows], cube.y.values
    )
    return {"y": xr.DataArray(rows, dims="y"), "x": xr.DataArray(columns, dims="x")}


def test_the_built_cube_holds_the_scene_the_catalog_was_drawn_from(built, synthetic):
    path, lines = built
    cube = xr.open_zarr(path)
    assert (
        0 < cube.sizes["y"] < synthetic.sizes["y"] and 0 < cube.sizes["x"] < synthetic.sizes["x"]
    )  # clipped to the AOI
    where = on_synthetic_grid(cube, synthetic)
    np.testing.assert_array_equal(cube.timestep.values, synthetic.timestep.values)
    np.testing.assert_array_equal(cube[schema.ORBIT_COORD].values, synthetic[schema.ORBIT_COORD].values)
    for name in (*schema.SAR_VARIABLES, "coherence", "interferogram"):
        expected = synthetic[name].isel(where).values
        np.testing.assert_array_equal(cube[name].values, expected, err_msg=name)  # NaN where NaN, zeros kept
    assert (cube.vv.values == 0).any() and np.isnan(cube.vv.values).any()
    np.testing.assert_array_equal(
        cube[schema.LABEL_VARIABLE].values, synthetic[schema.LABEL_VARIABLE].isel(where).values
    )
    np.testing.assert_array_equal(
        cube[schema.PAIR_DIM].values.astype(str), synthetic[schema.PAIR_DIM].values.astype(str)
    )
    # The DEM went through int16 metres and a 30 m geographic grid (steep hills: up to about 6 m off).
    dem_error = np.abs(cube.dem.values - synthetic.dem.isel(where).values)
    assert np.nanmax(dem_error) < 8.0 and np.nanmedian(dem_error) < 1.0, (np.nanmax(dem_error), np.nanmedian(dem_error))
    slope, aspect, curvature = slope_aspect_curvature(cube.dem.values.astype(np.float64), 10.0)
    np.testing.assert_array_equal(cube.dem_slope_radians.values, slope)  # derived on the output grid
    assert cube.attrs["event_start"] == cube.attrs["event_end"] == "2018-09-05T18:07:59Z"
    assert cube.attrs["event_name"] == "demo" and "EPSG:32654" in cube.attrs["crs_choice"]
    assert open_cube(str(path)).rio.crs.to_epsg() == 32654
    assert any("both orbits kept" in line for line in lines)


def test_the_preflight_passes_and_every_configuration_the_acquisitions_allow_can_be_exported(built):
    report = preflight(str(built[0]))
    assert "conformed: nothing (already canonical)" in str(report)
    # The tiny scene has three acquisitions per orbit before the event: t4 cannot be made.
    impossible = {"vv_t4", "vh_t4", "vv_vh_t4", "vv_vh_dem_t4"}
    assert set(report.exportable) == {f.config.name for f in report.feasible} - impossible, str(report)


def test_the_export_of_a_cube_built_on_the_scenes_own_grid_is_the_synthetic_cubes_export(
    demo, synthetic_path, tmp_path
):
    """On the scene's own extent (an AOI file in its UTM CRS), the built cube gives the records of
    the cube the generator writes, byte for byte, for a configuration without the DEM (which the
    catalog stores as int16 at 30 m)."""
    import geopandas
    import shapely

    spec = demo.spec
    west, north = spec.origin_x, spec.origin_y
    extent = shapely.box(west, north - spec.height * 10.0, west + spec.width * 10.0, north)
    aoi = tmp_path / "aoi.gpkg"
    geopandas.GeoDataFrame(geometry=[extent], crs=spec.crs).to_file(aoi)
    path = build(request_for(demo, tmp_path / "whole.zarr", bbox=(), aoi=str(aoi), phase_dir=""), log=lambda _: None)
    assert xr.open_zarr(path).sizes["y"] == spec.height
    records = {
        name: tiny_export_config(cube, tmp_path / name, config="vv_vh_t2")
        for name, cube in (("built", str(path)), ("synthetic", synthetic_path))
    }
    manifests = {name: export.export(config) for name, config in records.items()}
    assert manifests["built"]["totals"] == manifests["synthetic"]["totals"]
    shards = {name: sorted((tmp_path / name).rglob("*-of-*")) for name in records}
    assert [p.name for p in shards["built"]] == [p.name for p in shards["synthetic"]] and shards["built"]
    for mine, theirs in zip(shards["built"], shards["synthetic"], strict=True):
        assert mine.read_bytes() == theirs.read_bytes(), mine.name


class StopAfter:
    """A progress bar that stops the build after ``limit`` planes, as a kill would."""

    limit = 3

    def __init__(self, total, initial, unit):
        self.count = initial

    def update(self, n):
        self.count += n
        if self.count >= self.limit:
            raise KeyboardInterrupt

    def close(self):
        pass


def test_a_stopped_build_resumes_where_it_stopped_and_gives_the_same_cube(demo, built, tmp_path):
    out = tmp_path / "resumed.zarr"
    with pytest.raises(KeyboardInterrupt):
        build(request_for(demo, out, extraction_mask=str(demo.inventory)), log=lambda _: None, progress=StopAfter)
    assert not out.exists() and (tmp_path / "resumed.zarr.partial").is_dir()  # never a half cube at --out
    counted = []

    class Count(StopAfter):
        limit = 10**6

        def __init__(self, total, initial, unit):
            super().__init__(total, initial, unit)
            counted.append((initial, total))

    build(request_for(demo, out, extraction_mask=str(demo.inventory)), log=lambda _: None, progress=Count)
    planes = demo.spec.timesteps_per_orbit * 2 + xr.open_zarr(built[0]).sizes[schema.PAIR_DIM]
    assert counted == [(3, planes)]  # resumed after the three planes written, not from the start
    assert not (tmp_path / "resumed.zarr.partial").exists()
    xr.testing.assert_identical(xr.open_zarr(out).drop_attrs(), xr.open_zarr(built[0]).drop_attrs())


def test_an_unfinished_build_of_other_inputs_is_kept_and_named(demo, tmp_path):
    out = tmp_path / "cube.zarr"
    with pytest.raises(KeyboardInterrupt):
        build(request_for(demo, out), log=lambda _: None, progress=StopAfter)
    with pytest.raises(Exception, match=r"cube.zarr.partial holds an unfinished build of other inputs"):
        build(request_for(demo, out, acquisitions=1), log=lambda _: None)
    assert (tmp_path / "cube.zarr.partial").is_dir()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bbox": (10.0, 10.0, 10.1, 10.1)}, r"no items found: collection 'sentinel-1-rtc' in .*bbox 10.00000"),
        ({"event_start": "2018-10-20T00:00:00Z"}, r"no acquisition after the event end .*found: 2018-"),
        ({"event_start": "2017-06-01T00:00:00Z", "days": 30}, r"no items found: .*datetime 2017-05-02"),
        ({"assets": ("VV", "VH")}, r"lack the asset\(s\) VV, VH: .*\(has vh, vv\).*--assets"),
        ({"labels": "/nowhere/inventory.geojson"}, r"--labels='/nowhere/inventory.geojson' cannot be read"),
        ({"collection": "sentinel-2-l2a"}, r"no collection 'sentinel-2-l2a'; it has: .*sentinel-1-rtc"),
    ],
)
def test_bad_requests_are_errors_that_name_the_problem_and_write_nothing(demo, tmp_path, overrides, message):
    out = tmp_path / "cube.zarr"
    with pytest.raises(Exception, match=message):
        build(request_for(demo, out, **overrides), log=lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_cube_is_never_overwritten(demo, built):
    with pytest.raises(Exception, match="exists; remove it or give another --out"):
        build(dataclasses.replace(request_for(demo, built[0])), log=lambda _: None)


def test_the_command_line_builds_and_refuses_bad_flags(demo, tmp_path):
    west, south, east, north = demo.aoi_bbox
    command = [
        sys.executable,
        "-m",
        "tf_landslide.cube.build",
        f"--stac={demo.root}",
        f"--bbox={west},{south},{east},{north}",
        "--event_start=2018-09-05T18:07:59Z",
        "--acquisitions=1",
        "--chunk=64",
    ]
    done = subprocess.run([*command, f"--out={tmp_path / 'c.zarr'}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert xr.open_zarr(tmp_path / "c.zarr").sizes[schema.TIME_DIM] == 4  # one per side, per orbit track
    bad = subprocess.run([*command, "--bbox=1,2,3", f"--out={tmp_path / 'bad.zarr'}"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--bbox=1,2,3 is not four numbers" in bad.stderr
    assert not (tmp_path / "bad.zarr").exists()


def test_a_dask_scheduler_address_runs_the_build_on_that_cluster(demo, tmp_path):
    from distributed import LocalCluster

    west, south, east, north = demo.aoi_bbox
    flags = [
        f"--stac={demo.root}",
        f"--bbox={west},{south},{east},{north}",
        "--event_start=2018-09-05T18:07:59Z",
        "--acquisitions=1",
        "--chunk=64",
    ]
    cluster_args = dict(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", dashboard_address=None)
    with LocalCluster(**cluster_args) as cluster:
        command = [
            sys.executable,
            "-m",
            "tf_landslide.cube.build",
            *flags,
            f"--dask_scheduler={cluster.scheduler_address}",
        ]
        done = subprocess.run([*command, f"--out={tmp_path / 'remote.zarr'}"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert cluster.scheduler.task_prefixes, "nothing ran on the cluster"
    local = build(
        request_for(demo, tmp_path / "local.zarr", acquisitions=1, labels="", phase_dir=""), log=lambda _: None
    )
    xr.testing.assert_identical(xr.open_zarr(tmp_path / "remote.zarr").drop_attrs(), xr.open_zarr(local).drop_attrs())
