"""The generator writes other tools' dialects too; each opens to the cube of the default one."""

import numpy as np
import pytest
import xarray as xr
import zarr

from tests.helpers import tiny_export_config
from tf_landslide import export
from tf_landslide.cube import schema, synthetic
from tf_landslide.cube.open import open_conformed

DIALECTS = {
    "object_strings_long_orbits": (2, synthetic.Dialect(strings="object", orbit_labels="long")),
    "bytes_south_up_cf_days_unconsolidated": (
        2,
        synthetic.Dialect(strings="bytes", time_units="days since 2018-01-01", y_ascending=True, consolidated=False),
    ),
    "zarr_v3_object_strings_south_up": (3, synthetic.Dialect(strings="object", y_ascending=True)),
    "float64_sar_bool_labels": (2, synthetic.Dialect(sar_dtype="float64", label_dtype="bool")),
}


@pytest.fixture(scope="module")
def reference(tiny_cube):
    return open_conformed(tiny_cube).ds


def _stored(path: str, name: str) -> xr.DataArray:
    return xr.open_zarr(path, chunks=None, decode_times=False)[name]


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_each_dialect_is_stored_as_named_and_opens_to_the_default_cube(name, tiny_spec, tiny_cube, reference, tmp_path):
    zarr_format, dialect = DIALECTS[name]
    if zarr_format == 3 and int(zarr.__version__.split(".")[0]) < 3:
        pytest.skip("zarr-python 2 cannot write zarr v3")
    path = str(synthetic.write_cube(tiny_spec, tmp_path / f"{name}.zarr", zarr_format=zarr_format, dialect=dialect))
    orbit = _stored(path, schema.ORBIT_COORD)
    # vlen-utf8 reads as objects (zarr-python 2) or numpy 2's StringDType (zarr-python 3).
    assert orbit.dtype.kind in {"unicode": "U", "object": "OT", "bytes": "S"}[dialect.strings]
    assert (orbit.values[0] in ("ascending", "descending", b"ascending", b"descending")) == (
        dialect.orbit_labels == "long"
    )
    y = _stored(path, "y").values
    assert (y[1] > y[0]) == dialect.y_ascending
    if dialect.time_units:
        assert _stored(path, schema.TIME_DIM).attrs["units"] == dialect.time_units
    assert _stored(path, "vv").dtype == np.dtype(dialect.sar_dtype)
    assert _stored(path, schema.LABEL_VARIABLE).dtype == np.dtype(dialect.label_dtype)
    cube = open_conformed(path)
    # Dtypes of data variables are not conformed (readers make channels float32, labels boolean).
    assert bool(cube.changes) == (name != "float64_sar_bool_labels")
    canonical, default = (ds.drop_vars("spatial_ref") for ds in (cube.ds, reference))
    xr.testing.assert_identical(canonical.coords.to_dataset(), default.coords.to_dataset())
    assert canonical.attrs == default.attrs
    for variable in default.data_vars:
        np.testing.assert_array_equal(canonical[variable].values.astype(default[variable].dtype), default[variable])
    assert cube.ds.rio.crs == reference.rio.crs
    # Records are a pure function of the content: the same bytes as the default dialect's.
    same = export.export(tiny_export_config(tiny_cube, tmp_path / "default"))
    mine = export.export(tiny_export_config(path, tmp_path / "dialect"))
    hashes = [{s["file"]: s["sha256"] for split in m["splits"].values() for s in split["shards"]} for m in (same, mine)]
    assert hashes[0] == hashes[1]
    np.testing.assert_array_equal(
        cube.ds["vv"].isel(timestep=3).values, _stored(tiny_cube, "vv").isel(timestep=3).values
    )
