"""The output grid (cube/build/grid.py): the items' CRS, the zone of the area's centre when the
area spans zones (said so), --crs, and areas too small for a chip."""

import datetime as dt

import pystac
import pytest

from tf_landslide.cube.build.grid import area_of_interest, output_grid
from tf_landslide.cube.build.request import BuildRequest
from tf_landslide.cube.schema import CubeError


def item(code: str | None):
    properties = {"proj:code": code} if code else {}
    return pystac.Item("x", None, None, dt.datetime(2018, 9, 4, tzinfo=dt.UTC), properties)


def request(bbox, **overrides):
    return BuildRequest(out="cube.zarr", event_start="2018-09-05T18:07:59Z", bbox=bbox, **overrides)


def test_the_grid_is_on_the_items_crs_with_pixel_edges_on_the_resolution():
    ask = request((141.9, 42.65, 142.0, 42.72))
    grid = output_grid(ask, area_of_interest(ask), [item("EPSG:32654")] * 3)
    assert grid.geobox.crs.epsg == 32654 and grid.crs_note == "EPSG:32654, the RTC items' CRS"
    transform = grid.geobox.affine
    assert transform.a == 10 and transform.e == -10  # rows north to south
    assert transform.c % 10 == 0 and transform.f % 10 == 0
    assert 700 < grid.geobox.shape.y < 900 and 750 < grid.geobox.shape.x < 900


def test_an_area_across_two_zones_takes_the_zone_of_its_centre_and_says_so():
    ask = request((137.7, 42.6, 138.5, 42.7))  # zone 53 ends at 138 E; the centre (138.1 E) is in 54
    grid = output_grid(ask, area_of_interest(ask), [item("EPSG:32653"), item("EPSG:32654"), item("EPSG:32653")])
    assert grid.geobox.crs.epsg == 32654
    assert "spans 2 CRSs of the RTC items (EPSG:32653, EPSG:32654)" in grid.crs_note and "--crs" in grid.crs_note


def test_crs_flag_wins_and_items_without_a_crs_take_the_centres_utm_zone():
    ask = request((141.9, 42.65, 142.0, 42.72), crs="EPSG:6691")
    assert output_grid(ask, area_of_interest(ask), [item("EPSG:32654")]).geobox.crs.epsg == 6691
    ask = request((-66.2, 18.1, -66.1, 18.2))
    grid = output_grid(ask, area_of_interest(ask), [item(None)])
    assert grid.geobox.crs.epsg == 32619 and "the items state no CRS" in grid.crs_note


def test_an_area_smaller_than_a_chip_is_refused():
    ask = request((141.9, 42.65, 141.901, 42.651))
    with pytest.raises(CubeError, match="too small for a 32-pixel chip"):
        output_grid(ask, area_of_interest(ask), [item("EPSG:32654")])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "either as --bbox"),
        ({"bbox": (142.0, 42.6, 141.0, 42.7)}, "west < east"),
        ({"bbox": (141.0, 42.6, 142.0, 42.7), "aoi": "area.gpkg"}, "either as --bbox"),
        ({"bbox": (141.0, 42.6, 142.0, 42.7), "label_rule": "majority"}, "choose one of centre, all_touched"),
        ({"bbox": (141.0, 42.6, 142.0, 42.7), "dem_collection": "srtm"}, "choose one of nasadem, cop-dem-glo-30"),
    ],
)
def test_bad_requests_name_the_flag(overrides, message):
    with pytest.raises(CubeError, match=message):
        BuildRequest(out="cube.zarr", event_start="2018-09-05T18:07:59Z", **overrides)
