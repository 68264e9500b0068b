"""The map page (index.html) in a real browser: Debian's headless Chromium driven by Playwright,
the page opened from disk. Playwright drives the system's Chromium over its DevTools protocol, so
no browser is downloaded; it also reports every request the page makes and can answer a tile
request itself, so the base-layer test needs no network either."""

import configparser
import fnmatch
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from pyproj import Transformer
from scipy import ndimage

from tests.helpers import make_tiny_map, map_run_dir
from tf_landslide.maps import page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIEWPORT = {"width": 1000, "height": 700}
TILES = "https://tiles.example.test/{z}/{x}/{y}.png"  # answered by the test, never by the network
TILE_COLOUR = (40, 160, 60)
REPO = Path(__file__).resolve().parents[2]
# The Leaflet map folium declares as a global ``map_<id>``.
FIND_MAP = "Object.keys(window).filter(k => k.startsWith('map_') && window[k] instanceof L.Map).map(k => window[k])[0]"


@pytest.fixture(scope="module")
def run_dir(tiny_cube, tmp_path_factory):
    return map_run_dir(tiny_cube, tmp_path_factory.mktemp("page_run"))


@pytest.fixture(scope="module")
def offline_map(tiny_cube, run_dir, tmp_path_factory):
    """The default outputs, with no base layer."""
    out = tmp_path_factory.mktemp("page") / "map"
    return make_tiny_map(tiny_cube, run_dir, out), out


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no {CHROMIUM}: sudo apt-get install -y chromium (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Visit:
    """index.html opened in a fresh browser context, with every request it made and every
    JavaScript error. Requests to the web are refused unless ``tile`` answers them."""

    def __init__(self, browser, folder: Path, tile: bytes | None = None):
        self.context = browser.new_context(viewport=VIEWPORT)
        self.requests, self.errors = [], []
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.context.route(re.compile(r"^https?://"), lambda route: self._answer(route, tile))
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)  # a broken page fails in seconds, not Playwright's 30
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto((folder / page.PAGE).as_uri(), wait_until="load")

    @staticmethod
    def _answer(route, tile: bytes | None) -> None:
        if tile is not None and route.request.url.startswith(TILES.split("{")[0]):
            route.fulfill(status=200, content_type="image/png", body=tile)
        else:
            route.abort()

    def screen_point(self, lon: float, lat: float, centre: bool = False) -> tuple[int, int]:
        """Where a place is on the screen, as Leaflet draws it (``centre``: after panning the
        map to put it in the middle, away from the controls in the corners)."""
        x, y = self.page.evaluate(
            f"([lat, lon, centre]) => {{ const map = {FIND_MAP};"
            " if (centre) map.setView([lat, lon], map.getZoom(), {animate: false});"
            " const p = map.latLngToContainerPoint([lat, lon]);"
            " const box = map.getContainer().getBoundingClientRect(); return [box.left + p.x, box.top + p.y]; }",
            [lat, lon, centre],
        )
        on_top = "([x, y]) => !!document.elementFromPoint(x, y).closest('.leaflet-control')"
        covered = self.page.evaluate(on_top, [x, y])
        assert not covered, f"({x:.0f}, {y:.0f}) is under a map control: choose another place"
        return round(x), round(y)

    def show_only_the_overlay_at_full_opacity(self, threshold: float) -> None:
        for name in (page.LABELS_LAYER, page.polygons_layer_name(threshold)):
            self.page.get_by_role("checkbox", name=name, exact=True).uncheck()
        self.page.get_by_role("slider", name="probability opacity").fill("1")
        assert self.page.evaluate("() => document.querySelector('img.leaflet-image-layer').style.opacity") == "1"

    def screenshot(self) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(self.page.screenshot())).convert("RGB"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def visit(browser, offline_map):
    opened = Visit(browser, offline_map[1])
    yield opened
    opened.close()


def places(out: Path) -> dict[str, tuple[float, float, float, float]]:
    """A high- and a low-probability place of the written map, each in a 5 x 5 neighbourhood of
    like values: (longitude, latitude, least and greatest probability of the neighbourhood)."""
    with rasterio.open(out / "probability.tif") as tif:
        probability, grid, crs = tif.read(1), tif.transform, tif.crs
    known = ~np.isnan(probability)
    least = ndimage.minimum_filter(np.where(known, probability, -np.inf), size=5)
    most = ndimage.maximum_filter(np.where(known, probability, np.inf), size=5)
    found = {}
    for name, (row, col) in {
        "high": np.unravel_index(np.argmax(least), least.shape),
        "low": np.unravel_index(np.argmin(most), most.shape),
    }.items():
        x, y = rasterio.transform.xy(grid, row, col)  # the pixel's centre
        lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
        found[name] = (lon, lat, float(least[row, col]), float(most[row, col]))
    assert found["high"][2] > 0.8 and found["low"][3] < page.CLEAR_BELOW, found
    return found


def overlay_value(colour: np.ndarray) -> tuple[float, float]:
    """The probability whose overlay colour is nearest ``colour``, and how far that colour is."""
    distances = np.abs(page.palette()[1:].astype(int) - colour.astype(int)).sum(axis=1)
    index = int(np.argmin(distances))
    return index / 254, float(distances[index])


def test_the_page_loads_only_files_beside_it(visit, offline_map):
    _, out = offline_map
    not_files = [url for url in visit.requests if not url.startswith("file://")]
    assert not not_files, f"the page without a base layer asked the network for {not_files}"
    loaded = {Path(url.removeprefix("file://")).relative_to(out).as_posix() for url in visit.requests}
    assert {page.PAGE, page.OVERLAY, page.LEAFLET_JS, page.LEAFLET_CSS, page.D3_JS} <= loaded
    assert not visit.errors


def test_the_overlay_shows_the_probability_in_the_colormaps_colours(visit, offline_map):
    summary, out = offline_map
    natural_width = visit.page.evaluate("() => document.querySelector('img.leaflet-image-layer').naturalWidth")
    assert natural_width == summary["page"]["overlay_pixels"][1]
    visit.show_only_the_overlay_at_full_opacity(summary["threshold"])
    spots = places(out)
    x, y = visit.screen_point(*spots["high"][:2], centre=True)
    colour = visit.screenshot()[y, x]
    value, distance = overlay_value(colour)
    assert distance <= 6, f"{colour} at the high place is not a colour of the overlay"
    least, most = spots["high"][2:]
    assert least - 1 / 254 <= value <= most + 1 / 254
    background = visit.page.evaluate(f"() => getComputedStyle({FIND_MAP}.getContainer()).backgroundColor")
    clear = [int(v) for v in re.findall(r"\d+", background)[:3]]
    x, y = visit.screen_point(*spots["low"][:2], centre=True)
    assert visit.screenshot()[y, x].tolist() == clear  # transparent below CLEAR_BELOW


def test_a_click_on_a_polygon_opens_its_area_and_probabilities(visit, offline_map):
    from shapely.geometry import shape

    _, out = offline_map
    features = json.loads((out / "landslides.geojson").read_text())["features"]
    largest = max(features, key=lambda feature: feature["properties"]["area_m2"])
    inside = shape(largest["geometry"]).representative_point()
    visit.page.mouse.click(*visit.screen_point(inside.x, inside.y, centre=True))
    popup = visit.page.wait_for_selector(".leaflet-popup-content", timeout=5000).inner_text()
    for key, alias in page.POPUP_FIELDS.items():
        value = largest["properties"][key]
        shown = str(int(value)) if float(value).is_integer() else repr(float(value))  # as JavaScript prints it
        assert re.search(rf"{re.escape(alias)}\s+{re.escape(shown)}\b", popup), (alias, shown, popup)


def test_the_legend_is_drawn(visit):
    legend = visit.page.locator(".legend.leaflet-control svg")
    assert "landslide probability" in legend.text_content()
    assert legend.locator("rect").count() >= 100  # branca's colour bar, one rect per colour step


def test_a_base_layer_is_requested_and_drawn_under_the_overlay(browser, tiny_cube, run_dir, offline_map, tmp_path):
    summary = make_tiny_map(tiny_cube, run_dir, tmp_path / "map", outputs=("html",), basemap=TILES)
    assert sorted(p.name for p in (tmp_path / "map").iterdir()) == ["index.html", "lib", "map.json", "overlay.png"]
    assert summary["page"]["polygons"] == offline_map[0]["regions_above_threshold"]  # traced without the GeoJSON
    tile = io.BytesIO()
    Image.new("RGB", (256, 256), TILE_COLOUR).save(tile, format="PNG")
    visit = Visit(browser, tmp_path / "map", tile=tile.getvalue())
    try:
        web = [url for url in visit.requests if not url.startswith("file://")]
        assert web and all(url.startswith(TILES.split("{")[0]) for url in web), web
        visit.show_only_the_overlay_at_full_opacity(summary["threshold"])
        lon, lat, *_ = places(offline_map[1])["low"]
        x, y = visit.screen_point(lon, lat, centre=True)
        tiles = "Array.from(document.querySelectorAll('img.leaflet-tile'))"
        visit.page.wait_for_function(f"() => {tiles}.length > 0 && {tiles}.every(tile => tile.complete)")
        assert tuple(visit.screenshot()[y, x]) == TILE_COLOUR  # the overlay is clear there: the tile shows
    finally:
        visit.close()


@pytest.mark.parametrize("basemap", ["tiles.example.test/{z}/{x}/{y}.png", "https://tiles.example.test/{z}/{y}.png"])
def test_a_base_layer_the_page_cannot_use_is_refused_before_mapping(tiny_cube, run_dir, tmp_path, basemap):
    with pytest.raises(ValueError, match="--map_basemap"):
        make_tiny_map(tiny_cube, run_dir, tmp_path / "map", basemap=basemap)
    assert not (tmp_path / "map").exists()


def test_a_map_without_polygons_still_has_a_page(tiny_cube, run_dir, tmp_path):
    summary = make_tiny_map(tiny_cube, run_dir, tmp_path / "map", threshold=0.999, outputs=("html",))
    assert summary["regions_above_threshold"] == 0 and summary["page"]["polygons"] == 0
    assert summary["outputs"] == {"html": page.PAGE} and (tmp_path / "map" / page.OVERLAY).exists()


def test_a_cube_without_a_crs_gets_no_page_and_the_summary_says_why(tiny_cube, run_dir, tmp_path):
    from tf_landslide.cube.open import open_cube

    no_crs = tmp_path / "no_crs.zarr"
    open_cube(tiny_cube).drop_vars("spatial_ref").to_zarr(no_crs, zarr_format=2, consolidated=True)
    summary = make_tiny_map(str(no_crs), run_dir, tmp_path / "map", outputs=("geotiff", "html"))
    assert summary["page"] == {"skipped": "the cube carries no CRS"} and "html" not in summary["outputs"]
    assert not (tmp_path / "map" / page.PAGE).exists()


def test_the_vendored_files_are_package_data():
    """A non-editable install carries only the files setup.cfg declares."""
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    patterns = [p for p in re.split(r"[,\n]", setup["options.package_data"]["tf_landslide.maps"]) if p.strip()]
    patterns = [p.strip() for p in patterns]
    package = page.STATIC.parent
    for path in page.STATIC.rglob("*"):
        if path.is_file():
            relative = path.relative_to(package).as_posix()
            assert any(fnmatch.fnmatch(relative, p) for p in patterns), f"{relative} is not in setup.cfg's package_data"
