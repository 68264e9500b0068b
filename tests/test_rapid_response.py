"""The rapid-response path as a user runs it: a catalogue -> a cube for the event -> a map made with
a model trained on another cube, through the command lines the README shows (on the offline demo
catalog; against Planetary Computer only --stac differs)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import xarray as xr

from tf_landslide.cube import demo_catalog

REPO = Path(__file__).resolve().parents[1]


def run(command: list[str], cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def test_a_new_event_is_mapped_from_its_catalogue_with_a_model_trained_elsewhere(trained, tmp_path):
    cfg, _ = trained  # trained on the tiny synthetic cube: another cube than the one built here
    made = run([sys.executable, "-m", "tf_landslide.cube.demo_catalog", "demo_stac"], cwd=tmp_path)
    printed = made.stdout.split("build a cube from it:\n")[1].split()
    assert printed[:3] == ["python", "-m", "tf_landslide.cube.build"]
    built = run([sys.executable, *printed[1:]], cwd=tmp_path)
    assert "wrote cubes/demo_event.zarr" in built.stdout
    cube = tmp_path / "cubes" / "demo_event.zarr"
    assert xr.open_zarr(cube).attrs["event_name"] == "demo"

    mapped = run(
        [
            sys.executable,
            str(REPO / "predict.py"),
            f"--model_dir={cfg.model_dir}",
            f"--cube={cube}",
            f"--map_dir={tmp_path / 'maps' / 'demo_event'}",
            "--map_window=128",
            "--map_overlap=32",
        ],
        cwd=tmp_path,
    )
    out = tmp_path / "maps" / "demo_event"
    for name in ("probability.tif", "probability.zarr", "quicklook.png", "landslides.geojson", "map.json"):
        assert (out / name).exists(), name
    summary = json.loads((out / "map.json").read_text())
    assert summary["event"]["name"] == "demo" and summary["same_cube_as_training"] is False
    assert "whole scene: PR-AUC" in mapped.stdout  # the inventory was rasterised into the cube: scored
    assert demo_catalog.CATALOG_FILE in made.stdout
