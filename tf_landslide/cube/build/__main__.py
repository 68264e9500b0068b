"""``tf-landslide build-cube``: a datacube for an area and an event, from a STAC catalogue.

    tf-landslide build-cube --bbox=141.9,42.65,142.1,42.8 \
        --event_start=2018-09-05T18:07:59Z --out=cubes/iburi.zarr [--labels=inventory.geojson]

(also ``python -m tf_landslide.cube.build`` and ``tf-landslide-build-cube``, the same command).

Defaults: Planetary Computer's ``sentinel-1-rtc`` (signed with the planetary-computer package),
NASADEM, four acquisitions per orbit track on each side of the event, the items' UTM grid at 10 m.
"""

from __future__ import annotations

import sys

from absl import flags

from tf_landslide.cube.build import BuildRequest, build
from tf_landslide.cube.build.request import DEM_COLLECTIONS, LABEL_RULES, PLANETARY_COMPUTER, RTC_COLLECTION
from tf_landslide.cube.schema import CubeError

flags.DEFINE_string("out", None, "The .zarr directory to write.")
flags.DEFINE_list("bbox", [], "Area of interest: west,south,east,north in WGS 84 degrees.")
flags.DEFINE_string(
    "aoi", "", "Area of interest as a vector file (GeoJSON, GPKG, shapefile): the union of its features."
)
flags.DEFINE_string("event_start", None, "Event start, UTC ISO time (2018-09-05T18:07:59Z).")
flags.DEFINE_string("event_end", "", "Event end, UTC ISO time. Default: --event_start.")
flags.DEFINE_string("event_name", "custom", "A name for the event, stored in the cube.")
flags.DEFINE_integer("acquisitions", 4, "Per orbit track, acquisitions to keep on each side of the event (0: all).")
flags.DEFINE_float("days", 0.0, "How many days to search on each side of the event (0: 120).")
flags.DEFINE_string(
    "stac", PLANETARY_COMPUTER, "A STAC API URL, or a local static catalog (catalog.json or its folder)."
)
flags.DEFINE_string("collection", RTC_COLLECTION, "The Sentinel-1 RTC collection.")
flags.DEFINE_list("assets", ["vv", "vh"], "The VV and the VH asset of the RTC items.")
flags.DEFINE_enum("dem_collection", "nasadem", sorted(DEM_COLLECTIONS), "The DEM collection in the same catalogue.")
flags.DEFINE_string("labels", "", "A landslide inventory (polygons) to rasterise to 'landslides'.")
flags.DEFINE_enum(
    "label_rule", "centre", LABEL_RULES, "centre: pixels whose centre is inside; all_touched: any touched."
)
flags.DEFINE_string("extraction_mask", "", "Polygons rasterised to 'extraction_mask' (centre rule).")
flags.DEFINE_string("phase_dir", "", "A folder of *_corr.tif / *_wrapped_phase.tif pairs (ASF HyP3 InSAR products).")
flags.DEFINE_string("crs", "", "Output CRS (default: the RTC items' UTM zone).")
flags.DEFINE_float("resolution", 10.0, "Output pixel size in metres.")
flags.DEFINE_integer("chunk", 512, "Spatial chunk of the written arrays.")
flags.DEFINE_enum("resampling", "nearest", ["nearest", "bilinear", "average"], "Resampling of VV and VH.")
flags.DEFINE_string("dask_scheduler", "", "A Dask scheduler address to run the build on (default: local threads).")
flags.mark_flags_as_required(["out", "event_start"])

FLAGS = flags.FLAGS


def request_from_flags() -> BuildRequest:
    try:
        bbox = tuple(float(v) for v in FLAGS.bbox)
    except ValueError:
        raise CubeError(f"--bbox={','.join(FLAGS.bbox)} is not four numbers west,south,east,north") from None
    if bbox and len(bbox) != 4:
        raise CubeError(f"--bbox={','.join(FLAGS.bbox)} is not four numbers west,south,east,north")
    return BuildRequest(
        out=FLAGS.out,
        event_start=FLAGS.event_start,
        event_end=FLAGS.event_end,
        event_name=FLAGS.event_name,
        bbox=bbox,
        aoi=FLAGS.aoi,
        acquisitions=FLAGS.acquisitions,
        days=FLAGS.days,
        stac=FLAGS.stac,
        collection=FLAGS.collection,
        assets=tuple(FLAGS.assets),
        dem_collection=FLAGS.dem_collection,
        labels=FLAGS.labels,
        label_rule=FLAGS.label_rule,
        extraction_mask=FLAGS.extraction_mask,
        phase_dir=FLAGS.phase_dir,
        crs=FLAGS.crs,
        resolution=FLAGS.resolution,
        chunk=FLAGS.chunk,
        resampling=FLAGS.resampling,
        dask_scheduler=FLAGS.dask_scheduler,
    )


def main(argv) -> None:
    del argv
    from tqdm import tqdm

    try:
        request = request_from_flags()
        if request.dask_scheduler:
            from distributed import Client

            with Client(request.dask_scheduler):
                build(request, progress=tqdm)
        else:
            build(request, progress=tqdm)
    except CubeError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def run(argv: list[str] | None = None) -> None:
    from tf_landslide import cli

    cli.run_command(main, argv, __doc__)


if __name__ == "__main__":
    run()
