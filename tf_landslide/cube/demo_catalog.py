"""An offline static STAC catalog shaped like Microsoft Planetary Computer's, from the synthetic scene.

    python -m tf_landslide.cube.demo_catalog OUT_DIR [--size tiny|embedded]

writes ``OUT_DIR/catalog.json`` and what it points to, every href relative so the folder can be
moved. It holds what the cube builder (``tf_landslide.cube.build``) reads from Planetary Computer,
and what it reads beside it, so the builder can be tested and shown without network:

* ``sentinel-1-rtc``: one item per acquisition, with PC's item id pattern and properties (sat, sar,
  projection and raster extensions, ``s1:processing_level``); assets ``vv`` and ``vh``, COGs of linear
  gamma0 (float32, NaN no-data, the synthetic bands' exact zeros kept) on the scene's UTM grid. A
  descending item's geometry leaves out the swath edge its bands hold as no-data, as a real
  footprint does.
* ``nasadem`` (asset ``elevation``, int16 metres) and ``cop-dem-glo-30`` (asset ``data``, float32):
  one item each, the scene's DEM resampled (bilinear) to a 1 arc-second EPSG:4326 grid with pixel
  centres on whole arc-seconds (as NASADEM's), reaching a few pixels beyond the scene.
* ``inventory.geojson``: the scene's labels as WGS84 polygons, one per 4-connected scar (properties
  ``id``, ``area_m2``). The polygons follow pixel edges, half a pixel from every pixel centre, and
  reprojection moves their vertices by far less than that: rasterised back onto the UTM grid by the
  centre rule they reproduce the labels pixel for pixel (measured in tests/cube/test_demo_catalog.py).
* ``phase/``: coherence (``*_corr.tif``) and wrapped phase (``*_wrapped_phase.tif``) of each InSAR
  pair of the synthetic cube, on its UTM grid, named as ASF HyP3's INSAR_GAMMA products are
  (``PHASE_PAIR_PATTERN``).

Pixel values are those ``synthetic.write_cube`` writes for the same size: the same functions draw
each band of rows with the same seeds, one acquisition (or pair) at a time.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import os
import re
import shutil
import tempfile
import zlib
from pathlib import Path

import geopandas
import numpy as np
import pandas as pd
import pystac
import rasterio
import rasterio.features
import rasterio.transform
import shapely
from affine import Affine
from pyproj import Transformer
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from pystac.extensions.sar import FrequencyBand, ObservationDirection, Polarization, SarExtension
from pystac.extensions.sat import OrbitState, SatExtension
from rasterio.warp import Resampling, reproject, transform_bounds

from tf_landslide.cube import schema
from tf_landslide.cube.synthetic import SIZES, SyntheticCubeSpec, acquisition_times, insar_pairs
from tf_landslide.cube.synthetic.scene import backscatter_band, build_scene, coherence_band

CATALOG_FILE = "catalog.json"
INVENTORY_FILE = "inventory.geojson"
PHASE_DIR = "phase"
S1_COLLECTION, NASADEM_COLLECTION, COPDEM_COLLECTION = "sentinel-1-rtc", "nasadem", "cop-dem-glo-30"

# The AOI is the footprint shrunk by this fraction of its size on each side, so the builder must clip.
AOI_INSET = 0.05
DEM_MARGIN_PIXELS = 3
ARCSECOND = 1.0 / 3600.0
LONLAT = "EPSG:4326"

# S1A's absolute orbit on its descending pass over the scene on the event day; others follow from
# 175 orbits per 12-day cycle. Relative orbits then come out constant per orbit direction, as real ones do.
ANCHOR_PASS, ANCHOR_ORBIT = pd.Timestamp("2018-09-05T20:40:12"), 23574
ORBITS_PER_CYCLE, CYCLE_SECONDS = 175, 12 * 86400
SLICE_SECONDS = 25  # an IW GRD slice's duration: the stop time in the product id
ORBIT_STATES = {"a": OrbitState.ASCENDING, "d": OrbitState.DESCENDING}

# HyP3 INSAR_GAMMA names: S1 + reference and secondary platforms, their start times, polarisation,
# orbit type (Precise/Restituted/Original), days between them, pixel spacing, G(AMMA), unmasked or
# water-masked, entire or clipped area, Filtered or Not, a product id; then the layer.
PHASE_PAIR_PATTERN = re.compile(
    r"^S1[ABC]{2}_(?P<reference>\d{8}T\d{6})_(?P<secondary>\d{8}T\d{6})_(?P<polarization>VV|HH)"
    r"(?P<orbit_type>[PRO])(?P<days>\d{3})_INT(?P<spacing>\d+)_G_(?P<options>[uw][ec][FN])"
    r"_(?P<product_id>[0-9A-F]{4})_(?P<layer>corr|wrapped_phase)\.tif$"
)
PHASE_TIME_FORMAT = "%Y%m%dT%H%M%S"


@dataclasses.dataclass(frozen=True)
class DemoCatalog:
    """Where a demo catalog is and what to ask the builder for."""

    root: Path
    catalog: Path  # catalog.json
    inventory: Path  # inventory.geojson (WGS84 polygons)
    phase_dir: Path  # HyP3-named coherence and wrapped-phase GeoTIFFs
    aoi_bbox: tuple[float, float, float, float]  # WGS84 west, south, east, north, inside the footprint
    event_time: dt.datetime  # UTC
    spec: SyntheticCubeSpec  # the synthetic scene it was drawn from


def write_demo_catalog(
    out_dir: str | os.PathLike, size: str = "tiny", spec: SyntheticCubeSpec | None = None
) -> DemoCatalog:
    """Write the demo catalog of synthetic size ``size`` (or of ``spec``, which wins when given)
    into ``out_dir`` (absent or empty).

    The folder appears only when complete (written beside it, then renamed).
    """
    if spec is None:
        if size not in SIZES:
            raise ValueError(f"unknown size {size!r}: expected one of {', '.join(SIZES)}")
        spec = SIZES[size]
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder: remove it or choose another")
    out.parent.mkdir(parents=True, exist_ok=True)
    # No dot in the name: pystac takes a root href with an extension for a file and writes beside it.
    staging = Path(tempfile.mkdtemp(prefix=out.name.replace(".", "_") + "-partial-", dir=out.parent)).resolve()
    try:
        _write_catalog(spec, staging)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    event = pd.Timestamp(spec.event_time).tz_localize("UTC").to_pydatetime()
    return DemoCatalog(out, out / CATALOG_FILE, out / INVENTORY_FILE, out / PHASE_DIR, aoi_bbox(spec), event, spec)


def aoi_bbox(spec: SyntheticCubeSpec) -> tuple[float, float, float, float]:
    """The demo's area of interest: the footprint's WGS84 bounds, inset by AOI_INSET on each side."""
    west, south, east, north = lonlat_footprint(spec).bounds
    dx, dy = AOI_INSET * (east - west), AOI_INSET * (north - south)
    return (west + dx, south + dy, east - dx, north - dy)


def _write_catalog(spec: SyntheticCubeSpec, root: Path) -> None:
    scene = build_scene(spec)
    catalog = pystac.Catalog(
        "tf-landslide-demo",
        f"tf_landslide's synthetic scene ({spec.height} x {spec.width} px) as a Planetary Computer-like catalog",
        title="tf_landslide demo catalog",
    )
    s1_items = _sentinel1_items(spec, scene, root / S1_COLLECTION)
    catalog.add_child(_collection(S1_COLLECTION, "Sentinel 1 Radiometrically Terrain Corrected (RTC)", s1_items))
    for collection_id, title, item in _dem_items(spec, scene.dem, root):
        catalog.add_child(_collection(collection_id, title, [item]))
    (root / INVENTORY_FILE).write_text(inventory(spec, scene.labels).to_json(drop_id=True))
    _write_phase_products(spec, scene, root / PHASE_DIR)
    # pystac's layout, <collection>/<item>/<item>.json, puts each item beside its assets.
    catalog.normalize_hrefs(str(root))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)


def _collection(collection_id: str, title: str, items: list[pystac.Item]) -> pystac.Collection:
    collection = pystac.Collection(
        collection_id,
        f"Synthetic stand-in for Planetary Computer's {collection_id} collection, drawn by tf_landslide.",
        pystac.Extent.from_items(items),
        title=title,
        license="Apache-2.0",  # the project's own synthetic data
    )
    collection.add_items(items)
    return collection


# --- grids and footprints ----------------------------------------------------------------------


def utm_transform(spec: SyntheticCubeSpec) -> Affine:
    """The scene's grid: rows north to south from (origin_x, origin_y), the top-left corner."""
    return Affine(spec.pixel_size, 0.0, spec.origin_x, 0.0, -spec.pixel_size, spec.origin_y)


def scene_bounds(spec: SyntheticCubeSpec) -> tuple[float, float, float, float]:
    """West, south, east, north of the scene's grid, in its CRS."""
    return rasterio.transform.array_bounds(spec.height, spec.width, utm_transform(spec))


def lonlat_footprint(spec: SyntheticCubeSpec, first_column: int = 0) -> shapely.Polygon:
    """The scene's columns from ``first_column`` east, as a WGS84 polygon (edges densified: UTM is
    rotated and curved against lon/lat)."""
    west, south, east, north = scene_bounds(spec)
    west += first_column * spec.pixel_size
    outline = shapely.segmentize(shapely.box(west, south, east, north), max(east - west, north - south) / 8)
    to_lonlat = Transformer.from_crs(spec.crs, LONLAT, always_xy=True)
    return shapely.transform(outline, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1])))


def _project(item: pystac.Item, crs: str, transform: Affine, shape: tuple[int, int]) -> None:
    projection = ProjectionExtension.ext(item, add_if_missing=True)
    projection.apply(
        epsg=int(crs.split(":")[1]),
        shape=list(shape),
        transform=list(transform)[:6],
        bbox=list(rasterio.transform.array_bounds(*shape, transform)),
    )


def _write_cog(path: Path, image: np.ndarray, crs: str, transform: Affine, nodata: float) -> str:
    profile = dict(driver="COG", count=1, height=image.shape[0], width=image.shape[1], dtype=image.dtype, nodata=nodata)
    # Lossless (floating-point or integer prediction by dtype). Overviews average power and heights:
    # GDAL's default for COG (cubic) overshoots, to negative power beside the exact zeros.
    options = dict(compress="DEFLATE", predictor="YES", overview_resampling="AVERAGE")
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", crs=crs, transform=transform, **profile, **options) as tiff:
        tiff.write(image, 1)
    return str(path)


def _add_asset(item: pystac.Item, key: str, href: str, title: str, data_type: DataType, nodata, unit=None):
    item.add_asset(key, pystac.Asset(href, title=title, media_type=pystac.MediaType.COG, roles=["data"]))
    band = RasterBand.create(nodata=nodata, data_type=data_type, unit=unit)
    RasterExtension.ext(item.assets[key], add_if_missing=True).bands = [band]


def _image(draw, spec: SyntheticCubeSpec, scene, *args):
    """One acquisition's (or pair's) whole image: its bands of rows as write_cube draws them (the
    seeds depend on the band), stacked. ``draw`` returns an array or a tuple of arrays."""
    rows = [slice(y0, min(y0 + spec.chunk, spec.height)) for y0 in range(0, spec.height, spec.chunk)]
    parts = [draw(spec, scene, band, *args) for band in rows]
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(layer) for layer in zip(*parts, strict=True))
    return np.concatenate(parts)


# --- Sentinel-1 RTC ----------------------------------------------------------------------------


def _s1_identity(time: np.datetime64) -> tuple[str, int]:
    """PC's item id for an S1A IW GRD slice starting at ``time``, and its absolute orbit."""
    start = pd.Timestamp(time)
    elapsed = int((start - ANCHOR_PASS).total_seconds())
    absolute = ANCHOR_ORBIT + elapsed * ORBITS_PER_CYCLE // CYCLE_SECONDS
    stop = start + pd.Timedelta(seconds=SLICE_SECONDS)
    datatake = zlib.crc32(f"{start:%Y%m%dT%H%M%S}".encode()) & 0xFFFFFF  # any stable hex: real ones count takes
    return f"S1A_IW_GRDH_1SDV_{start:%Y%m%dT%H%M%S}_{stop:%Y%m%dT%H%M%S}_{absolute:06d}_{datatake:06X}_rtc", absolute


def _sentinel1_items(spec: SyntheticCubeSpec, scene, folder: Path) -> list[pystac.Item]:
    times, orbits = acquisition_times(spec)
    event = np.datetime64(spec.event_time, "ns")
    items = []
    for t, (time, orbit) in enumerate(zip(times, orbits, strict=True)):
        item_id, absolute = _s1_identity(time)
        doy = pd.Timestamp(time).day_of_year
        hrefs, first_column = {}, 0
        for pol in schema.SAR_VARIABLES:
            image = _image(backscatter_band, spec, scene, pol, t, time, orbit, time > event, doy)
            hrefs[pol] = _write_cog(folder / item_id / f"{pol}.tif", image, spec.crs, utm_transform(spec), np.nan)
            if pol == "vv":  # the swath starts at the first column with any signal (zeros fall beyond it too)
                first_column = int(np.argmax((image > 0).any(axis=0)))
        items.append(_s1_item(spec, item_id, time, orbit, absolute, lonlat_footprint(spec, first_column)))
        for pol, href in hrefs.items():
            title = f"{pol.upper()}: vertical transmit, {'vertical' if pol == 'vv' else 'horizontal'} receive"
            _add_asset(items[-1], pol, href, title, DataType.FLOAT32, "nan")
    return items


def _s1_item(spec, item_id, time, orbit, absolute, footprint) -> pystac.Item:
    start = pd.Timestamp(time).tz_localize("UTC").to_pydatetime()
    item = pystac.Item(
        item_id,
        shapely.geometry.mapping(footprint),
        list(footprint.bounds),
        start,
        {"s1:processing_level": "1", "s1:resolution": "high", "s1:product_timeliness": "Fast-24h"},
    )
    item.common_metadata.platform = "SENTINEL-1A"
    item.common_metadata.constellation = "Sentinel-1"
    item.common_metadata.start_datetime = start
    item.common_metadata.end_datetime = start + dt.timedelta(seconds=SLICE_SECONDS)
    SarExtension.ext(item, add_if_missing=True).apply(
        instrument_mode="IW",
        frequency_band=FrequencyBand.C,
        polarizations=[Polarization.VV, Polarization.VH],
        product_type="GRD",
        center_frequency=5.405,
        resolution_range=20,
        resolution_azimuth=22,
        pixel_spacing_range=10,
        pixel_spacing_azimuth=10,
        looks_range=5,
        looks_azimuth=1,
        looks_equivalent_number=4.4,
        observation_direction=ObservationDirection.RIGHT,
    )
    SatExtension.ext(item, add_if_missing=True).apply(
        orbit_state=ORBIT_STATES[orbit],
        relative_orbit=(absolute - 73) % 175 + 1,  # Sentinel-1A's relation between the two
        absolute_orbit=absolute,
        platform_international_designator="2014-016A",
    )
    _project(item, spec.crs, utm_transform(spec), (spec.height, spec.width))
    return item


# --- DEMs ----------------------------------------------------------------------------------------


def dem_grid(spec: SyntheticCubeSpec) -> tuple[Affine, tuple[int, int]]:
    """A 1 arc-second lon/lat grid over the scene and DEM_MARGIN_PIXELS beyond, centres on whole arc-seconds."""
    west, south, east, north = (value / ARCSECOND for value in lonlat_footprint(spec).bounds)
    col0, col1 = math.floor(west) - DEM_MARGIN_PIXELS, math.ceil(east) + DEM_MARGIN_PIXELS
    row0, row1 = math.floor(south) - DEM_MARGIN_PIXELS, math.ceil(north) + DEM_MARGIN_PIXELS
    transform = Affine(ARCSECOND, 0.0, (col0 - 0.5) * ARCSECOND, 0.0, -ARCSECOND, (row1 + 0.5) * ARCSECOND)
    return transform, (row1 - row0 + 1, col1 - col0 + 1)


def lonlat_dem(spec: SyntheticCubeSpec, dem: np.ndarray) -> tuple[np.ndarray, Affine]:
    """``dem`` resampled (bilinear) to ``dem_grid``, float32 metres."""
    transform, shape = dem_grid(spec)
    left, bottom, right, top = rasterio.transform.array_bounds(*shape, transform)
    west, south, east, north = transform_bounds(LONLAT, spec.crs, left, bottom, right, top, densify_pts=21)
    # The grid reaches beyond the scene (margin, and UTM's rotation against lon/lat): mirror the
    # terrain outward so every grid pixel has ground under it, as a real DEM has.
    scene_west, scene_south, scene_east, scene_north = scene_bounds(spec)
    beyond = [scene_west - west, east - scene_east, north - scene_north, scene_south - south]
    px = spec.pixel_size
    pad_w, pad_e, pad_n, pad_s = (math.ceil(max(0.0, d) / px) + 2 for d in beyond)
    source = np.pad(dem, ((pad_n, pad_s), (pad_w, pad_e)), mode="reflect")
    source_transform = Affine(px, 0.0, spec.origin_x - pad_w * px, 0.0, -px, spec.origin_y + pad_n * px)
    out = np.full(shape, np.nan, np.float32)
    reproject(
        source,
        out,
        src_transform=source_transform,
        src_crs=spec.crs,
        dst_transform=transform,
        dst_crs=LONLAT,
        resampling=Resampling.bilinear,
    )
    if np.isnan(out).any():
        raise RuntimeError("the mirrored DEM does not cover the lon/lat grid: widen its padding")
    return out, transform


def _dem_items(spec: SyntheticCubeSpec, dem: np.ndarray, root: Path):
    """(collection id, title, item) of NASADEM (int16, as PC's) and Copernicus DEM GLO-30 (float32)."""
    heights, transform = lonlat_dem(spec, dem)
    west, south, _, _ = lonlat_footprint(spec).bounds
    lat, lon = math.floor(south), math.floor(west)
    tile = f"{'n' if lat >= 0 else 's'}{abs(lat):02d}{'e' if lon >= 0 else 'w'}{abs(lon):03d}"
    nasadem_id = f"NASADEM_HGT_{tile}"
    copdem_id = f"Copernicus_DSM_COG_10_{tile[:3].upper()}_00_{tile[3:].upper()}_00_DEM"
    products = [
        (NASADEM_COLLECTION, "NASADEM HGT v001", nasadem_id, "elevation", "2000-02-20", np.rint(heights), -32768),
        (COPDEM_COLLECTION, "Copernicus DEM GLO-30", copdem_id, "data", "2021-04-22", heights, -32767.0),
    ]
    for collection_id, title, item_id, key, date, image, nodata in products:
        image = image.astype(np.int16 if collection_id == NASADEM_COLLECTION else np.float32)
        href = _write_cog(root / collection_id / item_id / f"{key}.tif", image, LONLAT, transform, nodata)
        left, bottom, right, top = rasterio.transform.array_bounds(*image.shape, transform)
        outline = shapely.box(left, bottom, right, top)
        when = dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC)
        item = pystac.Item(item_id, shapely.geometry.mapping(outline), list(outline.bounds), when, {"gsd": 30})
        _project(item, LONLAT, transform, image.shape)
        _add_asset(item, key, href, "Elevation", DataType(str(image.dtype)), nodata, unit="metre")
        yield collection_id, title, item


# --- landslide inventory and InSAR phase products ------------------------------------------------


def inventory(spec: SyntheticCubeSpec, labels: np.ndarray) -> geopandas.GeoDataFrame:
    """The labels' 4-connected scars as polygons (pixel edges) in WGS84, with ``id`` and ``area_m2``."""
    shapes = rasterio.features.shapes(labels, mask=labels == 1, connectivity=4, transform=utm_transform(spec))
    polygons = [shapely.geometry.shape(geometry) for geometry, _ in shapes]
    scars = geopandas.GeoDataFrame({"id": np.arange(1, len(polygons) + 1)}, geometry=polygons, crs=spec.crs)
    scars["area_m2"] = scars.area
    return scars.to_crs(LONLAT)


def phase_product_stem(spec: SyntheticCubeSpec, reference: np.datetime64, secondary: np.datetime64) -> str:
    """A HyP3 INSAR_GAMMA product name (without layer suffix) for the pair; see PHASE_PAIR_PATTERN."""
    first, second = pd.Timestamp(reference), pd.Timestamp(secondary)
    days = round((second - first) / pd.Timedelta(days=1))
    stem = f"S1AA_{first:{PHASE_TIME_FORMAT}}_{second:{PHASE_TIME_FORMAT}}_VVP{days:03d}_INT{spec.pixel_size:g}_G_ueF"
    return f"{stem}_{zlib.crc32(stem.encode()) & 0xFFFF:04X}"


def _write_phase_products(spec: SyntheticCubeSpec, scene, folder: Path) -> None:
    times, orbits = acquisition_times(spec)
    event = np.datetime64(spec.event_time, "ns")
    for p, (a, b) in enumerate(insar_pairs(times, orbits)):
        days = (times[b] - times[a]) / np.timedelta64(1, "D")
        coherence, phase = _image(coherence_band, spec, scene, p, a, b, orbits[a], times[a] < event < times[b], days)
        stem = phase_product_stem(spec, times[a], times[b])
        _write_cog(folder / f"{stem}_corr.tif", coherence, spec.crs, utm_transform(spec), np.nan)
        _write_cog(folder / f"{stem}_wrapped_phase.tif", phase, spec.crs, utm_transform(spec), np.nan)


def main(argv: list[str] | None = None, prog: str = "python -m tf_landslide.cube.demo_catalog") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split(".")[0])
    parser.add_argument("out_dir", help="folder to create (or an empty one)")
    parser.add_argument("--size", choices=("tiny", "embedded"), default="tiny", help="the synthetic scene's size")
    args = parser.parse_args(argv)
    demo = write_demo_catalog(args.out_dir, args.size)
    print(f"catalog:   {demo.catalog}\ninventory: {demo.inventory}\nphase:     {demo.phase_dir}")
    print(f"AOI bbox (WGS84): {', '.join(f'{v:.6f}' for v in demo.aoi_bbox)}\nevent: {demo.event_time.isoformat()}")
    print("build a cube from it:\n  " + " ".join(build_command(demo, "cubes/demo_event.zarr")))
    return 0


def build_command(demo: DemoCatalog, out: str) -> list[str]:
    """The cube builder's command line for the demo's area, event, inventory and phase products."""
    return [
        "python",
        "-m",
        "tf_landslide.cube.build",
        f"--stac={demo.root}",
        "--bbox=" + ",".join(f"{v:.6f}" for v in demo.aoi_bbox),
        f"--event_start={demo.event_time:%Y-%m-%dT%H:%M:%SZ}",
        "--event_name=demo",
        f"--labels={demo.inventory}",
        f"--phase_dir={demo.phase_dir}",
        f"--out={out}",
    ]


def run(argv: list[str]) -> None:
    """``tf-landslide demo-catalog``: ``argv[0]`` names the program."""
    raise SystemExit(main(argv[1:], prog=argv[0]))


if __name__ == "__main__":
    raise SystemExit(main())
