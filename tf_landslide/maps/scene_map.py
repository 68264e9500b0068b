"""A full-scene landslide map of a cube by a trained run.

The run fixes the channels, the number of timesteps and the normalisation (its manifest); the
cube, its event and orbit come from the flags, so a model trained on one event maps another
cube of the schema. The map is written to a staging folder and moved into place complete.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import shutil
import time

import numpy as np
import xarray as xr

from tf_landslide import data, model_folder, storage
from tf_landslide.config import MapConfig
from tf_landslide.cube import planes, schema
from tf_landslide.cube.channels import resolve_channel_config
from tf_landslide.cube.open import check_labels
from tf_landslide.cube.scene import Scene, cube_location, georeference, is_same_cube, open_scene, pixel_area
from tf_landslide.maps import outputs, polygons, saved_model
from tf_landslide.maps.tiling import Tiling, blend

log = logging.getLogger("tf_landslide.maps")

MAP_OUTPUTS = ("geotiff", "zarr", "png", "geojson", "html")
FILES = {
    "geotiff": "probability.tif",
    "zarr": "probability.zarr",
    "png": "quicklook.png",
    "geojson": "landslides.geojson",
    "html": "index.html",  # with overlay.png and lib/ beside it (maps/page.py)
}
SUMMARY = "map.json"
BACKDROPS = ("vv_after", "vh_after", "dem")  # the quick-look's grey layer, first one the model has


class MapError(ValueError):
    """The map cannot be made as asked."""


def keras_predictor(model_dir: str, checkpoint: str, manifest: dict, window: int, policy: str = "float32"):
    """raw channels [N, window, window, C] -> probability [N, window, window] with the run's
    model and normalisation (the same transform as training and the SavedModel), computed under
    Keras' dtype ``policy`` (the probability is float32 under any)."""
    import tensorflow as tf

    from tf_landslide import distribution  # TensorFlow's: imported when a Keras model is

    with distribution.policy_scope(policy):
        model = model_folder.load_trained_model(model_dir, checkpoint, size=window)
    log.info("the model computes in %s (--bfloat16 chooses)", policy)
    mean, std = data.normalisation(manifest)

    @tf.function(input_signature=[tf.TensorSpec([None, window, window, len(mean)], tf.float32)])
    def predict(raw):
        return model(data.standardise(raw, mean, std), training=False)[..., 0]

    return lambda windows: predict(windows).numpy()


def _model(cfg: MapConfig, window: int) -> tuple[dict, float, str, object]:
    """What the map takes from the model: the manifest (channels, normalisation), the threshold and
    where it comes from, and a function that loads the predictor; from a run's folder or, with
    ``cfg.saved_model``, from the SavedModel alone."""
    if cfg.saved_model:
        if not cfg.map_dir:
            raise MapError("--saved_model needs --map_dir: a map is not written into the model's folder")
        manifest = saved_model.model_inputs(cfg.saved_model)
        threshold, source = saved_model.operating_threshold(cfg.saved_model, cfg.threshold)
        return manifest, threshold, source, lambda: saved_model.saved_model_predictor(cfg.saved_model)
    manifest = model_folder.read_manifest(cfg.model_dir)
    threshold, source = model_folder.operating_threshold(cfg.model_dir, cfg.threshold)
    from tf_landslide import distribution

    policy = distribution.compute_policy(False, cfg.bfloat16)
    return manifest, threshold, source, lambda: keras_predictor(cfg.model_dir, cfg.checkpoint, manifest, window, policy)


def _output_dir(cfg: MapConfig) -> str:
    out = cfg.map_dir or model_folder.path(cfg.model_dir, model_folder.MAP)
    if storage.exists(out) and not cfg.overwrite:
        raise MapError(f"{out} already holds a map: pass --overwrite to replace it, or choose another --map_dir")
    return out


def _publish(staging: str, out: str) -> None:
    """Replace ``out`` by the finished map (map.json last, so a map with its summary is complete)."""
    storage.remove_tree(out)
    local = storage.local_path(out)
    if local is None:
        storage.upload_tree(staging, out, last=(SUMMARY,))
        shutil.rmtree(staging)
    else:
        os.replace(staging, local)


def make_map(cfg: MapConfig, predictor=None, cube: xr.Dataset | None = None) -> dict:
    """Map the cube, write the outputs ``cfg.outputs`` and map.json; return the summary.

    ``predictor`` replaces the run's Keras model (tests); it takes raw windows like
    ``keras_predictor``'s result. ``cube``: a Dataset in memory to map instead of ``cfg.cube``.
    """
    unknown = sorted(set(cfg.outputs) - set(MAP_OUTPUTS))
    if unknown:
        raise MapError(f"--map_outputs: unknown {unknown}; choose from {list(MAP_OUTPUTS)}")
    if "html" in cfg.outputs:
        from tf_landslide.maps import page  # folium takes most of a second to import: only for a page

        page.check_basemap(cfg.basemap)
    tiling = Tiling(cfg.window, cfg.overlap)
    manifest, threshold, threshold_source, model_predictor = _model(cfg, tiling.window)
    cfg = dataclasses.replace(cfg, threshold=threshold)
    trained = manifest["config"]
    if cfg.config and cfg.config != trained["name"]:
        raise MapError(
            f"--config={cfg.config} but {cfg.saved_model or cfg.model_dir} was trained on {trained['name']}: "
            "use the run's flagfile or leave --config out"
        )
    config = resolve_channel_config(trained["name"], manifest["channels"], trained["timesteps"])
    scene = open_scene(cube_location(cfg.cube) if cube is None else cube, cfg.cube, config, need_labels=False)
    out = _output_dir(cfg)
    predictor = predictor or model_predictor()
    staging = storage.staging_beside(out)
    try:
        summary = _write_map(cfg, tiling, manifest, scene, predictor, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # an earlier map in ``out`` stays as it was
        raise
    summary["map_dir"] = storage.absolute(out)
    summary["threshold_source"] = threshold_source
    with open(os.path.join(staging, SUMMARY), "w") as handle:
        json.dump(summary, handle, indent=1)
    _publish(staging, out)
    return summary


@dataclasses.dataclass
class _Writers:
    """Where the blended rows of a scene go, in the order ``emit`` feeds them.

    The GeoTIFF is always written (the GeoJSON's tracing reads it back) and kept only when
    asked for; ``scores`` is None on an unlabelled cube.
    """

    reader: planes.CubePlanes
    raster: outputs.GeoTiff
    sinks: list
    quicklook: outputs.Quicklook
    backdrop: str | None
    regions: polygons.Regions
    scores: outputs.SceneScores | None

    def emit(self, row: int, probability: np.ndarray, inputs: np.ndarray) -> None:
        """Hand a block of blended rows (and the cube's labels for them, if any) to every writer."""
        labels = None
        if self.scores is not None:
            values = self.reader.plane(schema.LABEL_VARIABLE, {}, slice(row, row + probability.shape[0]), slice(None))
            check_labels(values, f" (rows {row}-{row + probability.shape[0]})")
            labels = planes.landslide_mask(values)
            self.scores.write(row, probability, labels)
        for sink in self.sinks:
            sink.write(row, probability, inputs)
        self.quicklook.write(row, probability, inputs, labels)
        self.regions.write(row, probability)


def _open_writers(
    cfg: MapConfig, manifest: dict, scene: Scene, georef: dict, same_cube: bool, staging: str
) -> _Writers:
    """The writers of the outputs asked for, their files in ``staging``; on the training cube the
    scores also cover the export's test chips."""
    config, ds, reader = scene.config, scene.ds, scene.reader()
    height, width = georef["height"], georef["width"]
    labelled = schema.LABEL_VARIABLE in ds.data_vars
    test_chips = manifest["splits"]["test"]["locations"] if same_cube and labelled else []
    raster = outputs.GeoTiff(
        os.path.join(staging, FILES["geotiff"]), height, width, georef["crs_wkt"], georef["transform"]
    )
    attrs = {
        "model_dir": storage.absolute(cfg.model_dir),
        "config": config.name,
        "event": json.dumps(scene.event.as_dict()),
    }
    sinks = [raster]
    if "zarr" in cfg.outputs:
        path = os.path.join(staging, FILES["zarr"])
        sinks.append(outputs.ZarrMap(path, ds.x.values, ds.y.values, georef["crs_wkt"], georef["transform"], attrs))
    backdrop = next((c for c in BACKDROPS if c in config.channels), None)
    quicklook = outputs.Quicklook(height, width, config.channels.index(backdrop) if backdrop else None)
    regions = polygons.Regions(cfg.threshold)
    scores = outputs.SceneScores(test_chips, manifest["chip_size"]) if labelled else None
    return _Writers(reader, raster, sinks, quicklook, backdrop, regions, scores)


def _read_rows(scene: Scene, start: int, stop: int) -> np.ndarray:
    """The raw channels of scene rows [start, stop), float32 [rows, width, C] (the scene's reader is made once)."""
    return np.moveaxis(scene.plan.read_band(scene.reader(), slice(start, stop)), 0, -1)


def _log_start(scene: Scene, tiling: Tiling, height: int, width: int) -> None:
    """Log what is mapped, with which run and how many windows."""
    log.info(
        "mapping %s (%d x %d px) with %s: %d-px windows, overlap %d, %d windows",
        scene.location,
        height,
        width,
        scene.config.name,
        tiling.window,
        tiling.overlap,
        tiling.count(height) * tiling.count(width),
    )


def _trace(cfg: MapConfig, found: list, raster: outputs.GeoTiff, georef: dict, staging: str) -> dict:
    """Write the regions above the threshold as GeoJSON polygons; return what was traced."""
    return polygons.write_geojson(
        found,
        raster.read_window,
        cfg.threshold,
        georef["transform"],
        georef["crs_wkt"],
        (georef["height"], georef["width"]),
        cfg.min_area_m2,
        os.path.join(staging, FILES["geojson"]),
    )


def _acquisition_times(scene: Scene) -> dict:
    """The before and after acquisitions' times, to the second."""
    times = scene.ds[schema.TIME_DIM].values
    return {side: [str(times[i])[:19] for i in getattr(scene.acquisitions, side)] for side in ("before", "after")}


def _summary(
    cfg: MapConfig,
    tiling: Tiling,
    scene: Scene,
    georef: dict,
    same_cube: bool,
    counts: dict,
    found: list,
    mapped: float,
) -> dict:
    """map.json's description of the map, its inputs and what it found."""
    return {
        **(
            {"saved_model": storage.absolute(cfg.saved_model)}
            if cfg.saved_model
            else {"model_dir": storage.absolute(cfg.model_dir), "checkpoint": cfg.checkpoint}
        ),
        "config": scene.config.name,
        "channels": list(scene.config.channels),
        "cube": scene.location,
        "same_cube_as_training": same_cube,
        "event": scene.event.as_dict(),
        "orbit": scene.acquisitions.orbit,
        "acquisitions": _acquisition_times(scene),
        "normalisation": "in the SavedModel's graph" if cfg.saved_model else "from the training run's manifest",
        "georeference": georef,
        "tiling": {"window": tiling.window, "overlap": tiling.overlap, "stride": tiling.stride, **counts},
        "threshold": cfg.threshold,
        "regions_above_threshold": len(found),
        "area_above_threshold_m2": round(sum(r.pixels for r in found) * pixel_area(georef["transform"]), 1),
        "map_seconds": round(mapped, 2),
    }


def _title(scene: Scene) -> str:
    """The run's configuration, the cube and the event, to title the quick-look and the page."""
    cube = os.path.basename(scene.location.rstrip("/"))
    return f"{scene.config.name} on {cube}, event {scene.event.as_dict()['start']}"


def _save_quicklook(cfg: MapConfig, scene: Scene, writers: _Writers, staging: str) -> None:
    """Save the quick-look PNG, titled with the run's configuration, the cube and the event."""
    path = os.path.join(staging, FILES["png"])
    writers.quicklook.save(path, _title(scene), writers.backdrop or "none", cfg.threshold)


def _write_page(cfg: MapConfig, scene: Scene, writers: _Writers, georef: dict, staging: str) -> dict:
    """The interactive page from the open probability raster, the traced polygons and the
    quick-look's labels; none for a cube without a CRS (a web map could not place it)."""
    from tf_landslide.maps import page

    if not georef["crs_wkt"]:
        log.warning("no %s: the cube carries no CRS, so the map cannot be placed on a web map", FILES["html"])
        return {"skipped": "the cube carries no CRS"}
    quicklook = writers.quicklook
    return page.write_page(
        staging,
        writers.raster.dataset,
        georef,
        labels=np.concatenate(quicklook.labels) if quicklook.labels else None,
        labels_step=quicklook.step,
        polygons_path=os.path.join(staging, FILES["geojson"]),
        threshold=cfg.threshold,
        basemap=cfg.basemap,
        title=f"Landslide map: {_title(scene)}",
    )


def _scores(scores: outputs.SceneScores, threshold: float) -> dict:
    """The scene's scores at ``threshold``, with a note on which pixels they count."""
    summary = scores.summary(threshold)
    summary["note"] = (
        "scene: every labelled pixel with a prediction; on the training cube it includes the training chips. "
        "test_chips: the pixels of the export's test chips, predicted with their scene context"
    )
    return summary


def _write_map(cfg: MapConfig, tiling: Tiling, manifest: dict, scene: Scene, predictor, staging: str) -> dict:
    """Map ``scene`` into the local folder ``staging``; return the summary."""
    georef = georeference(scene.ds)
    same_cube = is_same_cube(manifest["cube"], scene.ds)
    writers = _open_writers(cfg, manifest, scene, georef, same_cube, staging)
    height, width = georef["height"], georef["width"]
    started = time.perf_counter()
    _log_start(scene, tiling, height, width)
    read_rows = functools.partial(_read_rows, scene)
    try:
        counts = blend(read_rows, predictor, tiling, height, width, cfg.batch_size, writers.emit)
        mapped = time.perf_counter() - started
        found = writers.regions.regions()
        # The page shows the polygons: they are traced for it even when the GeoJSON is not kept.
        traced = _trace(cfg, found, writers.raster, georef, staging) if {"geojson", "html"} & set(cfg.outputs) else None
        shown = _write_page(cfg, scene, writers, georef, staging) if "html" in cfg.outputs else None
    except BaseException:
        writers.raster.close(keep=False)
        raise
    writers.raster.close(keep="geotiff" in cfg.outputs)
    summary = _summary(cfg, tiling, scene, georef, same_cube, counts, found, mapped)
    if "geojson" in cfg.outputs:
        summary["geojson"] = traced
    elif traced is not None:
        os.remove(os.path.join(staging, FILES["geojson"]))
    outputs = list(cfg.outputs)
    if shown is not None:
        summary["page"] = shown
        if "skipped" in shown:
            outputs.remove("html")
    if "png" in cfg.outputs:
        _save_quicklook(cfg, scene, writers, staging)
    if writers.scores is not None:
        summary["scores"] = _scores(writers.scores, cfg.threshold)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    summary["outputs"] = {name: FILES[name] for name in outputs}
    return summary


def describe(summary: dict, out: str) -> str:
    """A few lines for the console."""
    lines = [
        f"map of {summary['config']} written to {out} in {summary['seconds']:.1f} s "
        f"({summary['tiling']['windows']} windows of {summary['tiling']['window']} px)",
        f"  {summary['regions_above_threshold']} regions >= {summary['threshold']:.3g} "
        f"({summary['threshold_source']}), {summary['area_above_threshold_m2'] / 1e6:.3f} km2",
    ]
    scores = summary.get("scores")
    if scores:
        scene = scores["scene"]
        lines.append(f"  whole scene: PR-AUC {scene['pr_auc']:.4f} (baseline {scene['positive_fraction']:.4f})")
        if "test_chips" in scores:
            chips = scores["test_chips"]
            lines.append(f"  test chips:  PR-AUC {chips['pr_auc']:.4f} (baseline {chips['positive_fraction']:.4f})")
    return "\n".join(lines)
