"""Open a datacube (zarr directory, Zenodo zip, fsspec URL, or a Dataset in memory) in the
canonical form (``conform``) and check it against the schema."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from tf_landslide.cube import schema
from tf_landslide.cube.conform import UNKNOWN_ORBIT, Conformed, conform
from tf_landslide.cube.schema import CubeError

IN_MEMORY = "<in-memory Dataset>"  # the location of a cube given as an xarray Dataset


_ZARR_MARKERS = (".zmetadata", ".zgroup", "zarr.json")


def zip_root(names: list[str]) -> str:
    """The folder inside a zip that holds the zarr group (shallowest group marker)."""
    roots = sorted(
        (
            name[: -len(marker)]
            for name in names
            for marker in _ZARR_MARKERS
            if name.endswith("/" + marker) or name == marker
        ),
        key=lambda r: (r.count("/"), r),
    )
    if not roots:
        raise CubeError("the zip holds no zarr store (no .zmetadata, .zgroup or zarr.json inside it)")
    return roots[0].rstrip("/")


def _open_zip(location: str, storage_options: dict) -> xr.Dataset:
    import fsspec

    with fsspec.open(location, "rb", **storage_options) as handle:
        with zipfile.ZipFile(handle) as archive:
            try:
                root = zip_root(archive.namelist())
            except CubeError as error:
                raise CubeError(f"{location!r}: {error}") from None
    url = f"zip://{root}::{location}" if root else f"zip://::{location}"
    return xr.open_zarr(url, consolidated=None, chunks=None, storage_options=storage_options or None)


def open_cube(source: str | xr.Dataset, storage_options: dict | None = None) -> xr.Dataset:
    """A cube in the canonical form (``conform``), lazily: only coordinates are read.

    ``source``: an unpacked ``.zarr`` directory, a ``.zip`` of one, a URL fsspec understands
    (``gs://``, ``s3://``, ``https://``...) for either, or an ``xarray.Dataset`` (from
    stackstac, odc-stac or a notebook). Zarr formats 2 and 3, consolidated or not. Stored
    arrays stay on disk until indexed (no dask chunks), so callers read only what they need.
    """
    return open_conformed(source, storage_options).ds


def location_of(source: str | xr.Dataset) -> str:
    """How a cube is named in messages and manifests: its location, or IN_MEMORY for a Dataset."""
    return IN_MEMORY if isinstance(source, xr.Dataset) else source


def open_conformed(source: str | xr.Dataset, storage_options: dict | None = None) -> Conformed:
    """As ``open_cube``, with what conforming changed and where the stored arrays keep each index."""
    if isinstance(source, xr.Dataset):
        return conform(source)
    return conform(_open_store(source, dict(storage_options or {})))


def _open_store(location: str, storage_options: dict) -> xr.Dataset:
    is_url = "://" in location
    if not is_url and not Path(location).exists():
        raise CubeError(f"cube {location!r} does not exist: give --cube a .zarr directory, a .zip of one, or a URL")
    try:
        if location.lower().endswith(".zip"):
            return _open_zip(location, storage_options)
        return xr.open_zarr(location, consolidated=None, chunks=None, storage_options=storage_options or None)
    except CubeError:
        raise
    except ImportError as error:
        raise CubeError(
            f"cannot open {location!r}: {error}. Install the fsspec backend for this URL scheme "
            "(gcsfs for gs://, s3fs for s3://, aiohttp for https://)"
        ) from error
    except (FileNotFoundError, KeyError, zipfile.BadZipFile, ValueError) as error:
        raise CubeError(f"cannot open {location!r} as a zarr datacube: {error}") from error


def acquisitions_by_orbit(ds: xr.Dataset) -> dict[str, list[str]]:
    """ISO acquisition times per orbit code, for error messages and the manifest."""
    times = pd.DatetimeIndex(ds[schema.TIME_DIM].values)
    orbits = orbit_codes(ds)
    return {code or "unknown": [t.isoformat() for t in times[orbits == code]] for code in sorted(set(orbits.tolist()))}


def orbit_codes(ds: xr.Dataset) -> np.ndarray:
    """The orbit code of each timestep of a canonical cube: 'a', 'd', or '' (unknown)."""
    if schema.ORBIT_COORD not in ds.coords:
        return np.full(ds.sizes[schema.TIME_DIM], UNKNOWN_ORBIT, "<U1")
    return ds[schema.ORBIT_COORD].values


def describe(ds: xr.Dataset) -> str:
    """One paragraph of what a cube holds: variables with dims, and dates per orbit."""
    variables = ", ".join(f"{name}{tuple(ds[name].dims)}" for name in sorted(ds.data_vars))
    text = f"variables: {variables}; dims: {dict(ds.sizes)}"
    if schema.TIME_DIM in ds.dims and schema.ORBIT_COORD in ds.coords:
        per_orbit = "; ".join(
            f"{code}: {', '.join(t[:19] for t in times)}" for code, times in acquisitions_by_orbit(ds).items()
        )
        text += f"; acquisitions per orbit: {per_orbit}"
    return text


def validate_cube(ds: xr.Dataset, need_insar: bool = False, need_labels: bool = True) -> None:
    """Check that a canonical cube has the variables and dims the study needs; raise CubeError if not.

    A cube of a new event may have no labels yet: mapping it passes ``need_labels=False``.
    Label values are checked separately (``check_labels``) because that reads the raster.
    """
    problems = []
    required = dict(schema.REQUIRED_VARIABLES)
    if not need_labels:
        del required[schema.LABEL_VARIABLE]
    if need_insar:
        required.update(schema.OPTIONAL_VARIABLES)
    for name, dims in required.items():
        if name not in ds.data_vars:
            problems.append(f"variable {name!r} {dims} is missing")
        elif tuple(ds[name].dims) != dims:
            problems.append(f"variable {name!r} has dims {tuple(ds[name].dims)}, expected {dims}")
    for dim in (schema.TIME_DIM, *schema.SPATIAL_DIMS):
        if dim not in ds.dims:
            problems.append(f"dimension {dim!r} is missing")
    if problems:
        raise CubeError(
            "the cube does not follow the datacube schema: " + "; ".join(problems) + ". It holds " + describe(ds)
        )


def check_labels(labels: np.ndarray, where: str = "") -> int:
    """Raise CubeError unless ``labels`` holds only 0, 1 (and NaN); return the NaN count.

    The schema says 'landslide where > 0': a mask with other values (class codes, 255 for
    no data) would be silently binarised by that rule, so we refuse it and say how to fix it.
    """
    values = np.asarray(labels)
    nan = int(np.isnan(values).sum()) if values.dtype.kind == "f" else 0
    finite = values[~np.isnan(values)] if nan else values
    bad = np.unique(finite[(finite != 0) & (finite != 1)])
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:8].tolist()) + (" ..." if bad.size > 8 else "")
        raise CubeError(
            f"variable {schema.LABEL_VARIABLE!r}{where} must be a 0/1 landslide mask but holds {shown}; "
            f"binarise it (e.g. ds['{schema.LABEL_VARIABLE}'] = (ds['{schema.LABEL_VARIABLE}'] > 0)) and save the cube"
        )
    return nan
