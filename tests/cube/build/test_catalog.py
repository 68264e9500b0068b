"""Searching a STAC source (cube/build/catalog.py): a static catalog as an API would, and
Planetary Computer's signing, without the network."""

import datetime as dt

import pandas as pd
import pystac
import pytest

from tf_landslide.cube.build import catalog
from tf_landslide.cube.build.request import PLANETARY_COMPUTER
from tf_landslide.cube.schema import CubeError


def make_catalog(root, boxes_and_times):
    cat = pystac.Catalog("root", "test catalog")
    extent = pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]]))
    collection = pystac.Collection("sentinel-1-rtc", "rtc", extent)
    for k, (bbox, when) in enumerate(boxes_and_times):
        west, south, east, north = bbox
        ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
        time = dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC)
        collection.add_item(pystac.Item(f"item{k}", {"type": "Polygon", "coordinates": [ring]}, list(bbox), time, {}))
    cat.add_child(collection)
    cat.normalize_hrefs(str(root))
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    return root


def test_a_static_catalog_is_searched_by_area_and_time_like_an_api(tmp_path):
    root = make_catalog(
        tmp_path,
        [
            ((141.0, 42.0, 142.0, 43.0), "2018-09-04T20:40:12"),
            ((141.0, 42.0, 142.0, 43.0), "2017-01-01T00:00:00"),  # outside the time range
            ((150.0, 42.0, 151.0, 43.0), "2018-09-04T20:40:12"),  # outside the area
            ((141.9, 42.7, 142.5, 43.5), "2018-08-23T20:40:12"),  # overlaps a corner
        ],
    )
    times = (pd.Timestamp("2018-06-01"), pd.Timestamp("2018-12-01"))
    for source in (str(root), str(root / "catalog.json")):
        found = catalog.search(source, "sentinel-1-rtc", (141.8, 42.6, 142.1, 42.8), times)
        assert [i.id for i in found] == ["item3", "item0"]  # sorted by time


def test_a_missing_catalog_or_collection_says_what_exists(tmp_path):
    with pytest.raises(CubeError, match="no STAC catalog there"):
        catalog.search(str(tmp_path / "nowhere"), "sentinel-1-rtc", (0, 0, 1, 1))
    root = make_catalog(tmp_path, [((0, 0, 1, 1), "2018-01-01T00:00:00")])
    with pytest.raises(CubeError, match="no collection 'nasadem'; it has: sentinel-1-rtc"):
        catalog.search(str(root), "nasadem", (0, 0, 1, 1))


def test_api_urls_and_static_catalogs_are_told_apart():
    assert catalog.is_api(PLANETARY_COMPUTER)
    assert catalog.is_api("https://earth-search.aws.element84.com/v1")
    assert not catalog.is_api("https://example.org/static/catalog.json")
    assert not catalog.is_api("/data/catalog")


def test_planetary_computer_assets_are_signed_with_a_token_and_others_are_not(monkeypatch):
    from planetary_computer import sas

    account, container = "sentinel1euwestrtc", "sentinel1-grd-rtc"
    href = f"https://{account}.blob.core.windows.net/{container}/GRD/2018/9/4/IW/DV/S1B_x/measurement/iw-vv.rtc.tiff"
    token = sas.SASToken(
        token="st=test&sig=offline", **{"msft:expiry": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)}
    )
    monkeypatch.setitem(sas.TOKEN_CACHE, f"{sas.Settings.get().sas_url}/{account}/{container}", token)
    assert catalog.url_signer(PLANETARY_COMPUTER)(href) == f"{href}?st=test&sig=offline"

    item = pystac.Item("x", None, None, dt.datetime(2018, 9, 4, tzinfo=dt.UTC), {})
    item.add_asset("vv", pystac.Asset(href))
    catalog.signer(PLANETARY_COMPUTER)(item)  # what pystac-client applies to every item it returns
    assert item.assets["vv"].href.endswith("?st=test&sig=offline")

    assert catalog.signer("https://earth-search.aws.element84.com/v1") is None
    assert catalog.url_signer("/data/catalog") is None
