"""From RTC items to acquisitions: one per pass over the area, chosen around the event.

A Sentinel-1 pass is cut into slices of about 170 km along its track, and Planetary Computer's
``sentinel-1-rtc`` holds one item per slice: an area can meet two items of one pass, seconds
apart. They are one acquisition (the same orbit state, relative orbit and day), mosaicked into
one plane at the time of its first slice. Passes of the same orbit state from different tracks
are separate acquisitions: the cube keeps their times and labels their orbit state, and the
export picks an orbit.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np
import pandas as pd

from tf_landslide.cube.build.catalog import item_time
from tf_landslide.cube.schema import ORBIT_CODES, CubeError

ORBIT_STATE = "sat:orbit_state"
RELATIVE_ORBIT = "sat:relative_orbit"


@dataclasses.dataclass(frozen=True)
class Acquisition:
    """One pass: its time (the first slice's, UTC), orbit code ('a'/'d'), track and items."""

    time: pd.Timestamp
    orbit: str
    track: int | None
    items: tuple

    @property
    def key(self) -> str:
        """Sorts as the times do: the group key odc-stac loads each acquisition's items under."""
        return self.time.strftime("%Y-%m-%dT%H:%M:%S.%f")


def group_passes(items: list) -> list[Acquisition]:
    """Items of one pass (orbit state, track, UTC day) as one acquisition, sorted by time."""
    groups: dict[tuple, list] = defaultdict(list)
    for item in items:
        state = item.properties.get(ORBIT_STATE)
        if state not in ORBIT_CODES:
            raise CubeError(
                f"item {item.id!r} has {ORBIT_STATE}={state!r}; the builder needs 'ascending' or 'descending' "
                "on every RTC item to label the cube's acquisitions"
            )
        track = item.properties.get(RELATIVE_ORBIT)
        groups[(state, track, item_time(item).date())].append(item)
    passes = [
        Acquisition(min(item_time(i) for i in group), ORBIT_CODES[state], track, tuple(group))
        for (state, track, _), group in groups.items()
    ]
    return sorted(passes, key=lambda a: a.time)


def around_event(
    passes: list[Acquisition], start: pd.Timestamp, end: pd.Timestamp, per_side: int, query: str
) -> list[Acquisition]:
    """The ``per_side`` latest passes strictly before ``start`` and earliest strictly after ``end``,
    per orbit track (all of them when ``per_side`` is 0); both sides must be covered."""
    by_track: dict[tuple, list[Acquisition]] = defaultdict(list)
    for acquisition in passes:
        by_track[(acquisition.orbit, acquisition.track)].append(acquisition)
    chosen = []
    for track_passes in by_track.values():
        before = [a for a in track_passes if a.time < start]
        after = [a for a in track_passes if a.time > end]
        if per_side:
            before, after = before[-per_side:], after[:per_side]
        chosen += before + after
    if not any(a.time < start for a in chosen) or not any(a.time > end for a in chosen):
        side = "before the event start" if not any(a.time < start for a in chosen) else "after the event end"
        found = ", ".join(f"{a.time:%Y-%m-%dT%H:%M}Z ({a.orbit})" for a in passes) or "none"
        raise CubeError(
            f"no acquisition {side} ({start:%Y-%m-%dT%H:%M:%S}Z .. {end:%Y-%m-%dT%H:%M:%S}Z) for {query}; "
            f"found: {found}. Widen --days, or check the event time"
        )
    return sorted(chosen, key=lambda a: a.time)


def check_assets(acquisitions: list[Acquisition], assets: tuple[str, ...]) -> None:
    """Every item must carry the VV and VH assets; say which items lack which."""
    lacking = [
        f"{item.id} (has {', '.join(sorted(item.assets)) or 'no assets'})"
        for acquisition in acquisitions
        for item in acquisition.items
        if not set(assets) <= set(item.assets)
    ]
    if lacking:
        raise CubeError(
            f"{len(lacking)} item(s) lack the asset(s) {', '.join(assets)}: {'; '.join(lacking[:5])}"
            f"{' ...' if len(lacking) > 5 else ''}. Name the assets with --assets=VV_ASSET,VH_ASSET"
        )


def times_and_orbits(acquisitions: list[Acquisition]) -> tuple[np.ndarray, np.ndarray]:
    """The cube's ``timestep`` (datetime64[ns]) and ``sat:orbit_state`` ('a'/'d') coordinates."""
    times = np.array([a.time.to_datetime64() for a in acquisitions], dtype="datetime64[ns]")
    return times, np.array([a.orbit for a in acquisitions], dtype="<U1")
