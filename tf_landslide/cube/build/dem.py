"""The DEM on the output grid and the products derived from it (``cube/terrain.py``).

NASADEM (SRTM-based, the paper's DEM) and the Copernicus GLO-30 DEM come as 1-degree tiles in
WGS 84 at about 30 m; odc-stac mosaics them and resamples bilinearly onto the grid. The
derivatives are taken after that, on the projected grid, so slope is in metres per metre of
the cube's pixels, as in the published cubes.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox

from tf_landslide.cube import schema
from tf_landslide.cube.build import catalog
from tf_landslide.cube.build.request import DEM_COLLECTIONS, BuildRequest
from tf_landslide.cube.schema import CubeError
from tf_landslide.cube.terrain import slope_aspect_curvature

ATTRS = {
    "dem": {"units": "m", "long_name": "elevation"},
    "dem_slope_radians": {"units": "rad", "long_name": "slope"},
    "dem_aspect": {"units": "degree", "long_name": "aspect, clockwise from north, the direction the slope faces"},
    "dem_curvature": {"units": "1/100 m", "long_name": "curvature (-100 x Laplacian; convex positive)"},
}


def dem_layers(request: BuildRequest, bbox: catalog.Bbox, geobox: GeoBox) -> dict[str, xr.DataArray]:
    """``dem`` and its slope, aspect and curvature as (y, x) float32 arrays."""
    import odc.stac

    items = catalog.search(request.stac, request.dem_collection, bbox)
    if not items:
        query = catalog.describe_query(request.stac, request.dem_collection, bbox, None)
        raise CubeError(f"no DEM tiles found: {query}. Choose another --dem_collection")
    asset = DEM_COLLECTIONS[request.dem_collection]
    loaded = odc.stac.load(
        items,
        bands=[asset],
        geobox=geobox,
        groupby=lambda item, parsed, index: "mosaic",
        resampling="bilinear",
        dtype="float32",
        patch_url=catalog.url_signer(request.stac),
    )
    band = loaded[asset]
    nodata = band.attrs.get("nodata")
    dem = band.isel(time=0).values.astype(np.float64)
    if nodata is not None and not np.isnan(nodata):
        dem[dem == np.float32(nodata)] = np.nan
    if np.isnan(dem).all():
        raise CubeError(f"the {request.dem_collection} tiles found do not cover the area")
    slope, aspect, curvature = slope_aspect_curvature(dem, request.resolution)
    arrays = {
        "dem": dem.astype(np.float32),
        "dem_slope_radians": slope,
        "dem_aspect": aspect,
        "dem_curvature": curvature,
    }
    return {name: xr.DataArray(arrays[name], dims=schema.SPATIAL_DIMS, attrs=ATTRS[name]) for name in arrays}
