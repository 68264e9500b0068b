"""Slope, aspect and curvature (cube/terrain.py) on surfaces whose answers are known exactly."""

import numpy as np
import pytest

from tf_landslide.cube.terrain import slope_aspect_curvature

PIXEL = 10.0


def grid(n: int = 41):
    """East and north coordinates (metres) of an n x n grid, rows north to south."""
    east = (np.arange(n) - n // 2) * PIXEL
    north = (n // 2 - np.arange(n)) * PIXEL
    return np.meshgrid(east, north)


@pytest.mark.parametrize(
    ("rise_east", "rise_north", "faces"),
    [
        (0.0, -0.5, 0.0),  # falls to the north: faces north
        (-0.5, 0.0, 90.0),  # falls to the east
        (0.0, 0.5, 180.0),
        (0.5, 0.0, 270.0),
        (-0.3, -0.3, 45.0),
        (0.2, -0.6, np.degrees(np.arctan2(-0.2, 0.6)) % 360),
    ],
)
def test_a_plane_has_its_slope_and_faces_downhill(rise_east, rise_north, faces):
    east, north = grid()
    dem = 500.0 + rise_east * east + rise_north * north
    slope, aspect, curvature = slope_aspect_curvature(dem, PIXEL)
    np.testing.assert_allclose(slope, np.arctan(np.hypot(rise_east, rise_north)), atol=1e-6)
    np.testing.assert_allclose(aspect, faces, atol=1e-3)
    np.testing.assert_allclose(curvature, 0.0, atol=1e-6)
    assert slope.dtype == aspect.dtype == curvature.dtype == np.float32


def test_flat_ground_faces_north_with_no_slope():
    slope, aspect, curvature = slope_aspect_curvature(np.full((8, 8), 120.0), PIXEL)
    assert (slope == 0).all() and (aspect == 0).all() and (curvature == 0).all()


@pytest.mark.parametrize("c", [0.002, -0.003])
def test_a_paraboloid_has_its_curvature_slope_and_aspect(c):
    """z = c (x^2 + y^2): Laplacian 4c everywhere (so curvature -400c, convex hill positive),
    slope arctan(2 c r), and the slope faces away from the top of a hill (c < 0) or into a bowl."""
    east, north = grid()
    dem = 300.0 + c * (east**2 + north**2)
    slope, aspect, curvature = slope_aspect_curvature(dem, PIXEL)
    inner = (slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(curvature[inner], -400.0 * c, rtol=1e-5)
    assert (curvature[0] == 0).all() and (curvature[:, -1] == 0).all()  # edges: no neighbours, no value
    np.testing.assert_allclose(slope[inner], np.arctan(2 * abs(c) * np.hypot(east, north))[inner], atol=1e-6)
    away_from_centre = np.degrees(np.arctan2(east, north)) % 360
    expected = away_from_centre if c < 0 else (away_from_centre + 180) % 360
    off_centre = (np.hypot(east, north) > 0)[inner]
    difference = (aspect[inner] - expected[inner] + 180) % 360 - 180
    np.testing.assert_allclose(difference[off_centre], 0.0, atol=1e-3)
    assert (curvature[inner] > 0).all() == (c < 0)  # a hill is convex: positive in ArcGIS's sign
