"""Train a landslide segmentation model on an export (running the export first if needed).

tf-landslide train --flagfile=vv_vh_dem_t1 [--model_dir=DIR] [--epochs=N] [--batch_size=N]
python train.py --flagfile=configs/vv_vh_dem_t1.flags ...   (from the repository)
"""

import os
import sys

from absl import app, logging

from tf_landslide import cli, distribution, train_lib
from tf_landslide import flags as landslide_flags
from tf_landslide.cube.open import CubeError
from tf_landslide.data import DataError
from tf_landslide.export import ExportError


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        environ = dict(os.environ)  # Vertex AI's AIP_* folders and CLUSTER_SPEC, or TF_CONFIG
        cfg = landslide_flags.train_config(cluster=distribution.cluster_from_environment(environ), environ=environ)
        train_lib.train(cfg, flags_text=landslide_flags.flags_text(environ=environ))
    except (CubeError, DataError, ExportError, ValueError, FileNotFoundError) as error:
        logging.error("%s", error)
        sys.exit(2)


def run(argv=None):
    cli.run_command(main, argv, __doc__)
