"""A cube opened for one channel configuration: the event, the acquisitions, the plan that
reads the channels, and where the grid lies on the map."""

from __future__ import annotations

import dataclasses
import logging
import os

import xarray as xr

from tf_landslide.config import CubeConfig
from tf_landslide.cube import channels as channels_lib
from tf_landslide.cube import events, planes, schema, synthetic
from tf_landslide.cube.conform import AS_STORED, StoredOrder
from tf_landslide.cube.open import IN_MEMORY, location_of, open_conformed, validate_cube

log = logging.getLogger("tf_landslide.cube")


def cache_dir(cube: CubeConfig) -> str:
    """Where the embedded cube is generated and remote exports are staged."""
    return cube.cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "tf_landslide")


def cube_location(cube: CubeConfig) -> str:
    """The cube to read: the given path/URL, or the embedded cube (generated on first use)."""
    if cube.cube:
        return cube.cube
    cache = cache_dir(cube)
    log.info("no --cube given: using the embedded synthetic cube in %s", cache)
    return str(synthetic.embedded_cube(cache))


@dataclasses.dataclass
class Scene:
    """Every choice about a cube that does not need its pixels."""

    location: str  # IN_MEMORY for a Dataset given in memory
    ds: xr.Dataset  # canonical (``conform``)
    config: channels_lib.ChannelConfig
    event: events.Event
    acquisitions: channels_lib.Acquisitions
    pairs: dict
    stored: StoredOrder = AS_STORED
    changes: tuple[str, ...] = ()  # what conforming the cube changed
    _reader: planes.CubePlanes | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def plan(self) -> channels_lib.ChannelPlan:
        return channels_lib.ChannelPlan(self.config.channels, self.acquisitions, tuple(sorted(self.pairs.items())))

    def reader(self) -> planes.CubePlanes:
        """The reader of the cube's planes (decoding chunks itself where it can), made once: it
        parses the store's metadata, and threads may share it."""
        if self._reader is None:
            self._reader = planes.CubePlanes(self.location, self.ds, self.stored)
        return self._reader


def open_scene(
    source: str | xr.Dataset, cube: CubeConfig, config: channels_lib.ChannelConfig, need_labels: bool = True
) -> Scene:
    """Open and validate the cube (a location, or a Dataset in memory) and choose its event,
    orbit and acquisitions."""
    conformed = open_conformed(source)
    location = location_of(source)
    ds = conformed.ds
    if conformed.changes:
        log.info("conformed the cube at %s: %s", location, "; ".join(conformed.changes))
    validate_cube(ds, need_insar=config.needs_insar, need_labels=need_labels)
    event = events.resolve_event(cube.event, cube.event_start, cube.event_end, location, ds.attrs)
    orbit = channels_lib.resolve_orbit(ds, cube.orbit)
    if config.needs_sar:
        acquisitions = channels_lib.select_acquisitions(ds, event, config.timesteps, orbit, cube.acquisition_rule)
    else:
        acquisitions = channels_lib.Acquisitions(orbit, (), ())
    pairs = channels_lib.select_pairs(ds, event, orbit) if config.needs_insar else {}
    return Scene(location, ds, config, event, acquisitions, pairs, conformed.stored, conformed.changes)


def georeference(ds: xr.Dataset) -> dict:
    """CRS (WKT, or None) and the grid's affine transform (a, b, c, d, e, f as rasterio's Affine; pixel corners)."""
    x, y = ds.x.values, ds.y.values
    dx = float(x[1] - x[0]) if x.size > 1 else 10.0
    dy = float(y[1] - y[0]) if y.size > 1 else -10.0
    transform = [dx, 0.0, float(x[0]) - dx / 2, 0.0, dy, float(y[0]) - dy / 2]
    crs_wkt = None
    if "spatial_ref" in ds.coords:
        attrs = ds["spatial_ref"].attrs
        crs_wkt = attrs.get("crs_wkt") or attrs.get("spatial_ref")
    if crs_wkt is None:
        log.warning("the cube carries no CRS (no spatial_ref coordinate): maps made from it cannot be georeferenced")
    return {"crs_wkt": crs_wkt, "transform": transform, "height": int(ds.sizes["y"]), "width": int(ds.sizes["x"])}


def pixel_area(transform: list[float]) -> float:
    """Area of one pixel in the CRS's units squared (m2 for the cubes' projected grids)."""
    return float(abs(transform[0] * transform[4] - transform[1] * transform[3]))


def cube_identity(ds: xr.Dataset, location: str) -> dict:
    """What identifies a cube in a manifest: where it is, its grid, variables, times and attributes."""
    times = ds[schema.TIME_DIM].values
    return {
        "location": location if "://" in location or location == IN_MEMORY else os.path.abspath(location),
        "sizes": {k: int(v) for k, v in ds.sizes.items()},
        "variables": sorted(ds.data_vars),
        "first_time": str(times.min()),
        "last_time": str(times.max()),
        "x_range": [float(ds.x[0]), float(ds.x[-1])],
        "y_range": [float(ds.y[0]), float(ds.y[-1])],
        "attrs": {k: str(v) for k, v in sorted(ds.attrs.items())},
    }


GRID_AND_TIMES = ("sizes", "x_range", "y_range", "first_time", "last_time")


def is_same_cube(identity: dict, ds: xr.Dataset) -> bool:
    """Whether ``ds`` has the grid and acquisition times of the cube an export's ``identity``
    (its manifest's 'cube') describes, wherever it is stored and whatever variables it drops."""
    mine = cube_identity(ds, "")
    return all(identity.get(key) == mine[key] for key in GRID_AND_TIMES)
