"""Open a datacube (zarr directory, Zenodo zip, or fsspec URL) and check it against the schema."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from tf_landslide.cube import schema


class CubeError(ValueError):
    """The cube cannot be used as asked: the message says what is wrong and what to do."""


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


def open_cube(location: str, storage_options: dict | None = None) -> xr.Dataset:
    """Open a cube lazily: an unpacked ``.zarr`` directory, a ``.zip`` of one, or a URL.

    URLs are anything fsspec understands (``gs://``, ``s3://``, ``https://``...), for a zarr
    store or a zip. Zarr formats 2 and 3, consolidated or not. Arrays stay on disk until
    indexed (no dask chunks), so callers read only the bands they need.
    """
    storage_options = dict(storage_options or {})
    is_url = "://" in location
    if not is_url and not Path(location).exists():
        raise CubeError(f"cube {location!r} does not exist: give --cube a .zarr directory, a .zip of one, or a URL")
    try:
        if location.lower().endswith(".zip"):
            ds = _open_zip(location, storage_options)
        else:
            ds = xr.open_zarr(location, consolidated=None, chunks=None, storage_options=storage_options or None)
    except CubeError:
        raise
    except ImportError as error:
        raise CubeError(
            f"cannot open {location!r}: {error}. Install the fsspec backend for this URL scheme "
            "(gcsfs for gs://, s3fs for s3://, aiohttp for https://)"
        ) from error
    except (FileNotFoundError, KeyError, zipfile.BadZipFile, ValueError) as error:
        raise CubeError(f"cannot open {location!r} as a zarr datacube: {error}") from error
    if "spatial_ref" in ds.data_vars:
        ds = ds.set_coords("spatial_ref")
    return ds


def acquisitions_by_orbit(ds: xr.Dataset) -> dict[str, list[str]]:
    """ISO acquisition times per orbit code, for error messages and the manifest."""
    times = pd.DatetimeIndex(ds[schema.TIME_DIM].values)
    orbits = orbit_codes(ds)
    return {code: [t.isoformat() for t in times[orbits == code]] for code in sorted(set(orbits.tolist()))}


def orbit_codes(ds: xr.Dataset) -> np.ndarray:
    """The orbit code of each timestep ('a' or 'd'), lower-cased and stripped."""
    values = np.asarray(ds[schema.ORBIT_COORD].values).astype(str)
    return np.char.lower(np.char.strip(values))


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
    """Check the variables, dims and coordinates the study needs; raise CubeError if not met.

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
    if schema.ORBIT_COORD not in ds.coords:
        problems.append(f"coordinate {schema.ORBIT_COORD!r} (orbit of each {schema.TIME_DIM}) is missing")
    elif schema.TIME_DIM in ds.dims:
        unknown = sorted(set(orbit_codes(ds).tolist()) - set(schema.ORBIT_CODES.values()))
        if unknown:
            problems.append(f"{schema.ORBIT_COORD!r} holds {unknown}; expected 'a' (ascending) or 'd' (descending)")
    if schema.TIME_DIM in ds.coords and not np.issubdtype(ds[schema.TIME_DIM].dtype, np.datetime64):
        problems.append(f"coordinate {schema.TIME_DIM!r} is {ds[schema.TIME_DIM].dtype}, expected datetime64")
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
