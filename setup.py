"""The packages of the distribution; everything else is in setup.cfg.

The flagfiles are package data (``tf-landslide train --flagfile=quickstart``) but live in the
repository's ``configs/``, where users and the README expect them: ``package_dir`` installs that
folder as the package ``tf_landslide.configs``, so there is one copy of each file. setup.cfg's
``packages = find:`` cannot list a package whose folder lies outside the package's tree, hence
this file. The repository's ``export/`` (``python -m export``) is left out on purpose: a top-level
``export`` package in site-packages would shadow any other of that name.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["tf_landslide", "tf_landslide.*"]), "tf_landslide.configs"],
    package_dir={"tf_landslide.configs": "configs"},
)
