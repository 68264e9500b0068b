"""Evaluate a trained model on the test split: ``python eval.py --flagfile=configs/<config>.flags``.

The command is ``tf_landslide/cli/eval.py`` (installed: ``tf-landslide eval``); ``--help`` prints its usage.
"""

from tf_landslide.cli import eval

if __name__ == "__main__":
    eval.run()
