"""Landslide regions found block by block, and their GeoJSON polygons."""

import json

import numpy as np
import pytest
from scipy import ndimage

from tf_landslide.maps.polygons import Regions, write_geojson

UTM_54N = "EPSG:32654"
TRANSFORM = [10.0, 0.0, 530000.0, 0.0, -10.0, 4740000.0]


def regions_in_blocks(probability, cuts, threshold=0.5):
    found = Regions(threshold)
    edges = [0, *cuts, probability.shape[0]]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        found.write(a, probability[a:b])
    return found.regions()


def test_regions_found_block_by_block_are_the_regions_of_the_whole_map():
    rng = np.random.default_rng(0)
    probability = ndimage.uniform_filter(rng.random((120, 90)), 5).astype(np.float32)
    probability[rng.random(probability.shape) < 0.01] = np.nan
    mask = probability >= 0.52
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    expected = sorted((int((labels == k).sum()), float(probability[labels == k].max())) for k in range(1, n + 1))
    found = regions_in_blocks(probability, [7, 8, 40, 77], threshold=0.52)
    assert n > 10
    got = sorted((r.pixels, r.max_probability) for r in found)
    assert [g[0] for g in got] == [e[0] for e in expected]
    np.testing.assert_allclose([g[1] for g in got], [e[1] for e in expected])
    for region in found:
        row0, col0, row1, col1 = region.bbox
        member = labels == labels[region.seed]
        assert labels[region.seed] > 0
        rows, cols = np.nonzero(member)
        assert (row0, col0, row1, col1) == (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
        assert region.mean_probability == pytest.approx(float(probability[member].mean()), rel=1e-5)


def test_a_region_joined_only_diagonally_across_a_block_boundary_is_one_region():
    probability = np.zeros((10, 10), np.float32)
    probability[2:5, 3] = 1  # ends at row 4
    probability[5:8, 4] = 1  # starts at row 5, one column right: diagonal neighbours
    probability[0:4, 8] = probability[4, 9] = 1
    assert [r.pixels for r in regions_in_blocks(probability, [5])] == [6, 5]


def test_geojson_polygons_are_in_wgs84_with_areas_from_the_projected_grid(tmp_path):
    probability = np.zeros((40, 50), np.float32)
    probability[10:13, 20:23] = 0.9  # 3 x 3 pixels of 10 m: 900 m2
    probability[30, 5] = 0.8  # one pixel: 100 m2
    found = regions_in_blocks(probability, [20])
    path = tmp_path / "landslides.geojson"
    reader = lambda r0, c0, r1, c1: probability[r0:r1, c0:c1]  # noqa: E731
    summary = write_geojson(found, reader, 0.5, TRANSFORM, UTM_54N, probability.shape, min_area=200, path=str(path))
    assert summary == {"polygons": 1, "regions_below_min_area": 1, "area_m2": 900.0}
    feature = json.loads(path.read_text())["features"][0]
    assert feature["properties"]["area_m2"] == 900 and feature["properties"]["max_probability"] == pytest.approx(0.9)
    ring = np.array(feature["geometry"]["coordinates"][0])
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", UTM_54N, always_xy=True).transform(ring[:, 0], ring[:, 1])
    np.testing.assert_allclose([x.min(), x.max(), y.min(), y.max()], [530200, 530230, 4739870, 4739900], atol=0.01)


def test_a_region_with_a_hole_keeps_the_hole(tmp_path):
    probability = np.zeros((20, 20), np.float32)
    probability[5:10, 5:10] = 1
    probability[7, 7] = 0
    path = tmp_path / "hole.geojson"
    reader = lambda r0, c0, r1, c1: probability[r0:r1, c0:c1]  # noqa: E731
    write_geojson(regions_in_blocks(probability, [7]), reader, 0.5, TRANSFORM, UTM_54N, (20, 20), 0, str(path))
    rings = json.loads(path.read_text())["features"][0]["geometry"]["coordinates"]
    assert len(rings) == 2  # exterior and the one-pixel hole


def ring_area(ring):
    x, y = np.asarray(ring).T
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


@pytest.mark.parametrize("band_rows", [8, 1024])
def test_every_outline_encloses_exactly_its_regions_pixels(band_rows):
    """Regions inside a band are traced together, those crossing bands one by one: both exact."""
    from tf_landslide.maps.polygons import outlines

    rng = np.random.default_rng(3)
    probability = ndimage.uniform_filter(rng.random((60, 70)), 3).astype(np.float32)
    found = regions_in_blocks(probability, [13, 30])
    reader = lambda r0, c0, r1, c1: probability[r0:r1, c0:c1]  # noqa: E731
    traced = dict(
        pair for band in outlines(found, reader, 0.5, TRANSFORM, probability.shape, band_rows) for pair in band
    )
    assert len(found) > 20 and sorted(traced) == list(range(len(found)))
    for i, region in enumerate(found):
        geometry = traced[i]
        exterior, *holes = geometry["coordinates"]
        area = ring_area(exterior) - sum(ring_area(h) for h in holes)
        assert area == pytest.approx(region.pixels * 100.0)
