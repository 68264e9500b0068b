"""What determines a synthetic cube: its spec, the named sizes, and its acquisition schedule."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pandas as pd

GENERATOR_VERSION = 1

PASS_TIME_UTC = {"a": "08:26:47", "d": "20:40:12"}
REVISIT_DAYS = 12
HOKKAIDO_TRIGGER = "2018-09-05T18:07:59"


@dataclasses.dataclass(frozen=True)
class SyntheticCubeSpec:
    """Everything that determines a synthetic cube; the same spec gives the same bytes."""

    height: int = 2048
    width: int = 2048
    timesteps_per_orbit: int = 8
    orbits: tuple[str, ...] = ("a", "d")
    seed: int = 0
    landslide_fraction: float = 0.045  # of the scene
    shaking_scale: float = 0.15  # Gaussian radius of landslide density around the epicentre, in scene diagonals
    looks: float = 4.4
    chunk: int = 512
    pixel_size: float = 10.0
    crs: str = "EPSG:32654"
    origin_x: float = 530_000.0
    origin_y: float = 4_740_000.0
    event_time: str = HOKKAIDO_TRIGGER

    def key(self) -> str:
        """A short, stable identity used for cache folder names."""
        fields = dataclasses.asdict(self)
        text = ";".join(f"{k}={fields[k]}" for k in sorted(fields))
        return hashlib.sha256(f"v{GENERATOR_VERSION};{text}".encode()).hexdigest()[:12]


SIZES = {
    # Unit tests: a few 32-pixel chips, enough acquisitions for k = 1..3.
    "tiny": SyntheticCubeSpec(height=160, width=192, timesteps_per_orbit=6, chunk=64),
    # The embedded default: the quick start and the end-to-end tests.
    "embedded": SyntheticCubeSpec(),
    # Benchmarks: the published Hokkaido cube's size (18 timesteps, both orbits here).
    "hokkaido": SyntheticCubeSpec(height=4398, width=5382, timesteps_per_orbit=9),
}


def acquisition_times(spec: SyntheticCubeSpec) -> tuple[np.ndarray, np.ndarray]:
    """Acquisition times (sorted, datetime64[ns]) and their orbit codes.

    Each orbit has a 12-day revisit with half of its passes before the event. The first
    descending pass after the event falls on the event's calendar day, after the trigger,
    so a rule that selects by day instead of by time is caught.
    """
    event = pd.Timestamp(spec.event_time)
    times, orbits = [], []
    n_before = (spec.timesteps_per_orbit + 1) // 2
    for orbit in spec.orbits:
        pass_time = pd.Timestamp(f"{event.date()}T{PASS_TIME_UTC[orbit]}")
        # Hokkaido's schedule: descending passes the evening of the event day (after the
        # trigger), ascending passed four days before and returns eight days after.
        first_after = pass_time if pass_time > event else pass_time + pd.Timedelta(days=8)
        for i in range(spec.timesteps_per_orbit):
            times.append(first_after + pd.Timedelta(days=REVISIT_DAYS * (i - n_before)))
            orbits.append(orbit)
    order = np.argsort(np.array(times, dtype="datetime64[ns]"), kind="stable")
    return np.array(times, dtype="datetime64[ns]")[order], np.array(orbits)[order]


def insar_pairs(times: np.ndarray, orbits: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive same-orbit acquisition pairs, as an ISCE stack processes them."""
    pairs = []
    for orbit in np.unique(orbits):
        idx = np.flatnonzero(orbits == orbit)
        pairs.extend(zip(idx[:-1], idx[1:], strict=False))
    return sorted(pairs, key=lambda p: (times[p[0]], times[p[1]]))
