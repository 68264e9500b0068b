"""The synthetic cube's physics: terrain, scars, farmland, and each acquisition's bands.

Only the 2-D static fields (``Scene``) are held in memory; ``backscatter_band`` and
``coherence_band`` draw one band of rows of one acquisition or pair from them, seeded by
(spec seed, variable, timestep, band), so a band's values do not depend on the order of writing.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tf_landslide.cube import schema
from tf_landslide.cube.synthetic.spec import SyntheticCubeSpec
from tf_landslide.cube.terrain import slope_aspect_curvature

# Log-backscatter levels (dB) of the land covers, and the look geometry of Sentinel-1 IW.
FOREST_DB = {"vv": -7.5, "vh": -14.0}
FIELD_DB = {"vv": -10.0, "vh": -17.5}
BARE_SOIL_DB = {"vv": -11.5, "vh": -16.5}
VH_NOISE_FLOOR_DB = -22.0
INCIDENCE_DEG = 39.0
# Azimuth (clockwise from north) the radar looks toward: right-looking, so east when
# ascending (flying north) and west when descending.
LOOK_AZIMUTH_DEG = {"a": 80.0, "d": 280.0}


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
class Scene:
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
    slope, aspect, curvature = slope_aspect_curvature(dem, spec.pixel_size)
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


def build_scene(spec: SyntheticCubeSpec) -> Scene:
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 1]))
    dem, slope, aspect, curvature = _terrain(spec, rng)
    strength = _scars(spec, rng, slope, aspect, curvature)
    # Farmland on the gentle ground of the lower valleys.
    fields = (dem < np.percentile(dem, 45)) & (np.degrees(slope) < 12.0) & (strength == 0)
    parcel = 24  # pixels: 240 m farm parcels
    parcels = rng.normal(0.0, 2.0, size=(spec.height // parcel + 1, spec.width // parcel + 1))
    harvest = np.repeat(np.repeat(parcels, parcel, 0), parcel, 1)[: spec.height, : spec.width]
    harvest = np.where(fields, harvest, 0.0).astype(np.float32)
    return Scene(dem, slope, aspect, curvature, strength, (strength > 0).astype(np.uint8), fields, harvest)


def _local_geometry(scene: Scene, rows: slice, orbit: str):
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


def backscatter_band(spec, scene, rows, pol, t, time, orbit, after_event, day_of_year):
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


def coherence_band(spec, scene, rows, pair_index, first, second, orbit, spans_event, days):
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
