"""Landslide-triggering events: presets for the published cubes and explicit windows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from tf_landslide.cube.open import CubeError


@dataclasses.dataclass(frozen=True)
class Event:
    """A trigger window in UTC. Pre-event acquisitions are strictly before ``start``,
    post-event ones strictly after ``end``; an instantaneous trigger has start == end."""

    name: str
    start: pd.Timestamp
    end: pd.Timestamp

    def as_dict(self) -> dict:
        return {"name": self.name, "start": _iso(self.start), "end": _iso(self.end)}


def _iso(t: pd.Timestamp) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str, flag: str) -> pd.Timestamp:
    """A UTC time from ISO text ('2018-09-05T18:07:59Z', offsets converted); naive = UTC."""
    try:
        t = pd.Timestamp(text)
    except (ValueError, TypeError) as error:
        raise CubeError(f"--{flag}={text!r} is not an ISO time such as 2018-09-05T18:07:59Z") from error
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    return t


_HOKKAIDO = "2018-09-05T18:07:59"
PRESETS = {
    "hokkaido": Event("hokkaido", pd.Timestamp(_HOKKAIDO), pd.Timestamp(_HOKKAIDO)),
    "kaikoura": Event("kaikoura", pd.Timestamp("2016-11-13T11:02:56"), pd.Timestamp("2016-11-13T11:02:56")),
    # Hurricane Maria's landslides happened over 20-21 September: the window covers both days.
    "puerto_rico": Event("puerto_rico", pd.Timestamp("2017-09-20T10:15:00"), pd.Timestamp("2017-09-22T00:00:00")),
    "talakmau": Event("talakmau", pd.Timestamp("2022-02-25T01:39:00"), pd.Timestamp("2022-02-25T01:39:00")),
}
# Cube file names of the Zenodo record, matched when no event is given.
_CUBE_NAMES = {
    "hokkaido_japan": "hokkaido",
    "kaikoura_newzealand": "kaikoura",
    "puerto_rico": "puerto_rico",
    "talakmau_indonesia": "talakmau",
}


def _checked(event: Event, source: str) -> Event:
    if event.end < event.start:
        raise CubeError(f"{source}: the event ends ({_iso(event.end)}) before it starts ({_iso(event.start)})")
    return event


def resolve_event(
    event: str | None,
    event_start: str | None,
    event_end: str | None,
    cube_location: str,
    cube_attrs: dict,
) -> Event:
    """The event to split acquisitions at, from (in order) the flags, the cube's own
    ``event_start``/``event_end`` attributes, or a published cube's file name."""
    if event and (event_start or event_end):
        raise CubeError("give either --event or --event_start/--event_end, not both")
    if event:
        if event not in PRESETS:
            raise CubeError(
                f"--event={event!r} is not a preset; choose one of {sorted(PRESETS)} "
                "or give --event_start and --event_end"
            )
        return PRESETS[event]
    if event_start or event_end:
        start = parse_utc(event_start or event_end, "event_start")
        end = parse_utc(event_end or event_start, "event_end")
        return _checked(Event("custom", start, end), "--event_start/--event_end")
    if "event_start" in cube_attrs:
        start = parse_utc(cube_attrs["event_start"], "event_start")
        end = parse_utc(cube_attrs.get("event_end", cube_attrs["event_start"]), "event_end")
        return _checked(Event(str(cube_attrs.get("event_name", "cube")), start, end), "the cube's event attributes")
    lowered = cube_location.lower()
    for stem, name in _CUBE_NAMES.items():
        if stem in lowered:
            return PRESETS[name]
    raise CubeError(
        f"no event for cube {cube_location!r}: give --event (one of {sorted(PRESETS)}) "
        "or --event_start and --event_end (UTC ISO times)"
    )


def as_datetime64(t: pd.Timestamp) -> np.datetime64:
    return np.datetime64(t.to_datetime64(), "ns")
