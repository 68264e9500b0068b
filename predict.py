"""Map landslides over a whole cube with a trained model: ``python predict.py --flagfile=configs/<config>.flags``.

The command is ``tf_landslide/cli/predict.py`` (installed: ``tf-landslide predict``); ``--help`` prints its usage.
"""

from tf_landslide.cli import predict

if __name__ == "__main__":
    predict.run()
