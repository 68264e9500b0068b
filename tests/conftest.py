"""Shared fixtures: every test cube comes from the project's own generator (plain helpers: helpers.py)."""

import pytest

from tests.helpers import make_config, require_zarr3
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
    require_zarr3()
    return str(synthetic.write_cube(tiny_spec, tmp_path_factory.mktemp("cubes") / "tiny-v3.zarr", zarr_format=3))


@pytest.fixture(scope="session")
def trained(tiny_cube, tmp_path_factory):
    """Four epochs at batch 2 (three steps an epoch); the export runs inside train().

    For test_model_folder.py and test_train_lib.py: once a session, not once a module.
    """
    from tf_landslide import train_lib  # TensorFlow: not while .ci/oldest collects without it

    root = tmp_path_factory.mktemp("trained")
    # float32 on every CPU: test_model_folder re-evaluates the last weights in float32 and expects
    # the run's own validation figures to 1e-4 (bfloat16 runs: test_gpu_flags.py).
    cfg = make_config(tiny_cube, root, batch_size=2, epochs=4, bfloat16="off")
    assert not (root / "records").exists()
    summary = train_lib.train(cfg)
    return cfg, summary
