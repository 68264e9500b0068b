"""Train a landslide segmentation model: ``python train.py --flagfile=configs/<config>.flags``.

The command is ``tf_landslide/cli/train.py`` (installed: ``tf-landslide train``); ``--help`` prints its usage.
"""

from tf_landslide.cli import train

if __name__ == "__main__":
    train.run()
