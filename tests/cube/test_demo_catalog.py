"""The demo STAC catalog (tf_landslide.cube.demo_catalog) holds the synthetic scene as Planetary
Computer serves its collections: the same pixels as the synthetic cube, on the same grid, findable
and loadable by the STAC tools, with the inventory and phase products beside it. No network."""

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.features
import xarray as xr
from rasterio.warp import Resampling, reproject
from scipy import ndimage

from tf_landslide.cube import synthetic
from tf_landslide.cube.synthetic.scene import build_scene

pystac = pytest.importorskip("pystac", reason="pystac is not installed (dev extra)")
geopandas = pytest.importorskip("geopandas", reason="geopandas is not installed")
shapely = pytest.importorskip("shapely", reason="shapely is not installed")

from tf_landslide.cube import demo_catalog  # noqa: E402  (imports pystac and geopandas)

# odc-geo 0.5 multiplies affines with `*` (affine 3 deprecates it) and calls shapely.ops.transform
# (shapely 2.1 deprecates it): warnings per load that say nothing about the catalog.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Use `@` matmul instead of `\\*` mul:PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The 'shapely.ops.transform\\(\\)' function is deprecated:DeprecationWarning"),
]

# PC's sentinel-1-rtc item ids: the GRD product's name without its unique id, then "_rtc".
PC_S1_ID = r"^S1A_IW_GRDH_1SDV_(\d{8}T\d{6})_(\d{8}T\d{6})_(\d{6})_[0-9A-F]{6}_rtc$"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_catalog.write_demo_catalog(tmp_path_factory.mktemp("demo") / "catalog", size="tiny")


@pytest.fixture(scope="module")
def scene(tiny_spec):
    return build_scene(tiny_spec)


@pytest.fixture(scope="module")
def cube(tiny_cube):
    return xr.open_zarr(tiny_cube, chunks=None).load()


def items_of(demo, collection_id):
    catalog = pystac.Catalog.from_file(str(demo.catalog))
    return sorted(catalog.get_child(collection_id).get_items(), key=lambda item: item.datetime)


def utc_times(items):
    return np.array([np.datetime64(item.datetime.replace(tzinfo=None), "ns") for item in items])


# --- the catalog as a whole ------------------------------------------------------------------------


def test_the_catalog_moves_with_its_folder(demo, tmp_path):
    moved = shutil.copytree(demo.root, tmp_path / "elsewhere")
    for path in moved.rglob("*.json"):
        assert str(demo.root) not in path.read_text(), f"{path} names the folder it was written in"
    catalog = pystac.Catalog.from_file(str(moved / "catalog.json"))
    assert catalog.catalog_type == pystac.CatalogType.SELF_CONTAINED
    assert {child.id for child in catalog.get_children()} == {"sentinel-1-rtc", "nasadem", "cop-dem-glo-30"}
    hrefs = [asset.get_absolute_href() for item in catalog.get_items(recursive=True) for asset in item.assets.values()]
    assert len(hrefs) == 2 * 12 + 2
    for href in hrefs:
        assert href.startswith(str(moved)) and (moved / href[len(str(moved)) + 1 :]).is_file()


def test_the_catalog_validates(demo, monkeypatch):
    """Against the core STAC schemas pystac ships; the extensions' schemas live on the web, so skipped."""
    pytest.importorskip("jsonschema", reason="jsonschema is not installed (pystac[validation])")
    from pystac.validation import JsonSchemaSTACValidator, RegisteredValidator

    class CoreSchemasOnly(JsonSchemaSTACValidator):
        def validate_extension(self, *args, **kwargs):
            return None

    monkeypatch.setattr(RegisteredValidator, "_validator", CoreSchemasOnly())
    catalog = pystac.Catalog.from_file(str(demo.catalog))
    assert catalog.validate_all() == 12 + 2  # items validated; the catalog and collections too, uncounted
    broken = json.loads(next(demo.root.glob("nasadem/*/*.json")).read_text()) | {"bbox": "west"}
    with pytest.raises(pystac.STACValidationError):
        pystac.validation.validate_dict(broken)


def test_collection_extents_hold_their_items(demo, tiny_spec):
    catalog = pystac.Catalog.from_file(str(demo.catalog))
    s1 = catalog.get_child("sentinel-1-rtc")
    times, _ = synthetic.acquisition_times(tiny_spec)
    start, end = s1.extent.temporal.intervals[0]
    assert np.datetime64(start.replace(tzinfo=None), "ns") == times[0]
    # The last slice's end, 25 s after it starts.
    assert np.datetime64(end.replace(tzinfo=None), "ns") == times[-1] + np.timedelta64(25, "s")
    west, south, east, north = s1.extent.spatial.bboxes[0]
    assert west < demo.aoi_bbox[0] < demo.aoi_bbox[2] < east and south < demo.aoi_bbox[1] < demo.aoi_bbox[3] < north


# --- Sentinel-1 RTC ---------------------------------------------------------------------------------


def test_one_item_per_acquisition_as_pc_describes_it(demo, tiny_spec):
    items = items_of(demo, "sentinel-1-rtc")
    times, orbits = synthetic.acquisition_times(tiny_spec)
    np.testing.assert_array_equal(utc_times(items), times)
    states = [item.properties["sat:orbit_state"] for item in items]
    assert states == [{"a": "ascending", "d": "descending"}[code] for code in orbits]
    for item in items:
        start, stop, absolute = pd.Series([item.id]).str.extract(PC_S1_ID).iloc[0]
        assert pd.Timestamp(start) == pd.Timestamp(item.datetime.replace(tzinfo=None))
        assert pd.Timestamp(stop) - pd.Timestamp(start) == pd.Timedelta(seconds=25)
        assert int(absolute) == item.properties["sat:absolute_orbit"]
        assert item.properties["sar:polarizations"] == ["VV", "VH"]
        assert item.properties["platform"] == "SENTINEL-1A" and item.properties["s1:processing_level"] == "1"
        assert item.properties["proj:code"] == tiny_spec.crs
        assert item.properties["proj:shape"] == [tiny_spec.height, tiny_spec.width]
        assert tuple(item.properties["proj:transform"]) == tuple(demo_catalog.utm_transform(tiny_spec))[:6]
        assert all(asset.extra_fields["raster:bands"][0]["nodata"] == "nan" for asset in item.assets.values())
    relative = {state: set() for state in states}
    for item, state in zip(items, states, strict=True):
        relative[state].add(item.properties["sat:relative_orbit"])
    assert [len(orbit_numbers) for orbit_numbers in relative.values()] == [1, 1]
    assert relative["ascending"] != relative["descending"]


def test_footprints_contain_the_aoi_and_leave_out_the_swath_edge(demo, tiny_spec):
    items = items_of(demo, "sentinel-1-rtc")
    footprints = {"ascending": set(), "descending": set()}
    for item in items:
        footprints[item.properties["sat:orbit_state"]].add(shapely.geometry.shape(item.geometry).wkb)
    assert [len(shapes) for shapes in footprints.values()] == [1, 1], "one footprint per orbit direction"
    ascending, descending = (shapely.from_wkb(shapes.pop()) for shapes in footprints.values())
    aoi = shapely.box(*demo.aoi_bbox)
    assert ascending.contains(aoi) and descending.intersects(aoi) and not descending.contains(aoi)
    # The descending swath starts at the first column with signal (beyond it: NaN and a few exact zeros).
    vv = [item.assets["vv"].get_absolute_href() for item in items if item.properties["sat:orbit_state"] == "descending"]
    with rasterio.open(vv[0]) as tiff:
        image = tiff.read(1)
    first_column = int(np.argmax((image > 0).any(axis=0)))
    assert first_column > 0 and np.all(np.isnan(image[:, :first_column]) | (image[:, :first_column] == 0))
    assert descending.equals_exact(demo_catalog.lonlat_footprint(tiny_spec, first_column), tolerance=1e-12)


def test_assets_are_cogs_on_the_scene_grid(demo, tiny_spec):
    item = items_of(demo, "sentinel-1-rtc")[0]
    for asset in item.assets.values():
        assert asset.media_type == pystac.MediaType.COG and asset.roles == ["data"]
        with rasterio.open(asset.get_absolute_href()) as tiff:
            assert tiff.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert tiff.dtypes == ("float32",) and np.isnan(tiff.nodata)
            assert tiff.crs == tiny_spec.crs and tiff.transform == demo_catalog.utm_transform(tiny_spec)


def test_odc_stac_loads_the_synthetic_cube(demo, tiny_spec, cube):
    """odc-stac on the scene's grid gives the cube's vv and vh: NaN where NaN, zeros where zero."""
    odc_stac = pytest.importorskip("odc.stac", reason="odc-stac is not installed (dev extra)")
    from odc.geo.geobox import GeoBox

    geobox = GeoBox((tiny_spec.height, tiny_spec.width), demo_catalog.utm_transform(tiny_spec), tiny_spec.crs)
    loaded = odc_stac.load(items_of(demo, "sentinel-1-rtc"), bands=["vv", "vh"], geobox=geobox)
    np.testing.assert_array_equal(loaded.time.values.astype("datetime64[ns]"), cube.timestep.values)
    np.testing.assert_array_equal(loaded.x.values, cube.x.values)
    np.testing.assert_array_equal(loaded.y.values, cube.y.values)
    for band in ("vv", "vh"):
        expected = cube[band].values
        assert np.isnan(expected).any() and (expected == 0).any(), "the comparison must cover both"
        assert loaded[band].dtype == np.float32
        np.testing.assert_array_equal(loaded[band].values, expected)  # NaN-aware, and 0.0 is not NaN


# --- DEMs ----------------------------------------------------------------------------------------


def dem_of(demo, collection_id, key):
    item = items_of(demo, collection_id)[0]
    with rasterio.open(item.assets[key].get_absolute_href()) as tiff:
        return item, tiff.read(1), tiff.transform, tiff.crs, tiff.dtypes[0]


def test_dems_cover_the_scene_at_one_arc_second(demo, tiny_spec):
    nasadem_item, nasadem, transform, crs, dtype = dem_of(demo, "nasadem", "elevation")
    _, copdem, copdem_transform, _, copdem_dtype = dem_of(demo, "cop-dem-glo-30", "data")
    assert (dtype, copdem_dtype, crs) == ("int16", "float32", "EPSG:4326")
    assert transform == copdem_transform and transform.a == -transform.e == 1 / 3600
    # Pixel centres on whole arc-seconds, as NASADEM's.
    assert np.isclose((transform.c * 3600 + 0.5) % 1, 0) and np.isclose((transform.f * 3600 - 0.5) % 1, 0)
    left, bottom, right, top = rasterio.transform.array_bounds(*nasadem.shape, transform)
    west, south, east, north = demo_catalog.lonlat_footprint(tiny_spec).bounds
    margin = 2 / 3600
    assert left < west - margin and bottom < south - margin and right > east + margin and top > north + margin
    np.testing.assert_array_equal(nasadem, np.rint(copdem))  # NASADEM is the same heights in whole metres
    assert nasadem_item.properties["proj:code"] == "EPSG:4326"


@pytest.mark.parametrize(("collection_id", "key"), [("nasadem", "elevation"), ("cop-dem-glo-30", "data")])
def test_a_dem_resampled_back_to_the_scene_grid_is_the_scene_dem(demo, tiny_spec, scene, collection_id, key):
    """Bilinear 10 m -> 1 arc-second (31 m north-south, 23 m east-west here) -> 10 m, plus int16 rounding.

    Measured on the tiny scene (heights 40..371 m, median step 3.2 m a pixel): median error 0.9 m,
    RMS 1.4 m, 99th percentile 3.8 m, largest 8.2 m, both DEMs.
    """
    _, heights, transform, crs, _ = dem_of(demo, collection_id, key)
    back = np.full((tiny_spec.height, tiny_spec.width), np.nan, np.float32)
    reproject(
        heights.astype(np.float32),
        back,
        src_transform=transform,
        src_crs=crs,
        dst_transform=demo_catalog.utm_transform(tiny_spec),
        dst_crs=tiny_spec.crs,
        resampling=Resampling.bilinear,
    )
    error = np.abs(back - scene.dem)
    assert not np.isnan(error).any()
    assert np.median(error) < 1.5 and np.sqrt(np.mean(error**2)) < 2.0
    assert np.percentile(error, 99) < 5.0 and error.max() < 10.0


# --- inventory and phase products ------------------------------------------------------------------


def test_the_inventory_rasterises_back_to_the_labels(demo, tiny_spec, scene):
    scars = geopandas.read_file(demo.inventory)
    assert scars.crs.to_epsg() == 4326
    _, n_scars = ndimage.label(scene.labels)  # 4-connected, as the polygons are
    assert sorted(scars["id"]) == list(range(1, n_scars + 1))
    np.testing.assert_allclose(scars["area_m2"].sum(), scene.labels.sum() * tiny_spec.pixel_size**2)
    burnt = rasterio.features.rasterize(
        ((polygon, 1) for polygon in scars.to_crs(tiny_spec.crs).geometry),
        out_shape=scene.labels.shape,
        transform=demo_catalog.utm_transform(tiny_spec),
        all_touched=False,  # the centre rule
        dtype="uint8",
    )
    agreement = (burnt == scene.labels).mean()
    assert agreement == 1.0, f"{agreement:.6f} of pixels agree"


def test_phase_products_are_the_cube_pairs(demo, tiny_spec, cube):
    times, orbits = synthetic.acquisition_times(tiny_spec)
    pairs = synthetic.insar_pairs(times, orbits)
    files = sorted(demo.phase_dir.iterdir())
    assert len(files) == 2 * len(pairs)
    parsed = {}
    for path in files:
        match = demo_catalog.PHASE_PAIR_PATTERN.match(path.name)
        assert match, f"{path.name} does not match PHASE_PAIR_PATTERN"
        pair = tuple(np.datetime64(pd.Timestamp(match[key]), "ns") for key in ("reference", "secondary"))
        assert int(match["days"]) == (pair[1] - pair[0]) // np.timedelta64(1, "D")
        parsed[(pair, match["layer"])] = path
    assert {pair for pair, _ in parsed} == {(times[a], times[b]) for a, b in pairs}
    for p, (a, b) in enumerate(pairs):
        label = f"{pd.Timestamp(times[a]):%Y%m%d}_{pd.Timestamp(times[b]):%Y%m%d}"
        assert cube.timepair.values[p] == label
        for layer, variable in (("corr", "coherence"), ("wrapped_phase", "interferogram")):
            with rasterio.open(parsed[((times[a], times[b]), layer)]) as tiff:
                assert tiff.crs == tiny_spec.crs and tiff.transform == demo_catalog.utm_transform(tiny_spec)
                np.testing.assert_array_equal(tiff.read(1), cube[variable].values[p])


# --- the entry points ------------------------------------------------------------------------------


def test_demo_catalog_fields(demo, tiny_spec):
    assert demo.catalog == demo.root / "catalog.json" and demo.catalog.is_file()
    assert demo.inventory.is_file() and demo.phase_dir.is_dir()
    assert demo.event_time.isoformat() == tiny_spec.event_time + "+00:00"
    footprint = demo_catalog.lonlat_footprint(tiny_spec)
    assert footprint.contains(shapely.box(*demo.aoi_bbox))
    assert shapely.box(*demo.aoi_bbox).area < 0.85 * shapely.box(*footprint.bounds).area


def test_the_command_writes_a_catalog_and_refuses_a_used_folder(tmp_path, capsys):
    assert demo_catalog.main([str(tmp_path / "out"), "--size", "tiny"]) == 0
    assert str(tmp_path / "out" / "catalog.json") in capsys.readouterr().out
    with pytest.raises(FileExistsError, match="not an empty folder"):
        demo_catalog.write_demo_catalog(tmp_path / "out")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"], "no partial folder left behind"
    with pytest.raises(ValueError, match="unknown size"):
        demo_catalog.write_demo_catalog(tmp_path / "other", size="huge")


def test_a_spec_wins_over_the_size(tmp_path, tiny_spec):
    spec = dataclasses.replace(tiny_spec, timesteps_per_orbit=2)
    demo = demo_catalog.write_demo_catalog(tmp_path / "two", size="embedded", spec=spec)
    assert demo.spec == spec
    times, _ = synthetic.acquisition_times(spec)
    np.testing.assert_array_equal(utc_times(items_of(demo, demo_catalog.S1_COLLECTION)), times)
