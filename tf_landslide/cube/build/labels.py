"""Landslide inventories (and extraction masks) rasterised onto the output grid.

geopandas reads and reprojects the polygons; rasterio rasterises them, with either the centre
rule (a pixel is inside when its centre is: areas are kept on average) or all-touched (every
pixel a polygon touches: no small slide is lost, areas grow by about half a pixel all round).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox

from tf_landslide.cube import schema
from tf_landslide.cube.build.grid import read_vector
from tf_landslide.cube.schema import CubeError


def rasterise(path: str, geobox: GeoBox, all_touched: bool, flag: str) -> np.ndarray:
    """0/1 uint8 (y, x): where the polygons of the vector file at ``path`` lie."""
    from rasterio import features

    frame = read_vector(path, flag)
    shapes = [geometry for geometry in frame.to_crs(geobox.crs.to_wkt()).geometry if geometry is not None]
    polygons = [g for g in shapes if g.geom_type in ("Polygon", "MultiPolygon")]
    if len(polygons) < len(shapes):
        kinds = sorted({g.geom_type for g in shapes} - {"Polygon", "MultiPolygon"})
        raise CubeError(f"--{flag}={path!r} holds {', '.join(kinds)} features; an inventory needs polygons")
    if not polygons:
        return np.zeros(geobox.shape.yx, np.uint8)
    return features.rasterize(
        ((polygon, 1) for polygon in polygons),
        out_shape=geobox.shape.yx,
        transform=geobox.affine,
        all_touched=all_touched,
        fill=0,
        dtype="uint8",
    )


def label_layers(labels: str, rule: str, extraction_mask: str, geobox: GeoBox) -> dict[str, xr.DataArray]:
    """``landslides`` (and ``extraction_mask``) as (y, x) uint8 0/1, for those given."""
    layers = {}
    if labels:
        mask = rasterise(labels, geobox, all_touched=rule == "all_touched", flag="labels")
        layers[schema.LABEL_VARIABLE] = xr.DataArray(
            mask, dims=schema.SPATIAL_DIMS, attrs={"source": labels, "rasterised": rule}
        )
    if extraction_mask:
        mask = rasterise(extraction_mask, geobox, all_touched=False, flag="extraction_mask")
        layers["extraction_mask"] = xr.DataArray(mask, dims=schema.SPATIAL_DIMS, attrs={"source": extraction_mask})
    return layers
