"""Acquisition and pair selection, channel configurations, and the channel arithmetic."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

from tf_landslide.cube import schema
from tf_landslide.cube.channels import (
    ALL_CHANNELS,
    COHERENCE_CHANNELS,
    DEM_CHANNELS,
    SAR_CHANNELS,
    Acquisitions,
    ChannelPlan,
    log_mean,
    pair_acquisitions,
    resolve_channel_config,
    resolve_orbit,
    select_acquisitions,
    select_pairs,
    study_configs,
)
from tf_landslide.cube.events import PRESETS, Event, resolve_event
from tf_landslide.cube.open import CubeError, open_cube, orbit_codes
from tf_landslide.cube.planes import DatasetPlanes

HOKKAIDO = PRESETS["hokkaido"]
TRIGGER = np.datetime64("2018-09-05T18:07:59", "ns")
# The tiny cube: 12-day revisits per orbit, descending at 20:40:12, ascending at 08:26:47 UTC.
DESC = [
    "2018-07-31T20:40:12",
    "2018-08-12T20:40:12",
    "2018-08-24T20:40:12",
    "2018-09-05T20:40:12",
    "2018-09-17T20:40:12",
    "2018-09-29T20:40:12",
]
ASC = [
    "2018-08-08T08:26:47",
    "2018-08-20T08:26:47",
    "2018-09-01T08:26:47",
    "2018-09-13T08:26:47",
    "2018-09-25T08:26:47",
    "2018-10-07T08:26:47",
]


@pytest.fixture(scope="module")
def cube(tiny_cube):
    return open_cube(tiny_cube)


def times_of(ds, indices):
    return [str(pd.Timestamp(ds[schema.TIME_DIM].values[i]).isoformat()) for i in indices]


def event_at(text):
    t = pd.Timestamp(text)
    return Event("custom", t, t)


# --- log_mean ---------------------------------------------------------------------------------


def by_hand_log_mean(planes):
    stack = np.stack([np.asarray(p, np.float64) for p in planes])
    logs = np.full(stack.shape, np.nan)
    valid = np.isfinite(stack) & (stack > 0)
    logs[valid] = np.log(stack[valid])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-missing pixels: mean of empty slice
        return np.nanmean(logs, axis=0)


def test_log_mean_matches_numpy_with_missing_values():
    a = np.array([[1.0, np.e, np.nan, 0.0], [0.5, 2.0, -1.0, 4.0]], np.float32)
    b = np.array([[np.e**2, np.nan, 3.0, 2.0], [0.0, 8.0, np.nan, -2.0]], np.float32)
    c = np.array([[np.e**3, 1.0, 0.0, 0.0], [np.nan, 0.25, 0.0, 16.0]], np.float32)
    result = log_mean([a, b, c])
    assert result.dtype == np.float32 and result.shape == a.shape
    np.testing.assert_allclose(result, by_hand_log_mean([a, b, c]), rtol=1e-6, atol=1e-6)
    # Spelled out: zeros, negatives and NaN are missing, never log(0) = -inf.
    assert result[0, 0] == pytest.approx(5 / 3, abs=1e-6)  # mean of log 1, log e^2, log e^3
    assert result[0, 1] == pytest.approx(0.5, abs=1e-6)  # log e and log 1; NaN skipped
    assert result[0, 2] == pytest.approx(np.log(3.0), abs=1e-6)  # only the 3 is valid
    assert result[0, 3] == pytest.approx(np.log(2.0), abs=1e-6)  # zeros skipped, not -inf
    assert result[1, 2] != result[1, 2]  # -1, NaN, 0: missing in every plane -> NaN
    assert np.isfinite(result[~np.isnan(result)]).all()


def test_log_mean_missing_values_first_seen_in_a_later_plane_and_none_at_all():
    rng = np.random.default_rng(3)
    planes = [rng.lognormal(-3, 1, (4, 5)).astype(np.float32) for _ in range(4)]
    complete = log_mean(planes)  # no value missing: divided by the plane count
    np.testing.assert_allclose(complete, by_hand_log_mean(planes), rtol=1e-6)
    planes[2][1, 3], planes[3][1, 3], planes[3][0, 0] = np.nan, 0.0, -1.0  # missing only from plane 3 on
    holed = log_mean(planes)
    np.testing.assert_allclose(holed, by_hand_log_mean(planes), rtol=1e-6)
    assert holed[1, 3] == pytest.approx(np.log(planes[0][1, 3] * planes[1][1, 3]) / 2, rel=1e-6)
    untouched = np.ones((4, 5), bool)
    untouched[1, 3] = untouched[0, 0] = False
    np.testing.assert_array_equal(holed[untouched], complete[untouched])  # same bits either way


def test_log_mean_pixel_missing_everywhere_is_nan():
    planes = [np.array([np.nan, 1.0]), np.array([0.0, 1.0]), np.array([-3.0, 1.0])]
    result = log_mean(planes)
    assert np.isnan(result[0]) and result[1] == 0.0
    assert result.dtype == np.float32


def test_log_mean_single_plane_and_float64_input():
    plane = np.array([[10.0, 0.1], [0.0, np.nan]])
    result = log_mean(iter([plane]))  # a generator, as read_band streams planes
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, [[np.log(10.0), np.log(0.1)], [np.nan, np.nan]], rtol=1e-6)


def test_log_mean_does_not_modify_its_inputs():
    a = np.array([1.0, 0.0, np.nan], np.float32)
    b = np.array([2.0, 3.0, 4.0], np.float32)
    copies = a.copy(), b.copy()
    log_mean([a, b])
    np.testing.assert_array_equal(a, copies[0])
    np.testing.assert_array_equal(b, copies[1])


def test_log_mean_is_bit_identical_to_a_masked_log_and_fills_out():
    """The vectorised kernel gives the exact bits of ``log(where=valid)``, NaN included."""
    rng = np.random.default_rng(3)
    planes = []
    for _ in range(4):
        plane = rng.lognormal(-2, 3, (37, 131)).astype(np.float32)
        draw = rng.random(plane.shape)
        plane[draw < 0.2] = np.nan
        plane[(draw >= 0.2) & (draw < 0.3)] = 0.0
        plane[(draw >= 0.3) & (draw < 0.35)] = -1.0
        plane[(draw >= 0.35) & (draw < 0.4)] = np.float32(1e-42)  # subnormal
        planes.append(plane)
    total = count = None
    for plane in planes:
        valid = plane > 0
        logs = np.log(plane, out=np.zeros_like(plane), where=valid)
        total, count = (logs, valid.astype(np.uint16)) if total is None else (total + logs, count + valid)
    expected = np.divide(total, count, out=np.full_like(total, np.nan), where=count > 0)
    out = np.empty_like(planes[0])
    assert log_mean(planes, out=out) is out
    assert np.isnan(expected).any()
    np.testing.assert_array_equal(out.view(np.uint32), expected.view(np.uint32))


def test_log_mean_needs_a_plane():
    with pytest.raises(ValueError, match="at least one plane"):
        log_mean([])


def test_log_mean_refuses_what_its_compiled_loop_would_read_or_write_past():
    plane = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"differ in shape: \(3, 4\) and \(4, 3\)"):
        log_mean([plane, plane.T])
    with pytest.raises(ValueError, match=r"out as float32 \(3, 4\), got float32 \(3, 3\)"):
        log_mean([plane], out=np.empty((3, 3), np.float32))
    with pytest.raises(ValueError, match="1-D or 2-D planes"):
        log_mean([np.ones((2, 3, 4))])
    with pytest.raises(ValueError, match="at most 255 planes"):
        log_mean(plane for _ in range(256))


# --- orbits and acquisitions ------------------------------------------------------------------


def test_tiny_cube_has_a_pass_after_the_trigger_on_the_event_day(cube):
    times = [pd.Timestamp(t).isoformat() for t in cube[schema.TIME_DIM].values]
    assert sorted(times) == sorted(DESC + ASC)
    assert "2018-09-05T20:40:12" in times  # same calendar day as the trigger, 2.5 hours after it


@pytest.mark.parametrize(
    "k, before, after",
    [
        (1, DESC[2:3], DESC[3:4]),
        (2, DESC[1:3], DESC[3:5]),
        (3, DESC[0:3], DESC[3:6]),
    ],
)
def test_descending_selection_is_by_utc_time(cube, k, before, after):
    chosen = select_acquisitions(cube, HOKKAIDO, k, "descending")
    assert chosen.orbit == "descending"
    # The evening pass of 5 September is after the 18:07:59 trigger: the first 'after' one.
    assert times_of(cube, chosen.before) == before
    assert times_of(cube, chosen.after) == after
    assert all(orbit_codes(cube)[i] == "d" for i in chosen.before + chosen.after)


def test_ascending_selection(cube):
    chosen = select_acquisitions(cube, HOKKAIDO, 2, "ascending")
    assert times_of(cube, chosen.before) == ASC[1:3]
    assert times_of(cube, chosen.after) == ASC[3:5]


def test_both_orbits_selection_mixes_orbits(cube):
    chosen = select_acquisitions(cube, HOKKAIDO, 2, "both")
    assert times_of(cube, chosen.before) == ["2018-08-24T20:40:12", "2018-09-01T08:26:47"]
    assert times_of(cube, chosen.after) == ["2018-09-05T20:40:12", "2018-09-13T08:26:47"]


def test_event_after_the_evening_pass_makes_it_before(cube):
    event = resolve_event(None, "2018-09-06T06:00:00+09:00", None, "/data/hokkaido_japan.zarr", cube.attrs)
    assert event.start == pd.Timestamp("2018-09-05T21:00:00")
    chosen = select_acquisitions(cube, event, 1, "descending")
    assert times_of(cube, chosen.before) == ["2018-09-05T20:40:12"]
    assert times_of(cube, chosen.after) == ["2018-09-17T20:40:12"]


def test_acquisition_at_the_trigger_is_neither_before_nor_after(cube):
    at_pass = event_at("2018-09-05T20:40:12")
    chosen = select_acquisitions(cube, at_pass, 2, "descending")
    assert times_of(cube, chosen.before) == DESC[1:3]
    assert times_of(cube, chosen.after) == DESC[4:6]
    with pytest.raises(CubeError, match="strictly after the event end"):
        select_acquisitions(cube, at_pass, 3, "descending")  # only two passes remain after it


def test_event_window_excludes_passes_inside_it(cube):
    window = Event("window", pd.Timestamp("2018-08-20"), pd.Timestamp("2018-09-10"))
    chosen = select_acquisitions(cube, window, 1, "both")
    assert times_of(cube, chosen.before) == ["2018-08-12T20:40:12"]
    assert times_of(cube, chosen.after) == ["2018-09-13T08:26:47"]


def test_selection_is_chronological_in_a_shuffled_cube(cube):
    order = np.random.default_rng(3).permutation(cube.sizes[schema.TIME_DIM])
    shuffled = cube.isel({schema.TIME_DIM: order})
    chosen = select_acquisitions(shuffled, HOKKAIDO, 3, "descending")
    assert times_of(shuffled, chosen.before) == DESC[0:3]
    assert times_of(shuffled, chosen.after) == DESC[3:6]


def test_too_many_timesteps_lists_the_available_dates(cube):
    with pytest.raises(CubeError) as info:
        select_acquisitions(cube, HOKKAIDO, 4, "descending")
    message = str(info.value)
    assert "4 descending acquisitions needed strictly before the event start" in message
    assert "the cube has 3: " + ", ".join(DESC[0:3]) in message
    assert "*_t3" in message
    assert ASC[0] in message  # all acquisitions are listed too


def test_too_many_timesteps_after_the_event(cube):
    with pytest.raises(CubeError, match="strictly after the event end") as info:
        select_acquisitions(cube, event_at("2018-09-20T00:00:00"), 2, "descending")
    assert "the cube has 1: 2018-09-29T20:40:12" in str(info.value)


@pytest.fixture(scope="module")
def ascending_only(cube):
    return cube.isel({schema.TIME_DIM: np.flatnonzero(orbit_codes(cube) == "a")})


def test_orbit_the_cube_lacks_lists_what_it_holds(ascending_only):
    with pytest.raises(CubeError, match="the cube has no descending acquisitions") as info:
        select_acquisitions(ascending_only, HOKKAIDO, 1, "descending")
    message = str(info.value)
    assert "'a': [" in message and "'d'" not in message
    for t in ASC:
        assert t in message
    assert "--orbit" in message


def test_resolve_orbit(cube, ascending_only):
    assert resolve_orbit(cube, "auto") == "descending"
    assert resolve_orbit(ascending_only, "auto") == "ascending"
    descending_only = cube.isel({schema.TIME_DIM: np.flatnonzero(orbit_codes(cube) == "d")})
    assert resolve_orbit(descending_only, "auto") == "descending"
    assert resolve_orbit(ascending_only, "descending") == "descending"  # explicit choices pass through
    assert resolve_orbit(cube, "both") == "both"
    with pytest.raises(CubeError, match="choose one of"):
        resolve_orbit(cube, "left")


def test_auto_orbit_on_an_ascending_only_cube_selects_ascending(ascending_only):
    chosen = select_acquisitions(ascending_only, HOKKAIDO, 2, resolve_orbit(ascending_only, "auto"))
    assert times_of(ascending_only, chosen.before) == ASC[1:3]
    assert times_of(ascending_only, chosen.after) == ASC[3:5]


def test_unknown_acquisition_rule(cube):
    with pytest.raises(CubeError, match="--acquisition_rule='nearest'"):
        select_acquisitions(cube, HOKKAIDO, 1, "descending", rule="nearest")


@pytest.mark.parametrize("rule", ["paper", "authors"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_before_and_after_never_share_an_acquisition(cube, rule, k):
    chosen = select_acquisitions(cube, HOKKAIDO, k, "both", rule=rule)
    assert len(chosen.before) == len(chosen.after) == k
    assert not set(chosen.before) & set(chosen.after)
    times = cube[schema.TIME_DIM].values
    assert times[list(chosen.before)].max() < times[list(chosen.after)].min()


def test_authors_rule_never_averages_one_pass_on_both_sides(cube):
    # Descending passes of 24 Aug, 5 Sep (20:40, after the trigger), 17 Sep and 29 Sep: the
    # authors' day windows put 5 Sep in both; with exactly k 'before' passes it is not trimmed.
    keep = [i for i, t in enumerate(times_of(cube, range(cube.sizes[schema.TIME_DIM]))) if t in DESC[2:]]
    ds = cube.isel({schema.TIME_DIM: keep})
    with pytest.raises(CubeError, match="2018-09-05T20:40:12 both before and after.*--event_end"):
        select_acquisitions(ds, HOKKAIDO, 2, "descending", rule="authors")


def test_zero_timesteps_selects_nothing(cube):
    chosen = select_acquisitions(cube, HOKKAIDO, 0, "descending")
    assert chosen.before == () and chosen.after == ()


# --- InSAR pairs ------------------------------------------------------------------------------


def pair_label(ds, index):
    return str(ds[schema.PAIR_DIM].values[index])


@pytest.mark.parametrize(
    "orbit, pre, co",
    [
        ("descending", "20180812_20180824", "20180824_20180905"),
        ("ascending", "20180820_20180901", "20180901_20180913"),
    ],
)
def test_select_pairs_spans_the_trigger(cube, orbit, pre, co):
    chosen = select_pairs(cube, HOKKAIDO, orbit)
    assert set(chosen) == set(COHERENCE_CHANNELS)
    pairs = pair_acquisitions(cube)
    first, second, _ = pairs[chosen["coherence_coevent"]]
    assert first < TRIGGER < second
    assert pairs[chosen["coherence_preevent"]][1] < TRIGGER
    assert pair_label(cube, chosen["coherence_coevent"]) == co
    assert pair_label(cube, chosen["coherence_preevent"]) == pre


def test_coevent_pair_is_the_shortest_spanning_one(cube):
    # Relabel the 12-day pair 12 Aug -> 24 Aug as a 24-day pair 12 Aug -> 5 Sep: it spans the event too.
    labels = np.asarray(cube[schema.PAIR_DIM].values).astype(str).tolist()
    labels[labels.index("20180812_20180824")] = "20180812_20180905"
    ds = cube.assign_coords({schema.PAIR_DIM: labels})
    chosen = select_pairs(ds, HOKKAIDO, "descending")
    assert pair_label(ds, chosen["coherence_coevent"]) == "20180824_20180905"
    assert pair_label(ds, chosen["coherence_preevent"]) == "20180731_20180812"


def test_both_orbits_pairs_span_the_trigger(cube):
    chosen = select_pairs(cube, HOKKAIDO, "both")
    pairs = pair_acquisitions(cube)
    first, second, _ = pairs[chosen["coherence_coevent"]]
    assert first < TRIGGER < second and second - first == np.timedelta64(12, "D")
    # The last pair entirely before the trigger, across both orbits: 20 Aug -> 1 Sep (ascending).
    assert pair_label(cube, chosen["coherence_preevent"]) == "20180820_20180901"


def test_day_labels_take_the_exact_acquisition_time(cube):
    pairs = dict(zip(np.asarray(cube[schema.PAIR_DIM].values).astype(str), pair_acquisitions(cube), strict=True))
    first, second, orbit = pairs["20180824_20180905"]
    # Not midnight of 5 September (before the trigger) but the 20:40:12 pass (after it).
    assert first == np.datetime64("2018-08-24T20:40:12", "ns")
    assert second == np.datetime64("2018-09-05T20:40:12", "ns")
    assert orbit == "d"
    assert pairs["20180901_20180913"] == (
        np.datetime64("2018-09-01T08:26:47", "ns"),
        np.datetime64("2018-09-13T08:26:47", "ns"),
        "a",
    )


def test_pair_bounds_coordinates_are_used_when_present(cube):
    pairs = pair_acquisitions(cube)
    relabelled = cube.assign_coords(
        timepair=[f"pair{i}" for i in range(len(pairs))],
        timepair_start=(schema.PAIR_DIM, np.array([p[0] for p in pairs])),
        timepair_end=(schema.PAIR_DIM, np.array([p[1] for p in pairs])),
    )
    assert pair_acquisitions(relabelled) == pairs
    assert select_pairs(relabelled, HOKKAIDO, "descending") == select_pairs(cube, HOKKAIDO, "descending")


def test_pairs_on_a_day_with_two_acquisitions(cube):
    # Move the ascending pass of 1 September to the morning of 5 September (before the trigger):
    # that day then holds an ascending (08:26, before) and a descending pass (20:40, after).
    times = cube[schema.TIME_DIM].values.copy()
    times[times == np.datetime64("2018-09-01T08:26:47", "ns")] = np.datetime64("2018-09-05T08:26:47", "ns")
    labels = [str(label).replace("20180901", "20180905") for label in cube[schema.PAIR_DIM].values]
    ds = cube.assign_coords({schema.TIME_DIM: times, schema.PAIR_DIM: labels})
    chosen = select_pairs(ds, HOKKAIDO, "descending")
    assert pair_label(ds, chosen["coherence_coevent"]) == "20180824_20180905"
    assert pair_label(ds, chosen["coherence_preevent"]) == "20180812_20180824"


def test_pairs_need_the_timepair_dimension(cube):
    with pytest.raises(CubeError, match="'timepair' dimension"):
        pair_acquisitions(cube.drop_dims(schema.PAIR_DIM))


def test_unreadable_pair_label_is_an_error(cube):
    labels = np.asarray(cube[schema.PAIR_DIM].values).astype(str).tolist()
    labels[3] = "pair-three"
    with pytest.raises(CubeError, match="'pair-three'"):
        pair_acquisitions(cube.assign_coords({schema.PAIR_DIM: labels}))


def test_no_pair_spanning_the_event_is_an_error(cube):
    with pytest.raises(CubeError, match="spanning it") as info:
        select_pairs(cube, event_at("2019-06-01T00:00:00"), "descending")
    assert "20180731_20180812" in str(info.value)


# --- channel bands ----------------------------------------------------------------------------


def by_hand_band(ds, channel, acquisitions, pairs, rows):
    if channel in SAR_CHANNELS:
        pol, side = channel.split("_")
        indices = acquisitions.before if side == "before" else acquisitions.after
        planes = [ds[pol].values[t, rows] for t in indices]
        return by_hand_log_mean(planes)
    if channel in COHERENCE_CHANNELS:
        return ds["coherence"].values[pairs[channel], rows]
    return ds[channel].values[rows]


@pytest.mark.parametrize("orbit, k", [("descending", 2), ("ascending", 3), ("both", 1)])
def test_read_band_matches_numpy_for_every_channel(cube, orbit, k):
    acquisitions = select_acquisitions(cube, HOKKAIDO, k, orbit)
    pairs = select_pairs(cube, HOKKAIDO, orbit)
    plan = ChannelPlan(ALL_CHANNELS, acquisitions, tuple(pairs.items()))
    rows = slice(40, 104)
    band = plan.read_band(cube, rows)
    assert band.dtype == np.float32
    assert band.shape == (len(ALL_CHANNELS), 64, cube.sizes["x"])
    for c, channel in enumerate(ALL_CHANNELS):
        expected = by_hand_band(cube, channel, acquisitions, pairs, rows)
        np.testing.assert_allclose(band[c], expected, rtol=2e-6, atol=2e-6, equal_nan=True, err_msg=channel)
        assert np.isfinite(band[c]).mean() > 0.5, channel
    # Channels differ from one another (a plan reading one plane for all would pass the shape checks).
    vv_before, vv_after = band[ALL_CHANNELS.index("vv_before")], band[ALL_CHANNELS.index("vv_after")]
    assert not np.allclose(vv_before, vv_after, equal_nan=True)


def test_read_band_keeps_missing_pixels_missing(cube):
    acquisitions = select_acquisitions(cube, HOKKAIDO, 2, "descending")
    band = ChannelPlan(SAR_CHANNELS, acquisitions).read_band(cube, slice(0, 64))
    assert not np.isinf(band).any()
    # The descending swath ends inside the scene: its western strip has no data at all.
    assert np.isnan(band[:, :, :5]).all()
    assert np.isfinite(band[:, :, 20:]).mean() > 0.8


def test_read_band_channel_order_follows_the_plan(cube):
    acquisitions = select_acquisitions(cube, HOKKAIDO, 1, "descending")
    rows = slice(64, 96)
    forward = ChannelPlan(("dem", "vh_after"), acquisitions).read_band(cube, rows)
    backward = ChannelPlan(("vh_after", "dem"), acquisitions).read_band(cube, rows)
    np.testing.assert_array_equal(forward[::-1], backward)
    np.testing.assert_array_equal(forward[0], cube["dem"].values[rows])


def test_read_band_reads_an_xarray_window_whole_and_empty_windows_empty(cube):
    """Only chunk readers tile a window: each xarray read costs about a millisecond."""
    windows = []

    class Counting(DatasetPlanes):
        def plane(self, variable, index, rows, cols):
            windows.append(cols)
            return super().plane(variable, index, rows, cols)

    plan = ChannelPlan(("dem",), Acquisitions("descending", (), ()))
    band = plan.read_band(Counting(cube), slice(0, 64), slice(100, 190))
    assert windows == [slice(100, 190)]
    np.testing.assert_array_equal(band[0], cube["dem"].values[:64, 100:190])
    assert plan.read_band(cube, slice(10, 5)).shape == (1, 0, cube.sizes["x"])


def test_read_band_refuses_an_out_array_it_cannot_fill_in_place(cube):
    plan = ChannelPlan(("dem", "dem_slope_radians"), Acquisitions("descending", (), ()))
    rows, cols = slice(0, 16), slice(8, 40)
    for bad in (
        np.empty((2, 16, 33), np.float32),  # shape
        np.empty((2, 16, 32), np.float64),  # dtype
        np.empty((2, 16, 64), np.float32)[:, :, ::2],  # not contiguous: a copy would be filled
    ):
        with pytest.raises(ValueError, match="C-contiguous float32"):
            plan.read_band(cube, rows, cols, out=bad)


def test_plan_variables_and_pickling():
    plan = ChannelPlan(
        ("vv_before", "vv_after", "dem", "coherence_coevent"),
        Acquisitions("descending", (4,), (6,)),
        (("coherence_coevent", 4),),
    )
    assert plan.variables() == ["vv", "dem", "coherence"]
    assert pickle.loads(pickle.dumps(plan)) == plan


# --- configurations ---------------------------------------------------------------------------


def test_study_configs_are_the_papers_seventeen():
    configs = study_configs()
    expected = {f"{prefix}_t{k}" for prefix in ("vv", "vh", "vv_vh", "vv_vh_dem") for k in range(1, 5)} | {"dem"}
    assert set(configs) == expected and len(configs) == 17
    counts = {"vv": 2, "vh": 2, "vv_vh": 4, "vv_vh_dem": 8}
    for name, config in configs.items():
        assert config.name == name
        if name == "dem":
            assert config.channels == DEM_CHANNELS and config.timesteps == 0
            assert not config.needs_sar
            continue
        prefix, k = name.rsplit("_t", 1)
        assert len(config.channels) == counts[prefix], name
        assert config.timesteps == int(k)
        assert config.needs_sar and not config.needs_insar
    assert configs["vv_t3"].channels == ("vv_before", "vv_after")
    assert configs["vh_t1"].channels == ("vh_before", "vh_after")
    assert configs["vv_vh_dem_t2"].channels == SAR_CHANNELS + DEM_CHANNELS


def test_resolve_preset_and_new_config():
    assert resolve_channel_config("vv_vh_t4") == study_configs()["vv_vh_t4"]
    assert resolve_channel_config("vv_vh_t4", timesteps=4) == study_configs()["vv_vh_t4"]
    custom = resolve_channel_config("coh", ("vv_before", "vv_after", "coherence_coevent"), 2)
    assert (custom.name, custom.timesteps, custom.needs_sar, custom.needs_insar) == ("coh", 2, True, True)
    assert resolve_channel_config("vvonly", ("vv_before", "vv_after")).timesteps == 1
    assert resolve_channel_config("terrain", ("dem", "dem_aspect")).timesteps == 0


def test_unknown_config_lists_the_study_configurations():
    with pytest.raises(CubeError, match="'vv_t9' is not a study configuration") as info:
        resolve_channel_config("vv_t9")
    assert "'vv_vh_dem_t4'" in str(info.value) and "--channels" in str(info.value)


def test_preset_name_reused_with_other_channels():
    with pytest.raises(CubeError, match="vv_t1 is a study configuration") as info:
        resolve_channel_config("vv_t1", ("vh_before", "vh_after"))
    assert "give a new --config name" in str(info.value)


def test_unknown_channel():
    with pytest.raises(CubeError, match=r"unknown channels \['vv_during'\]") as info:
        resolve_channel_config("mine", ("vv_before", "vv_during"))
    assert "'coherence_coevent'" in str(info.value)  # lists what is available


def test_duplicate_channel():
    with pytest.raises(CubeError, match="lists a channel twice"):
        resolve_channel_config("mine", ("vv_before", "dem", "vv_before"))


def test_timesteps_conflicting_with_a_preset():
    with pytest.raises(CubeError, match="averages 2 timesteps but --timesteps=3"):
        resolve_channel_config("vv_vh_t2", timesteps=3)


def test_sar_channels_need_a_timestep():
    with pytest.raises(CubeError, match="--timesteps must be >= 1"):
        resolve_channel_config("mine", ("vv_before",), 0)


def test_preset_name_with_its_own_channels_keeps_its_timesteps():
    assert resolve_channel_config("vv_t2", ("vv_before", "vv_after")).timesteps == 2
    with pytest.raises(CubeError):
        resolve_channel_config("vv_t2", ("vv_before", "vv_after"), 3)
