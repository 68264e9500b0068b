"""Export a trained model for TF Serving: ``python export_savedmodel.py --model_dir=DIR --export_dir=DIR``.

The command is ``tf_landslide/cli/export_savedmodel.py`` (installed: ``tf-landslide export-savedmodel``);
``--help`` prints its usage.
"""

from tf_landslide.cli import export_savedmodel

if __name__ == "__main__":
    export_savedmodel.run()
