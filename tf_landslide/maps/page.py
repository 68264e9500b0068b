"""The map's interactive page: ``index.html``, a Leaflet map made with folium of the probability
overlay, the landslide polygons (popups with their area and probabilities) and the labels'
outline, that works from its folder without a network.

Everything the page loads sits beside it: the overlay PNG and the Leaflet and d3 files vendored
in ``static/`` (``static/README.md``: which versions, from where). Only the optional base layer
(``--map_basemap``) comes from the web.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import folium
import numpy as np
from branca.colormap import LinearColormap
from branca.element import JavascriptLink, MacroElement
from folium.template import Template

PAGE = "index.html"
OVERLAY = "overlay.png"
LIBRARIES = "lib"  # the vendored JavaScript and CSS, copied beside the page
STATIC = Path(__file__).with_name("static")
LEAFLET_JS, LEAFLET_CSS, D3_JS = "lib/leaflet/leaflet.js", "lib/leaflet/leaflet.css", "lib/d3/d3.min.js"

OVERLAY_PIXELS = 2048  # longest side of the overlay: the page's one overview level of the map
CLEAR_BELOW = 0.1  # probabilities below this are transparent, as in the quick-look
COLORMAP = "inferno"  # the quick-look's
OPACITY = 0.8  # the overlay's at first; the page's slider changes it
LABEL_COLOUR = "cyan"  # the quick-look's outline of the labels
POLYGON_COLOUR = "#1e90ff"
LEGEND_STYLE = ".legend.leaflet-control {background: rgba(255, 255, 255, 0.85); border-radius: 4px}"
OVERLAY_LAYER, LABELS_LAYER = "probability", "mapped landslides (labels)"  # names in the layer switcher
# Leaflet places an image overlay by projecting its corners and stretching the image linearly
# between them in Web Mercator: only an image on a Web Mercator grid lines up everywhere (one on
# a longitude/latitude grid would be tens of metres off mid-scene for a scene 50 km tall at 43 N).
MERCATOR = "EPSG:3857"
POPUP_FIELDS = {
    "id": "landslide",
    "area_m2": "area (m²)",
    "mean_probability": "mean probability",
    "max_probability": "max probability",
}
BASEMAP_HELP = (
    "'' (no base layer), 'osm' (OpenStreetMap) or an XYZ tile URL with {z}, {x} and {y}, "
    "e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png"
)


def check_basemap(basemap: str) -> None:
    """Refuse a base layer the page cannot use, before a map is made."""
    if basemap in ("", "osm"):
        return
    if urlparse(basemap).scheme not in ("http", "https") or not all(f"{{{k}}}" in basemap for k in "zxy"):
        raise ValueError(f"--map_basemap={basemap!r}: expected {BASEMAP_HELP}")


def warp_overlay(raster, max_pixels: int = OVERLAY_PIXELS) -> tuple[np.ndarray, list[list[float]]]:
    """The probability on a Web Mercator grid of at most ``max_pixels`` a side, and its bounds
    [[south, west], [north, east]] in degrees.

    ``raster``: an open rasterio dataset of the map, read by GDAL's warper a window at a time.
    Shrinking keeps each overlay pixel's maximum, so a landslide smaller than an overlay pixel
    stays visible (its polygon gives its extent).
    """
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject, transform

    args = (raster.crs, MERCATOR, raster.width, raster.height, *raster.bounds)
    grid, width, height = calculate_default_transform(*args)
    shrink = max(width, height) / max_pixels
    if shrink > 1:
        size = {"dst_width": math.ceil(width / shrink), "dst_height": math.ceil(height / shrink)}
        grid, width, height = calculate_default_transform(*args, **size)
    values = np.full((height, width), np.nan, np.float32)
    reproject(
        rasterio.band(raster, 1),
        values,
        src_nodata=np.nan,
        dst_transform=grid,
        dst_crs=MERCATOR,
        dst_nodata=np.nan,
        resampling=Resampling.max,
    )
    west, north = grid.c, grid.f  # a north-up grid: no rotation terms
    east, south = west + grid.a * width, north + grid.e * height
    lon, lat = transform(MERCATOR, "EPSG:4326", [west, east], [south, north])
    return values, [[lat[0], lon[0]], [lat[1], lon[1]]]


def palette() -> np.ndarray:
    """The overlay's 256 colours, uint8 RGB: index 0 transparent, 1..255 the colormap from 0 to 1."""
    from matplotlib import colormaps

    colours = colormaps[COLORMAP](np.linspace(0, 1, 255))[:, :3]
    return (np.concatenate([np.zeros((1, 3)), colours]) * 255).round().astype(np.uint8)


def save_overlay(values: np.ndarray, path: str) -> None:
    """An indexed PNG of the probabilities (a quarter of an RGBA image's bytes), transparent
    where there is no prediction or the probability is below ``CLEAR_BELOW``."""
    from PIL import Image

    index = np.zeros(values.shape, np.uint8)
    shown = values >= CLEAR_BELOW  # NaN compares False
    index[shown] = 1 + np.round(np.clip(values[shown], 0, 1) * 254).astype(np.uint8)
    image = Image.fromarray(index)
    image.putpalette(palette().ravel().tolist())  # mode L -> P
    image.save(path, optimize=True, transparency=0)


def label_outlines(labels: np.ndarray, transform: list[float], step: int, crs_wkt: str) -> dict:
    """The labels (every ``step``-th pixel of the cube's, as the quick-look keeps them) as WGS 84
    polygons: the page outlines them at the overlay's detail, not the cube's."""
    from affine import Affine
    from rasterio.features import shapes

    from tf_landslide.maps.polygons import to_wgs84

    mask = labels.astype(bool)
    grid = Affine(*transform) @ Affine.scale(step)
    geometries = [g for g, _ in shapes(mask.astype(np.uint8), mask=mask, connectivity=8, transform=grid)]
    features = [{"type": "Feature", "properties": {}, "geometry": g} for g in to_wgs84(geometries, crs_wkt)]
    return {"type": "FeatureCollection", "features": features}


def simplified(collection: dict, tolerance: float) -> dict:
    """``collection``'s polygons within ``tolerance`` degrees of their outlines (Douglas-Peucker,
    kept valid), vertices on a 1e-5 degree grid (about 1 m). The page draws the vectors at the
    overlay's detail, which keeps a large scene's page small; landslides.geojson keeps the exact
    pixel outlines, and the popups the exact areas and probabilities."""
    import shapely
    from shapely.geometry import mapping, shape

    geometries = np.array([shape(feature["geometry"]) for feature in collection["features"]], dtype=object)
    geometries = shapely.set_precision(shapely.simplify(geometries, tolerance, preserve_topology=True), 1e-5)
    features = [{**f, "geometry": mapping(g)} for f, g in zip(collection["features"], geometries, strict=True)]
    return {**collection, "features": features}


def basemap_layer(basemap: str) -> folium.TileLayer | None:
    """The base layer's folium TileLayer, or None for none."""
    if not basemap:
        return None
    if basemap == "osm":
        return folium.TileLayer("OpenStreetMap", name="OpenStreetMap")
    return folium.TileLayer(basemap, attr=f"base layer: {urlparse(basemap).netloc}", name="base layer")


class Legend(LinearColormap):
    """branca's colour bar, drawn by d3 from the page's folder instead of branca's CDN."""

    def render(self, **kwargs):
        super().render(**kwargs)  # adds a CDN link named "d3" to the page's header: replace it
        self.get_root().header.add_child(JavascriptLink(D3_JS), name="d3")


class OpacitySlider(MacroElement):
    """A slider setting the overlay's opacity. Neither folium nor its plugins have one, so it is
    a Leaflet control of a few lines of JavaScript in a folium template."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.control({position: "bottomleft"});
        {{ this.get_name() }}.onAdd = function () {
            var div = L.DomUtil.create("div", "leaflet-bar opacity-slider");
            div.style.cssText = "background: white; padding: 4px 8px; font: 12px sans-serif";
            div.innerHTML = '<label>probability opacity <input type="range" min="0" max="1" step="0.05" '
                + 'value="{{ this.opacity }}" style="vertical-align: middle"></label>';
            L.DomEvent.disableClickPropagation(div);  // dragging the slider must not pan the map
            div.querySelector("input").addEventListener("input", function (event) {
                {{ this.overlay.get_name() }}.setOpacity(parseFloat(event.target.value));
            });
            return div;
        };
        {{ this.get_name() }}.addTo({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, overlay: folium.raster_layers.ImageOverlay, opacity: float):
        super().__init__()
        self._name = "OpacitySlider"
        self.overlay, self.opacity = overlay, opacity


def legend() -> Legend:
    """The colour bar of the overlay's colours (sampled from the colormap: branca interpolates)."""
    samples = palette()[np.linspace(1, 255, 16).round().astype(int)]
    colours = ["#" + bytes(colour).hex() for colour in samples]
    caption = f"landslide probability (clear below {CLEAR_BELOW:g})"
    ticks = [round(float(t), 1) for t in np.linspace(0, 1, 11)]  # Python floats: numpy's repr is not JavaScript
    return Legend(colours, vmin=0.0, vmax=1.0, caption=caption, tick_labels=ticks)


def polygons_layer_name(threshold: float) -> str:
    return f"landslides (probability >= {threshold:g})"


def _polygon_layer(polygons: dict, threshold: float) -> folium.GeoJson:
    """The landslide polygons, each with a popup of its id, area and probabilities."""
    style = {"color": POLYGON_COLOUR, "weight": 1.5, "fillOpacity": 0.1}
    return folium.GeoJson(
        polygons,
        name=polygons_layer_name(threshold),
        style_function=lambda feature: style,
        popup=folium.GeoJsonPopup(list(POPUP_FIELDS), aliases=list(POPUP_FIELDS.values()), localize=False),
    )


def build_map(
    overlay_bounds: list[list[float]],
    polygons: dict | None,
    labels: dict | None,
    threshold: float,
    basemap: str,
    title: str,
) -> folium.Map:
    """The folium map: base layer (if any), overlay, labels, polygons, legend, opacity slider and
    layer switcher, its JavaScript and CSS taken from ``lib/`` beside the page."""
    # Canvas rather than SVG: a scene's thousands of polygons stay quick to pan and zoom.
    # zoomSnap: the scene fills the window at the first view, not only at whole zoom levels.
    page = folium.Map(location=None, tiles=None, prefer_canvas=True, control_scale=True, zoom_snap=0.25)
    # folium's defaults load Leaflet, jQuery, Bootstrap and Font Awesome from CDNs; the page uses Leaflet alone.
    page.default_js, page.default_css = [("leaflet", LEAFLET_JS)], [("leaflet_css", LEAFLET_CSS)]
    page.get_root().title = title
    base = basemap_layer(basemap)
    if base is not None:
        base.add_to(page)
    overlay = folium.raster_layers.ImageOverlay("data:,", overlay_bounds, name=OVERLAY_LAYER, opacity=OPACITY)
    # folium would embed a local image as base64 in the page: link the PNG beside it instead.
    overlay.url = OVERLAY
    overlay.add_to(page)
    if labels and labels["features"]:
        style = {"color": LABEL_COLOUR, "weight": 1, "fill": False}
        layer = folium.GeoJson(labels, name=LABELS_LAYER, style_function=lambda f: style)
        layer.options["interactive"] = False  # clicks go through to the polygons
        layer.add_to(page)
    if polygons and polygons["features"]:
        _polygon_layer(polygons, threshold).add_to(page)
    legend().add_to(page)
    # branca's colour bar has no background: its ticks would be lost over the overlay or a base layer.
    page.get_root().header.add_child(folium.Element(f"<style>{LEGEND_STYLE}</style>"), name="legend_style")
    OpacitySlider(overlay, OPACITY).add_to(page)
    folium.LayerControl(collapsed=False).add_to(page)
    page.fit_bounds(overlay_bounds)
    return page


def write_page(
    folder: str,
    raster,
    georef: dict,
    *,
    labels: np.ndarray | None,
    labels_step: int,
    polygons_path: str | None,
    threshold: float,
    basemap: str,
    title: str,
) -> dict:
    """Write index.html, its overlay and its libraries into ``folder``; return what the page holds.

    ``raster``: the open rasterio dataset of the map; ``labels``: the cube's labels, every
    ``labels_step``-th pixel, or None; ``polygons_path``: the landslides' GeoJSON (WGS 84).
    """
    values, bounds = warp_overlay(raster)
    save_overlay(values, os.path.join(folder, OVERLAY))
    # Half an overlay pixel, and half a pixel of the labels (which the quick-look decimates), in degrees.
    degrees = (bounds[1][0] - bounds[0][0]) / np.array([values.shape[0], raster.height / labels_step])
    polygons = outlines = None
    if polygons_path is not None:
        with open(polygons_path) as handle:
            polygons = simplified(json.load(handle), degrees[0] / 2)
    if labels is not None:
        outlines = label_outlines(labels, georef["transform"], labels_step, georef["crs_wkt"])
        outlines = simplified(outlines, degrees.max() / 2)
    build_map(bounds, polygons, outlines, threshold, basemap, title).save(os.path.join(folder, PAGE))
    shutil.copytree(STATIC, os.path.join(folder, LIBRARIES), ignore=shutil.ignore_patterns("README.md"))
    files = [os.path.join(folder, name) for name in (PAGE, OVERLAY)]
    files += [os.path.join(root, name) for root, _, names in os.walk(os.path.join(folder, LIBRARIES)) for name in names]
    return {
        "page": PAGE,
        "bytes": sum(os.path.getsize(f) for f in files),
        "overlay_pixels": list(values.shape),
        "polygons": len(polygons["features"]) if polygons else 0,
        "label_outlines": len(outlines["features"]) if outlines else 0,
        "basemap": basemap or None,
    }
