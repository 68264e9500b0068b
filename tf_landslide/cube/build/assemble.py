"""The cube's template: coordinates, attributes and the static layers, in the schema's names.

The paper's cube is "initialised from the RTC data" and the other layers appended on its grid;
so is this one: the RTC stack gives ``timestep``, ``y`` and ``x``, the DEM products and labels
join as (y, x) variables, the phase products on ``timepair``. Time series are placeholders
here, filled by ``write.py``.
"""

from __future__ import annotations

import datetime as dt
import json

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from tf_landslide import __version__
from tf_landslide.cube import schema
from tf_landslide.cube.build.acquisitions import Acquisition, times_and_orbits
from tf_landslide.cube.build.phase import PhasePair
from tf_landslide.cube.build.request import BuildRequest

SAR_ATTRS = {
    "vv": {"units": "1", "long_name": "gamma0 VV (linear power, radiometrically terrain corrected)"},
    "vh": {"units": "1", "long_name": "gamma0 VH (linear power, radiometrically terrain corrected)"},
}


def template(
    request: BuildRequest,
    stack: xr.Dataset,
    layers: dict[str, xr.DataArray],
    acquisitions: list[Acquisition],
    pairs: list[PhasePair],
    event: tuple[pd.Timestamp, pd.Timestamp],
    crs: str,
    crs_note: str,
) -> xr.Dataset:
    """The cube to write: every variable, coordinate and attribute, time series as NaN placeholders."""
    import rioxarray  # noqa: F401  (registers .rio)

    times, orbits = times_and_orbits(acquisitions)
    height, width = stack.sizes["y"], stack.sizes["x"]
    chunks = (1, request.chunk, request.chunk)

    def placeholder(n: int):
        return da.full((n, height, width), np.nan, dtype=np.float32, chunks=chunks)

    variables = {
        name: ((schema.TIME_DIM, "y", "x"), placeholder(len(times)), SAR_ATTRS[name]) for name in schema.SAR_VARIABLES
    }
    variables |= {name: layer for name, layer in layers.items()}
    if pairs:
        variables["coherence"] = ((schema.PAIR_DIM, "y", "x"), placeholder(len(pairs)), {"units": "1"})
        variables["interferogram"] = ((schema.PAIR_DIM, "y", "x"), placeholder(len(pairs)), {"units": "rad"})
    coords = {
        schema.TIME_DIM: times,
        schema.ORBIT_COORD: (schema.TIME_DIM, orbits),
        "sat:relative_orbit": (
            schema.TIME_DIM,
            np.array([a.track if a.track is not None else -1 for a in acquisitions]),
        ),
        "y": stack["y"].values,
        "x": stack["x"].values,
    }
    if pairs:
        coords[schema.PAIR_DIM] = np.array([pair.label for pair in pairs])
    ds = xr.Dataset(variables, coords=coords, attrs=_attributes(request, acquisitions, event, crs_note))
    return ds.rio.write_crs(crs).rio.write_coordinate_system()


def _attributes(request: BuildRequest, acquisitions: list[Acquisition], event, crs_note: str) -> dict:
    start, end = event
    return {
        "title": f"Sentinel-1 RTC landslide datacube ({request.event_name})",
        "generator": f"tf_landslide.cube.build {__version__}",
        "date_created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "event_name": request.event_name,
        "event_start": f"{start:%Y-%m-%dT%H:%M:%S}Z",
        "event_end": f"{end:%Y-%m-%dT%H:%M:%S}Z",
        "stac": request.stac,
        "collection": request.collection,
        "dem_collection": request.dem_collection,
        "crs_choice": crs_note,
        "chunk": request.chunk,
        # Which items made each time step, for provenance (JSON: attributes hold no nested lists in zarr v2 tools).
        "stac_items": json.dumps({a.key: [item.id for item in a.items] for a in acquisitions}),
    }
