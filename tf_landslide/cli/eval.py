"""Evaluate a trained model on the test split: metrics JSON, PR curve and prediction panel.

tf-landslide eval --flagfile=vv_vh_dem_t1 --model_dir=DIR
python eval.py --flagfile=configs/vv_vh_dem_t1.flags --model_dir=DIR   (from the repository)
"""

import os
import sys

from absl import app, logging

from tf_landslide import cli, evaluate
from tf_landslide import flags as landslide_flags
from tf_landslide.cube.open import CubeError
from tf_landslide.data import DataError


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        evaluate.evaluate(landslide_flags.eval_config(environ=dict(os.environ)))  # AIP_MODEL_DIR
    except (CubeError, DataError, ValueError, FileNotFoundError) as error:
        logging.error("%s", error)
        sys.exit(2)


def run(argv=None):
    cli.run_command(main, argv, __doc__)
