"""Export a trained model as a SavedModel for TensorFlow Serving: <export_dir>/<version>/.

tf-landslide export-savedmodel --model_dir=DIR --export_dir=DIR [--version=N] [--checkpoint=best|last]
python export_savedmodel.py --model_dir=DIR --export_dir=DIR ...   (from the repository)
"""

import os
import sys

from absl import app, flags, logging

from tf_landslide import cli, serving
from tf_landslide import flags as landslide_flags
from tf_landslide.data import DataError

flags.DEFINE_string("export_dir", None, "Base folder of the SavedModel versions (TF Serving's --model_base_path).")
flags.DEFINE_integer(
    "version", None, "Version folder to write; default: one more than the highest existing (1 at first)."
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    values = landslide_flags.FLAGS
    if not values.export_dir:
        logging.error("--export_dir is required (the base folder of the versions, TF Serving's --model_base_path)")
        sys.exit(2)
    try:
        model_dir = landslide_flags.from_environment("model_dir", environ=dict(os.environ))  # or AIP_MODEL_DIR
        path = serving.export_saved_model(model_dir, values.export_dir, values.version, values.checkpoint)
    except (DataError, ValueError, FileNotFoundError) as error:
        logging.error("%s", error)
        sys.exit(2)
    print(path)


def run(argv=None):
    cli.run_command(main, argv, __doc__)
