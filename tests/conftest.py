"""Shared fixtures: every test cube comes from the project's own generator."""

import dataclasses

import pytest

from tf_landslide.chips import SplitSpec
from tf_landslide.config import CubeConfig, ExportConfig
from tf_landslide.cube import synthetic


@pytest.fixture(scope="session")
def tiny_spec():
    return synthetic.SIZES["tiny"]


@pytest.fixture(scope="session")
def tiny_cube(tmp_path_factory, tiny_spec):
    """A tiny zarr v2 cube (160 x 192 px, 6 acquisitions per orbit, both orbits)."""
    return str(synthetic.write_cube(tiny_spec, tmp_path_factory.mktemp("cubes") / "tiny.zarr"))


@pytest.fixture(scope="session")
def tiny_cube_v3(tmp_path_factory, tiny_spec):
    return str(synthetic.write_cube(tiny_spec, tmp_path_factory.mktemp("cubes") / "tiny-v3.zarr", zarr_format=3))


def tiny_export_config(cube: str, records_dir, **overrides) -> ExportConfig:
    """An export of the tiny cube with 32-pixel chips, in this process, without progress bars."""
    base = ExportConfig(
        cube=CubeConfig(cube=cube),
        config="vv_vh_dem_t2",
        records_dir=str(records_dir),
        chip_size=32,
        band_rows=64,
        workers=0,
        progress=False,
        split=SplitSpec(),
    )
    return dataclasses.replace(base, **overrides)
