"""Names of the datacube schema (see ``shared/datacube-schema.md``), in one place, and the error
for cubes that cannot be used as asked."""


class CubeError(ValueError):
    """The cube cannot be used as asked: the message says what is wrong and what to do."""


TIME_DIM = "timestep"
PAIR_DIM = "timepair"
SPATIAL_DIMS = ("y", "x")
ORBIT_COORD = "sat:orbit_state"

SAR_VARIABLES = ("vv", "vh")
DEM_VARIABLES = ("dem", "dem_slope_radians", "dem_aspect", "dem_curvature")
LABEL_VARIABLE = "landslides"
INSAR_VARIABLES = ("interferogram", "coherence")

REQUIRED_VARIABLES = {
    **{name: (TIME_DIM, *SPATIAL_DIMS) for name in SAR_VARIABLES},
    **{name: SPATIAL_DIMS for name in DEM_VARIABLES},
    LABEL_VARIABLE: SPATIAL_DIMS,
}
OPTIONAL_VARIABLES = {name: (PAIR_DIM, *SPATIAL_DIMS) for name in INSAR_VARIABLES}

# Orbit codes of the canonical ``sat:orbit_state`` (the first letter of the STAC sat extension's values).
ORBIT_CODES = {"ascending": "a", "descending": "d"}
