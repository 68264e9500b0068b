"""Names of the datacube schema (see ``shared/datacube-schema.md``), in one place."""

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

# Orbit flag values in ``sat:orbit_state`` (STAC sat extension, first letter kept by the cubes).
ORBIT_CODES = {"ascending": "a", "descending": "d"}
