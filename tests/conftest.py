"""Shared fixtures: every test cube comes from the project's own generator."""

import dataclasses

import pytest
import zarr

from tf_landslide.config import CubeConfig, ExportConfig, SplitSpec
from tf_landslide.cube import synthetic

# The cube layer supports zarr-python 2.18 and 3.x (.ci/oldest runs the cube tests with 2.18).
# zarr-python 2 can neither write nor read zarr v3 stores: what needs one skips there, and only that.
ZARR_3 = int(zarr.__version__.split(".")[0]) >= 3
ZARR_V3_ONLY = f"zarr-python {zarr.__version__} cannot write or read zarr v3 stores"
needs_zarr3 = pytest.mark.skipif(not ZARR_3, reason=ZARR_V3_ONLY)


def require_zarr3() -> None:
    """Skip the calling test or fixture under zarr-python 2 (for fixtures, where marks do nothing)."""
    if not ZARR_3:
        pytest.skip(ZARR_V3_ONLY)


def zarr_format_of(group) -> int:
    """The zarr format of an open group; zarr-python 2 (no ``metadata``) opens format 2 only."""
    return group.metadata.zarr_format if ZARR_3 else 2


@pytest.fixture(scope="session")
def tiny_spec():
    return synthetic.SIZES["tiny"]


@pytest.fixture(scope="session")
def tiny_cube(tmp_path_factory, tiny_spec):
    """A tiny zarr v2 cube (160 x 192 px, 6 acquisitions per orbit, both orbits)."""
    return str(synthetic.write_cube(tiny_spec, tmp_path_factory.mktemp("cubes") / "tiny.zarr"))


@pytest.fixture(scope="session")
def tiny_cube_v3(tmp_path_factory, tiny_spec):
    require_zarr3()
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
