"""The area of interest and the output grid every layer is put on.

The grid is the RTC items' own by default: their UTM zone, 10 m pixels on multiples of the
resolution (as the RTC products lie), rows north to south. odc-geo does the geometry; what is
decided here is which CRS, and what to say when the area spans two UTM zones.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from odc.geo import CRS
from odc.geo.geobox import GeoBox
from odc.geo.geom import Geometry, box, unary_union

from tf_landslide.cube.build.request import BuildRequest
from tf_landslide.cube.schema import CubeError

WGS84 = "EPSG:4326"


@dataclasses.dataclass(frozen=True)
class Grid:
    """The output grid and why its CRS was chosen (a note for the log and the cube's attributes)."""

    geobox: GeoBox
    crs_note: str


def area_of_interest(request: BuildRequest) -> Geometry:
    """The area as one WGS 84 geometry: the bbox, or the union of the features of ``--aoi``."""
    if request.bbox:
        return box(*request.bbox, crs=WGS84)
    frame = read_vector(request.aoi, "aoi")
    if frame.empty:
        raise CubeError(f"--aoi={request.aoi!r} holds no features")
    frame = frame.to_crs(WGS84)
    return unary_union(Geometry(shape, crs=WGS84) for shape in frame.geometry)


def read_vector(path: str, flag: str):
    """The features of the vector file ``--flag=path`` (GeoJSON, GPKG, shapefile), which must carry a CRS."""
    import geopandas

    try:
        frame = geopandas.read_file(path)
    except Exception as error:  # pyogrio raises its own errors for missing and unreadable files
        raise CubeError(f"--{flag}={path!r} cannot be read as a vector file ({error})") from error
    if frame.crs is None:
        raise CubeError(f"--{flag}={path!r} has no CRS; save it with one (GeoJSON is WGS 84 by definition)")
    return frame


def item_crs(item) -> str | None:
    """The CRS an item's assets are stored in, from the projection extension (``proj:code`` or ``proj:epsg``)."""
    code = item.properties.get("proj:code")
    if code:
        return str(code)
    epsg = item.properties.get("proj:epsg")
    return f"EPSG:{epsg}" if epsg else None


def output_grid(request: BuildRequest, aoi: Geometry, items: list) -> Grid:
    """The grid over ``aoi``: ``--crs`` if given, else the items' UTM zone (the one of the area's
    centre when the area spans zones), at ``--resolution``."""
    if request.crs:
        crs, note = CRS(request.crs), f"{request.crs} (--crs)"
    else:
        counts = Counter(code for code in map(item_crs, items) if code)
        centre_zone = str(CRS.utm(aoi.centroid))
        if not counts:
            crs, note = CRS(centre_zone), f"{centre_zone}, the UTM zone of the area's centre (the items state no CRS)"
        elif len(counts) == 1:
            (code,) = counts
            crs, note = CRS(code), f"{code}, the RTC items' CRS"
        else:
            chosen = centre_zone if centre_zone in counts else counts.most_common(1)[0][0]
            crs = CRS(chosen)
            note = (
                f"{chosen}: the area spans {len(counts)} CRSs of the RTC items ({', '.join(sorted(counts))}); "
                "the cube is on the zone of the area's centre, the other items are reprojected onto it. "
                "Give --crs to choose another"
            )
    geobox = GeoBox.from_geopolygon(aoi.to_crs(crs), resolution=request.resolution, crs=crs)
    if min(geobox.shape) < 32:
        raise CubeError(
            f"the area is {geobox.shape.y} x {geobox.shape.x} pixels at {request.resolution} m: "
            "too small for a 32-pixel chip; give a larger --bbox or --aoi"
        )
    return Grid(geobox, note)
