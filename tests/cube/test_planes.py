"""Planes read by decoding zarr v2 chunks directly give exactly what xarray gives, else xarray reads them."""

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr

from tests.helpers import ZARR_3, zip_store
from tf_landslide.cube import schema
from tf_landslide.cube.channels import ALL_CHANNELS, ChannelPlan, select_acquisitions, select_pairs
from tf_landslide.cube.events import PRESETS
from tf_landslide.cube.open import open_cube
from tf_landslide.cube.planes import CubePlanes, DatasetPlanes

# The tiny cube is 160 x 192 px in 64-px chunks: chunk rows 0-63, 64-127 and 128-159 (partial).
WINDOWS = {
    "whole scene": (slice(None), slice(None)),
    "across chunks, unaligned": (slice(10, 137), slice(33, 170)),
    "inside one chunk": (slice(70, 90), slice(5, 60)),
    "bottom-right chunk": (slice(128, 160), slice(128, 192)),
    "to the bottom-right edge": (slice(100, None), slice(150, None)),
    "negative bounds": (slice(-45, -3), slice(-70, None)),
    "one pixel at a chunk corner": (slice(64, 65), slice(63, 64)),
    "last pixel": (slice(159, 160), slice(191, 192)),
}
PLANES = [
    *(("vv", {schema.TIME_DIM: t}) for t in (0, 5, 11)),
    *(("vh", {schema.TIME_DIM: t}) for t in (1, 6)),
    ("coherence", {schema.PAIR_DIM: 4}),
    ("interferogram", {schema.PAIR_DIM: 2}),
    *((name, {}) for name in schema.DEM_VARIABLES),
    (schema.LABEL_VARIABLE, {}),
]


def plane_id(plane):
    name, index = plane
    return name + "".join(f"[{i}]" for i in index.values())


def assert_same_plane(got, expected, what=""):
    assert got.dtype == expected.dtype, what
    assert got.shape == expected.shape, what
    assert np.array_equal(got, expected, equal_nan=expected.dtype.kind == "f"), what


def assert_direct_equals_xarray(location, planes, windows=WINDOWS):
    """Every plane over every window: the direct path is used and equals xarray."""
    ds = open_cube(location)
    reader, xarray = CubePlanes(location, ds), DatasetPlanes(ds)
    assert reader.chunks is not None
    for name, index in planes:
        assert reader.chunks.supports(name), name
        for label, (rows, cols) in windows.items():
            expected = xarray.plane(name, index, rows, cols)
            assert_same_plane(reader.plane(name, index, rows, cols), expected, f"{name} {index}: {label}")


def rewrite_metadata(store, name, filename, **changes):
    """Change ``name``'s .zattrs or .zarray both in its file and in the consolidated .zmetadata."""
    path = Path(store) / name / filename
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    consolidated = Path(store) / ".zmetadata"
    metadata = json.loads(consolidated.read_text())
    metadata["metadata"][f"{name}/{filename}"].update(changes)
    consolidated.write_text(json.dumps(metadata))


@pytest.fixture(scope="module")
def cube(tiny_cube):
    return open_cube(tiny_cube)


@pytest.fixture(scope="module")
def zips(tmp_path_factory, tiny_cube):
    folder = tmp_path_factory.mktemp("plane-zips")
    return {
        "store in a top folder": zip_store(tiny_cube, folder / "hokkaido_japan.zip"),
        "store at the zip's root": zip_store(tiny_cube, folder / "flat.zip", inner="", dir_entries=False),
    }


@pytest.fixture
def cube_copy(tmp_path, tiny_cube):
    return str(shutil.copytree(tiny_cube, tmp_path / "copy.zarr"))


# --- the direct path equals xarray ------------------------------------------------------------


def test_tiny_cube_planes_are_not_trivial(cube):
    # Equality below means something: planes hold data, NaN (the swath edge) and landslides.
    vv = cube["vv"].isel(timestep=5).values
    assert np.isfinite(vv).mean() > 0.5 and np.isnan(vv).any()
    assert cube[schema.LABEL_VARIABLE].values.any()


@pytest.mark.parametrize("plane", PLANES, ids=plane_id)
def test_directory_planes_equal_xarray_over_every_window(tiny_cube, plane):
    assert_direct_equals_xarray(tiny_cube, [plane])


@pytest.mark.parametrize("kind", ["store in a top folder", "store at the zip's root"])
def test_zip_planes_equal_xarray_over_every_window(zips, kind):
    assert_direct_equals_xarray(zips[kind], PLANES)


def test_missing_float_chunk_reads_as_nan_as_in_xarray(cube_copy):
    (Path(cube_copy) / "vv" / "3.1.1").unlink()  # timestep 3, rows 64-127, cols 64-127
    ds = open_cube(cube_copy)
    reader = CubePlanes(cube_copy, ds)
    assert reader.chunks.supports("vv")
    for label, (rows, cols) in WINDOWS.items():
        expected = DatasetPlanes(ds).plane("vv", {"timestep": 3}, rows, cols)
        assert_same_plane(reader.plane("vv", {"timestep": 3}, rows, cols), expected, label)
    plane = reader.plane("vv", {"timestep": 3}, slice(None), slice(None))
    assert np.isnan(plane[64:128, 64:128]).all()
    assert np.isfinite(plane[64:128, 128:]).all()


def test_missing_label_chunk_without_fill_value_reads_as_zero_as_in_xarray(cube_copy, cube):
    assert json.loads((Path(cube_copy) / "landslides" / ".zarray").read_text())["fill_value"] is None
    assert cube["landslides"].values[64:128, 64:128].any()  # the chunk removed held landslides
    (Path(cube_copy) / "landslides" / "1.1").unlink()
    ds = open_cube(cube_copy)
    reader = CubePlanes(cube_copy, ds)
    assert reader.chunks.supports("landslides")
    xarray = DatasetPlanes(ds)
    if ZARR_3:
        expected = lambda rows, cols: xarray.plane("landslides", {}, rows, cols)
    else:
        # zarr-python 2 reads a missing chunk without fill value as uninitialised memory: the
        # direct path must give zeros there, and what xarray gives everywhere else.
        whole = xarray.plane("landslides", {}, slice(None), slice(None))
        whole[64:128, 64:128] = 0
        expected = lambda rows, cols: whole[rows, cols]
    for label, (rows, cols) in WINDOWS.items():
        assert_same_plane(reader.plane("landslides", {}, rows, cols), expected(rows, cols), label)
    assert (reader.plane("landslides", {}, slice(64, 128), slice(64, 128)) == 0).all()


# --- stores and variables the direct path does not take ---------------------------------------


def test_zarr_v3_cube_reads_through_xarray(tiny_cube_v3, cube):
    ds = open_cube(tiny_cube_v3)
    reader = CubePlanes(tiny_cube_v3, ds)
    assert reader.chunks is None
    for name, index in PLANES:
        rows, cols = WINDOWS["across chunks, unaligned"]
        expected = cube[name].isel({**index, "y": rows, "x": cols}).values
        assert_same_plane(reader.plane(name, index, rows, cols), expected, name)


@pytest.mark.parametrize(
    "name, filename, changes",
    [
        ("dem", ".zattrs", {"scale_factor": 2.0}),
        ("dem_slope_radians", ".zattrs", {"add_offset": 10.0}),
        ("landslides", ".zarray", {"fill_value": 0}),  # xarray masks 0 as missing: floats with NaN
    ],
)
def test_variable_xarray_decodes_reads_decoded(cube_copy, cube, name, filename, changes):
    rewrite_metadata(cube_copy, name, filename, **changes)
    ds = open_cube(cube_copy)
    reader = CubePlanes(cube_copy, ds)
    assert not reader.chunks.supports(name)
    assert reader.chunks.supports("vv")  # the other variables keep the direct path
    got = reader.plane(name, {}, slice(10, 137), slice(33, 170))
    assert_same_plane(got, DatasetPlanes(ds).plane(name, {}, slice(10, 137), slice(33, 170)))
    raw = cube[name].values[10:137, 33:170]
    assert not np.array_equal(got, raw, equal_nan=True)  # decoding changed the values


def test_float_fill_value_other_than_nan_is_masked_as_in_xarray(cube_copy, cube):
    # A fill value that one pixel holds: xarray masks that pixel as NaN, the raw chunk keeps it.
    rewrite_metadata(cube_copy, "dem_curvature", ".zarray", fill_value=float(cube["dem_curvature"].values[100, 100]))
    ds = open_cube(cube_copy)
    reader = CubePlanes(cube_copy, ds)
    assert not reader.chunks.supports("dem_curvature")
    got = reader.plane("dem_curvature", {}, slice(None), slice(None))
    assert_same_plane(got, DatasetPlanes(ds).plane("dem_curvature", {}, slice(None), slice(None)))
    assert np.isnan(got[100, 100]) and np.isnan(got).sum() == 1


@pytest.fixture
def extra_cube(cube_copy, cube):
    """The cube plus vv in nested chunk keys ("/") and the DEM with a filter and another compressor.

    In 48 x 80 chunks, so the right edge's chunk column is partial too; vv in 5 timesteps a chunk.
    """
    v2 = {"zarr_format": 2} if ZARR_3 else {}  # zarr-python 2 writes v2 only and has no such argument
    group = zarr.open_group(cube_copy, mode="r+", **v2)
    add_float32_array(group, "vv_nested", cube["vv"], (5, 48, 80), separator="/")
    add_float32_array(
        group,
        "dem_filtered",
        cube["dem"],
        (48, 80),
        filters=[numcodecs.Shuffle(elementsize=4)],
        compressor=numcodecs.Zstd(level=1),
    )
    zarr.consolidate_metadata(cube_copy, **v2)
    return cube_copy


def add_float32_array(group, name, like, chunks, separator=".", filters=None, compressor=None):
    """Write ``like``'s values as the zarr v2 array ``name`` of ``group`` (NaN fill), with either zarr-python.

    Codecs not given are zarr-python's defaults.
    """
    codecs = {"filters": filters} if filters else {}
    if ZARR_3:
        codecs |= {"compressors": compressor} if compressor else {}
        array = group.create_array(
            name,
            shape=like.shape,
            chunks=chunks,
            dtype="<f4",
            fill_value=np.nan,
            chunk_key_encoding={"name": "v2", "separator": separator},
            attributes={"_ARRAY_DIMENSIONS": list(like.dims)},
            **codecs,
        )
    else:
        codecs |= {"compressor": compressor} if compressor else {}
        array = group.create_dataset(
            name,
            shape=like.shape,
            chunks=chunks,
            dtype="<f4",
            fill_value=np.nan,
            dimension_separator=separator,
            **codecs,
        )
        array.attrs["_ARRAY_DIMENSIONS"] = list(like.dims)
    array[...] = like.values


def test_nested_chunk_keys_read_through_the_direct_path(extra_cube, cube):
    meta = json.loads((Path(extra_cube) / "vv_nested" / ".zarray").read_text())
    assert meta["dimension_separator"] == "/" and (Path(extra_cube) / "vv_nested" / "2" / "3" / "2").is_file()
    assert_direct_equals_xarray(extra_cube, [("vv_nested", {"timestep": t}) for t in (0, 4, 7, 11)])
    reader = CubePlanes(extra_cube, open_cube(extra_cube))
    whole = reader.plane("vv_nested", {"timestep": 4}, slice(None), slice(None))
    np.testing.assert_array_equal(whole, cube["vv"].values[4])


def test_filters_and_other_compressors_read_through_the_direct_path(extra_cube, cube):
    meta = json.loads((Path(extra_cube) / "dem_filtered" / ".zarray").read_text())
    assert meta["filters"] == [{"id": "shuffle", "elementsize": 4}] and meta["compressor"]["id"] == "zstd"
    assert_direct_equals_xarray(extra_cube, [("dem_filtered", {})])
    reader = CubePlanes(extra_cube, open_cube(extra_cube))
    np.testing.assert_array_equal(reader.plane("dem_filtered", {}, slice(None), slice(None)), cube["dem"].values)


# --- indices and windows as xarray takes them -------------------------------------------------


def test_negative_lead_index_reads_the_plane_xarray_reads(tiny_cube, cube):
    reader = CubePlanes(tiny_cube, cube)
    expected = DatasetPlanes(cube).plane("vv", {"timestep": -1}, slice(None), slice(None))
    assert_same_plane(reader.plane("vv", {"timestep": -1}, slice(None), slice(None)), expected)


def test_lead_index_past_the_end_raises_as_in_xarray(tiny_cube, cube):
    with pytest.raises(IndexError):
        DatasetPlanes(cube).plane("vv", {"timestep": 12}, slice(None), slice(None))
    with pytest.raises(IndexError):  # not a plane of NaN read from a chunk file that cannot exist
        CubePlanes(tiny_cube, cube).plane("vv", {"timestep": 12}, slice(None), slice(None))


@pytest.mark.parametrize(
    "rows, cols",
    [(slice(0, 100, 2), slice(None)), (slice(None), slice(1, 192, 3)), (slice(10, 5), slice(None))],
    ids=["strided rows", "strided columns", "reversed (empty) rows"],
)
def test_strided_and_reversed_windows_read_as_in_xarray(tiny_cube, cube, rows, cols):
    expected = DatasetPlanes(cube).plane("vv", {"timestep": 5}, rows, cols)
    assert_same_plane(CubePlanes(tiny_cube, cube).plane("vv", {"timestep": 5}, rows, cols), expected)


# --- threads and callers ----------------------------------------------------------------------


def test_threads_reading_one_zip_reader_get_what_one_thread_gets(zips):
    location = zips["store in a top folder"]
    reader = CubePlanes(location, open_cube(location))
    jobs = [(name, index, *window) for name, index in PLANES for window in WINDOWS.values()]
    assert all(reader.chunks.supports(name) for name, *_ in jobs)
    alone = [reader.plane(*job) for job in jobs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda job: reader.plane(*job), jobs * 3))
    for i, got in enumerate(together):
        assert_same_plane(got, alone[i % len(jobs)], jobs[i % len(jobs)][:2])


def test_channel_plan_reads_the_same_band_from_cube_planes_as_from_the_dataset(tiny_cube, cube):
    acquisitions = select_acquisitions(cube, PRESETS["hokkaido"], 2, "descending")
    pairs = select_pairs(cube, PRESETS["hokkaido"], "descending")
    plan = ChannelPlan(ALL_CHANNELS, acquisitions, tuple(pairs.items()))
    reader = CubePlanes(tiny_cube, cube)
    assert all(reader.chunks.supports(name) for name in plan.variables())
    for label, (rows, cols) in WINDOWS.items():
        expected = plan.read_band(cube, rows, cols)
        assert_same_plane(plan.read_band(reader, rows, cols), expected, label)
        # A reused buffer, holding the last band's values, is overwritten everywhere (tile by tile).
        stale = np.full(expected.shape, 7.0, np.float32)
        assert plan.read_band(reader, rows, cols, out=stale) is stale
        assert_same_plane(stale, expected, f"{label}, into a given array")
    assert np.isfinite(plan.read_band(reader, slice(None), slice(None))).mean() > 0.5
