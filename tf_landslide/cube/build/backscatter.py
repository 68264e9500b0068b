"""VV and VH of the chosen acquisitions on the output grid, lazily, through odc-stac.

odc-stac reads, reprojects and mosaics the COGs; each acquisition's slices are loaded under one
group key so they fuse into one plane. Sentinel-1 RTC is linear power, as the cube stores it:
no conversion. The declared no-data value becomes NaN, the cube's no-data; exact zeros stay.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox

from tf_landslide.cube import schema
from tf_landslide.cube.build import catalog
from tf_landslide.cube.build.acquisitions import Acquisition

# odc-stac reads each dask chunk on its own: it opens every COG the chunk meets and decodes the
# internal tiles under the chunk's window, whole. The output grid starts where the area does, so
# its chunks rarely line up with the tiles: a read chunk as small as a written chunk (and a tile)
# meets four tiles, and each tile is decoded by the four chunks it meets. Reading blocks of
# several written chunks decodes most tiles once; a block stays tens of MB however large the scene.
READ_BLOCK_PIXELS = 2048


def read_chunk(chunk: int) -> int:
    """The side of the blocks odc-stac reads: a multiple of the written ``chunk``, about READ_BLOCK_PIXELS."""
    return chunk * max(1, READ_BLOCK_PIXELS // chunk)


def load_stack(
    stac: str, acquisitions: list[Acquisition], assets: tuple[str, str], geobox: GeoBox, chunk: int, resampling: str
) -> xr.Dataset:
    """``vv`` and ``vh`` (timestep, y, x) float32 dask arrays, one time step per acquisition, in
    spatial chunks of ``read_chunk(chunk)`` (whole written chunks each)."""
    import odc.stac

    key_of = {item.id: acquisition.key for acquisition in acquisitions for item in acquisition.items}
    items = [item for acquisition in acquisitions for item in acquisition.items]
    loaded = odc.stac.load(
        items,
        bands=list(assets),
        geobox=geobox,
        groupby=lambda item, parsed, index: key_of[item.id],
        chunks={"time": 1, "y": read_chunk(chunk), "x": read_chunk(chunk)},
        resampling=resampling,
        dtype="float32",
        patch_url=catalog.url_signer(stac),
    )
    if loaded.sizes["time"] != len(acquisitions):  # one plane per group key, sorted by key, i.e. by time
        raise AssertionError(f"odc-stac gave {loaded.sizes['time']} planes for {len(acquisitions)} acquisitions")
    planes = {
        name: _nan_for_nodata(loaded[asset]).rename({"time": schema.TIME_DIM}).drop_vars(schema.TIME_DIM)
        for name, asset in zip(schema.SAR_VARIABLES, assets, strict=True)
    }
    return xr.Dataset(planes).drop_vars("spatial_ref", errors="ignore")


def _nan_for_nodata(band: xr.DataArray) -> xr.DataArray:
    nodata = band.attrs.pop("nodata", None)
    band.attrs.pop("units", None)
    if nodata is None or (isinstance(nodata, float) and math.isnan(nodata)):
        return band
    return band.where(band != np.float32(nodata))
