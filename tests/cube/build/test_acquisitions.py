"""Passes from items, and the acquisitions chosen around an event (cube/build/acquisitions.py)."""

import datetime as dt

import pandas as pd
import pystac
import pytest

from tf_landslide.cube.build.acquisitions import around_event, check_assets, group_passes
from tf_landslide.cube.schema import CubeError

EVENT = pd.Timestamp("2018-09-05T18:07:59")


def item(item_id: str, when: str, state: str = "descending", track: int | None = 46, assets=("vv", "vh")):
    properties = {"sat:orbit_state": state}
    if track is not None:
        properties["sat:relative_orbit"] = track
    made = pystac.Item(item_id, None, None, dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC), properties)
    for name in assets:
        made.add_asset(name, pystac.Asset(f"/data/{item_id}_{name}.tif"))
    return made


def test_the_slices_of_one_pass_are_one_acquisition_at_the_first_slice_time():
    items = [
        item("b", "2018-09-04T20:40:37"),
        item("a", "2018-09-04T20:40:12"),
        item("c", "2018-09-04T08:26:47", state="ascending", track=141),
        item("d", "2018-09-16T20:40:12"),
    ]
    passes = group_passes(items)
    assert [(p.time.isoformat(), p.orbit, sorted(i.id for i in p.items)) for p in passes] == [
        ("2018-09-04T08:26:47", "a", ["c"]),
        ("2018-09-04T20:40:12", "d", ["a", "b"]),
        ("2018-09-16T20:40:12", "d", ["d"]),
    ]


def test_two_tracks_of_one_orbit_state_stay_separate_acquisitions():
    items = [item("a", "2018-09-04T20:40:12", track=46), item("b", "2018-09-04T20:41:00", track=119)]
    assert len(group_passes(items)) == 2


def test_an_item_without_an_orbit_state_is_refused_by_name():
    bad = item("odd", "2018-09-04T20:40:12", state="left")
    with pytest.raises(CubeError, match="'odd'.*sat:orbit_state='left'"):
        group_passes([bad])


def schedule():
    """Descending passes every 12 days, one on the event day after the trigger; ascending every 12."""
    descending = [
        item(f"d{k}", f"2018-{m}T20:40:12") for k, m in enumerate(["08-11", "08-23", "09-04", "09-16", "09-28"])
    ]
    ascending = [
        item(f"a{k}", f"2018-{m}T08:26:47", "ascending", 141) for k, m in enumerate(["08-13", "08-25", "09-06"])
    ]
    return group_passes(descending + ascending)


def test_the_nearest_passes_on_each_side_per_track_strictly_around_the_window():
    chosen = around_event(schedule(), EVENT, EVENT, 1, "query")
    assert [(a.time.strftime("%m-%d"), a.orbit) for a in chosen] == [
        ("08-25", "a"),
        ("09-04", "d"),
        ("09-06", "a"),
        ("09-16", "d"),
    ]
    window_end = pd.Timestamp("2018-09-10")
    chosen = around_event(schedule(), EVENT, window_end, 1, "query")
    assert [a.time.strftime("%m-%d") for a in chosen if a.time > EVENT] == ["09-16"]  # 09-06 is inside the window


def test_zero_keeps_every_pass_of_the_search_window():
    assert len(around_event(schedule(), EVENT, EVENT, 0, "query")) == 8


def test_only_one_side_covered_is_an_error_naming_the_side_and_what_was_found():
    before_only = [p for p in schedule() if p.time < EVENT]
    with pytest.raises(CubeError, match=r"no acquisition after the event end.*query.*found: 2018-08-11T20:40Z \(d\)"):
        around_event(before_only, EVENT, EVENT, 2, "query")


def test_missing_assets_are_named_with_what_the_items_have():
    passes = group_passes([item("x", "2018-09-04T20:40:12", assets=("VV", "VH"))])
    with pytest.raises(CubeError, match=r"x \(has VH, VV\).*--assets"):
        check_assets(passes, ("vv", "vh"))
