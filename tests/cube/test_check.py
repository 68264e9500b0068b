"""The preflight command: what a cube holds and which configurations it can feed."""

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from tf_landslide.cube import schema
from tf_landslide.cube.check import preflight


@pytest.fixture(scope="module")
def report(tiny_cube):
    return preflight(tiny_cube)


def test_the_report_describes_the_cube(report, tiny_cube):
    text = str(report)
    assert text.startswith(f"cube: {tiny_cube}\n")
    assert "grid: 160 x 192 px of 10 x 10, EPSG:32654" in text
    assert "conformed: nothing (already canonical)" in text
    assert "ascending (6): 2018-08-08T08:26" in text and "descending (6): 2018-07-31T20:40" in text
    assert "InSAR pairs: 10, 20180731_20180812 .. 20180925_20181007" in text
    assert "labels: uint8, " in text and "% landslide pixels" in text
    assert "orbit: auto -> descending" in text


def test_configurations_are_those_the_acquisitions_allow(report):
    # 3 descending acquisitions on each side of the event: up to t3.
    assert "vv_vh_dem_t3" in report.exportable and "dem" in report.exportable
    assert not {"vv_t4", "vh_t4", "vv_vh_t4", "vv_vh_dem_t4"} & set(report.exportable)
    t4 = next(f for f in report.feasible if f.config.name == "vv_vh_dem_t4")
    assert "4 descending acquisitions needed strictly before the event start" in t4.problem
    t1 = next(f for f in report.feasible if f.config.name == "vv_t1")
    assert t1.before == ("2018-08-24T20:40:12",) and t1.after == ("2018-09-05T20:40:12",)
    assert "  t1  before 2018-08-24T20:40  |  after 2018-09-05T20:40\n" in str(report)
    assert "  no: vv_t4, vh_t4, vv_vh_t4, vv_vh_dem_t4: 4 descending acquisitions needed" in str(report)


def test_coherence_channels_name_their_pairs(report):
    coherence = next(f for f in report.feasible if f.config.needs_insar)
    assert coherence.ok and coherence.pairs == ("coevent 20180824_20180905", "preevent 20180812_20180824")
    assert "vv_vh_coherence_t1 (pairs coevent 20180824_20180905, preevent 20180812_20180824)" in str(report)


def test_without_orbits_nothing_but_orbit_any_is_exportable(tiny_cube):
    ds = xr.open_zarr(tiny_cube, chunks=None).drop_vars(schema.ORBIT_COORD)
    refused = preflight(ds)
    assert refused.exportable == []
    text = str(refused)
    assert "cube: <in-memory Dataset>" in text
    assert "orbits unusable: the cube has no 'sat:orbit_state' coordinate" in text
    assert "Pass --orbit=any" in text
    accepted = preflight(ds, orbit="any")
    assert "vv_vh_dem_t4" in accepted.exportable  # either orbit: 6 acquisitions on each side


def test_a_cube_without_labels_is_described_and_not_exportable(tiny_cube):
    ds = xr.open_zarr(tiny_cube, chunks=None).drop_vars(schema.LABEL_VARIABLE)
    report = preflight(ds)
    assert "labels: none ('landslides' missing)" in str(report)
    assert report.exportable == []
    assert "the cube lacks landslides" in str(report)


def test_bad_labels_are_reported(tiny_cube):
    ds = xr.open_zarr(tiny_cube, chunks=None)
    labels = ds[schema.LABEL_VARIABLE].values.copy()
    labels[0, 0] = 255
    report = preflight(ds.assign({schema.LABEL_VARIABLE: (schema.SPATIAL_DIMS, labels)}))
    assert "labels: variable 'landslides' must be a 0/1 landslide mask but holds 255" in str(report)


def test_no_event_means_nothing_is_exportable(tiny_cube):
    ds = xr.open_zarr(tiny_cube, chunks=None)
    ds.attrs = {k: v for k, v in ds.attrs.items() if not k.startswith("event_")}
    report = preflight(ds)
    assert report.exportable == []
    assert "event: no event for cube" in str(report) and "--event_start" in str(report)
    assert preflight(ds, event="hokkaido").exportable


def test_the_command_prints_the_report_and_exits_by_what_can_be_exported(tiny_cube, tmp_path):
    run = [sys.executable, "-m", "tf_landslide.cube.check"]
    done = subprocess.run([*run, tiny_cube, "--orbit=ascending"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "orbit: ascending" in done.stdout and "configurations (" in done.stdout
    # An event before every acquisition: nothing has pre-event data, and DEM-only needs none.
    early = [*run, tiny_cube, "--event_start=2018-01-01T00:00:00Z", "--orbit=ascending"]
    done = subprocess.run(early, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "  ok: dem\n" in done.stdout
    missing = subprocess.run([*run, str(tmp_path / "absent.zarr")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "does not exist" in missing.stdout
    ds = xr.open_zarr(tiny_cube, chunks=None).drop_vars(schema.ORBIT_COORD)
    ds[schema.LABEL_VARIABLE].encoding.clear()
    unlabelled = str(tmp_path / "no_orbits.zarr")
    ds.assign({schema.LABEL_VARIABLE: ds[schema.LABEL_VARIABLE].astype(np.uint8)}).to_zarr(unlabelled, zarr_format=2)
    done = subprocess.run([*run, unlabelled], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Pass --orbit=any" in done.stdout
