"""Slope, aspect and curvature of a DEM on a projected grid, in the conventions of the cubes.

The published cubes carry ``dem_slope_radians``, ``dem_aspect`` and ``dem_curvature`` beside
``dem``; the synthetic cube and the cube builder derive them here, so both hold the same
conventions:

* slope: radians from horizontal, ``arctan(|grad z|)`` with central differences (one-sided at
  the edges, as ``numpy.gradient``);
* aspect: degrees clockwise from north of the direction the slope faces (downhill), in
  [0, 360); a flat cell gets 0 (``arctan2(0, 0)``), as GDAL's ``-zero_for_flat``;
* curvature: ArcGIS's: ``-100 * laplacian(z)`` in 1/100 m, convex (hill tops) positive,
  hollows negative, from the five-point stencil; 0 on the outermost rows and columns.

Rows run north to south (y decreasing), as in every cube of the schema; the cube builder
flips a south-up DEM before calling this. Hand-written because none of the stack's libraries
computes all three on an in-memory array (``gdaldem`` works on files and has no Laplacian
curvature; richdem is not maintained for current Python).
"""

from __future__ import annotations

import numpy as np


def slope_aspect_curvature(dem: np.ndarray, pixel_size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(slope_radians, aspect_degrees, curvature)`` of ``dem`` (rows north to south), float32."""
    d_north, d_east = np.gradient(dem, pixel_size)
    d_north = -d_north  # rows run north to south
    slope = np.arctan(np.hypot(d_east, d_north)).astype(np.float32)
    aspect = ((np.degrees(np.arctan2(-d_east, -d_north)) + 360.0) % 360.0).astype(np.float32)
    lap = (
        np.roll(dem, 1, 0) + np.roll(dem, -1, 0) + np.roll(dem, 1, 1) + np.roll(dem, -1, 1) - 4 * dem
    ) / pixel_size**2
    lap[0, :] = lap[-1, :] = lap[:, 0] = lap[:, -1] = 0.0
    curvature = (-100.0 * lap).astype(np.float32)
    return slope, aspect, curvature
