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

from tf_landslide.cube.synthetic.spec import (
    GENERATOR_VERSION,
    HOKKAIDO_TRIGGER,
    REVISIT_DAYS,
    SIZES,
    SyntheticCubeSpec,
    acquisition_times,
    insar_pairs,
)
from tf_landslide.cube.synthetic.write import PUBLISHED, Dialect, embedded_cube, write_cube

__all__ = [
    "GENERATOR_VERSION",
    "HOKKAIDO_TRIGGER",
    "PUBLISHED",
    "REVISIT_DAYS",
    "SIZES",
    "Dialect",
    "SyntheticCubeSpec",
    "acquisition_times",
    "embedded_cube",
    "insar_pairs",
    "write_cube",
]
