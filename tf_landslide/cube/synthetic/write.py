"""Writing a synthetic cube: the template, the storage dialects, and the band-by-band fill."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from tf_landslide.cube import schema
from tf_landslide.cube.synthetic.scene import Scene, backscatter_band, build_scene, coherence_band
from tf_landslide.cube.synthetic.spec import (
    GENERATOR_VERSION,
    SIZES,
    SyntheticCubeSpec,
    acquisition_times,
    insar_pairs,
)


def _pair_label(times: np.ndarray, first: int, second: int) -> str:
    day = lambda t: pd.Timestamp(times[t]).strftime("%Y%m%d")  # noqa: E731
    return f"{day(first)}_{day(second)}"


def _template(spec: SyntheticCubeSpec, scene: Scene, times, orbits, pairs) -> xr.Dataset:
    """The cube with static variables filled and time series as lazy placeholders."""
    import dask.array as da
    import rioxarray  # noqa: F401  (registers .rio)

    h, w = spec.height, spec.width
    x = spec.origin_x + spec.pixel_size * (np.arange(w) + 0.5)
    y = spec.origin_y - spec.pixel_size * (np.arange(h) + 0.5)
    yx = schema.SPATIAL_DIMS
    chunks_3d = (1, spec.chunk, spec.chunk)

    def lazy(n):
        return da.full((n, h, w), np.nan, dtype=np.float32, chunks=chunks_3d)

    ds = xr.Dataset(
        {
            "vv": ((schema.TIME_DIM, *yx), lazy(len(times)), {"units": "1", "long_name": "gamma0 VV (linear)"}),
            "vh": ((schema.TIME_DIM, *yx), lazy(len(times)), {"units": "1", "long_name": "gamma0 VH (linear)"}),
            "dem": (yx, scene.dem, {"units": "m"}),
            "dem_slope_radians": (yx, scene.slope, {"units": "rad"}),
            "dem_aspect": (yx, scene.aspect, {"units": "degree"}),
            "dem_curvature": (yx, scene.curvature, {"units": "1/100 m"}),
            "landslides": (yx, scene.labels),
            "coherence": ((schema.PAIR_DIM, *yx), lazy(len(pairs))),
            "interferogram": ((schema.PAIR_DIM, *yx), lazy(len(pairs)), {"units": "rad"}),
        },
        coords={
            schema.TIME_DIM: times,
            schema.ORBIT_COORD: (schema.TIME_DIM, orbits.astype("<U1")),
            schema.PAIR_DIM: [_pair_label(times, a, b) for a, b in pairs],
            "y": y,
            "x": x,
        },
        attrs={
            "title": "tf_landslide synthetic SAR landslide datacube",
            "generator": f"tf_landslide.cube.synthetic v{GENERATOR_VERSION}",
            "synthetic_spec": repr(spec),
            "event_start": spec.event_time + "Z",
            "event_end": spec.event_time + "Z",
        },
    )
    ds = ds.rio.write_crs(spec.crs).rio.write_coordinate_system()
    return ds


@dataclasses.dataclass(frozen=True)
class Dialect:
    """How a cube is stored, as the tools that write real cubes differ; the content is the same.

    The default is what the published cubes are inferred to hold. The others are what other
    writers produce, so the suite knows more than one dialect (``tests/cube/foreign.py`` writes
    them without this generator, as other tools do).
    """

    strings: str = "unicode"  # 'unicode' (<U), 'object' (vlen-utf8: pandas, stackstac), or 'bytes'
    orbit_labels: str = "short"  # 'short' ('a'/'d') or 'long' ('ascending'/'descending', STAC's)
    time_units: str = ""  # CF units for timestep (e.g. 'days since 2018-01-01', float64); '' = xarray's
    y_ascending: bool = False  # rows stored south-up
    consolidated: bool = True
    sar_dtype: str = "float32"  # vv and vh; 'float64' as stackstac's default
    label_dtype: str = "uint8"  # 'bool', integers, or a float (0/1 and no NaN here)


PUBLISHED = Dialect()
_ORBIT_WORDS = {"a": "ascending", "d": "descending"}


def _in_dialect(ds: xr.Dataset, dialect: Dialect) -> tuple[xr.Dataset, dict]:
    """``ds`` with its strings, orbit labels and row order as ``dialect`` stores them; extra encodings."""
    orbits = ds[schema.ORBIT_COORD].values
    if dialect.orbit_labels == "long":
        orbits = np.array([_ORBIT_WORDS[code] for code in orbits.tolist()])
    kind = {"unicode": str, "object": object, "bytes": "S"}[dialect.strings]
    ds = ds.assign_coords(
        {
            schema.ORBIT_COORD: (schema.TIME_DIM, orbits.astype(kind)),
            schema.PAIR_DIM: ds[schema.PAIR_DIM].values.astype(kind),
        }
    )
    ds = ds.assign(
        {name: ds[name].astype(dialect.sar_dtype) for name in schema.SAR_VARIABLES}
        | {schema.LABEL_VARIABLE: ds[schema.LABEL_VARIABLE].astype(dialect.label_dtype)}
    )
    if dialect.y_ascending:
        ds = ds.isel(y=slice(None, None, -1))
    encoding = {}
    if dialect.time_units:
        encoding[schema.TIME_DIM] = {"units": dialect.time_units, "dtype": "float64"}
    return ds, encoding


def write_cube(
    spec: SyntheticCubeSpec, path: str | os.PathLike, zarr_format: int = 2, dialect: Dialect = PUBLISHED
) -> Path:
    """Write a synthetic cube to ``path`` (a new ``.zarr`` directory) and return the path.

    Time series are written one (timestep, band of ``spec.chunk`` rows) at a time, so memory
    holds the static 2-D fields and a few bands, never the cube. The directory appears only
    when complete (written beside it, then renamed). ``dialect``: how it is stored.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists; remove it or choose another path")
    scene = build_scene(spec)
    times, orbits = acquisition_times(spec)
    pairs = insar_pairs(times, orbits)
    event = np.datetime64(spec.event_time, "ns")
    ds, encoding = _in_dialect(_template(spec, scene, times, orbits, pairs), dialect)
    for name in ("vv", "vh", "coherence", "interferogram"):
        encoding[name] = {"chunks": (1, spec.chunk, spec.chunk)}
    for name in schema.DEM_VARIABLES + (schema.LABEL_VARIABLE,):
        encoding[name] = {"chunks": (spec.chunk, spec.chunk)}

    def stored(rows: slice) -> slice:  # the rows of a band where the dialect stores them
        return slice(spec.height - rows.stop, spec.height - rows.start) if dialect.y_ascending else rows

    def oriented(band: np.ndarray) -> np.ndarray:
        return band[..., ::-1, :] if dialect.y_ascending else band

    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=path.name + ".partial-", dir=path.parent))
    try:
        ds.to_zarr(
            staging,
            mode="w",
            compute=False,
            zarr_format=zarr_format,
            consolidated=dialect.consolidated,
            encoding=encoding,
            safe_chunks=False,  # the placeholders are never written (compute=False); the bands below are, in turn
        )
        group = zarr.open_group(str(staging), mode="r+")
        bands = [slice(y0, min(y0 + spec.chunk, spec.height)) for y0 in range(0, spec.height, spec.chunk)]
        for t, (time, orbit) in enumerate(zip(times, orbits, strict=False)):
            doy = pd.Timestamp(time).day_of_year
            for pol in schema.SAR_VARIABLES:
                for rows in bands:
                    band = backscatter_band(spec, scene, rows, pol, t, time, orbit, time > event, doy)
                    group[pol][t, stored(rows), :] = oriented(band)
        for p, (a, b) in enumerate(pairs):
            days = (times[b] - times[a]) / np.timedelta64(1, "D")
            spans = times[a] < event < times[b]
            for rows in bands:
                coh, ifg = coherence_band(spec, scene, rows, p, a, b, orbits[a], spans, days)
                group["coherence"][p, stored(rows), :] = oriented(coh)
                group["interferogram"][p, stored(rows), :] = oriented(ifg)
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def embedded_cube(cache_dir: str | os.PathLike, size: str = "embedded") -> Path:
    """Path of the embedded default cube, generated into ``cache_dir`` the first time."""
    spec = SIZES[size]
    path = Path(cache_dir) / f"synthetic-{size}-{spec.key()}.zarr"
    if not path.exists():
        try:
            write_cube(spec, path)
        except FileExistsError:
            pass  # another process finished it first: its rename was atomic
        except OSError:
            if not path.exists():
                raise
    return path
