"""The foreign writers (tests/cube/foreign.py) store what their names claim.

Claims are checked on the written stores with zarr-python and their JSON metadata files, not
through xarray's decoding, so a writer that silently normalises an encoding cannot pass. The
project's cube opener is NOT tested here.
"""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

from tests.cube import foreign
from tests.helpers import ZARR_3, ZARR_V3_VARIANTS, zarr_format_of

# odc-geo 0.5 and stackstac 0.5.1 multiply affines with `*`, which affine 3 deprecates: hundreds
# of warnings per load that say nothing about these writers.
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul instead of `\\*` mul:PendingDeprecationWarning")


@pytest.fixture(scope="module")
def scene():
    return foreign.canonical_scene()


# --- The canonical scene keeps its promises -------------------------------------------------------


def test_scene_grid(scene):
    assert scene.x.dtype == np.float64 and scene.y.dtype == np.float64
    np.testing.assert_array_equal(scene.x, 530_005.0 + 10.0 * np.arange(192))
    np.testing.assert_array_equal(scene.y, 4_739_995.0 - 10.0 * np.arange(160))
    assert scene.transform == (10.0, 0.0, 530_000.0, 0.0, -10.0, 4_740_000.0)
    for name in ("vv", "vh"):
        assert getattr(scene, name).shape == (12, 160, 192) and getattr(scene, name).dtype == np.float32
    for name in ("coherence", "interferogram"):
        assert getattr(scene, name).shape == (10, 160, 192) and getattr(scene, name).dtype == np.float32
    for name in foreign.DEM_VARS:
        assert getattr(scene, name).shape == (160, 192) and getattr(scene, name).dtype == np.float32
        assert np.isfinite(getattr(scene, name)).all()


def test_scene_acquisitions(scene):
    assert scene.times.dtype == np.dtype("datetime64[ns]") and (np.diff(scene.times) > np.timedelta64(0)).all()
    assert scene.orbits.dtype == np.dtype("<U1") and scene.orbits.tolist() == ["a", "d"] * 6
    pass_time = {"a": "08:26:47", "d": "20:40:12"}
    for orbit in ("a", "d"):
        times = scene.times[scene.orbits == orbit]
        assert (np.diff(times) == np.timedelta64(12, "D")).all()
        assert (times < scene.event).sum() == 3 and (times > scene.event).sum() == 3
        assert {str(t)[11:19] for t in times} == {pass_time[orbit]}
    assert scene.attrs["event_start"] == scene.attrs["event_end"] == "2018-09-05T18:07:59Z"


def test_scene_pairs_are_consecutive_same_orbit_passes(scene):
    assert scene.pair_labels.dtype == np.dtype("<U17") and len(scene.pairs) == 10
    for (start, end), label in zip(scene.pairs, scene.pair_labels, strict=True):
        assert (
            scene.orbits[start] == scene.orbits[end]
            and not (scene.orbits[start + 1 : end] == scene.orbits[start]).any()
        )
        start_day, end_day = (pd.Timestamp(scene.times[i]).strftime("%Y%m%d") for i in (start, end))
        assert label == f"{start_day}_{end_day}"
    starts_ends = list(zip(scene.times[scene.pairs[:, 0]], scene.times[scene.pairs[:, 1]], strict=True))
    assert starts_ends == sorted(starts_ends)


def test_scene_landslides_in_every_tile(scene):
    labels = scene.landslides
    assert labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1}
    tiles = labels.reshape(5, 32, 6, 32).max(axis=(1, 3))
    assert tiles.all(), f"tiles without landslides: {np.argwhere(tiles == 0).tolist()}"
    assert 0.05 <= labels.mean() <= 0.10


def test_scene_backscatter(scene):
    for name, level in (("vv", 0.15), ("vh", 0.03)):
        band = getattr(scene, name)
        assert np.isnan(band[(slice(None), *foreign.NO_DATA_BLOCK)]).all()
        assert np.isnan(band).sum() == 12 * 5 * 7, "NaN only in the no-data block"
        assert 0 < (band == 0).sum() <= 12 * foreign.ZEROS_PER_TIMESTEP
        assert (band[np.isfinite(band)] >= 0).all()
        assert np.nanmedian(band) == pytest.approx(level, rel=0.3)
        # The learnable signal: landslide pixels darken after the event, the rest does not.
        after = scene.times > scene.event
        slid = scene.landslides == 1
        ratio = np.nanmean(band[after][:, slid]) / np.nanmean(band[~after][:, slid])
        rest = np.nanmean(band[after][:, ~slid]) / np.nanmean(band[~after][:, ~slid])
        assert ratio < 0.5 and rest == pytest.approx(1.0, abs=0.15)


def test_scene_is_deterministic_and_read_only(scene):
    again = foreign.canonical_scene.__wrapped__(0)  # bypass the cache
    other = foreign.canonical_scene(1)
    for field in ("vv", "landslides", "dem", "coherence"):
        np.testing.assert_array_equal(getattr(scene, field), getattr(again, field))
        assert not getattr(scene, field).flags.writeable
    assert not np.array_equal(scene.landslides, other.landslides)
    np.testing.assert_array_equal(scene.times, other.times)


def test_canonical_dataset_is_in_the_schema(scene):
    ds = foreign.canonical_dataset(scene)
    assert dict(ds.sizes) == {"timestep": 12, "timepair": 10, "y": 160, "x": 192}
    assert ds["sat:orbit_state"].dims == ("timestep",) and ds["sat:orbit_state"].dtype == np.dtype("<U1")
    assert ds["timepair"].dtype == np.dtype("<U17")
    assert ds.rio.crs.to_epsg() == 32654 and "spatial_ref" in ds.coords
    assert ds.attrs["event_start"] == "2018-09-05T18:07:59Z"
    assert ds["vv"].values.flags.writeable, "a dataset handed to a test is its own copy"


# --- The variants store what they claim -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Claims:
    """What a variant's store must hold; the defaults are the baseline (object_v2)."""

    zarr_format: int = 2
    consolidated: bool = True
    strings: str = "object"  # object | unicode | bytes
    orbit_labels: dict | None = dataclasses.field(default_factory=lambda: {"a": "a", "d": "d"})
    time_units: str | None = None  # None: xarray's default for datetime64 ('<unit> since <first>')
    time_dtype: str = "int64"
    shuffled: bool = False
    y_ascending: bool = False
    xy_dtype: str = "float64"
    sar_dtype: str = "float32"
    dem_dtype: str = "float32"
    label_dtype: str = "uint8"
    chunks_3d: tuple = (1, 32, 32)
    chunks_2d: tuple = (32, 32)


BASE = Claims()
LONG = {"a": "ascending", "d": "descending"}
CLAIMS = {
    "object_v2": BASE,
    "object_v3": dataclasses.replace(BASE, zarr_format=3),
    "unicode_v2": dataclasses.replace(BASE, strings="unicode"),
    "unicode_v3": dataclasses.replace(BASE, strings="unicode", zarr_format=3),
    "bytes_v2": dataclasses.replace(BASE, strings="bytes"),
    "bytes_v3": dataclasses.replace(BASE, strings="bytes", zarr_format=3),
    "orbit_upper": dataclasses.replace(BASE, orbit_labels={"a": "A", "d": "D"}),
    "orbit_long": dataclasses.replace(BASE, orbit_labels=LONG),
    "orbit_long_mixed_case": dataclasses.replace(BASE, orbit_labels={"a": "Ascending", "d": "DESCENDING"}),
    "orbit_missing": dataclasses.replace(BASE, orbit_labels=None),
    "orbit_scalar": dataclasses.replace(BASE, orbit_labels=None),  # checked on its own below
    "orbit_partly_empty": dataclasses.replace(BASE, orbit_labels=None),
    "orbit_unknown_values": dataclasses.replace(BASE, orbit_labels={"a": "north", "d": "south"}),
    "orbit_wrong_length": dataclasses.replace(BASE, orbit_labels=None),
    "time_seconds": dataclasses.replace(BASE, time_units="seconds since 1970-01-01"),
    "time_float_days": dataclasses.replace(BASE, time_units="days since 2018-01-01", time_dtype="float64"),
    "time_tz_suffix": dataclasses.replace(BASE, time_units="seconds since 2018-01-01T00:00:00Z"),
    "time_unsorted": dataclasses.replace(BASE, shuffled=True),
    "y_ascending": dataclasses.replace(BASE, y_ascending=True),
    "xy_float32": dataclasses.replace(BASE, xy_dtype="float32"),
    "sar_float64": dataclasses.replace(BASE, sar_dtype="float64"),
    "dem_float64": dataclasses.replace(BASE, dem_dtype="float64"),
    "labels_bool": dataclasses.replace(BASE, label_dtype="bool"),
    "labels_int16": dataclasses.replace(BASE, label_dtype="int16"),
    "labels_float_nan": dataclasses.replace(BASE, label_dtype="float32"),
    "unconsolidated": dataclasses.replace(BASE, consolidated=False),
    "odd_chunks": dataclasses.replace(BASE, chunks_3d=(1, 37, 45), chunks_2d=(37, 45)),
    "time_chunked": dataclasses.replace(BASE, chunks_3d=(5, 64, 64), chunks_2d=(64, 64)),
    "stackstac_like": Claims(
        zarr_format=3,
        consolidated=False,
        orbit_labels=LONG,
        time_units="days since 2018-01-01",
        time_dtype="float64",
        shuffled=True,
        y_ascending=True,
        sar_dtype="float64",
        chunks_3d=(4, 50, 70),
        chunks_2d=(50, 70),
    ),
}


@pytest.fixture(scope="module")
def written(foreign_store):
    return foreign_store


def array_metadata(store: Path, name: str) -> dict:
    """The array's own metadata file(s) as JSON, v2 (.zarray + .zattrs) or v3 (zarr.json)."""
    if (store / name / "zarr.json").exists():
        return json.loads((store / name / "zarr.json").read_text())
    meta = json.loads((store / name / ".zarray").read_text())
    meta["attributes"] = json.loads((store / name / ".zattrs").read_text())
    return meta


def chunk_shape(meta: dict) -> tuple:
    if meta.get("zarr_format") == 3:
        return tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
    return tuple(meta["chunks"])


def as_text(values) -> list[str]:
    return [value.decode() if isinstance(value, bytes) else str(value) for value in np.asarray(values).ravel()]


def stored_times(group: zarr.Group) -> np.ndarray:
    """Decode the raw timestep numbers with their units, independently of xarray."""
    numbers = group["timestep"][:]
    unit, _, reference = group["timestep"].attrs["units"].partition(" since ")
    reference = pd.Timestamp(reference)
    if reference.tzinfo is not None:
        reference = reference.tz_convert("UTC").tz_localize(None)
    seconds = np.asarray(numbers, dtype=np.float64) * pd.Timedelta(1, unit=unit).total_seconds()
    # Float days hold pass times to well under a microsecond: round to the stored seconds.
    return (reference + pd.to_timedelta(np.round(seconds, 3), unit="s")).to_numpy(dtype="datetime64[ns]")


def test_claims_cover_every_variant():
    assert set(CLAIMS) == set(foreign.VARIANTS)
    assert foreign.VARIANTS_EXPECTED_ERROR == {
        "orbit_missing",
        "orbit_partly_empty",
        "orbit_unknown_values",
        "orbit_wrong_length",
    }
    assert all(isinstance(text, str) and text for text in foreign.VARIANTS.values())
    # The variants that skip under zarr-python 2 are exactly those claimed (and checked) to be v3.
    assert {name for name, claims in CLAIMS.items() if claims.zarr_format == 3} == ZARR_V3_VARIANTS


@pytest.mark.parametrize("name", list(foreign.VARIANTS))
def test_container(written, name):
    """Zarr format, consolidated metadata, chunks."""
    claims, store = CLAIMS[name], written(name)
    root = json.loads((store / "zarr.json").read_text()) if claims.zarr_format == 3 else None
    assert zarr_format_of(zarr.open_group(store, mode="r")) == claims.zarr_format
    if claims.zarr_format == 2:
        assert (store / ".zmetadata").exists() == claims.consolidated
        assert not (store / "zarr.json").exists()
    else:
        assert (root.get("consolidated_metadata") is not None) == claims.consolidated
        assert not (store / ".zgroup").exists()
    for name_3d in ("vv", "coherence"):
        assert chunk_shape(array_metadata(store, name_3d)) == claims.chunks_3d
    for name_2d in ("landslides", "dem"):
        assert chunk_shape(array_metadata(store, name_2d)) == claims.chunks_2d


STRING_ENCODINGS = {
    # (zarr format, kind): check of the array's JSON metadata
    (2, "object"): lambda meta: meta["dtype"] == "|O" and meta["filters"] == [{"id": "vlen-utf8"}],
    (3, "object"): lambda meta: (
        meta["data_type"] == "string" and "vlen-utf8" in [codec["name"] for codec in meta["codecs"]]
    ),
    (2, "unicode"): lambda meta: re.fullmatch(r"<U\d+", meta["dtype"]) is not None,
    (3, "unicode"): lambda meta: meta["data_type"]["name"] == "fixed_length_utf32",
    (2, "bytes"): lambda meta: re.fullmatch(r"\|S\d+", meta["dtype"]) is not None,
    (3, "bytes"): lambda meta: meta["data_type"]["name"] == "null_terminated_bytes",
}


@pytest.mark.parametrize("name", list(foreign.VARIANTS))
def test_string_coords(written, scene, name):
    claims, store = CLAIMS[name], written(name)
    group = zarr.open_group(store, mode="r")
    encoded_as_claimed = STRING_ENCODINGS[(claims.zarr_format, claims.strings)]
    present = [coord for coord in foreign.STRING_COORDS if coord in group]
    for coord in present:
        assert encoded_as_claimed(array_metadata(store, coord)), coord
    if name != "orbit_scalar":
        assert as_text(group["timepair"][:]) == scene.pair_labels.tolist()
    if claims.orbit_labels is not None:
        by_time = dict(zip(scene.times, scene.orbits, strict=True))
        expected = [claims.orbit_labels[by_time[time]] for time in stored_times(group)]
        assert as_text(group["sat:orbit_state"][:]) == expected


def test_orbit_missing(written):
    assert "sat:orbit_state" not in zarr.open_group(written("orbit_missing"), mode="r")


def test_orbit_scalar_holds_only_descending_passes(written, scene):
    store = written("orbit_scalar")
    group = zarr.open_group(store, mode="r")
    assert group["sat:orbit_state"].shape == () and as_text(group["sat:orbit_state"][()]) == ["descending"]
    assert "sat:orbit_state" in array_metadata(store, "vv")["attributes"]["coordinates"]
    np.testing.assert_array_equal(stored_times(group), scene.times[scene.orbits == "d"])
    descending_pairs = scene.pair_labels[scene.orbits[scene.pairs[:, 0]] == "d"]
    assert as_text(group["timepair"][:]) == descending_pairs.tolist()
    assert group["vv"].shape == (6, 160, 192) and group["coherence"].shape == (5, 160, 192)


def test_orbit_partly_empty(written, scene):
    """Two '' entries and one None, which xarray holds as NaN and can only write as ''."""
    stored = as_text(zarr.open_group(written("orbit_partly_empty"), mode="r")["sat:orbit_state"][:])
    blank = [*foreign.EMPTY_ORBIT_ENTRIES, foreign.NONE_ORBIT_ENTRY]
    assert [stored[i] for i in blank] == [""] * 3
    assert [code for i, code in enumerate(stored) if i not in blank] == np.delete(scene.orbits, blank).tolist()
    in_memory = foreign.variant_dataset(scene, "orbit_partly_empty")["sat:orbit_state"].values
    assert in_memory.dtype == object and pd.isna(in_memory[foreign.NONE_ORBIT_ENTRY])


def test_orbit_wrong_length(written, scene):
    store = written("orbit_wrong_length")
    meta = array_metadata(store, "sat:orbit_state")
    assert meta["shape"] == [11] and meta["attributes"]["_ARRAY_DIMENSIONS"] == ["orbit_index"]
    assert zarr.open_group(store, mode="r")["timestep"].shape == (12,)


@pytest.mark.parametrize("name", list(foreign.VARIANTS))
def test_time_encoding(written, scene, name):
    claims, store = CLAIMS[name], written(name)
    group = zarr.open_group(store, mode="r")
    units = group["timestep"].attrs["units"]
    assert group["timestep"].dtype == np.dtype(claims.time_dtype)
    if claims.time_units is None:
        assert re.fullmatch(r"\w+ since \d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d", units), units
    else:
        assert units == claims.time_units
    times = stored_times(group)
    if name == "orbit_scalar":
        return  # its times are checked with its orbits
    assert sorted(times) == list(scene.times)
    assert (np.diff(times) > np.timedelta64(0)).all() != claims.shuffled


def test_time_tz_suffix_opens_with_xarray_defaults(written, scene):
    ds = xr.open_zarr(written("time_tz_suffix"))
    np.testing.assert_array_equal(ds["timestep"].values, scene.times)


@pytest.mark.parametrize("name", list(foreign.VARIANTS))
def test_grid_and_dtypes(written, scene, name):
    claims, store = CLAIMS[name], written(name)
    group = zarr.open_group(store, mode="r")
    assert group["x"].dtype == group["y"].dtype == np.dtype(claims.xy_dtype)
    np.testing.assert_array_equal(group["x"][:], scene.x)
    np.testing.assert_array_equal(group["y"][:], scene.y[::-1] if claims.y_ascending else scene.y)
    assert "crs_wkt" in group["spatial_ref"].attrs
    for var in ("vv", "landslides", "coherence"):
        assert array_metadata(store, var)["attributes"]["grid_mapping"] == "spatial_ref", var
    assert group["vv"].dtype == group["vh"].dtype == np.dtype(claims.sar_dtype)
    assert {group[dem].dtype for dem in foreign.DEM_VARS} == {np.dtype(claims.dem_dtype)}
    labels = group["landslides"]
    if claims.label_dtype == "bool" and not ZARR_3:
        # Through zarr-python 2, xarray stores bool as int8 with a 'dtype' attribute (read back as bool).
        assert labels.dtype == np.int8 and labels.attrs["dtype"] == "bool"
    else:
        assert labels.dtype == np.dtype(claims.label_dtype)


def north_up_in_time_order(ds: xr.Dataset) -> xr.Dataset:
    """The few steps that bring any variant back to the scene's order (for content checks)."""
    ds = ds.sortby("timestep")
    return ds.isel(y=slice(None, None, -1)) if ds.y[0] < ds.y[-1] else ds


@pytest.mark.parametrize("name", list(foreign.VARIANTS))
def test_variant_holds_the_scene(written, scene, name):
    """Same pixels: one post-event vv timestep, one coherence pair, the labels and the DEM."""
    ds = north_up_in_time_order(xr.open_zarr(written(name), chunks=None, consolidated=CLAIMS[name].consolidated))
    last = ds["timestep"].values[-1]
    step = int(np.flatnonzero(scene.times == last)[0])
    np.testing.assert_array_equal(ds["vv"].sel(timestep=last).values, scene.vv[step])
    pair = scene.pair_labels.tolist().index(as_text(ds["timepair"].values[-1:])[0])
    np.testing.assert_array_equal(ds["coherence"].isel(timepair=-1).values, scene.coherence[pair])
    np.testing.assert_array_equal(ds["dem_slope_radians"].values, scene.dem_slope_radians)
    labels = ds["landslides"].values.astype(np.float32)
    if name == "labels_float_nan":
        assert np.isnan(labels[foreign.NO_LABEL_ROWS]).all()
        labels[foreign.NO_LABEL_ROWS] = scene.landslides[foreign.NO_LABEL_ROWS]
    np.testing.assert_array_equal(labels, scene.landslides)
    assert ds.attrs["event_start"] == scene.attrs["event_start"]


# --- Cubes from the real STAC tools -----------------------------------------------------------------


def assert_scene_sar(ds: xr.Dataset, scene) -> None:
    np.testing.assert_array_equal(ds["x"].values, scene.x)
    np.testing.assert_array_equal(ds["y"].values, scene.y)
    np.testing.assert_array_equal(ds["timestep"].values.astype("datetime64[ns]"), scene.times)
    np.testing.assert_array_equal(ds["vv"].values, scene.vv)  # NaN where the scene has NaN
    np.testing.assert_array_equal(ds["vh"].values[3], scene.vh[3])
    assert as_text(ds["sat:orbit_state"].values) == [LONG[code] for code in scene.orbits]
    assert ds["timepair"].values.tolist() == scene.pair_labels.tolist()
    np.testing.assert_array_equal(ds["landslides"].values, scene.landslides)
    # Writable as it is (metadata and eager variables; the lazy bands are left unwritten).
    ds.to_zarr(zarr.storage.MemoryStore(), compute=False, zarr_format=2, consolidated=False)


def test_cog_items(scene, tmp_path):
    pytest.importorskip("pystac", reason="pystac is not installed (dev extra)")
    items = foreign.cog_items(scene, tmp_path)
    assert [item.properties["sat:orbit_state"] for item in items] == [LONG[code] for code in scene.orbits]
    for item in items:
        assert item.properties["proj:epsg"] == 32654 and item.properties["proj:shape"] == [160, 192]
        assert {"vv", "vh"} <= set(item.assets)
        assert all(Path(asset.href).is_absolute() and Path(asset.href).exists() for asset in item.assets.values())


def test_odc_stac_dataset_is_the_scene(scene, tmp_path):
    pytest.importorskip("odc.stac", reason="odc-stac is not installed (dev extra)")
    ds = foreign.odc_stac_dataset(scene, tmp_path)
    assert ds["vv"].chunks is not None, "lazy, as odc-stac loads with chunks"
    assert ds["sat:orbit_state"].dtype == object
    assert ds.rio.crs.to_epsg() == 32654
    assert_scene_sar(ds, scene)


def test_stackstac_dataset_is_the_scene(scene, tmp_path):
    pytest.importorskip("stackstac", reason="stackstac is not installed (.ci/run installs it without its pandas<3 pin)")
    ds = foreign.stackstac_dataset(scene, tmp_path)
    assert ds["vv"].dtype == np.float64, "stackstac's default dtype"
    assert ds.attrs["crs"] == "epsg:32654" and "id" in ds.coords
    assert_scene_sar(ds, scene)


def test_stackstac_topleft_labels_pixel_corners(scene, tmp_path):
    pytest.importorskip("stackstac", reason="stackstac is not installed (.ci/run installs it without its pandas<3 pin)")
    ds = foreign.stackstac_dataset(scene, tmp_path, xy_coords="topleft")
    np.testing.assert_array_equal(ds["x"].values, scene.x - 5.0)
    np.testing.assert_array_equal(ds["y"].values, scene.y + 5.0)
    np.testing.assert_array_equal(ds["vv"].values[6], scene.vv[6])
