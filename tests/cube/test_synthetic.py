"""The synthetic cube generator: determinism, schema, and the physics the study relies on."""

import dataclasses
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from pyproj import CRS

from tests.helpers import zarr_format_of
from tf_landslide.cube import schema, synthetic
from tf_landslide.cube.events import PRESETS
from tf_landslide.cube.open import check_labels, open_cube, orbit_codes, validate_cube

TRIGGER = np.datetime64(PRESETS["hokkaido"].start.to_datetime64(), "ns")


@pytest.fixture(scope="module")
def cube(tiny_cube):
    return open_cube(tiny_cube)


@pytest.fixture(scope="module")
def arrays(cube):
    """The tiny cube in memory (a few MB), with the pixel classes the physics tests compare."""
    labels = cube["landslides"].values.astype(bool)
    vv = cube["vv"].values
    with np.errstate(divide="ignore", invalid="ignore"):
        log_vv = np.where(vv > 0, np.log(np.where(vv > 0, vv, 1.0)), np.nan)
    return {
        "labels": labels,
        "slope": cube["dem_slope_radians"].values,
        "vv": vv,
        "log_vv": log_vv,
        "times": cube[schema.TIME_DIM].values,
        "orbits": orbit_codes(cube),
        "coherence": cube["coherence"].values,
    }


# --- determinism ------------------------------------------------------------------------------


def test_same_spec_gives_identical_cubes(tmp_path, tiny_spec, tiny_cube):
    again = synthetic.write_cube(tiny_spec, tmp_path / "again.zarr")
    first, second = xr.open_zarr(tiny_cube, chunks=None), xr.open_zarr(again, chunks=None)
    xr.testing.assert_identical(first.load(), second.load())  # values (NaN-aware), coords and attributes
    assert tiny_spec.key() == dataclasses.replace(tiny_spec).key()


def test_another_seed_gives_another_cube(tmp_path, tiny_spec, tiny_cube):
    other_spec = dataclasses.replace(tiny_spec, seed=tiny_spec.seed + 1)
    assert other_spec.key() != tiny_spec.key()
    other = xr.open_zarr(synthetic.write_cube(other_spec, tmp_path / "seed1.zarr"), chunks=None)
    first = xr.open_zarr(tiny_cube, chunks=None)
    for name in ("dem", "landslides"):
        assert not np.array_equal(other[name].values, first[name].values), name
    vv_a, vv_b = other["vv"].isel(timestep=6).values, first["vv"].isel(timestep=6).values
    both = np.isfinite(vv_a) & np.isfinite(vv_b)
    assert both.mean() > 0.5 and (vv_a[both] != vv_b[both]).mean() > 0.9
    # The schedule does not depend on the seed.
    np.testing.assert_array_equal(other[schema.TIME_DIM].values, first[schema.TIME_DIM].values)


def test_writing_over_an_existing_cube_is_refused(tiny_spec, tiny_cube):
    before = os.stat(Path(tiny_cube) / ".zmetadata").st_mtime_ns
    with pytest.raises(FileExistsError):
        synthetic.write_cube(tiny_spec, tiny_cube)
    assert os.stat(Path(tiny_cube) / ".zmetadata").st_mtime_ns == before


def test_no_partial_folder_is_left_behind(tmp_path, tiny_spec):
    synthetic.write_cube(tiny_spec, tmp_path / "done.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done.zarr"]


# --- schema -----------------------------------------------------------------------------------


def test_written_cube_follows_the_schema(cube):
    validate_cube(cube, need_insar=True)
    assert check_labels(cube["landslides"].values) == 0
    for name in ("vv", "vh", "coherence", "interferogram", *schema.DEM_VARIABLES):
        assert cube[name].dtype == np.float32, name


def test_zarr_v2_with_consolidated_metadata(tiny_cube):
    store = Path(tiny_cube)
    assert (store / ".zmetadata").is_file() and (store / ".zgroup").is_file()
    assert not (store / "zarr.json").exists()
    assert zarr_format_of(zarr.open_group(str(store), mode="r")) == 2
    # Consolidated metadata lists every variable, so readers need one request for the layout.
    consolidated = zarr.open_consolidated(str(store), mode="r")
    assert {"vv", "vh", "landslides", "coherence", "sat:orbit_state"} <= set(consolidated.array_keys())


def test_zarr_v3_on_request(tiny_cube_v3):
    store = Path(tiny_cube_v3)
    assert (store / "zarr.json").is_file() and not (store / ".zgroup").exists()
    assert zarr_format_of(zarr.open_group(str(store), mode="r")) == 3


def test_both_orbits_and_the_schedule(cube, tiny_spec):
    codes = orbit_codes(cube)
    assert (codes == "a").sum() == (codes == "d").sum() == tiny_spec.timesteps_per_orbit
    times = cube[schema.TIME_DIM].values
    assert (np.diff(times) > np.timedelta64(0)).all()
    for code in "ad":
        gaps = np.diff(times[codes == code]) / np.timedelta64(1, "D")
        np.testing.assert_array_equal(gaps, synthetic.REVISIT_DAYS)
        assert (times[codes == code] < TRIGGER).sum() == (tiny_spec.timesteps_per_orbit + 1) // 2
    # A descending pass on the event's calendar day, after the trigger.
    first_after = times[(codes == "d") & (times > TRIGGER)][0]
    assert first_after.astype("datetime64[D]") == TRIGGER.astype("datetime64[D]")
    assert pd.Timestamp(first_after) == pd.Timestamp("2018-09-05T20:40:12")


def test_insar_pairs_are_consecutive_same_orbit(cube):
    times, codes = cube[schema.TIME_DIM].values, orbit_codes(cube)
    pairs = synthetic.insar_pairs(times, codes)
    assert len(pairs) == cube.sizes[schema.PAIR_DIM] == 10
    for a, b in pairs:
        assert codes[a] == codes[b] and a < b
        assert not ((codes[a + 1 : b] == codes[a]).any())  # no same-orbit pass in between
    labels = [str(v) for v in cube[schema.PAIR_DIM].values]
    assert "20180824_20180905" in labels and "20180901_20180913" in labels


def test_crs_and_10_m_grid(cube, tiny_spec):
    assert "spatial_ref" in cube.coords
    assert CRS.from_wkt(cube["spatial_ref"].attrs["crs_wkt"]).to_epsg() == 32654
    x, y = cube["x"].values, cube["y"].values
    np.testing.assert_allclose(np.diff(x), 10.0)
    np.testing.assert_allclose(np.diff(y), -10.0)  # north up: rows run south
    assert x[0] == pytest.approx(tiny_spec.origin_x + 5.0)  # pixel centres
    assert y[0] == pytest.approx(tiny_spec.origin_y - 5.0)
    assert (cube.sizes["y"], cube.sizes["x"]) == (tiny_spec.height, tiny_spec.width)


def test_event_is_recorded_in_the_attributes(cube, tiny_spec):
    assert cube.attrs["event_start"] == cube.attrs["event_end"] == "2018-09-05T18:07:59Z"
    assert "seed=0" in cube.attrs["synthetic_spec"]


# --- physics ----------------------------------------------------------------------------------


def test_landslides_are_a_few_percent_of_the_scene(arrays):
    fraction = arrays["labels"].mean()
    assert 0.005 < fraction < 0.15


def test_scars_are_on_steeper_slopes(arrays):
    labels, slope = arrays["labels"], arrays["slope"]
    assert slope[labels].mean() > slope[~labels].mean() + np.radians(3.0)


def _side_means(arrays, orbit):
    times, codes, log_vv = arrays["times"], arrays["orbits"], arrays["log_vv"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the swath edge: no data on any date
        before = np.nanmean(log_vv[(codes == orbit) & (times < TRIGGER)], axis=0)
        after = np.nanmean(log_vv[(codes == orbit) & (times > TRIGGER)], axis=0)
    return after - before


def test_vv_drops_over_scars_after_the_event(arrays):
    change = _side_means(arrays, "d")
    labels = arrays["labels"]
    scar, other = np.nanmean(change[labels]), np.nanmean(change[~labels])
    assert scar < -0.2  # forest to bare soil: a clear drop in log power
    assert abs(other) < 0.1
    assert scar < other - 0.2


def test_no_change_over_scars_between_pre_event_dates(arrays):
    # The drop is the event's doing: two pre-event passes differ over scars as elsewhere.
    times, codes, log_vv, labels = arrays["times"], arrays["orbits"], arrays["log_vv"], arrays["labels"]
    descending_before = np.flatnonzero((codes == "d") & (times < TRIGGER))
    diff = log_vv[descending_before[-1]] - log_vv[descending_before[0]]
    assert abs(np.nanmean(diff[labels]) - np.nanmean(diff[~labels])) < 0.1


def test_coevent_coherence_is_lower_over_scars(cube, arrays):
    labels, coherence = arrays["labels"], arrays["coherence"]
    pair_names = [str(v) for v in cube[schema.PAIR_DIM].values]
    coevent = coherence[pair_names.index("20180824_20180905")]
    preevent = coherence[pair_names.index("20180812_20180824")]
    assert np.nanmean(coevent[labels]) < np.nanmean(coevent[~labels]) - 0.08
    assert abs(np.nanmean(preevent[labels]) - np.nanmean(preevent[~labels])) < 0.05
    valid = coherence[np.isfinite(coherence)]
    assert valid.min() >= 0.0 and valid.max() <= 1.0


def test_vv_has_nan_no_data_and_a_few_exact_zeros(arrays):
    vv = arrays["vv"]
    nan_fraction = np.isnan(vv).mean()
    zeros = int((vv == 0).sum())
    assert 0.001 < nan_fraction < 0.3
    assert 0 < zeros < 0.002 * vv.size
    assert not (vv < 0).any() and not np.isinf(vv).any()


def test_descending_swath_edge_is_no_data(arrays, tiny_spec):
    edge = int(0.06 * tiny_spec.width)
    vv, codes = arrays["vv"], arrays["orbits"]
    # No positive power at all (the generator's exact zeros may fall there: RTC border pixels).
    assert not (vv[codes == "d"][:, :, :edge] > 0).any()
    assert np.isnan(vv[codes == "d"][:, :, :edge]).mean() > 0.99
    assert np.isfinite(vv[codes == "a"][:, :, :edge]).mean() > 0.5


# --- the embedded cube cache ------------------------------------------------------------------


def test_embedded_cube_is_written_once(tmp_path):
    cache = tmp_path / "cache"
    first = synthetic.embedded_cube(cache, size="tiny")
    assert first.is_dir() and first.parent == cache
    assert synthetic.SIZES["tiny"].key() in first.name
    marker = first / ".zmetadata"
    stamp = marker.stat().st_mtime_ns
    second = synthetic.embedded_cube(cache, size="tiny")
    assert second == first
    assert marker.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in cache.iterdir()) == [first.name]
    ds = open_cube(str(second))
    assert (ds.sizes["y"], ds.sizes["x"]) == (160, 192)
