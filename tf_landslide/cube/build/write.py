"""The cube assembled in the schema and streamed into Zarr, one acquisition or pair at a time.

The static layers (DEM products, labels) are written with the template; the time series are
computed and written per time step (and per pair), so memory holds one plane of each
polarisation however many acquisitions the cube has. The store grows in ``<out>.partial``
beside ``out`` with a progress file; a build that stops resumes there when run again with the
same inputs, and only a finished cube (consolidated metadata, as the published cubes) is
renamed to ``out``, so a cube at ``out`` is always complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import xarray as xr

from tf_landslide.cube import schema
from tf_landslide.cube.build.phase import PhasePair, read_pair
from tf_landslide.cube.schema import CubeError

ZARR_FORMAT = 2  # as the published cubes; the export decodes v2 chunk files directly


def staging_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def progress_path(out: Path) -> Path:
    """Beside the store, not in it: zarr warns about files in a store that are not its own."""
    return out.with_name(out.name + ".partial.progress.json")


def fingerprint(template: xr.Dataset) -> str:
    """What a resumed build must agree on: grid, acquisitions, pairs, variables and the inputs' attributes."""
    text = json.dumps(
        {
            "sizes": dict(template.sizes),
            "coords": {name: np.asarray(template[name].values).astype(str).tolist() for name in template.coords},
            "variables": sorted(template.data_vars),
            "attrs": {k: v for k, v in template.attrs.items() if k != "date_created"},
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_cube(
    out: str, template: xr.Dataset, stack: xr.Dataset, pairs: list[PhasePair], geobox, progress=None
) -> Path:
    """Write ``template`` (static layers filled, time series as placeholders) to ``out``, then
    fill ``vv``/``vh`` from the lazy ``stack`` step by step and the phase products pair by pair."""
    out = Path(out)
    if out.exists():
        raise CubeError(f"{out} exists; remove it or give another --out")
    staging = staging_path(out)
    key = fingerprint(template)
    done = _resume(out, key)
    if done is None:
        shutil.rmtree(staging, ignore_errors=True)
        template.to_zarr(
            staging,
            mode="w",
            compute=False,
            zarr_format=ZARR_FORMAT,
            consolidated=False,
            encoding=_encoding(template),
            safe_chunks=False,
        )
        done = []
        _save_progress(progress_path(out), key, done)
    tasks = [f"{schema.TIME_DIM}/{t}" for t in range(template.sizes[schema.TIME_DIM])]
    tasks += [f"{schema.PAIR_DIM}/{p}" for p in range(len(pairs))]
    bar = progress(total=len(tasks), initial=len(done), unit="plane") if progress else None
    for task in tasks:
        if task in done:
            continue
        dim, index = task.split("/")
        if dim == schema.TIME_DIM:
            _write_step(staging, stack, int(index))
        else:
            _write_pair(staging, pairs[int(index)], int(index), geobox)
        done.append(task)
        _save_progress(progress_path(out), key, done)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    import zarr

    zarr.consolidate_metadata(str(staging))
    os.replace(staging, out)
    progress_path(out).unlink()
    return out


def _encoding(template: xr.Dataset) -> dict:
    chunk = template.attrs["chunk"]
    encoding = {}
    for name, variable in template.data_vars.items():
        encoding[name] = {"chunks": (1, chunk, chunk) if variable.ndim == 3 else (chunk, chunk)}
    return encoding


def _resume(out: Path, key: str) -> list[str] | None:
    """The tasks an unfinished build of the same inputs has done, or None to start afresh."""
    staging, progress_file = staging_path(out), progress_path(out)
    if not (staging.exists() and progress_file.exists()):
        return None
    saved = json.loads(progress_file.read_text())
    if saved["fingerprint"] != key:
        raise CubeError(
            f"{staging} holds an unfinished build of other inputs (another area, event, acquisitions or "
            f"layers); remove it and {progress_file.name} to start this one, or run the earlier command "
            "again to finish that one"
        )
    return list(saved["done"])


def _save_progress(progress_file: Path, key: str, done: list[str]) -> None:
    temporary = progress_file.with_name(progress_file.name + ".tmp")
    temporary.write_text(json.dumps({"fingerprint": key, "done": done}))
    os.replace(temporary, progress_file)  # a stop mid-write leaves the last complete record


def _write_step(staging: Path, stack: xr.Dataset, t: int) -> None:
    step = stack.isel({schema.TIME_DIM: slice(t, t + 1)})
    step = step.drop_vars(list(step.coords))
    region = {schema.TIME_DIM: slice(t, t + 1), "y": slice(None), "x": slice(None)}
    step.to_zarr(staging, region=region, zarr_format=ZARR_FORMAT, consolidated=False)


def _write_pair(staging: Path, pair: PhasePair, p: int, geobox) -> None:
    import zarr

    coherence, interferogram = read_pair(pair, geobox)
    group = zarr.open_group(str(staging), mode="r+")
    group["coherence"][p] = coherence
    group["interferogram"][p] = interferogram
