"""Map landslides over a whole cube with a trained model: a cloud-optimised GeoTIFF and a Zarr
of probabilities, a PNG quick-look, GeoJSON polygons, an interactive page (index.html, offline
unless --map_basemap), and whole-scene scores when the cube has labels.

tf-landslide predict --flagfile=vv_vh_dem_t1 [--model_dir=DIR] [--cube=PATH_OR_URL --event=NAME]
                     [--map_dir=DIR] [--map_window=512] [--map_overlap=128] [--threshold=0.5] [--map_basemap=osm]
                     [--overwrite]
python predict.py --flagfile=configs/vv_vh_dem_t1.flags ...   (from the repository)
"""

import os
import sys

from absl import app, logging

from tf_landslide import cli
from tf_landslide import flags as landslide_flags
from tf_landslide.cube.open import CubeError
from tf_landslide.maps import scene_map


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        summary = scene_map.make_map(landslide_flags.map_config(environ=dict(os.environ)))
    except (CubeError, ValueError, FileNotFoundError) as error:
        logging.error("%s", error)
        sys.exit(2)
    print(scene_map.describe(summary, summary["map_dir"]))


def run(argv=None):
    cli.run_command(main, argv, __doc__)
