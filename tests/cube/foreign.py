"""Small datacubes written the way OTHER tools write them: test data for the cube opener.

The project's own generator (``tf_landslide.cube.synthetic``) writes one well-behaved layout.
Cubes found in the wild come from plain xarray/zarr scripts, from odc-stac and from stackstac,
and differ in how they store the same content: string encodings, orbit labels, time encodings,
row order, dtypes, chunking, consolidated metadata. This module builds ONE canonical scene
(:func:`canonical_scene`) and writes it in each of those layouts (:data:`VARIANTS`,
:func:`write_variant`), and stacks it with the real odc-stac and stackstac libraries
(:func:`odc_stac_dataset`, :func:`stackstac_dataset`), so a conforming reader can be checked
against the scene's known pixel values. It deliberately does not import the project's code.

API::

    canonical_scene(seed=0) -> ForeignScene
    canonical_dataset(scene) -> xr.Dataset
    VARIANTS: dict[str, str]                       # name -> one-line description
    VARIANTS_EXPECTED_ERROR: frozenset[str]        # need a user choice to be conformed
    variant_dataset(scene, name) -> xr.Dataset     # the in-memory dataset a variant writes
    write_variant(scene, name, path) -> str
    cog_items(scene, folder) -> list[pystac.Item]
    odc_stac_dataset(scene, folder) -> xr.Dataset
    stackstac_dataset(scene, folder, xy_coords="center") -> xr.Dataset
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor used by canonical_dataset)
import xarray as xr
import zarr
import zarr.errors

if TYPE_CHECKING:
    import pystac

# zarr-python 2 (2.18) writes zarr v2 only: the v3 variants are for zarr-python 3.
ZARR_3 = int(zarr.__version__.split(".")[0]) >= 3

# --- The canonical grid and acquisition plan ----------------------------------------------------

HEIGHT, WIDTH = 160, 192
PIXEL_SIZE = 10.0
CRS = "EPSG:32654"
EPSG = 32654
X_FIRST = 530_005.0  # centre of the westmost column
Y_FIRST = 4_739_995.0  # centre of the northmost row (rows run north to south)
TILE = 32  # the chip size the tests cut the scene into: a 5 x 6 grid of tiles

EVENT_TEXT = "2018-09-05T18:07:59Z"
EVENT = np.datetime64(EVENT_TEXT.removesuffix("Z"), "ns")
# First pass of each orbit; both orbits revisit every 12 days, six passes each. The dates put
# the last descending pass before the event the evening before it and the first ascending pass
# after it in the morning after it, so each orbit has 3 passes before and 3 after the event.
# (A rule on calendar days, "after >= the day after the event", would miss the 09-06 pass.)
FIRST_PASS = {"a": "2018-08-01T08:26:47", "d": "2018-08-11T20:40:12"}
REVISIT = np.timedelta64(12, "D")
PASSES_PER_ORBIT = 6

LONG_ORBIT = {"a": "ascending", "d": "descending"}
NO_DATA_BLOCK = (slice(0, 5), slice(0, 7))  # north-west corner, NaN in every vv/vh timestep
ZEROS_PER_TIMESTEP = 3
LANDSLIDE_DROP = 0.3  # post-event backscatter factor over landslides
NO_LABEL_ROWS = slice(152, HEIGHT)  # southern rows without labels in the labels_float_nan variant


@dataclasses.dataclass(frozen=True, eq=False)
class ForeignScene:
    """The canonical content every variant stores: north-up rows, time-ordered acquisitions.

    Arrays are read-only so a test cannot change the scene other tests compare against.
    """

    seed: int
    x: np.ndarray  # (x,) float64 pixel centres, ascending
    y: np.ndarray  # (y,) float64 pixel centres, descending (north-up)
    times: np.ndarray  # (timestep,) datetime64[ns], sorted
    orbits: np.ndarray  # (timestep,) <U1, 'a' / 'd'
    pairs: np.ndarray  # (timepair, 2) int, indices into times of consecutive same-orbit passes
    pair_labels: np.ndarray  # (timepair,) <U17, 'YYYYMMDD_YYYYMMDD'
    vv: np.ndarray  # (timestep, y, x) float32 linear gamma0
    vh: np.ndarray
    landslides: np.ndarray  # (y, x) uint8 0/1
    dem: np.ndarray  # (y, x) float32 metres
    dem_slope_radians: np.ndarray
    dem_aspect: np.ndarray  # degrees clockwise from north, downslope direction
    dem_curvature: np.ndarray
    coherence: np.ndarray  # (timepair, y, x) float32
    interferogram: np.ndarray  # (timepair, y, x) float32 wrapped phase
    attrs: dict

    @property
    def event(self) -> np.datetime64:
        return EVENT

    @property
    def transform(self) -> tuple[float, ...]:
        """The grid's affine in rasterio order (a, b, c, d, e, f): c, f are the north-west CORNER."""
        return (PIXEL_SIZE, 0.0, X_FIRST - PIXEL_SIZE / 2, 0.0, -PIXEL_SIZE, Y_FIRST + PIXEL_SIZE / 2)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the grid's outer pixel edges."""
        west, north = self.transform[2], self.transform[5]
        return (west, north - HEIGHT * PIXEL_SIZE, west + WIDTH * PIXEL_SIZE, north)


# --- Building the scene --------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def canonical_scene(seed: int = 0) -> ForeignScene:
    """The deterministic scene for ``seed`` (cached: the arrays are read-only)."""
    rng = np.random.default_rng(seed)
    times, orbits = _acquisitions()
    pairs, pair_labels = _consecutive_pairs(times, orbits)
    landslides = _landslides(rng)
    dem = _dem(rng)
    slope, aspect, curvature = _dem_products(dem)
    terrain = (dem - dem.mean()) / dem.std()
    coherence, interferogram = _insar(rng, times, pairs, landslides)
    fields = dict(
        seed=seed,
        x=X_FIRST + PIXEL_SIZE * np.arange(WIDTH),
        y=Y_FIRST - PIXEL_SIZE * np.arange(HEIGHT),
        times=times,
        orbits=orbits,
        pairs=pairs,
        pair_labels=pair_labels,
        vv=_backscatter(rng, 0.15, times, landslides, terrain),
        vh=_backscatter(rng, 0.03, times, landslides, terrain),
        landslides=landslides,
        dem=dem.astype(np.float32),
        dem_slope_radians=slope.astype(np.float32),
        dem_aspect=aspect.astype(np.float32),
        dem_curvature=curvature.astype(np.float32),
        coherence=coherence,
        interferogram=interferogram,
    )
    for value in fields.values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    attrs = {
        "event_start": EVENT_TEXT,
        "event_end": EVENT_TEXT,
        "title": "Foreign-writer test scene (tests/cube/foreign.py), Hokkaido-like timing",
    }
    return ForeignScene(attrs=attrs, **fields)


def _acquisitions() -> tuple[np.ndarray, np.ndarray]:
    """Pass times of both orbits in time order; they alternate a, d, a, d, ..."""
    passes = {
        orbit: np.datetime64(first, "ns") + REVISIT * np.arange(PASSES_PER_ORBIT) for orbit, first in FIRST_PASS.items()
    }
    times = np.concatenate(list(passes.values()))
    orbits = np.repeat(np.array(list(passes), dtype="<U1"), PASSES_PER_ORBIT)
    order = np.argsort(times, kind="stable")
    return times[order], orbits[order]


def _day(time: np.datetime64) -> str:
    return np.datetime_as_string(time, unit="D").replace("-", "")


def _consecutive_pairs(times: np.ndarray, orbits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """InSAR pairs of consecutive passes of the same orbit, sorted by (start, end) time."""
    pairs = []
    for orbit in np.unique(orbits):
        passes = np.flatnonzero(orbits == orbit)
        pairs += list(zip(passes[:-1], passes[1:], strict=True))
    pairs = np.array(pairs)
    pairs = pairs[np.lexsort((times[pairs[:, 1]], times[pairs[:, 0]]))]
    labels = np.array([f"{_day(times[i])}_{_day(times[j])}" for i, j in pairs], dtype="<U17")
    return pairs, labels


def _landslides(rng: np.random.Generator) -> np.ndarray:
    """One rotated elliptical scar per 32-pixel tile (30 in all), so every tile holds positives.

    Integer centres at least 8 pixels inside their tile: the centre pixel is always a positive.
    """
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    for top in range(0, HEIGHT, TILE):
        for left in range(0, WIDTH, TILE):
            centre_row, centre_col = top + rng.integers(8, TILE - 8), left + rng.integers(8, TILE - 8)
            long_axis, short_axis = rng.uniform(4.5, 8.5), rng.uniform(2.5, 4.5)
            angle = rng.uniform(0, np.pi)
            along = (cols - centre_col) * np.cos(angle) + (rows - centre_row) * np.sin(angle)
            across = -(cols - centre_col) * np.sin(angle) + (rows - centre_row) * np.cos(angle)
            mask |= (along / long_axis) ** 2 + (across / short_axis) ** 2 <= 1
    return mask.astype(np.uint8)


def _dem(rng: np.random.Generator) -> np.ndarray:
    """Elevation in metres: a gentle eastward rise plus a few Gaussian hills (float64)."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(float)
    dem = 120.0 + 0.8 * cols
    for _ in range(6):
        row, col = rng.uniform(0, HEIGHT), rng.uniform(0, WIDTH)
        width, height = rng.uniform(20, 60), rng.uniform(80, 300)
        dem += height * np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * width**2))
    return dem


def _dem_products(dem: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slope (radians), aspect (degrees clockwise from north, downslope) and curvature."""
    d_row, d_col = np.gradient(dem, PIXEL_SIZE)
    d_north, d_east = -d_row, d_col  # rows run southward
    slope = np.arctan(np.hypot(d_north, d_east))
    aspect = np.degrees(np.arctan2(-d_east, -d_north)) % 360.0
    d2_row = np.gradient(d_row, PIXEL_SIZE, axis=0)
    d2_col = np.gradient(d_col, PIXEL_SIZE, axis=1)
    curvature = -100.0 * (d2_row + d2_col)  # ArcGIS convention: 1/100 m, positive is convex
    return slope, aspect, curvature


def _backscatter(
    rng: np.random.Generator, mean: float, times: np.ndarray, landslides: np.ndarray, terrain: np.ndarray
) -> np.ndarray:
    """Linear gamma0 (timestep, y, x): terrain-modulated level x per-date gain x lognormal speckle.

    After the event, landslide pixels drop to LANDSLIDE_DROP of their level (the learnable
    signal). A NaN block and a few exact zeros per timestep mimic no-data and border noise.
    """
    shape = (len(times), HEIGHT, WIDTH)
    sigma = 0.35
    speckle = rng.lognormal(-(sigma**2) / 2, sigma, size=shape)
    date_gain = rng.lognormal(0.0, 0.05, size=(len(times), 1, 1))
    cube = mean * np.exp(0.25 * terrain) * date_gain * speckle
    cube[times > EVENT] *= np.where(landslides == 1, LANDSLIDE_DROP, 1.0)
    cube[(slice(None), *NO_DATA_BLOCK)] = np.nan
    for step in cube:
        step[rng.integers(10, HEIGHT, ZEROS_PER_TIMESTEP), rng.integers(10, WIDTH, ZEROS_PER_TIMESTEP)] = 0.0
    return cube.astype(np.float32)


def _insar(
    rng: np.random.Generator, times: np.ndarray, pairs: np.ndarray, landslides: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Coherence (dropping over landslides in pairs spanning the event) and wrapped phase."""
    shape = (len(pairs), HEIGHT, WIDTH)
    coherence = np.clip(0.55 + rng.normal(0.0, 0.08, size=shape), 0.02, 1.0)
    spans_event = (times[pairs[:, 0]] < EVENT) & (times[pairs[:, 1]] > EVENT)
    coherence[spans_event] *= np.where(landslides == 1, 0.3, 1.0)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    fringes = rng.uniform(0.02, 0.08, size=(len(pairs), 1, 1)) * (rows + cols)
    phase = np.angle(np.exp(1j * (fringes + rng.normal(0.0, 0.5, size=shape))))
    return coherence.astype(np.float32), phase.astype(np.float32)


def canonical_dataset(scene: ForeignScene) -> xr.Dataset:
    """The scene in the cube schema, with ``<U`` string coords and a rioxarray ``spatial_ref``."""
    per_time, per_pair, plane = ("timestep", "y", "x"), ("timepair", "y", "x"), ("y", "x")
    data_vars = {
        "vv": (per_time, scene.vv),
        "vh": (per_time, scene.vh),
        "landslides": (plane, scene.landslides),
        "dem": (plane, scene.dem),
        "dem_slope_radians": (plane, scene.dem_slope_radians),
        "dem_aspect": (plane, scene.dem_aspect),
        "dem_curvature": (plane, scene.dem_curvature),
        "coherence": (per_pair, scene.coherence),
        "interferogram": (per_pair, scene.interferogram),
    }
    coords = {
        "timestep": scene.times,
        "sat:orbit_state": ("timestep", scene.orbits),
        "timepair": scene.pair_labels,
        "y": scene.y,
        "x": scene.x,
    }
    # Copies: the scene's arrays are read-only, a dataset handed to a test need not be.
    ds = xr.Dataset(data_vars, coords, attrs=dict(scene.attrs)).copy(deep=True)
    return ds.rio.write_crs(CRS)


# --- The variants: the same scene, stored differently ---------------------------------------------

STRING_COORDS = ("sat:orbit_state", "timepair")
SAR_VARS = ("vv", "vh")
DEM_VARS = ("dem", "dem_slope_radians", "dem_aspect", "dem_curvature")


@dataclasses.dataclass
class _Store:
    """A dataset and how to write it."""

    ds: xr.Dataset
    zarr_format: int = 2
    consolidated: bool = True
    chunks_3d: tuple[int, int, int] = (1, TILE, TILE)
    chunks_2d: tuple[int, int] = (TILE, TILE)
    time_encoding: dict | None = None
    patch: Callable[[str], None] | None = None  # edits the written metadata, for what xarray won't write


VARIANTS: dict[str, str] = {}
_RECIPES: dict[str, Callable[[ForeignScene], _Store]] = {}

# Variants a reader cannot conform without the user saying which orbit each acquisition is.
VARIANTS_EXPECTED_ERROR = frozenset(
    {"orbit_missing", "orbit_partly_empty", "orbit_unknown_values", "orbit_wrong_length"}
)


def _variant(name: str, description: str):
    def register(recipe: Callable[[ForeignScene], _Store]) -> Callable[[ForeignScene], _Store]:
        VARIANTS[name] = description
        _RECIPES[name] = recipe
        return recipe

    return register


def variant_dataset(scene: ForeignScene, name: str) -> xr.Dataset:
    """The in-memory dataset variant ``name`` writes (before any metadata patch)."""
    return _RECIPES[name](scene).ds


def write_variant(scene: ForeignScene, name: str, path) -> str:
    """Write variant ``name`` of ``scene`` to the new zarr directory ``path``; return the path."""
    store = _RECIPES[name](scene)
    path = str(path)
    # Encoding chunks in batches only saves time (the stored bytes are the same): zarr-python 3
    # otherwise spends about 0.4 ms of CPU per chunk, and a variant has about 1,500 chunks.
    batched = zarr.config.set({"codec_pipeline.batch_size": 64}) if ZARR_3 else contextlib.nullcontext()
    with warnings.catch_warnings(), batched:
        if ZARR_3:
            # Both are expected here: v3 consolidated metadata and v3 fixed-width string/bytes
            # dtypes are not in the zarr v3 spec yet, which is exactly what some writers produce.
            warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
            warnings.simplefilter("ignore", zarr.errors.UnstableSpecificationWarning)
        store.ds.to_zarr(
            path,
            mode="w-",
            zarr_format=store.zarr_format,
            consolidated=store.consolidated,
            encoding=_encoding(store),
        )
        if store.patch is not None:
            store.patch(path)
    return path


def _encoding(store: _Store) -> dict:
    """Chunks (and time units) on top of each variable's own encoding.

    to_zarr's ``encoding`` REPLACES a variable's encoding, which would drop the ``grid_mapping``
    rioxarray keeps there.
    """
    encoding = {}
    for name, var in store.ds.data_vars.items():
        chunks = {3: store.chunks_3d, 2: store.chunks_2d}.get(var.ndim)
        if chunks is not None:
            encoding[name] = {**var.encoding, "chunks": chunks}
    if store.time_encoding is not None:
        encoding["timestep"] = {**store.ds["timestep"].encoding, **store.time_encoding}
    return encoding


def _strings_as(ds: xr.Dataset, kind: str) -> xr.Dataset:
    """String coords as Python objects (pandas, stackstac, odc-stac), ``<U`` or ``|S``."""
    convert = {
        "object": lambda values: values.astype(object),
        "unicode": lambda values: values.astype(str),
        "bytes": lambda values: np.char.encode(values.astype(str), "utf-8"),
    }[kind]
    present = [name for name in STRING_COORDS if name in ds.coords]
    return ds.assign_coords({name: (ds[name].dims, convert(ds[name].values)) for name in present})


def _orbits_as(ds: xr.Dataset, labels: dict[str, str | None]) -> xr.Dataset:
    """Relabel 'a'/'d' (object strings)."""
    values = np.array([labels[str(code)] for code in ds["sat:orbit_state"].values], dtype=object)
    return ds.assign_coords({"sat:orbit_state": ("timestep", values)})


def _baseline(scene: ForeignScene) -> xr.Dataset:
    return _strings_as(canonical_dataset(scene), "object")


def _shuffled_time_order(scene: ForeignScene) -> np.ndarray:
    order = np.random.default_rng(scene.seed).permutation(len(scene.times))
    return order if (np.diff(order) < 0).any() else order[::-1]


def _y_ascending(ds: xr.Dataset) -> xr.Dataset:
    return ds.isel(y=slice(None, None, -1))


def _as_dtype(ds: xr.Dataset, names, dtype) -> xr.Dataset:
    # copy(data=...) rather than astype, which drops the encoding (rioxarray's grid_mapping).
    return ds.assign({name: ds[name].copy(data=ds[name].values.astype(dtype)) for name in names})


@_variant("object_v2", "baseline: object (vlen-utf8) string coords, zarr v2, consolidated, chunks (1, 32, 32)")
def _object_v2(scene):
    return _Store(_baseline(scene))


@_variant("object_v3", "object string coords (zarr v3 'string' data type), zarr v3, consolidated")
def _object_v3(scene):
    return _Store(_baseline(scene), zarr_format=3)


@_variant("unicode_v2", "fixed-width <U string coords, zarr v2")
def _unicode_v2(scene):
    return _Store(_strings_as(canonical_dataset(scene), "unicode"))


@_variant("unicode_v3", "fixed-width <U string coords (zarr v3 fixed_length_utf32), zarr v3")
def _unicode_v3(scene):
    return _Store(_strings_as(canonical_dataset(scene), "unicode"), zarr_format=3)


@_variant("bytes_v2", "bytes |S string coords, zarr v2")
def _bytes_v2(scene):
    return _Store(_strings_as(canonical_dataset(scene), "bytes"))


@_variant("bytes_v3", "bytes |S string coords (zarr v3 null_terminated_bytes), zarr v3")
def _bytes_v3(scene):
    return _Store(_strings_as(canonical_dataset(scene), "bytes"), zarr_format=3)


@_variant("orbit_upper", "orbit labels 'A'/'D'")
def _orbit_upper(scene):
    return _Store(_orbits_as(_baseline(scene), {"a": "A", "d": "D"}))


@_variant("orbit_long", "orbit labels 'ascending'/'descending' (STAC sat extension)")
def _orbit_long(scene):
    return _Store(_orbits_as(_baseline(scene), LONG_ORBIT))


@_variant("orbit_long_mixed_case", "orbit labels 'Ascending'/'DESCENDING'")
def _orbit_long_mixed_case(scene):
    return _Store(_orbits_as(_baseline(scene), {"a": "Ascending", "d": "DESCENDING"}))


@_variant("orbit_missing", "no sat:orbit_state coordinate")
def _orbit_missing(scene):
    return _Store(_baseline(scene).drop_vars("sat:orbit_state"))


@_variant("orbit_scalar", "0-d sat:orbit_state 'descending' (stackstac's shared property); descending passes only")
def _orbit_scalar(scene):
    descending = np.flatnonzero(scene.orbits == "d")
    descending_pairs = np.flatnonzero(np.isin(scene.pairs[:, 0], descending))
    ds = _baseline(scene).isel(timestep=descending, timepair=descending_pairs)
    return _Store(ds.assign_coords({"sat:orbit_state": np.array("descending", dtype=object)}))


# Entries of the orbit_partly_empty variant that are '' and None. xarray already holds the None
# as NaN in memory (as pandas does a missing string), and neither xarray nor the vlen-utf8 codec
# can store a missing string: it is WRITTEN as ''.
EMPTY_ORBIT_ENTRIES = (1, 4)
NONE_ORBIT_ENTRY = 7


@_variant("orbit_partly_empty", "sat:orbit_state with two '' entries and one None (NaN in memory, stored as '')")
def _orbit_partly_empty(scene):
    ds = _baseline(scene)
    values = ds["sat:orbit_state"].values.copy()
    values[list(EMPTY_ORBIT_ENTRIES)] = ""
    values[NONE_ORBIT_ENTRY] = None
    return _Store(ds.assign_coords({"sat:orbit_state": ("timestep", values)}))


@_variant("orbit_unknown_values", "sat:orbit_state values that are not orbits ('north'/'south')")
def _orbit_unknown_values(scene):
    return _Store(_orbits_as(_baseline(scene), {"a": "north", "d": "south"}))


@_variant("orbit_wrong_length", "sat:orbit_state along its own dimension 'orbit_index', 11 entries for 12 timesteps")
def _orbit_wrong_length(scene):
    ds = _baseline(scene)
    orbits = ds["sat:orbit_state"].values[:-1]
    return _Store(ds.drop_vars("sat:orbit_state").assign_coords({"sat:orbit_state": ("orbit_index", orbits)}))


@_variant("time_seconds", "timestep as int64 'seconds since 1970-01-01'")
def _time_seconds(scene):
    return _Store(_baseline(scene), time_encoding={"units": "seconds since 1970-01-01", "dtype": "int64"})


@_variant("time_float_days", "timestep as float64 'days since 2018-01-01'")
def _time_float_days(scene):
    return _Store(_baseline(scene), time_encoding={"units": "days since 2018-01-01", "dtype": "float64"})


TZ_SUFFIX_UNITS = "seconds since 2018-01-01T00:00:00Z"


def _set_time_units(units: str, zarr_format: int) -> Callable[[str], None]:
    """A patch that rewrites the stored time units and re-consolidates the metadata."""

    def patch(path: str) -> None:
        # zarr-python 2 has no zarr_format argument: it opens and consolidates v2 only.
        fmt = {"zarr_format": zarr_format} if ZARR_3 else {}
        group = zarr.open_group(path, mode="r+", **fmt)
        group["timestep"].attrs["units"] = units
        zarr.consolidate_metadata(path, **fmt)

    return patch


@_variant("time_tz_suffix", f"timestep as int64 '{TZ_SUFFIX_UNITS}' (UTC suffix on the reference time)")
def _time_tz_suffix(scene):
    # xarray accepts the 'Z' but normalises it to '+00:00' when writing; put the 'Z' back, as
    # written by tools that format the reference with a 'Z' (the numbers are the same).
    return _Store(
        _baseline(scene),
        time_encoding={"units": TZ_SUFFIX_UNITS, "dtype": "int64"},
        patch=_set_time_units(TZ_SUFFIX_UNITS, zarr_format=2),
    )


@_variant("time_unsorted", "timesteps in a seeded shuffled order (data and orbit labels shuffled alike)")
def _time_unsorted(scene):
    return _Store(_baseline(scene).isel(timestep=_shuffled_time_order(scene)))


@_variant("y_ascending", "y ascending (south-up), every variable's rows flipped")
def _y_ascending_variant(scene):
    return _Store(_y_ascending(_baseline(scene)))


@_variant("xy_float32", "x and y coordinates float32")
def _xy_float32(scene):
    ds = _baseline(scene)
    # The grid's centres are whole metres below 2**24, so float32 holds them exactly.
    return _Store(ds.assign_coords(x=ds.x.astype(np.float32), y=ds.y.astype(np.float32)))


@_variant("sar_float64", "vv and vh float64")
def _sar_float64(scene):
    return _Store(_as_dtype(_baseline(scene), SAR_VARS, np.float64))


@_variant("dem_float64", "dem, dem_slope_radians, dem_aspect, dem_curvature float64")
def _dem_float64(scene):
    return _Store(_as_dtype(_baseline(scene), DEM_VARS, np.float64))


@_variant("labels_bool", "landslides stored as bool")
def _labels_bool(scene):
    return _Store(_as_dtype(_baseline(scene), ["landslides"], bool))


@_variant("labels_int16", "landslides stored as int16")
def _labels_int16(scene):
    return _Store(_as_dtype(_baseline(scene), ["landslides"], np.int16))


@_variant("labels_float_nan", "landslides float32, NaN over the southern rows 152..159 (no labels), 0/1 elsewhere")
def _labels_float_nan(scene):
    ds = _baseline(scene)
    labels = scene.landslides.astype(np.float32)
    labels[NO_LABEL_ROWS] = np.nan
    return _Store(ds.assign(landslides=ds["landslides"].copy(data=labels)))


@_variant("unconsolidated", "no consolidated metadata (zarr v2)")
def _unconsolidated(scene):
    return _Store(_baseline(scene), consolidated=False)


@_variant("odd_chunks", "chunks (1, 37, 45) and (37, 45), not aligned to the 32-pixel chip grid")
def _odd_chunks(scene):
    return _Store(_baseline(scene), chunks_3d=(1, 37, 45), chunks_2d=(37, 45))


@_variant("time_chunked", "3-D chunks (5, 64, 64), 2-D chunks (64, 64)")
def _time_chunked(scene):
    return _Store(_baseline(scene), chunks_3d=(5, 64, 64), chunks_2d=(64, 64))


@_variant(
    "stackstac_like",
    "zarr v3, object strings, 'ascending'/'descending', float days, unsorted, y ascending, "
    "float64 SAR, unconsolidated, chunks (4, 50, 70)",
)
def _stackstac_like(scene):
    ds = _orbits_as(_baseline(scene), LONG_ORBIT)
    ds = _y_ascending(ds.isel(timestep=_shuffled_time_order(scene)))
    return _Store(
        _as_dtype(ds, SAR_VARS, np.float64),
        zarr_format=3,
        consolidated=False,
        chunks_3d=(4, 50, 70),
        chunks_2d=(50, 70),
        time_encoding={"units": "days since 2018-01-01", "dtype": "float64"},
    )


# --- Cubes from the real STAC tools -----------------------------------------------------------------

PROJ_SCHEMA = "https://stac-extensions.github.io/projection/v1.1.0/schema.json"
SAT_SCHEMA = "https://stac-extensions.github.io/sat/v1.0.0/schema.json"


def cog_items(scene: ForeignScene, folder) -> list[pystac.Item]:
    """One GeoTIFF per acquisition and polarisation, and one pystac Item per acquisition.

    The items carry everything odc-stac and stackstac need without network access: absolute
    local hrefs and the projection fields (``proj:epsg``, ``proj:shape``, ``proj:transform``).
    """
    import pystac

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bbox = _lonlat_bbox(scene)
    items = []
    for step, (time, orbit) in enumerate(zip(scene.times, scene.orbits, strict=True)):
        item_id = f"S1_{orbit.upper()}_{np.datetime_as_string(time, unit='s').replace('-', '').replace(':', '')}"
        item = pystac.Item(
            id=item_id,
            geometry=_bbox_polygon(bbox),
            bbox=list(bbox),
            datetime=_utc_datetime(time),
            properties={
                "sat:orbit_state": LONG_ORBIT[str(orbit)],
                "platform": "sentinel-1a",
                "proj:epsg": EPSG,
                "proj:shape": [HEIGHT, WIDTH],
                "proj:transform": list(scene.transform),
            },
            stac_extensions=[PROJ_SCHEMA, SAT_SCHEMA],
        )
        for band in SAR_VARS:
            href = _write_geotiff(scene, getattr(scene, band)[step], folder / f"{item_id}_{band}.tif")
            item.add_asset(band, pystac.Asset(href=href, media_type=pystac.MediaType.COG, roles=["data"]))
        items.append(item)
    return items


def _utc_datetime(time: np.datetime64) -> dt.datetime:
    seconds = time.astype("datetime64[s]").astype(int)
    return dt.datetime.fromtimestamp(int(seconds), tz=dt.UTC)


def _lonlat_bbox(scene: ForeignScene) -> tuple[float, float, float, float]:
    from pyproj import Transformer

    west, south, east, north = scene.bounds
    to_lonlat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    return to_lonlat.transform_bounds(west, south, east, north)


def _bbox_polygon(bbox) -> dict:
    west, south, east, north = bbox
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def _write_geotiff(scene: ForeignScene, band: np.ndarray, path: Path) -> str:
    import rasterio
    from affine import Affine

    profile = dict(
        driver="COG",
        height=HEIGHT,
        width=WIDTH,
        count=1,
        dtype="float32",
        crs=CRS,
        transform=Affine(*scene.transform),
        nodata=np.nan,
        blocksize=64,
    )
    with rasterio.open(path, "w", **profile) as tiff:
        tiff.write(band, 1)
    return str(path.resolve())


def _add_scene_layers(ds: xr.Dataset, scene: ForeignScene) -> xr.Dataset:
    """The user's steps after loading the SAR bands: static layers, InSAR pairs, event attrs.

    The layers take the loaded cube's own y/x, so they stay aligned with its pixels whatever
    the tool labels a pixel by (centre or corner).
    """
    plane = {name: (("y", "x"), getattr(scene, name)) for name in ("landslides", *DEM_VARS)}
    per_pair = {name: (("timepair", "y", "x"), getattr(scene, name)) for name in ("coherence", "interferogram")}
    ds = ds.assign(plane | per_pair).assign_coords(timepair=scene.pair_labels.astype(object))
    return ds.assign_attrs(scene.attrs)


def odc_stac_dataset(scene: ForeignScene, folder) -> xr.Dataset:
    """The scene stacked by ``odc.stac.load`` (lazy, dask-backed), brought to the cube schema.

    odc-stac reads the native grid from the items' projection fields and labels pixels by
    their centres, so the result is the scene's grid without resampling. Its time coordinate
    is kept as it makes it (``datetime64[us]`` with pandas 3), as is its ``spatial_ref``.
    """
    import odc.stac

    items = cog_items(scene, folder)
    ds = odc.stac.load(items, bands=list(SAR_VARS), chunks={"x": 64, "y": 64})
    ds = ds.rename(time="timestep")
    # odc-stac's time is naive UTC (datetime64[us] with pandas 3): match the items at whole seconds.
    orbit_by_time = {
        np.datetime64(item.datetime.replace(tzinfo=None), "s"): item.properties["sat:orbit_state"] for item in items
    }
    orbits = np.array([orbit_by_time[np.datetime64(t, "s")] for t in ds.timestep.values], dtype=object)
    ds = ds.assign_coords({"sat:orbit_state": ("timestep", orbits)})
    return _add_scene_layers(ds, scene)


def stackstac_dataset(scene: ForeignScene, folder, xy_coords: str = "center") -> xr.Dataset:
    """The scene stacked by ``stackstac.stack`` (lazy), split into bands, time renamed.

    stackstac's default ``xy_coords="topleft"`` labels each pixel by its north-west CORNER
    (x from 530000, y from 4740000: half a pixel off the scene's centres, same pixel values);
    ``"center"`` (the default here) gives the scene's centres. Its default dtype float64 is kept
    (float32 values, exactly widened). Its own coords are kept as it makes them
    (``sat:orbit_state`` and ``id`` per time -- ``<U`` with stackstac 0.5.1 and pandas 3 --,
    scalar ``platform``, ``epsg``, ``proj:epsg``; no ``spatial_ref``, the CRS is in
    ``attrs["crs"]``), except what ``to_zarr`` cannot write: see :data:`STACKSTAC_UNWRITABLE`.
    """
    import stackstac

    items = cog_items(scene, folder)
    stack = stackstac.stack(
        items,
        assets=list(SAR_VARS),
        epsg=EPSG,
        resolution=PIXEL_SIZE,
        bounds=scene.bounds,
        chunksize=64,
        xy_coords=xy_coords,
    )
    ds = stack.to_dataset("band").rename(time="timestep")
    return _add_scene_layers(_writable(ds), scene)


# What stackstac 0.5.1 puts on the stack that to_zarr cannot write: 0-d object coords holding
# Python sets (it turns the items' shared list properties into sets) and a RasterSpec attr.
STACKSTAC_UNWRITABLE = {"coords": ("proj:transform", "proj:shape"), "attrs": ("spec",)}


def _writable(ds: xr.Dataset) -> xr.Dataset:
    """Drop what to_zarr cannot write; keep the Affine ``transform`` attr as its 6 numbers."""
    ds = ds.drop_vars([name for name in STACKSTAC_UNWRITABLE["coords"] if name in ds.coords])
    attrs = {key: value for key, value in ds.attrs.items() if key not in STACKSTAC_UNWRITABLE["attrs"]}
    if "transform" in attrs:
        attrs["transform"] = [float(value) for value in tuple(attrs["transform"])[:6]]
    ds.attrs = attrs  # ds is a new object (drop_vars), so this leaves the caller's stack alone
    return ds
