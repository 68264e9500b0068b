"""The export stage: ``python -m export --flagfile=configs/<config>.flags`` from the repository's root.

The command is ``tf_landslide/cli/export.py`` (installed: ``tf-landslide export``); ``--help`` prints
its usage. The wheel leaves this folder out: a top-level ``export`` package in site-packages would
shadow any other of that name.
"""

from tf_landslide.cli.export import run

if __name__ == "__main__":
    run()
