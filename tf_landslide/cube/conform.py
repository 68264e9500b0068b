"""One canonical form for every cube of the schema, whoever wrote it.

Cubes reach us from xarray, stackstac, odc-stac, pandas and the authors' pipeline, through
zarr-python 2 or 3 and numpy 1 or 2, and each writes the same schema in its own dialect.
``conform`` turns any of them into one form, lazily (no pixel is read), so that nothing past
the boundary meets an encoding variant:

* ``timestep``: datetime64[ns], naive UTC, sorted, unique (datetime64 of any unit, CF numbers
  whose units xarray could not decode, ISO strings, time-zone aware values);
* ``sat:orbit_state``: one code per timestep, ``'a'``, ``'d'`` or ``''`` (unknown), numpy
  ``<U1``; labels of any case, ``'ascending'``/``'descending'``, a scalar shared by every
  timestep. A coordinate that cannot be read that way (missing, another length, values that
  are not orbits, some empty) becomes all or partly ``''`` and says why in its ``unusable``
  attribute, for the orbit choice to report (``--orbit=any`` uses every acquisition);
* every other string coordinate (``timepair``...): numpy ``<U`` (vlen-utf8 object arrays,
  numpy 2's StringDType from zarr-python 3, bytes);
* ``y`` descending (north-up, as rasters are), ``x`` ascending, both float64 on a regular grid
  (float32 coordinates are refitted: float32 rounds a UTM northing to half a metre);
* the CRS in a ``spatial_ref`` coordinate (rioxarray's), also where a writer kept it elsewhere
  (stackstac: ``attrs['crs']``, ``epsg``); ``time`` a name for ``timestep``; ``VV``/``VH``
  for ``vv``/``vh``.

Data variables keep their stored dtypes: converting them here would read them (xarray's
``astype`` is not lazy); the plane readers return them as float32 channels, and labels are read
as booleans by ``planes.landslide_mask``. Reordering (time, flipped axes) is an ``isel``, lazy as
well; ``StoredOrder`` tells readers that decode chunks themselves where the canonical indices lie
in the stored arrays.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import xarray as xr

from tf_landslide.cube import schema
from tf_landslide.cube.schema import CubeError

UNKNOWN_ORBIT = ""
_ORBIT_WORDS = {
    "a": "a",
    "asc": "a",
    "ascending": "a",
    "d": "d",
    "desc": "d",
    "descending": "d",
}
_DIM_ALIASES = {"time": schema.TIME_DIM}
_VARIABLE_ALIASES = {"VV": "vv", "VH": "vh"}
# float32 keeps 24 bits: a UTM northing near 5e6 m is off by up to a quarter metre.
_GRID_TOLERANCE = 0.1  # of a pixel


@dataclasses.dataclass(frozen=True)
class StoredOrder:
    """Where the canonical cube's indices lie in the stored arrays."""

    timestep: tuple[int, ...] | None = None  # stored index of each canonical timestep; None: the same
    flipped: tuple[str, ...] = ()  # spatial dims stored in the other direction

    def stored_index(self, dim: str, index: int) -> int:
        if dim == schema.TIME_DIM and self.timestep is not None:
            return self.timestep[index]
        return index

    @property
    def is_identity(self) -> bool:
        return self.timestep is None and not self.flipped


AS_STORED = StoredOrder()


@dataclasses.dataclass(frozen=True)
class Conformed:
    """A cube in the canonical form, what was changed to get there, and the stored order."""

    ds: xr.Dataset
    changes: tuple[str, ...]
    stored: StoredOrder


def conform(raw: xr.Dataset) -> Conformed:
    """The canonical form of ``raw`` (see the module docstring); lazy: reads coordinates only."""
    changes: list[str] = []
    ds = _rename_aliases(raw, changes)
    ds = _conform_crs(ds, changes)
    ds = _conform_strings(ds, changes)
    order = None
    if schema.TIME_DIM in ds.dims:
        ds, order = _conform_times(ds, changes)
    ds = _conform_orbits(ds, changes)
    ds, flipped = _conform_grid(ds, changes)
    return Conformed(ds, tuple(changes), StoredOrder(order, flipped))


def orbit_problem(ds: xr.Dataset) -> str | None:
    """Why the canonical cube's orbit labels cannot choose acquisitions, or None."""
    return ds[schema.ORBIT_COORD].attrs.get("unusable") if schema.ORBIT_COORD in ds.coords else "missing"


def _rename_aliases(ds: xr.Dataset, changes: list[str]) -> xr.Dataset:
    dims = {old: new for old, new in _DIM_ALIASES.items() if old in ds.dims and new not in ds.dims}
    names = {old: new for old, new in _VARIABLE_ALIASES.items() if old in ds.variables and new not in ds.variables}
    if dims or names:
        ds = ds.rename({**dims, **names})
        changes.append("renamed " + ", ".join(f"{old!r} -> {new!r}" for old, new in {**dims, **names}.items()))
    return ds


def _conform_crs(ds: xr.Dataset, changes: list[str]) -> xr.Dataset:
    """The CRS in a ``spatial_ref`` coordinate, as rioxarray writes it, wherever the writer put it.

    stackstac keeps it in ``attrs['crs']`` and an ``epsg`` coordinate; rioxarray reads the first.
    """
    if "spatial_ref" in ds.data_vars:
        ds = ds.set_coords("spatial_ref")
    if "spatial_ref" in ds.coords:
        return ds
    import rioxarray  # noqa: F401  (registers .rio)

    crs = ds.rio.crs
    where = "the 'crs' attribute"
    for name in ("epsg", "proj:epsg"):
        if crs is None and name in ds.coords and ds[name].size == 1 and np.isfinite(float(ds[name].values)):
            crs, where = f"EPSG:{int(ds[name].values)}", f"the {name!r} coordinate"
    if crs is None:
        return ds  # georeference() warns: maps of it cannot be placed
    changes.append(f"CRS {crs} from {where}, written as the 'spatial_ref' coordinate")
    return ds.rio.write_crs(crs)


def as_text(values) -> np.ndarray:
    """Strings of any storage as numpy ``<U`` (missing values as ''), same shape.

    zarr-python 3 reads vlen-utf8 as numpy 2's StringDType, which ``astype(str)`` refuses;
    zarr-python 2 reads it as objects; some writers store bytes.
    """
    array = np.asarray(values)
    if array.dtype.kind == "U":
        return array
    flat = [_text_of(v) for v in array.ravel().tolist()]
    return np.array(flat, dtype=str).reshape(array.shape) if flat else np.zeros(array.shape, "<U1")


def _text_of(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _is_stored_text(dtype: np.dtype) -> bool:
    """Objects, numpy 2's StringDType or bytes: text not yet in numpy's ``<U``."""
    return dtype.kind in "OST"


def _conform_strings(ds: xr.Dataset, changes: list[str]) -> xr.Dataset:
    """Every string coordinate as ``<U`` (the time coordinate is the time step's business)."""
    names = [name for name, coord in ds.coords.items() if _is_stored_text(coord.dtype) and name != schema.TIME_DIM]
    if not names:
        return ds
    described = [f"{name} ({ds[name].dtype})" for name in names]
    ds = ds.assign_coords({name: (ds[name].dims, as_text(ds[name].values), ds[name].attrs) for name in names})
    changes.append("strings as numpy unicode: " + ", ".join(described))
    return ds


def _conform_times(ds: xr.Dataset, changes: list[str]) -> tuple[xr.Dataset, tuple[int, ...] | None]:
    """``timestep`` as sorted, unique datetime64[ns] (naive UTC); the stored order if it was not sorted."""
    if schema.TIME_DIM not in ds.coords:
        raise CubeError(
            f"dimension {schema.TIME_DIM!r} has no coordinate: the cube must say when each acquisition was made"
        )
    coord = ds[schema.TIME_DIM]
    times, how = _utc_times(coord.values, coord.attrs)
    if how:
        changes.append(f"{schema.TIME_DIM} {how}")
    missing = np.flatnonzero(np.isnat(times))
    if missing.size:
        raise CubeError(
            f"{schema.TIME_DIM!r} has no time at positions {missing.tolist()}: every acquisition needs one; "
            "drop those timesteps (ds.isel(timestep=...)) and save the cube"
        )
    attrs = {k: v for k, v in coord.attrs.items() if k not in ("units", "calendar")}
    ds = ds.assign_coords({schema.TIME_DIM: (schema.TIME_DIM, times, attrs)})
    order = None
    if not np.all(times[1:] > times[:-1]):
        sorted_order = np.argsort(times, kind="stable")
        ordered = times[sorted_order]
        repeated = np.flatnonzero(ordered[1:] == ordered[:-1])
        if repeated.size:
            shown = sorted({str(ordered[i])[:19] for i in repeated})
            raise CubeError(
                f"two timesteps share one time ({', '.join(shown)}): each acquisition needs its own; "
                "merge or drop the duplicates and save the cube"
            )
        ds = ds.isel({schema.TIME_DIM: sorted_order})
        order = tuple(int(i) for i in sorted_order)
        changes.append(f"{schema.TIME_DIM} sorted (stored out of time order)")
    return ds, order


_CF_UNITS = re.compile(r"^\s*(\w+)\s+since\s+(.+?)\s*$")


def _utc_times(values: np.ndarray, attrs: dict) -> tuple[np.ndarray, str]:
    """Times as datetime64[ns], naive UTC, and how they were converted ('' if they were already)."""
    values = np.asarray(values)
    if values.dtype == np.dtype("datetime64[ns]"):
        return values, ""
    if values.dtype.kind == "M":
        return values.astype("datetime64[ns]"), f"datetime64 {np.datetime_data(values.dtype)[0]} -> ns"
    if values.dtype.kind in "iuf":
        match = _CF_UNITS.match(str(attrs.get("units", "")))
        if not match:
            raise CubeError(
                f"{schema.TIME_DIM!r} holds {values.dtype} numbers without CF units ('seconds since ...'): "
                "store acquisition times as datetime64 or give the coordinate a units attribute"
            )
        return _decode_cf(values, *match.groups()), f"decoded from CF {values.dtype} '{attrs['units']}'"
    try:  # objects (datetimes, Timestamps, possibly time-zone aware) or ISO strings
        index = pd.to_datetime(as_text(values) if _is_stored_text(values.dtype) else values, utc=True)
    except (ValueError, TypeError) as error:
        raise CubeError(f"cannot read {schema.TIME_DIM!r} ({values.dtype}) as times: {error}") from error
    return index.tz_localize(None).to_numpy("datetime64[ns]"), f"parsed from {values.dtype} to UTC"


def _decode_cf(values: np.ndarray, unit: str, reference: str) -> np.ndarray:
    """CF 'UNIT since REFERENCE' numbers as datetime64[ns]; REFERENCE may carry a zone ('Z', '+09:00').

    xarray decodes these on opening when it can; it leaves them as numbers for references it
    cannot parse, such as a zone suffix with a 'T' separator.
    """
    try:
        origin = pd.Timestamp(reference.strip())
        step = pd.Timedelta(1, unit=_CF_UNIT_NAMES[unit.lower()])
    except (KeyError, ValueError) as error:
        raise CubeError(f"cannot decode {schema.TIME_DIM!r} with units '{unit} since {reference}': {error}") from error
    if origin.tzinfo is not None:
        origin = origin.tz_convert("UTC").tz_localize(None)
    finite = np.isfinite(values.astype(np.float64))
    out = np.full(values.shape, np.datetime64("NaT"), "datetime64[ns]")
    offsets = np.round(values[finite].astype(np.float64) * step.value).astype(np.int64)
    out[finite] = np.datetime64(origin.to_datetime64(), "ns") + offsets.astype("timedelta64[ns]")
    return out


_CF_UNIT_NAMES = {
    "days": "D",
    "day": "D",
    "d": "D",
    "hours": "h",
    "hour": "h",
    "h": "h",
    "minutes": "min",
    "minute": "min",
    "min": "min",
    "seconds": "s",
    "second": "s",
    "s": "s",
    "milliseconds": "ms",
    "microseconds": "us",
    "nanoseconds": "ns",
}


def _conform_orbits(ds: xr.Dataset, changes: list[str]) -> xr.Dataset:
    """``sat:orbit_state`` as one 'a'/'d'/'' per timestep, with an ``unusable`` note when it cannot choose."""
    if schema.TIME_DIM not in ds.dims:
        return ds
    n = ds.sizes[schema.TIME_DIM]
    times = ds[schema.TIME_DIM].values
    codes = np.full(n, UNKNOWN_ORBIT, "<U1")
    problem = None
    if schema.ORBIT_COORD not in ds.variables:
        problem = f"the cube has no {schema.ORBIT_COORD!r} coordinate"
    else:
        stored = ds[schema.ORBIT_COORD]
        labels = np.char.lower(np.char.strip(as_text(stored.values)))
        if stored.ndim == 0:
            labels = np.full(n, labels.item())
            changes.append(f"{schema.ORBIT_COORD} one value for every timestep ({str(labels[0])!r})")
        if stored.ndim > 1 or (stored.ndim == 1 and stored.dims != (schema.TIME_DIM,)):
            problem = (
                f"{schema.ORBIT_COORD!r} has dims {stored.dims} and {stored.size} values for "
                f"{n} timesteps ({_listed(times)})"
            )
        else:
            unknown = sorted({label for label in labels.tolist() if label and label not in _ORBIT_WORDS})
            codes = np.array([_ORBIT_WORDS.get(label, UNKNOWN_ORBIT) for label in labels.tolist()], "<U1")
            empty = np.flatnonzero(labels == "")
            if unknown:
                problem = (
                    f"{schema.ORBIT_COORD!r} holds {unknown}, which are not orbits ('a'/'d', 'ascending'/'descending')"
                )
                codes[:] = UNKNOWN_ORBIT
            elif empty.size:
                problem = f"{schema.ORBIT_COORD!r} is empty for timesteps {_listed(times[empty])}"
            elif not set(labels.tolist()) <= {"a", "d"}:
                changes.append(f"{schema.ORBIT_COORD} labels {sorted(set(labels.tolist()))} -> 'a'/'d'")
        if schema.ORBIT_COORD in ds.coords or schema.ORBIT_COORD in ds.data_vars:
            ds = ds.drop_vars(schema.ORBIT_COORD)
    attrs = {"unusable": problem} if problem else {}
    if problem:
        changes.append(f"orbits unknown: {problem}")
    return ds.assign_coords({schema.ORBIT_COORD: (schema.TIME_DIM, codes, attrs)})


def _listed(times: np.ndarray, limit: int = 8) -> str:
    shown = [str(t)[:19] for t in np.asarray(times)[:limit]]
    return ", ".join(shown) + (f" and {len(times) - limit} more" if len(times) > limit else "")


def _conform_grid(ds: xr.Dataset, changes: list[str]) -> tuple[xr.Dataset, tuple[str, ...]]:
    """``y`` descending and ``x`` ascending, float64 on a regular grid; which dims were flipped."""
    flipped = []
    for dim, descending in (("y", True), ("x", False)):
        if dim not in ds.dims or dim not in ds.coords:
            continue  # validate_cube names what is missing
        values = np.asarray(ds[dim].values)
        if values.dtype.kind not in "iuf":
            raise CubeError(f"coordinate {dim!r} is {values.dtype}; expected map coordinates (numbers, in metres)")
        if values.size > 1:
            steps = np.diff(values.astype(np.float64))
            if not (np.all(steps > 0) or np.all(steps < 0)):
                raise CubeError(f"coordinate {dim!r} is not monotonic: the cube must lie on a regular grid")
            if (steps[0] < 0) != descending:
                ds = ds.isel({dim: slice(None, None, -1)})
                flipped.append(dim)
                changes.append(f"{dim} flipped to {'descending (north-up)' if descending else 'ascending'}")
        ds = _regular_grid(ds, dim, changes)
    return ds, tuple(flipped)


def _regular_grid(ds: xr.Dataset, dim: str, changes: list[str]) -> xr.Dataset:
    """Refuse an irregular grid; coordinates stored in another dtype than float64 are refitted."""
    stored = np.asarray(ds[dim].values)
    values = stored.astype(np.float64)
    if values.size > 2:
        step = (values[-1] - values[0]) / (values.size - 1)
        fitted = values[0] + step * np.arange(values.size)
        off = float(np.max(np.abs(fitted - values)))
        if off > _GRID_TOLERANCE * abs(step):
            raise CubeError(
                f"coordinate {dim!r} is not a regular grid (off by {off:.3g} from a step of {step:.6g}): "
                "resample the cube to a regular grid (rioxarray's reproject) and save it"
            )
        if stored.dtype != np.float64:
            values = fitted
            changes.append(f"{dim} {stored.dtype} -> float64 on its regular grid (largest correction {off:.3g})")
    if stored.dtype != np.float64:
        ds = ds.assign_coords({dim: (dim, values, ds[dim].attrs)})
    return ds
