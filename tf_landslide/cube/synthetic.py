"""A deterministic, physically plausible synthetic SAR landslide datacube in the real schema.

The generator writes what the published cubes hold (zarr v2, consolidated metadata, the
variables, dims and coordinates of ``schema.py``, a rioxarray ``spatial_ref``) so every code
path that reads a real cube is exercised by it. The physics is simple but honest:

* a fractal DEM (spectral synthesis) scaled to hill-country slopes, with slope, aspect and
  curvature derived from it;
* landslide scars as elongated ellipses running downslope from crowns drawn mostly on steep
  slopes near an epicentre, each with its own strength of surface change (some very weak,
  as mapped scars without a radar signature are in real inventories);
* RTC gamma0 (linear power) for forest and flat fields, a residual local-incidence term per
  orbit, layover/shadow and a swath edge as no-data, a VH noise floor, date-to-date
  moisture and calibration changes, field harvests after the event (a change that is not a
  landslide), and multiplicative Gamma speckle with a realistic number of looks;
* after the event, backscatter over each scar moves toward bare soil by its strength;
* coherence of consecutive same-orbit pairs, dropping over scars in the pair spanning the event.

Only the 2-D static fields are held in memory; the time series are written band by band.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from tf_landslide.cube import schema

GENERATOR_VERSION = 1

# Log-backscatter levels (dB) of the land covers, and the look geometry of Sentinel-1 IW.
FOREST_DB = {"vv": -7.5, "vh": -14.0}
FIELD_DB = {"vv": -10.0, "vh": -17.5}
BARE_SOIL_DB = {"vv": -11.5, "vh": -16.5}
VH_NOISE_FLOOR_DB = -22.0
INCIDENCE_DEG = 39.0
# Azimuth (clockwise from north) the radar looks toward: right-looking, so east when
# ascending (flying north) and west when descending.
LOOK_AZIMUTH_DEG = {"a": 80.0, "d": 280.0}
PASS_TIME_UTC = {"a": "08:26:47", "d": "20:40:12"}
REVISIT_DAYS = 12
HOKKAIDO_TRIGGER = "2018-09-05T18:07:59"


@dataclasses.dataclass(frozen=True)
class SyntheticCubeSpec:
    """Everything that determines a synthetic cube; the same spec gives the same bytes."""

    height: int = 2048
    width: int = 2048
    timesteps_per_orbit: int = 8
    orbits: tuple[str, ...] = ("a", "d")
    seed: int = 0
    landslide_fraction: float = 0.045  # of the scene
    shaking_scale: float = 0.15  # Gaussian radius of landslide density around the epicentre, in scene diagonals
    looks: float = 4.4
    chunk: int = 512
    pixel_size: float = 10.0
    crs: str = "EPSG:32654"
    origin_x: float = 530_000.0
    origin_y: float = 4_740_000.0
    event_time: str = HOKKAIDO_TRIGGER

    def key(self) -> str:
        """A short, stable identity used for cache folder names."""
        fields = dataclasses.asdict(self)
        text = ";".join(f"{k}={fields[k]}" for k in sorted(fields))
        return hashlib.sha256(f"v{GENERATOR_VERSION};{text}".encode()).hexdigest()[:12]


SIZES = {
    # Unit tests: a few 32-pixel chips, enough acquisitions for k = 1..3.
    "tiny": SyntheticCubeSpec(height=160, width=192, timesteps_per_orbit=6, chunk=64),
    # The embedded default: the quick start and the end-to-end tests.
    "embedded": SyntheticCubeSpec(),
    # Benchmarks: the published Hokkaido cube's size (18 timesteps, both orbits here).
    "hokkaido": SyntheticCubeSpec(height=4398, width=5382, timesteps_per_orbit=9),
}


def acquisition_times(spec: SyntheticCubeSpec) -> tuple[np.ndarray, np.ndarray]:
    """Acquisition times (sorted, datetime64[ns]) and their orbit codes.

    Each orbit has a 12-day revisit with half of its passes before the event. The first
    descending pass after the event falls on the event's calendar day, after the trigger,
    so a rule that selects by day instead of by time is caught.
    """
    event = pd.Timestamp(spec.event_time)
    times, orbits = [], []
    n_before = (spec.timesteps_per_orbit + 1) // 2
    for orbit in spec.orbits:
        pass_time = pd.Timestamp(f"{event.date()}T{PASS_TIME_UTC[orbit]}")
        # Hokkaido's schedule: descending passes the evening of the event day (after the
        # trigger), ascending passed four days before and returns eight days after.
        first_after = pass_time if pass_time > event else pass_time + pd.Timedelta(days=8)
        for i in range(spec.timesteps_per_orbit):
            times.append(first_after + pd.Timedelta(days=REVISIT_DAYS * (i - n_before)))
            orbits.append(orbit)
    order = np.argsort(np.array(times, dtype="datetime64[ns]"), kind="stable")
    return np.array(times, dtype="datetime64[ns]")[order], np.array(orbits)[order]


def insar_pairs(times: np.ndarray, orbits: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive same-orbit acquisition pairs, as an ISCE stack processes them."""
    pairs = []
    for orbit in np.unique(orbits):
        idx = np.flatnonzero(orbits == orbit)
        pairs.extend(zip(idx[:-1], idx[1:], strict=False))
    return sorted(pairs, key=lambda p: (times[p[0]], times[p[1]]))


def _fractal_surface(rng: np.random.Generator, shape: tuple[int, int], beta: float) -> np.ndarray:
    """Gaussian random field with power spectrum ~ f^-beta, zero mean, unit std."""
    h, w = shape
    noise = rng.standard_normal(shape)
    spectrum = np.fft.rfft2(noise)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    freq = np.sqrt(fy**2 + fx**2)
    freq[0, 0] = 1.0
    # Roll off below ~1/1000 px so the scene is hills, not one tilted plane.
    spectrum *= (np.maximum(freq, 1e-3) ** (-beta / 2)).astype(np.float32)
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=shape).astype(np.float32)
    field -= field.mean()
    field /= field.std()
    return field


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """A smooth unit-variance field: a coarse random grid, bilinearly upsampled."""
    h, w = shape
    coarse = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    yi = np.linspace(0, cells, h, dtype=np.float32)
    xi = np.linspace(0, cells, w, dtype=np.float32)
    y0 = np.minimum(yi.astype(int), cells - 1)
    x0 = np.minimum(xi.astype(int), cells - 1)
    fy = (yi - y0)[:, None]
    fx = (xi - x0)[None, :]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


@dataclasses.dataclass
class _Scene:
    """The static 2-D fields every acquisition is drawn from."""

    dem: np.ndarray
    slope: np.ndarray  # radians
    aspect: np.ndarray  # degrees clockwise from north, the direction the slope faces
    curvature: np.ndarray
    strength: np.ndarray  # 0 outside scars, per-scar change strength inside
    labels: np.ndarray  # uint8 0/1
    fields: np.ndarray  # bool: flat farmland
    harvest_db: np.ndarray  # per-parcel backscatter change after the event (fields only)


def _terrain(spec: SyntheticCubeSpec, rng: np.random.Generator):
    shape = (spec.height, spec.width)
    surface = _fractal_surface(rng, shape, beta=4.5)
    gy, gx = np.gradient(surface)
    steepness = np.hypot(gx, gy)
    # Scale so that a quarter of the scene is steeper than ~24 degrees: Iburi-like hills.
    relief = np.tan(np.radians(24.0)) * spec.pixel_size / np.percentile(steepness, 75)
    dem = surface * relief
    dem += 40.0 - dem.min()
    d_north, d_east = np.gradient(dem, spec.pixel_size)
    d_north = -d_north  # rows run north to south
    slope = np.arctan(np.hypot(d_east, d_north)).astype(np.float32)
    aspect = ((np.degrees(np.arctan2(-d_east, -d_north)) + 360.0) % 360.0).astype(np.float32)
    lap = (
        np.roll(dem, 1, 0) + np.roll(dem, -1, 0) + np.roll(dem, 1, 1) + np.roll(dem, -1, 1) - 4 * dem
    ) / spec.pixel_size**2
    lap[0, :] = lap[-1, :] = lap[:, 0] = lap[:, -1] = 0.0
    curvature = (-100.0 * lap).astype(np.float32)  # ArcGIS convention: convex is positive
    return dem.astype(np.float32), slope, aspect, curvature


def _scars(spec: SyntheticCubeSpec, rng: np.random.Generator, slope, aspect, curvature):
    """Elongated scars from crowns on steep, concave slopes near an epicentre; per-scar strength."""
    h, w = slope.shape
    epicentre = rng.uniform(0.25, 0.75, size=2) * (h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    distance = np.hypot(yy - epicentre[0], xx - epicentre[1]) / np.hypot(h, w)
    shaking = np.where(distance < 2 * spec.shaking_scale, np.exp(-((distance / spec.shaking_scale) ** 2)), 0.0)
    steep = 1.0 / (1.0 + np.exp(-(np.degrees(slope) - 30.0) / 2.5))
    # Shallow slides start in hollows, where water converges (negative curvature).
    hollow = 1.0 / (1.0 + np.exp(curvature / (0.5 * curvature.std())))
    susceptibility = (shaking * steep * hollow).ravel().astype(np.float64)
    susceptibility /= susceptibility.sum()
    del yy, xx, distance

    mean_area = np.pi * (14.0 / 2) * (14.0 * 0.35 / 2) * 1.1
    n_scars = max(1, int(spec.landslide_fraction * h * w / mean_area))
    crowns = rng.choice(h * w, size=n_scars, p=susceptibility)
    strength = np.zeros((h, w), np.float32)
    for crown in crowns:
        cy, cx = divmod(int(crown), w)
        length = float(np.clip(rng.lognormal(np.log(12.0), 0.45), 4.0, 60.0))
        width = length * rng.uniform(0.25, 0.45)
        # Runout follows the fall line (downslope, the aspect direction) from the crown.
        theta = np.radians(aspect[cy, cx] + rng.normal(0.0, 10.0))
        dy, dx = -np.cos(theta), np.sin(theta)
        centre_y, centre_x = cy + dy * length / 2, cx + dx * length / 2
        r = int(np.ceil(length / 2)) + 1
        y0, y1 = max(0, int(centre_y) - r), min(h, int(centre_y) + r + 1)
        x0, x1 = max(0, int(centre_x) - r), min(w, int(centre_x) + r + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        py, px = np.mgrid[y0:y1, x0:x1]
        along = (py - centre_y) * dy + (px - centre_x) * dx
        across = -(py - centre_y) * dx + (px - centre_x) * dy
        inside = (along / (length / 2)) ** 2 + (across / (width / 2)) ** 2 <= 1.0
        # Most scars change the surface clearly; about one in ten barely changes it.
        s = rng.uniform(0.0, 0.15) if rng.random() < 0.1 else rng.beta(2.5, 1.2)
        patch = strength[y0:y1, x0:x1]
        patch[inside] = np.maximum(patch[inside], max(s, 1e-3))
    return strength


def _build_scene(spec: SyntheticCubeSpec) -> _Scene:
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 1]))
    dem, slope, aspect, curvature = _terrain(spec, rng)
    strength = _scars(spec, rng, slope, aspect, curvature)
    # Farmland on the gentle ground of the lower valleys.
    fields = (dem < np.percentile(dem, 45)) & (np.degrees(slope) < 12.0) & (strength == 0)
    parcel = 24  # pixels: 240 m farm parcels
    parcels = rng.normal(0.0, 2.0, size=(spec.height // parcel + 1, spec.width // parcel + 1))
    harvest = np.repeat(np.repeat(parcels, parcel, 0), parcel, 1)[: spec.height, : spec.width]
    harvest = np.where(fields, harvest, 0.0).astype(np.float32)
    return _Scene(dem, slope, aspect, curvature, strength, (strength > 0).astype(np.uint8), fields, harvest)


def _local_geometry(scene: _Scene, rows: slice, orbit: str):
    """cos(local incidence) and the layover/shadow mask for one orbit's look direction."""
    slope = scene.slope[rows]
    aspect = np.radians(scene.aspect[rows])
    look = np.radians(LOOK_AZIMUTH_DEG[orbit])
    inc = np.radians(INCIDENCE_DEG)
    # Surface normal (east, north, up) and the unit vector from ground to sensor.
    normal = np.stack([np.sin(slope) * np.sin(aspect), np.sin(slope) * np.cos(aspect), np.cos(slope)])
    to_sensor = np.array([-np.sin(inc) * np.sin(look), -np.sin(inc) * np.cos(look), np.cos(inc)])
    cos_local = np.tensordot(to_sensor, normal, axes=1)
    # Slope component facing the sensor: layover beyond the incidence angle, shadow beyond
    # its complement on slopes facing away.
    facing = slope * np.cos(aspect - (look + np.pi))
    nodata = (facing > inc * 0.95) | (-facing > (np.pi / 2 - inc) * 0.95) | (cos_local <= 0.05)
    return cos_local.astype(np.float32), nodata


def _backscatter_band(spec, scene, rows, pol, t, time, orbit, after_event, day_of_year):
    """Linear gamma0 of one polarisation, one acquisition, one band of rows."""
    band_index = rows.start // spec.chunk
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 2, schema.SAR_VARIABLES.index(pol), t, band_index]))
    date_rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 3, t]))
    moisture = _smooth_field(date_rng, (spec.height, spec.width), cells=6)[rows]
    calibration_db = date_rng.normal(0.0, 0.3)
    fields = scene.fields[rows]
    level = np.where(fields, FIELD_DB[pol], FOREST_DB[pol]).astype(np.float32)
    cos_local, nodata = _local_geometry(scene, rows, orbit)
    # RTC flattens terrain imperfectly: a residual brightening toward the sensor.
    level += 3.0 * (cos_local - np.cos(np.radians(INCIDENCE_DEG)))
    level += calibration_db + np.where(fields, 1.5, 0.6) * moisture
    if pol == "vh":
        # Cross-pol follows the vegetation (its cycle and water content) more than co-pol does.
        level += 1.0 * np.sin(2 * np.pi * (day_of_year - 200) / 365.0)
        level += 0.6 * _smooth_field(date_rng, (spec.height, spec.width), cells=24)[rows]
    if after_event:
        strength = scene.strength[rows]
        level = level * (1 - strength) + (BARE_SOIL_DB[pol] + 2.0 * (cos_local - 0.7)) * strength
        level += scene.harvest_db[rows]
    power = 10 ** (level / 10)
    power *= rng.gamma(spec.looks, 1.0 / spec.looks, size=power.shape).astype(np.float32)
    if pol == "vh":
        noise = rng.exponential(1.0, size=power.shape).astype(np.float32)
        power += 10 ** (VH_NOISE_FLOOR_DB / 10) * noise
    power[nodata] = np.nan
    # The descending swath ends inside the scene: a no-data strip on its western edge.
    if orbit == "d":
        power[:, : int(0.06 * spec.width)] = np.nan
    # RTC products carry a few exact zeros (border and masked pixels).
    zeros = rng.random(power.shape) < 2e-4
    power[zeros] = 0.0
    return power.astype(np.float32)


def _coherence_band(spec, scene, rows, pair_index, first, second, orbit, spans_event, days):
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 4, pair_index, rows.start // spec.chunk]))
    fields = scene.fields[rows]
    base = np.where(fields, 0.55, 0.3) * np.exp(-days / 48.0) + 0.1
    if spans_event:
        base = base * (1 - 0.8 * scene.strength[rows]) + np.where(fields, -0.15, 0.0) * (scene.harvest_db[rows] != 0)
    _, nodata = _local_geometry(scene, rows, orbit)
    coherence = np.clip(base + rng.normal(0.0, 0.08, size=base.shape), 0.0, 1.0).astype(np.float32)
    phase_noise = rng.normal(0.0, 1.0, size=base.shape) * np.sqrt(1 - coherence**2) * 1.5
    topo = scene.dem[rows] * (0.002 * (pair_index % 3 - 1))
    interferogram = np.angle(np.exp(1j * (topo + phase_noise))).astype(np.float32)
    coherence[nodata] = np.nan
    interferogram[nodata] = np.nan
    return coherence, interferogram


def _pair_label(times: np.ndarray, first: int, second: int) -> str:
    day = lambda t: pd.Timestamp(times[t]).strftime("%Y%m%d")  # noqa: E731
    return f"{day(first)}_{day(second)}"


def _template(spec: SyntheticCubeSpec, scene: _Scene, times, orbits, pairs) -> xr.Dataset:
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
    scene = _build_scene(spec)
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
                    band = _backscatter_band(spec, scene, rows, pol, t, time, orbit, time > event, doy)
                    group[pol][t, stored(rows), :] = oriented(band)
        for p, (a, b) in enumerate(pairs):
            days = (times[b] - times[a]) / np.timedelta64(1, "D")
            spans = times[a] < event < times[b]
            for rows in bands:
                coh, ifg = _coherence_band(spec, scene, rows, p, a, b, orbits[a], spans, days)
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
