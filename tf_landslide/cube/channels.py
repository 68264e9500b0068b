"""From cube variables to model channels, exactly as the paper defines them.

* Acquisitions: the k most recent strictly before the event start and the k earliest
  strictly after the event end, in the chosen orbit (selected by UTC time, not by day).
* SAR channels: natural log of linear gamma0, pixel-wise mean over the k acquisitions,
  ignoring missing values (NaN and non-positive power, never log(0) = -inf).
* DEM channels: the cube's variables as they are.
* Coherence channels (the paper's future work): the pair spanning the event and the last
  pair entirely before it.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterable

import numpy as np
import pandas as pd
import xarray as xr

from tf_landslide.cube import schema
from tf_landslide.cube.conform import orbit_problem
from tf_landslide.cube.events import Event, as_datetime64
from tf_landslide.cube.open import CubeError, acquisitions_by_orbit, orbit_codes
from tf_landslide.cube.planes import PlaneReader, planes_of

SAR_CHANNELS = ("vv_before", "vv_after", "vh_before", "vh_after")
DEM_CHANNELS = schema.DEM_VARIABLES
COHERENCE_CHANNELS = ("coherence_preevent", "coherence_coevent")
ALL_CHANNELS = SAR_CHANNELS + DEM_CHANNELS + COHERENCE_CHANNELS
# 'both': every acquisition of either orbit; 'any': every acquisition, whatever the cube says
# (or does not say) of its orbit.
ORBIT_CHOICES = ("auto", "descending", "ascending", "both", "any")
EVERY_ORBIT = ("both", "any")


@dataclasses.dataclass(frozen=True)
class ChannelConfig:
    """A named set of input channels and the number of acquisitions averaged per side."""

    name: str
    channels: tuple[str, ...]
    timesteps: int

    @property
    def needs_sar(self) -> bool:
        return any(c in SAR_CHANNELS for c in self.channels)

    @property
    def needs_insar(self) -> bool:
        return any(c in COHERENCE_CHANNELS for c in self.channels)


def study_configs() -> dict[str, ChannelConfig]:
    """The 17 configurations of the paper's study, by name."""
    inputs = {
        "vv": ("vv_before", "vv_after"),
        "vh": ("vh_before", "vh_after"),
        "vv_vh": SAR_CHANNELS,
        "vv_vh_dem": SAR_CHANNELS + DEM_CHANNELS,
    }
    configs = {
        f"{prefix}_t{k}": ChannelConfig(f"{prefix}_t{k}", channels, k)
        for prefix, channels in inputs.items()
        for k in range(1, 5)
    }
    configs["dem"] = ChannelConfig("dem", DEM_CHANNELS, 0)
    return configs


def resolve_channel_config(config: str, channels: Iterable[str] = (), timesteps: int | None = None) -> ChannelConfig:
    """A study configuration by name, or a free channel list under a new name."""
    channels = tuple(channels)
    presets = study_configs()
    if config in presets and channels == presets[config].channels:
        channels = ()  # the preset itself, spelt out
    if not channels:
        if config not in presets:
            raise CubeError(
                f"--config={config!r} is not a study configuration; choose one of "
                f"{sorted(presets)}, or name a new one and list its --channels"
            )
        preset = presets[config]
        if timesteps is not None and timesteps != preset.timesteps:
            raise CubeError(
                f"--config={config} averages {preset.timesteps} timesteps but --timesteps={timesteps}; "
                f"drop --timesteps or pick the configuration with t{timesteps}"
            )
        return preset
    if config in presets and presets[config].channels != channels:
        raise CubeError(
            f"--config={config} is a study configuration with channels {presets[config].channels}; "
            f"give a new --config name for --channels={','.join(channels)}"
        )
    unknown = [c for c in channels if c not in ALL_CHANNELS]
    if unknown:
        raise CubeError(f"unknown channels {unknown} in --channels; available: {list(ALL_CHANNELS)}")
    if len(set(channels)) != len(channels):
        raise CubeError(f"--channels lists a channel twice: {list(channels)}")
    needs_sar = any(c in SAR_CHANNELS for c in channels)
    k = timesteps if timesteps is not None else (1 if needs_sar else 0)
    if needs_sar and k < 1:
        raise CubeError(f"--timesteps must be >= 1 for SAR channels, got {k}")
    return ChannelConfig(config, channels, k)


@dataclasses.dataclass(frozen=True)
class Acquisitions:
    """Chosen timestep indices (chronological) on each side of the event."""

    orbit: str
    before: tuple[int, ...]
    after: tuple[int, ...]


def resolve_orbit(ds: xr.Dataset, orbit: str) -> str:
    """'auto' becomes the cube's only orbit, or descending (the authors' choice) when it has both.

    Every choice but 'any' needs the cube's orbit labels: where they are missing or unusable,
    the error says why and offers --orbit=any.
    """
    if orbit not in ORBIT_CHOICES:
        raise CubeError(f"--orbit={orbit!r}; choose one of {list(ORBIT_CHOICES)}")
    if orbit == "any":
        return orbit
    problem = orbit_problem(ds)
    if problem:
        raise CubeError(
            f"--orbit={orbit} needs the orbit of every acquisition, but {problem}. Pass --orbit=any to use "
            f"every acquisition whatever its pass, or give the cube a {schema.ORBIT_COORD!r} coordinate "
            f"along {schema.TIME_DIM!r} holding 'ascending'/'descending' (or 'a'/'d')"
        )
    if orbit != "auto":
        return orbit
    present = set(orbit_codes(ds).tolist())
    if present == {"a"}:
        return "ascending"
    return "descending" if "d" in present else "both"


ACQUISITION_RULES = ("paper", "authors")


def select_acquisitions(ds: xr.Dataset, event: Event, timesteps: int, orbit: str, rule: str = "paper") -> Acquisitions:
    """The ``timesteps`` acquisitions nearest the event on each side, in ``orbit``.

    ``rule='paper'``: the k most recent strictly before the event start and the k earliest
    strictly after its end, by UTC time. ``rule='authors'`` reproduces the authors' code:
    'before' is every acquisition up to the end of the start's calendar day, of which it takes
    the k *ending one before the last*; 'after' starts at 00:00 of the end's calendar day.
    """
    if rule not in ACQUISITION_RULES:
        raise CubeError(f"--acquisition_rule={rule!r}; choose one of {list(ACQUISITION_RULES)}")
    times = ds[schema.TIME_DIM].values.astype("datetime64[ns]")
    if orbit in EVERY_ORBIT:
        in_orbit = np.ones(times.shape, bool)
    else:
        in_orbit = orbit_codes(ds) == schema.ORBIT_CODES[orbit]
    if not in_orbit.any():
        raise CubeError(
            f"the cube has no {orbit} acquisitions; it holds {acquisitions_by_orbit(ds)}. "
            "Choose another --orbit (auto picks the one the cube has)"
        )
    order = np.argsort(times, kind="stable")
    candidates = order[in_orbit[order]]
    if rule == "paper":
        before = [int(i) for i in candidates if times[i] < as_datetime64(event.start)]
        after = [int(i) for i in candidates if times[i] > as_datetime64(event.end)]
    else:
        start_day_end = as_datetime64(event.start.normalize() + pd.Timedelta(days=1))
        before = [int(i) for i in candidates if times[i] < start_day_end]
        after = [int(i) for i in candidates if times[i] >= as_datetime64(event.end.normalize())]
        if timesteps < len(before):
            before = before[-1 - timesteps : -1]  # their isel(timestep=range(-1 - k, -1))
    for side, chosen in (("before the event start", before), ("after the event end", after)):
        if len(chosen) < timesteps:
            bound = event.start if "before" in side else event.end
            listed = ", ".join(pd.Timestamp(times[i]).isoformat() for i in chosen) or "none"
            raise CubeError(
                f"{timesteps} {orbit} acquisitions needed strictly {side} ({bound.isoformat()}Z) but the cube has "
                f"{len(chosen)}: {listed}. Use fewer --timesteps (a *_t{max(len(chosen), 1)} configuration), "
                f"another --orbit, or check --event. All acquisitions: {acquisitions_by_orbit(ds)}"
            )
    chosen_before = tuple(before[len(before) - timesteps :]) if timesteps else ()
    chosen_after = tuple(after[:timesteps])
    shared = sorted(set(chosen_before) & set(chosen_after))
    if shared:  # only the authors' calendar-day windows can overlap
        listed = ", ".join(pd.Timestamp(times[i]).isoformat() for i in shared)
        raise CubeError(
            f"the authors' windows put {listed} both before and after the event; give --event_end a later "
            "day (their Hokkaido run used 2018-09-07) or use --acquisition_rule=paper"
        )
    return Acquisitions(orbit, chosen_before, chosen_after)


_TIME_TOKEN = re.compile(r"\d{4}-?\d{2}-?\d{2}(?:[T ]\d{2}:?\d{2}(?::?\d{2})?)?")


def pair_acquisitions(ds: xr.Dataset) -> list[tuple[np.datetime64, np.datetime64, str | None]]:
    """(start, end, orbit code or None) of each InSAR pair.

    The cubes name pairs by their two dates (inferred layout: a ``timepair`` coordinate of
    strings such as '20180824_20180905'; ``timepair_start``/``timepair_end`` datetime
    coordinates are used when present). A date without a time of day is matched to the
    cube's single acquisition on that day, which gives its exact time and orbit.
    """
    if schema.PAIR_DIM not in ds.dims:
        raise CubeError(f"coherence channels need the {schema.PAIR_DIM!r} dimension, which the cube lacks")
    times = ds[schema.TIME_DIM].values.astype("datetime64[ns]")
    orbits = orbit_codes(ds)
    days = times.astype("datetime64[D]")
    if "timepair_start" in ds.coords and "timepair_end" in ds.coords:
        bounds = list(zip(ds["timepair_start"].values, ds["timepair_end"].values, strict=False))
        tokens = [(pd.Timestamp(a).isoformat(), pd.Timestamp(b).isoformat()) for a, b in bounds]
    else:
        tokens = []
        for label in ds[schema.PAIR_DIM].values:
            found = _TIME_TOKEN.findall(label)
            if len(found) != 2:
                raise CubeError(
                    f"cannot read the two dates of InSAR pair {label!r} in {schema.PAIR_DIM!r}; "
                    "expected labels such as '20180824_20180905'"
                )
            tokens.append(tuple(found))
    pairs = []
    for label, (first, second) in zip(ds[schema.PAIR_DIM].values, tokens, strict=True):
        options = [_token_candidates(token, times, days) for token in (first, second)]
        # ISCE pairs two acquisitions of one orbit: where a day holds passes of both orbits,
        # the orbit shared by the two dates settles which passes are meant.
        same_orbit = [(a, b) for a in options[0] for b in options[1] if a < b and orbits[a] == orbits[b]]
        if same_orbit:
            if len({orbits[a] for a, _ in same_orbit}) > 1:
                raise CubeError(
                    f"InSAR pair {label!r} matches passes of both orbits on its dates; "
                    "give the cube timepair_start/timepair_end coordinates with times"
                )
            a, b = same_orbit[0]
            pairs.append((times[a], times[b], orbits[a]))
        else:  # dates without a matching acquisition: midnight, orbit unknown
            start, end = (np.datetime64(pd.Timestamp(t).to_datetime64(), "ns") for t in (first, second))
            pairs.append((start, end, None))
    return pairs


def _token_candidates(token: str, times: np.ndarray, days: np.ndarray) -> list[int]:
    """Acquisitions a pair date names: the exact time if it has one, else every pass that day."""
    t = np.datetime64(pd.Timestamp(token).to_datetime64(), "ns")
    has_time = len(token) > 10 and not token.endswith(("T00:00:00", "T000000"))
    return [int(i) for i in np.flatnonzero(times == t if has_time else days == t.astype("datetime64[D]"))]


def select_pairs(ds: xr.Dataset, event: Event, orbit: str) -> dict[str, int]:
    """Index of the last pre-event pair and of the shortest pair spanning the event."""
    pairs = pair_acquisitions(ds)
    code = schema.ORBIT_CODES.get(orbit)
    start, end = as_datetime64(event.start), as_datetime64(event.end)
    eligible = [i for i, (_, _, o) in enumerate(pairs) if code is None or o in (code, None)]
    pre = [i for i in eligible if pairs[i][1] < start]
    co = [i for i in eligible if pairs[i][0] < start and pairs[i][1] > end]
    if not pre or not co:
        listed = ", ".join(str(v) for v in np.asarray(ds[schema.PAIR_DIM].values)[:20])
        raise CubeError(
            f"coherence channels need a {orbit} pair entirely before the event and one spanning it; "
            f"the cube's pairs are: {listed}"
        )
    return {
        "coherence_preevent": max(pre, key=lambda i: (pairs[i][1], pairs[i][0])),
        "coherence_coevent": min(co, key=lambda i: (pairs[i][1] - pairs[i][0], -pairs[i][0].astype(np.int64))),
    }


def log_mean(planes: Iterable[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """Pixel-wise mean of ``log`` over linear-power planes; NaN and <= 0 are missing.

    ``planes``: 1-D or 2-D arrays of one shape, streamed: only one plane, its log and two
    accumulators are in memory; the planes are not modified. Pixels with no valid value in any
    plane are NaN. ``out``: a float32 array of the planes' shape (any strides) to hold the
    result (else a new one). The log is numpy's (vectorised); the masking, sums and division
    run compiled, one pass a plane instead of numpy's four.
    """
    from tf_landslide import kernels  # numba's import is slow: only SAR channels pay it

    total = count = logs = None
    seen = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        for plane in planes:
            plane = np.asarray(plane, dtype=np.float32)
            if total is None:
                if plane.ndim not in (1, 2):
                    raise ValueError(f"log_mean takes 1-D or 2-D planes, got shape {plane.shape}")
                shape = plane.shape
                total, logs = np.empty(shape, np.float32), np.empty(shape, np.float32)
                count = np.empty(shape, np.uint8)
            elif plane.shape != shape:
                raise ValueError(f"log_mean planes differ in shape: {shape} and {plane.shape}")
            if seen == np.iinfo(np.uint8).max:
                raise ValueError(f"log_mean takes at most {seen} planes")
            np.log(plane, out=logs)
            kernels.add_logs(*(np.atleast_2d(a) for a in (plane, logs, total, count)), seen == 0)
            seen += 1
    if total is None:
        raise ValueError("log_mean needs at least one plane")
    if out is None:
        out = np.empty(shape, np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise ValueError(f"log_mean needs out as float32 {shape}, got {out.dtype} {out.shape}")
    kernels.mean_of(np.atleast_2d(total), np.atleast_2d(count), np.atleast_2d(out))
    return out


@dataclasses.dataclass(frozen=True)
class ChannelPlan:
    """Which cube planes each channel reads: picklable, so Dask workers can run it."""

    channels: tuple[str, ...]
    acquisitions: Acquisitions
    pairs: tuple[tuple[str, int], ...] = ()

    def variables(self) -> list[str]:
        """Cube variables this plan reads."""
        names = []
        for channel in self.channels:
            name = (
                channel.split("_")[0]
                if channel in SAR_CHANNELS
                else ("coherence" if channel in COHERENCE_CHANNELS else channel)
            )
            if name not in names:
                names.append(name)
        return names

    def read_band(
        self,
        source: xr.Dataset | PlaneReader,
        rows: slice,
        cols: slice = slice(None),
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Channels for the window ``rows`` x ``cols`` of the scene: float32 [C, rows, cols].

        ``source``: the cube's dataset (read through xarray) or a ``planes.PlaneReader`` of it.
        ``out``: a C-contiguous float32 array of that shape to fill (else a new one).
        """
        if rows.step not in (None, 1) or cols.step not in (None, 1):
            raise ValueError(f"read_band reads contiguous windows: rows {rows} and cols {cols} need a step of 1")
        reader = planes_of(source)
        height, width = reader.shape
        y0, y1, _ = rows.indices(height)
        x0, x1, _ = cols.indices(width)
        shape = (len(self.channels), len(range(y0, y1)), len(range(x0, x1)))
        if out is None:
            out = np.empty(shape, np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"read_band needs out as C-contiguous float32 {shape}, got {out.dtype} {out.shape}")
        if not out.size:
            return out
        edges = [x0, x1]
        if reader.tile_width:
            # Column tiles on the chunk grid, when the reader decodes chunks itself: a tile's
            # planes stay in the cache through the log-mean, which then takes less CPU than over
            # whole-width windows, reading included (figures: bench/README.md, Export).
            step = reader.tile_width
            edges = [x0, *range((x0 // step + 1) * step, x1, step), x1]
        for left, right in itertools.pairwise(edges):
            self._read_tile(reader, slice(y0, y1), slice(left, right), out[:, :, left - x0 : right - x0])
        return out

    def _read_tile(self, reader: PlaneReader, rows: slice, cols: slice, out: np.ndarray) -> None:
        pairs = dict(self.pairs)
        for c, channel in enumerate(self.channels):
            if channel in SAR_CHANNELS:
                pol, side = channel.split("_")
                indices = self.acquisitions.before if side == "before" else self.acquisitions.after
                log_mean((reader.plane(pol, {schema.TIME_DIM: t}, rows, cols) for t in indices), out=out[c])
            elif channel in COHERENCE_CHANNELS:
                out[c] = reader.plane("coherence", {schema.PAIR_DIM: pairs[channel]}, rows, cols)
            else:
                out[c] = reader.plane(channel, {}, rows, cols)
