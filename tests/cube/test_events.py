"""Choosing the event that splits acquisitions into before and after."""

import pandas as pd
import pytest

from tf_landslide.cube.events import PRESETS, Event, as_datetime64, parse_utc, resolve_event
from tf_landslide.cube.open import CubeError


def resolve(event=None, start=None, end=None, location="/data/cube.zarr", attrs=None):
    return resolve_event(event, start, end, location, attrs or {})


def test_hokkaido_preset_is_the_utc_trigger():
    event = resolve("hokkaido")
    assert event.name == "hokkaido"
    assert event.start == event.end == pd.Timestamp("2018-09-05T18:07:59")
    assert event.start.tzinfo is None  # naive UTC, comparable with the cube's datetime64 times
    assert event.as_dict() == {"name": "hokkaido", "start": "2018-09-05T18:07:59Z", "end": "2018-09-05T18:07:59Z"}


@pytest.mark.parametrize(
    "name, start, end",
    [
        ("kaikoura", "2016-11-13T11:02:56", "2016-11-13T11:02:56"),
        ("puerto_rico", "2017-09-20T10:15:00", "2017-09-22T00:00:00"),
        ("talakmau", "2022-02-25T01:39:00", "2022-02-25T01:39:00"),
    ],
)
def test_other_presets(name, start, end):
    event = resolve(name)
    assert (event.start, event.end) == (pd.Timestamp(start), pd.Timestamp(end))


def test_explicit_window_with_offset_is_converted_to_utc():
    # 03:07:59 in Japan (UTC+9) on 6 September is 18:07:59 UTC on 5 September.
    event = resolve(start="2018-09-06T03:07:59+09:00", end="2018-09-06T05:00:00+09:00")
    assert event.name == "custom"
    assert event.start == pd.Timestamp("2018-09-05T18:07:59")
    assert event.end == pd.Timestamp("2018-09-05T20:00:00")
    assert event.start.tzinfo is None and event.end.tzinfo is None


def test_z_suffix_and_naive_times_are_utc():
    assert resolve(start="2018-09-05T18:07:59Z").start == pd.Timestamp("2018-09-05T18:07:59")
    assert resolve(start="2018-09-05T18:07:59").start == pd.Timestamp("2018-09-05T18:07:59")
    assert parse_utc("2016-11-13T00:02:56-11:00", "event_start") == pd.Timestamp("2016-11-13T11:02:56")


def test_end_defaults_to_start():
    event = resolve(start="2018-09-05T18:07:59Z")
    assert event.end == event.start == pd.Timestamp("2018-09-05T18:07:59")


def test_end_before_start_is_an_error():
    with pytest.raises(CubeError, match="--event_start/--event_end: the event ends .* before it starts") as info:
        resolve(start="2018-09-06T00:00:00Z", end="2018-09-05T00:00:00Z")
    assert "2018-09-05T00:00:00Z" in str(info.value) and "2018-09-06T00:00:00Z" in str(info.value)


def test_not_an_iso_time_is_an_error():
    with pytest.raises(CubeError, match="--event_start='yesterday' is not an ISO time"):
        resolve(start="yesterday")


@pytest.mark.parametrize("start, end", [("2018-09-05T18:07:59Z", None), (None, "2018-09-05T18:07:59Z")])
def test_preset_and_explicit_window_together_is_an_error(start, end):
    with pytest.raises(CubeError, match="either --event or --event_start/--event_end, not both"):
        resolve("hokkaido", start, end)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(CubeError, match="'iburi' is not a preset") as info:
        resolve("iburi")
    message = str(info.value)
    for name in PRESETS:
        assert repr(name) in message
    assert "--event_start" in message


def test_cube_attributes_are_used_without_flags():
    attrs = {"event_start": "2020-01-02T03:04:05Z", "event_end": "2020-01-03T00:00:00+01:00", "event_name": "storm"}
    event = resolve(attrs=attrs, location="/data/hokkaido_japan.zarr")  # attributes win over the file name
    assert event == Event("storm", pd.Timestamp("2020-01-02T03:04:05"), pd.Timestamp("2020-01-02T23:00:00"))


def test_cube_attribute_start_alone_gives_an_instant():
    event = resolve(attrs={"event_start": "2018-09-05T18:07:59Z"})
    assert event.start == event.end == pd.Timestamp("2018-09-05T18:07:59")


def test_flags_win_over_cube_attributes():
    attrs = {"event_start": "2020-01-02T03:04:05Z"}
    assert resolve("kaikoura", attrs=attrs).name == "kaikoura"
    assert resolve(start="2019-01-01T00:00:00Z", attrs=attrs).start == pd.Timestamp("2019-01-01")


def test_cube_attributes_with_end_before_start_are_an_error():
    with pytest.raises(CubeError):
        resolve(attrs={"event_start": "2018-09-06T00:00:00Z", "event_end": "2018-09-01T00:00:00Z"})


@pytest.mark.parametrize(
    "location, preset",
    [
        ("/data/hokkaido_japan.zarr", "hokkaido"),
        ("/downloads/Hokkaido_Japan.zip", "hokkaido"),
        ("gs://bucket/cubes/kaikoura_newzealand.zarr", "kaikoura"),
        ("/data/puerto_rico.zip", "puerto_rico"),
        ("/data/talakmau_indonesia/", "talakmau"),
    ],
)
def test_published_cube_names_map_to_presets(location, preset):
    assert resolve(location=location) == PRESETS[preset]


def test_no_event_information_is_an_error_naming_the_flags():
    with pytest.raises(CubeError) as info:
        resolve(location="/data/my_cube.zarr")
    message = str(info.value)
    assert "--event " in message and "--event_start" in message
    assert "'/data/my_cube.zarr'" in message
    assert "hokkaido" in message


def test_as_datetime64_is_nanoseconds():
    value = as_datetime64(pd.Timestamp("2018-09-05T18:07:59"))
    assert value.dtype.str.endswith("[ns]")
    assert str(value) == "2018-09-05T18:07:59.000000000"
