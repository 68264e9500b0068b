"""Build a datacube for any event from a spatiotemporal query: the paper's data pipeline.

An area and an event -> the Sentinel-1 RTC items around it in a STAC catalogue -> VV and VH
stacked along ``timestep`` on the items' UTM grid -> the DEM with slope, aspect and curvature ->
the rasterised landslide inventory -> the phase products on ``timepair`` -> one Zarr cube in
the schema the rest of the project reads (``python -m tf_landslide.cube.build``).

The stages, each a module: ``request`` (what is asked), ``catalog`` (search a STAC API or a
static catalog), ``acquisitions`` (passes around the event), ``grid`` (area and output grid),
``backscatter``, ``dem``, ``labels``, ``phase`` (the layers), ``assemble`` (the template) and
``write`` (streaming, resumable Zarr writing).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from tf_landslide.cube.build import acquisitions as acquisitions_lib
from tf_landslide.cube.build import assemble, backscatter, catalog, dem, grid, labels, phase, write
from tf_landslide.cube.build.request import BuildRequest
from tf_landslide.cube.events import parse_utc
from tf_landslide.cube.schema import CubeError

__all__ = ["BuildRequest", "build"]


def build(request: BuildRequest, log: Callable[[str], None] = print, progress=None) -> Path:
    """Build the cube ``request`` asks for and return its path; ``log`` gets one line per stage,
    ``progress`` (a tqdm-like class) counts the planes written."""
    start = parse_utc(request.event_start, "event_start")
    end = parse_utc(request.event_end or request.event_start, "event_end")
    if end < start:
        raise CubeError(f"--event_end ({request.event_end}) is before --event_start ({request.event_start})")
    aoi = grid.area_of_interest(request)
    bbox = tuple(aoi.boundingbox)
    window = (start - pd.Timedelta(days=request.search_days), end + pd.Timedelta(days=request.search_days))
    query = catalog.describe_query(request.stac, request.collection, bbox, window)
    items = catalog.search(request.stac, request.collection, bbox, window)
    if not items:
        raise CubeError(f"no items found: {query}. Check the area, the event time and the catalogue, or widen --days")
    passes = acquisitions_lib.group_passes(items)
    chosen = acquisitions_lib.around_event(passes, start, end, request.acquisitions, query)
    acquisitions_lib.check_assets(chosen, request.assets)
    log(f"found {len(items)} item(s) in {len(passes)} pass(es): {query}")
    log("acquisitions: " + _describe(chosen, start, end))
    out_grid = grid.output_grid(request, aoi, [item for a in chosen for item in a.items])
    geobox = out_grid.geobox
    log(f"grid: {geobox.shape.y} x {geobox.shape.x} px of {request.resolution:g} m on {out_grid.crs_note}")
    if geobox.crs.geographic:
        raise CubeError(
            f"--crs={request.crs} is geographic; the DEM products need a projected CRS in metres (a UTM zone)"
        )
    stack = backscatter.load_stack(request.stac, chosen, request.assets, geobox, request.chunk, request.resampling)
    layers = dem.dem_layers(request, bbox, geobox)
    log(f"dem: {request.dem_collection}, with slope, aspect and curvature")
    layers |= labels.label_layers(request.labels, request.label_rule, request.extraction_mask, geobox)
    if request.labels:
        count = int(layers["landslides"].values.sum())
        log(f"labels: {request.labels} rasterised ({request.label_rule} rule): {count} landslide pixels")
    pairs = phase.find_pairs(request.phase_dir) if request.phase_dir else []
    if pairs:
        log(f"phase: {len(pairs)} pair(s) from {request.phase_dir}")
    template = assemble.template(
        request, stack, layers, chosen, pairs, (start, end), geobox.crs.to_wkt(), out_grid.crs_note
    )
    path = write.write_cube(request.out, template, stack, pairs, geobox, progress=progress)
    log(f"wrote {path}")
    return path


def _describe(chosen: list[acquisitions_lib.Acquisition], start: pd.Timestamp, end: pd.Timestamp) -> str:
    parts = []
    for orbit, word in (("a", "ascending"), ("d", "descending")):
        mine = [a for a in chosen if a.orbit == orbit]
        if mine:
            before = sum(a.time < start for a in mine)
            parts.append(f"{word} {before} before, {len(mine) - before} after")
    mixed = " (both orbits kept, labelled in sat:orbit_state; the export picks one)" if len(parts) == 2 else ""
    return "; ".join(parts) + mixed
