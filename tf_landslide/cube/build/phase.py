"""Interferometric coherence and wrapped phase of acquisition pairs, on the ``timepair`` dimension.

The paper processed SLC pairs with ISCE2; today most users take them from ASF HyP3, whose InSAR
products are folders of GeoTIFFs named after the two acquisitions
(``S1AA_20180902T204012_20180914T204013_VVP012_INT80_G_ueF_1A2B_corr.tif`` beside
``..._wrapped_phase.tif``). ``PAIR_FILE`` reads the two times and the product from a name;
GDAL's warper puts each onto the output grid (coherence bilinearly; phase by nearest
neighbour, as averaging across a 2 pi wrap would invent values).
"""

from __future__ import annotations

import dataclasses
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from odc.geo.geobox import GeoBox

from tf_landslide.cube.schema import CubeError

# The first two UTC stamps in a file name are the reference and the secondary acquisition.
PAIR_FILE = re.compile(r"(?P<first>\d{8}T\d{6})_(?P<second>\d{8}T\d{6}).*_(?P<product>corr|wrapped_phase)\.tiff?$")
PRODUCTS = {"corr": "coherence", "wrapped_phase": "interferogram"}


@dataclasses.dataclass(frozen=True)
class PhasePair:
    first: pd.Timestamp
    second: pd.Timestamp
    coherence: Path
    interferogram: Path

    @property
    def label(self) -> str:
        """The ``timepair`` coordinate: the two acquisition days, as in the published cubes."""
        return f"{self.first:%Y%m%d}_{self.second:%Y%m%d}"


def find_pairs(folder: str) -> list[PhasePair]:
    """Every complete coherence + wrapped-phase pair in ``folder`` (searched recursively), by time."""
    root = Path(folder)
    if not root.is_dir():
        raise CubeError(f"--phase_dir={folder!r} is not a folder")
    found: dict[tuple[str, str], dict[str, Path]] = {}
    for path in sorted(root.rglob("*.tif*")):
        match = PAIR_FILE.search(path.name)
        if match:
            found.setdefault((match["first"], match["second"]), {})[PRODUCTS[match["product"]]] = path
    if not found:
        raise CubeError(
            f"--phase_dir={folder!r} holds no *_corr.tif / *_wrapped_phase.tif files named with two "
            "acquisition times (YYYYMMDDTHHMMSS_YYYYMMDDTHHMMSS), as ASF HyP3 names them"
        )
    pairs = []
    for (first, second), files in sorted(found.items()):
        missing = sorted(set(PRODUCTS.values()) - set(files))
        if missing:
            have = next(iter(files.values())).name
            raise CubeError(f"--phase_dir: {have} has no {' or '.join(missing)} file beside it")
        pairs.append(PhasePair(pd.Timestamp(first), pd.Timestamp(second), files["coherence"], files["interferogram"]))
    labels = [pair.label for pair in pairs]
    if len(set(labels)) < len(labels):
        raise CubeError("--phase_dir holds two pairs of the same two days; keep one product per pair")
    return pairs


def read_pair(pair: PhasePair, geobox: GeoBox) -> tuple[np.ndarray, np.ndarray]:
    """Coherence and wrapped phase of ``pair`` on the output grid, float32 (y, x), NaN outside."""
    from rasterio.enums import Resampling

    products = ((pair.coherence, Resampling.bilinear), (pair.interferogram, Resampling.nearest))
    # GDAL releases the GIL while it reads and warps: the two products at once.
    with ThreadPoolExecutor(len(products)) as pool:
        coherence, interferogram = pool.map(lambda product: _on_grid(*product, geobox), products)
    return coherence, interferogram


def _on_grid(path: Path, resampling, geobox: GeoBox) -> np.ndarray:
    """Band 1 of ``path`` warped onto ``geobox``: GDAL reads the source's windows as it goes,
    rather than the whole file into memory first."""
    import rasterio
    from rasterio.warp import reproject

    out = np.full(geobox.shape.yx, np.nan, np.float32)
    with rasterio.open(path) as source:
        if source.crs is None:
            raise CubeError(f"{path} has no CRS")
        nodata = source.nodata
        if nodata is None and np.dtype(source.dtypes[0]).kind == "f":
            nodata = np.nan  # NaN is no-data, stated or not
        reproject(
            rasterio.band(source, 1),
            out,
            src_nodata=nodata,
            dst_crs=geobox.crs.to_wkt(),
            dst_transform=geobox.affine,
            dst_nodata=np.nan,
            resampling=resampling,
        )
    return out
