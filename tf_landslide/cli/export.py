"""Export a channel configuration of a datacube to sharded TFRecords and a manifest.

tf-landslide export --flagfile=vv_vh_dem_t1 [--cube=PATH_OR_URL] [--overwrite]
python -m export --flagfile=configs/vv_vh_dem_t1.flags ...   (from the repository's root)
"""

import sys

from absl import app, logging

from tf_landslide import cli
from tf_landslide import export as export_lib
from tf_landslide import flags as landslide_flags
from tf_landslide.cube.open import CubeError


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        export_lib.export(landslide_flags.export_config())
    except (CubeError, export_lib.ExportError, ValueError) as error:
        logging.error("%s", error)
        sys.exit(2)


def run(argv=None):
    cli.run_command(main, argv, __doc__)
