"""The boundary: every dialect of the schema conformed to one canonical form, in memory.

Cubes written to disk by other tools (the variant matrix) are in ``test_foreign_cubes.py``;
here each conversion is checked on its own, on the tiny cube changed the way a writer would.
"""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from tf_landslide.cube import schema
from tf_landslide.cube.channels import resolve_orbit, select_acquisitions
from tf_landslide.cube.conform import conform, orbit_problem
from tf_landslide.cube.events import PRESETS
from tf_landslide.cube.open import CubeError, open_cube, orbit_codes

HOKKAIDO = PRESETS["hokkaido"]
STRING_DTYPE = getattr(np.dtypes, "StringDType", None)  # numpy >= 2


@pytest.fixture(scope="module")
def cube(tiny_cube):
    return open_cube(tiny_cube)


def with_orbits(ds, values, dims=(schema.TIME_DIM,)):
    return ds.drop_vars(schema.ORBIT_COORD).assign_coords({schema.ORBIT_COORD: (dims, values)})


def test_the_generators_cube_needs_no_conforming(tiny_cube):
    conformed = conform(xr.open_zarr(tiny_cube, chunks=None))
    assert conformed.changes == ()
    assert conformed.stored.is_identity


def test_conforming_twice_changes_nothing_more(cube):
    shuffled = cube.isel(timestep=[3, 0, 5, 1, 2, 4, 6, 7, 8, 9, 10, 11], y=slice(None, None, -1))
    once = conform(with_orbits(shuffled, np.array([c.upper() for c in orbit_codes(shuffled)], object)))
    assert once.changes
    again = conform(once.ds)
    assert again.changes == () and again.stored.is_identity
    xr.testing.assert_identical(again.ds, once.ds)


# --- strings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype",
    [
        object,
        pytest.param(
            STRING_DTYPE() if STRING_DTYPE else None,
            marks=pytest.mark.skipif(STRING_DTYPE is None, reason=f"numpy {np.__version__} has no StringDType"),
        ),
        "S",
    ],
    ids=["object", "StringDType", "bytes"],
)
def test_string_coordinates_become_numpy_unicode(cube, dtype):
    orbits = np.array([{"a": "ascending", "d": "descending"}[c] for c in orbit_codes(cube)]).astype(dtype)
    pairs = cube[schema.PAIR_DIM].values.astype(dtype)
    ds = with_orbits(cube, orbits).assign_coords({schema.PAIR_DIM: pairs})
    conformed = conform(ds).ds
    assert conformed[schema.ORBIT_COORD].dtype == np.dtype("<U1")
    np.testing.assert_array_equal(conformed[schema.ORBIT_COORD].values, orbit_codes(cube))
    assert conformed[schema.PAIR_DIM].dtype.kind == "U"
    np.testing.assert_array_equal(conformed[schema.PAIR_DIM].values, cube[schema.PAIR_DIM].values)


# --- orbits --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names",
    [("a", "d"), ("A", "D"), (" a ", "D\n"), ("ascending", "descending"), ("Ascending", "DESCENDING"), ("asc", "desc")],
)
def test_orbit_labels_of_any_spelling_become_codes(cube, names):
    labels = np.array([names[0] if c == "a" else names[1] for c in orbit_codes(cube)], object)
    conformed = conform(with_orbits(cube, labels)).ds
    np.testing.assert_array_equal(orbit_codes(conformed), orbit_codes(cube))
    assert orbit_problem(conformed) is None
    assert resolve_orbit(conformed, "auto") == "descending"


def test_a_scalar_orbit_applies_to_every_timestep(cube):
    descending = cube.isel(timestep=np.flatnonzero(orbit_codes(cube) == "d"))
    ds = descending.drop_vars(schema.ORBIT_COORD).assign_coords({schema.ORBIT_COORD: "descending"})
    conformed = conform(ds)
    assert list(orbit_codes(conformed.ds)) == ["d"] * 6
    assert any("one value for every timestep" in change for change in conformed.changes)
    assert resolve_orbit(conformed.ds, "auto") == "descending"


def _orbit_error(ds, orbit="auto") -> str:
    with pytest.raises(CubeError) as info:
        resolve_orbit(ds, orbit)
    message = str(info.value)
    assert "--orbit=any" in message  # the way out, always offered
    return message


def test_a_cube_without_orbits_needs_orbit_any(cube):
    conformed = conform(cube.drop_vars(schema.ORBIT_COORD)).ds
    assert list(orbit_codes(conformed)) == [""] * 12
    assert "the cube has no 'sat:orbit_state' coordinate" in _orbit_error(conformed)
    assert "needs the orbit of every acquisition" in _orbit_error(conformed, "descending")
    assert resolve_orbit(conformed, "any") == "any"
    chosen = select_acquisitions(conformed, HOKKAIDO, 2, "any")
    times = conformed[schema.TIME_DIM].values
    # Every acquisition, whatever its pass: the two nearest on each side, one of each orbit here.
    assert [str(times[i])[:19] for i in chosen.before] == ["2018-08-24T20:40:12", "2018-09-01T08:26:47"]
    assert [str(times[i])[:19] for i in chosen.after] == ["2018-09-05T20:40:12", "2018-09-13T08:26:47"]


def test_partly_empty_orbits_name_the_timesteps(cube):
    labels = orbit_codes(cube).astype(object)
    labels[[2, 7]] = ["", None]
    conformed = conform(with_orbits(cube, labels)).ds
    times = cube[schema.TIME_DIM].values
    message = _orbit_error(conformed)
    assert f"is empty for timesteps {str(times[2])[:19]}, {str(times[7])[:19]}" in message
    assert resolve_orbit(conformed, "any") == "any"


def test_values_that_are_not_orbits_are_named(cube):
    labels = np.where(orbit_codes(cube) == "a", "north", "d")
    message = _orbit_error(conform(with_orbits(cube, labels)).ds)
    assert "holds ['north'], which are not orbits" in message


def test_an_orbit_list_of_another_length_names_the_timesteps(cube):
    ds = cube.drop_vars(schema.ORBIT_COORD).assign({schema.ORBIT_COORD: ("orbit_index", np.array(["d"] * 11))})
    message = _orbit_error(conform(ds).ds)
    assert "has dims ('orbit_index',) and 11 values for 12 timesteps (2018-07-31T20:40:12" in message


# --- times ---------------------------------------------------------------------------------------


def test_datetime64_of_any_unit_becomes_nanoseconds(cube):
    ds = cube.assign_coords(timestep=cube[schema.TIME_DIM].values.astype("datetime64[s]"))
    conformed = conform(ds).ds
    assert conformed[schema.TIME_DIM].dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(conformed[schema.TIME_DIM].values, cube[schema.TIME_DIM].values)


@pytest.mark.parametrize(
    "units, scale",
    [
        ("seconds since 2018-01-01T00:00:00Z", 1),
        ("seconds since 2018-01-01 09:00:00+09:00", 1),
        ("hours since 2018-01-01", 3600),
        ("days since 2018-01-01T00:00:00Z", 86400),
    ],
)
def test_cf_numbers_xarray_left_undecoded_are_decoded(cube, units, scale):
    seconds = (cube[schema.TIME_DIM].values - np.datetime64("2018-01-01", "ns")) / np.timedelta64(1, "s")
    numbers = seconds / scale if scale != 1 else seconds.astype(np.int64)
    ds = cube.assign_coords(timestep=(schema.TIME_DIM, numbers, {"units": units, "calendar": "standard"}))
    conformed = conform(ds).ds
    np.testing.assert_array_equal(conformed[schema.TIME_DIM].values, cube[schema.TIME_DIM].values)
    assert "units" not in conformed[schema.TIME_DIM].attrs


def test_iso_strings_and_zone_aware_times_become_naive_utc(cube):
    times = pd.DatetimeIndex(cube[schema.TIME_DIM].values)
    text = np.array([t.isoformat() + "Z" for t in times], object)
    np.testing.assert_array_equal(conform(cube.assign_coords(timestep=text)).ds[schema.TIME_DIM].values, times)
    tokyo = np.array(times.tz_localize("UTC").tz_convert("Asia/Tokyo").to_pydatetime(), object)
    np.testing.assert_array_equal(conform(cube.assign_coords(timestep=tokyo)).ds[schema.TIME_DIM].values, times)


def test_numbers_without_units_are_refused(cube):
    with pytest.raises(CubeError, match="int64 numbers without CF units"):
        conform(cube.assign_coords(timestep=np.arange(cube.sizes["timestep"])))


def test_a_missing_time_is_refused_with_its_position(cube):
    times = cube[schema.TIME_DIM].values.copy()
    times[4] = np.datetime64("NaT")
    with pytest.raises(CubeError, match=r"no time at positions \[4\]"):
        conform(cube.assign_coords(timestep=times))


def test_two_timesteps_with_one_time_are_refused(cube):
    times = cube[schema.TIME_DIM].values.copy()
    times[5] = times[2]
    with pytest.raises(CubeError, match=rf"two timesteps share one time \({str(times[2])[:19]}\)"):
        conform(cube.assign_coords(timestep=times))


def test_unsorted_timesteps_are_sorted_with_their_data(cube):
    order = np.array([7, 0, 11, 3, 1, 9, 2, 4, 10, 5, 6, 8])
    conformed = conform(cube.isel(timestep=order))
    np.testing.assert_array_equal(conformed.ds[schema.TIME_DIM].values, cube[schema.TIME_DIM].values)
    np.testing.assert_array_equal(orbit_codes(conformed.ds), orbit_codes(cube))
    assert conformed.stored.timestep == tuple(int(i) for i in np.argsort(order))
    np.testing.assert_array_equal(conformed.ds["vv"].isel(timestep=5).values, cube["vv"].isel(timestep=5).values)


# --- grid ----------------------------------------------------------------------------------------


def test_y_ascending_is_flipped_north_up_with_its_data(cube):
    conformed = conform(cube.isel(y=slice(None, None, -1)))
    assert conformed.stored.flipped == ("y",)
    xr.testing.assert_identical(conformed.ds["dem"], cube["dem"])
    np.testing.assert_array_equal(conformed.ds["vv"].isel(timestep=2).values, cube["vv"].isel(timestep=2).values)


def test_float32_coordinates_are_refitted_to_the_float64_grid(cube):
    # Shift to a UTM northing where float32 rounds to half a metre off the 10 m grid's centres.
    y = cube.y.values + 123.4
    ds = cube.assign_coords(x=cube.x.values.astype(np.float32), y=y.astype(np.float32))
    assert np.abs(ds.y.values.astype(np.float64) - y).max() > 0.01
    conformed = conform(ds).ds
    assert conformed.x.dtype == conformed.y.dtype == np.float64
    # A regular grid again, within float32's rounding of the true one (its offset is lost in storage).
    np.testing.assert_allclose(np.diff(conformed.y.values), -10.0, rtol=0, atol=1e-2)
    np.testing.assert_allclose(conformed.y.values, y, rtol=0, atol=0.25)
    np.testing.assert_allclose(conformed.x.values, cube.x.values, rtol=0, atol=1e-6)


def test_an_irregular_grid_is_refused(cube):
    x = cube.x.values.copy()
    x[50:] += 4.0
    with pytest.raises(CubeError, match="coordinate 'x' is not a regular grid"):
        conform(cube.assign_coords(x=x))


def test_a_grid_out_of_order_is_refused(cube):
    with pytest.raises(CubeError, match="coordinate 'y' is not monotonic"):
        conform(cube.isel(y=np.r_[80:160, 0:80]))


def test_common_other_names_are_renamed(cube):
    ds = cube.rename({"timestep": "time", "vv": "VV", "vh": "VH"})
    conformed = conform(ds)
    assert {"vv", "vh"} <= set(conformed.ds.data_vars) and "timestep" in conformed.ds.dims
    assert conformed.changes[0] == "renamed 'time' -> 'timestep', 'VV' -> 'vv', 'VH' -> 'vh'"
