"""What a cube build is asked for: one frozen object the command line and the Python API fill."""

from __future__ import annotations

import dataclasses

from tf_landslide.cube.schema import CubeError

PLANETARY_COMPUTER = "https://planetarycomputer.microsoft.com/api/stac/v1"
RTC_COLLECTION = "sentinel-1-rtc"
DEM_COLLECTIONS = {"nasadem": "elevation", "cop-dem-glo-30": "data"}  # collection -> its elevation asset
LABEL_RULES = ("centre", "all_touched")
# Without --days, how far the catalogue is searched on each side for the --acquisitions
# wanted: Sentinel-1 revisits a track every 12 days (6 with two satellites), so four passes
# of a track fit in 48 days and gaps of a few missed passes still fit in this.
DEFAULT_SEARCH_DAYS = 120


@dataclasses.dataclass(frozen=True)
class BuildRequest:
    """A cube for an area and an event. Times are UTC ISO strings; the bbox is WGS 84 degrees.

    Attributes:
        out: the ``.zarr`` directory to write (resumed when it holds an unfinished build).
        bbox: (west, south, east, north) in degrees, or empty when ``aoi`` names a vector file.
        aoi: a GeoJSON/GPKG/shapefile whose features' union is the area of interest.
        event_start, event_end: the trigger window; pre-event acquisitions are strictly
            before the start, post-event ones strictly after the end (``event_end`` defaults to
            the start), as the rest of the project selects them.
        acquisitions: per orbit track, how many acquisitions to keep on each side (0: all in the window).
        days: how far to search on each side of the event (0: ``DEFAULT_SEARCH_DAYS``).
        stac: a STAC API URL or a local static catalog (``catalog.json`` or its folder).
        collection, assets: the RTC collection and its VV and VH assets, in that order.
        dem_collection: one of ``DEM_COLLECTIONS`` (every cube of the schema holds the DEM and its products).
        labels: a landslide inventory (polygons) to rasterise to ``landslides`` (empty: none).
        label_rule: ``centre`` (a pixel is a landslide when its centre is inside a polygon) or
            ``all_touched`` (when a polygon touches it).
        extraction_mask: polygons rasterised (centre rule) to ``extraction_mask``.
        phase_dir: a folder of coherence/wrapped-phase GeoTIFF pairs named as ASF HyP3 names them.
        crs: the output CRS (default: the RTC items' UTM zone); resolution: metres.
        chunk: the spatial chunk of the written arrays (the export reads whole chunks).
        resampling: how backscatter is resampled onto the grid (the DEM always bilinearly).
        dask_scheduler: a Dask scheduler address to run the build on, or empty for local threads.
        event_name: stored in the cube's attributes with the window.
    """

    out: str
    event_start: str
    bbox: tuple[float, float, float, float] | tuple[()] = ()
    aoi: str = ""
    event_end: str = ""
    acquisitions: int = 4
    days: float = 0.0
    stac: str = PLANETARY_COMPUTER
    collection: str = RTC_COLLECTION
    assets: tuple[str, str] = ("vv", "vh")
    dem_collection: str = "nasadem"
    labels: str = ""
    label_rule: str = "centre"
    extraction_mask: str = ""
    phase_dir: str = ""
    crs: str = ""
    resolution: float = 10.0
    chunk: int = 512
    resampling: str = "nearest"
    dask_scheduler: str = ""
    event_name: str = "custom"

    def __post_init__(self):
        if bool(self.bbox) == bool(self.aoi):
            raise CubeError("give the area of interest either as --bbox=west,south,east,north or as --aoi=FILE")
        if self.bbox:
            west, south, east, north = self.bbox
            if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
                raise CubeError(
                    f"--bbox={','.join(map(str, self.bbox))} is not west,south,east,north in degrees "
                    "(west < east, south < north)"
                )
        if self.label_rule not in LABEL_RULES:
            raise CubeError(f"--label_rule={self.label_rule!r}: choose one of {', '.join(LABEL_RULES)}")
        if self.dem_collection not in DEM_COLLECTIONS:
            raise CubeError(f"--dem_collection={self.dem_collection!r}: choose one of {', '.join(DEM_COLLECTIONS)}")
        if self.acquisitions < 0 or self.days < 0 or self.resolution <= 0 or self.chunk < 32:
            raise CubeError("--acquisitions and --days must be >= 0, --resolution > 0, --chunk >= 32")
        if len(self.assets) != 2:
            raise CubeError(f"--assets names the VV and the VH asset, got {self.assets}")

    @property
    def search_days(self) -> float:
        return self.days or DEFAULT_SEARCH_DAYS
