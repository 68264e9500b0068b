"""Cubes written the way other tools write them (``foreign.py``), shared by the cube tests."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.cube import foreign
from tests.helpers import ZARR_V3_VARIANTS, require_zarr3


@pytest.fixture(scope="session")
def foreign_store_root(tmp_path_factory):
    """Where the variant stores go: tmpfs when the machine has one.

    A variant is about 1,500 chunk files. On this project's VM disks creating a file costs about
    0.7 ms of kernel time (1 s a variant, 30 variants); on tmpfs about 20 us.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path_factory.mktemp("foreign-cubes")
        return
    root = Path(tempfile.mkdtemp(prefix="foreign-cubes-", dir=shm))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def foreign_store(foreign_store_root):
    """``foreign_store(name)``: the path of variant ``name`` of the canonical scene, written on first use.

    Skips the test asking for a zarr v3 variant under zarr-python 2.
    """
    paths = {}

    def path_of(name: str) -> Path:
        if name in ZARR_V3_VARIANTS:
            require_zarr3()
        if name not in paths:
            path = foreign_store_root / f"{name}.zarr"
            paths[name] = Path(foreign.write_variant(foreign.canonical_scene(), name, path))
        return paths[name]

    return path_of
