"""Helpers shared by several test modules: zarr-python's version, the tiny export and run configs, maps
by a stand-in model, the training subprocess (``RUNNER``) and a run killed and resumed. Imports without
TensorFlow (.ci/oldest collects the cube tests in a venv without it): what needs TensorFlow imports it
where it runs."""

import csv
import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr

from tf_landslide import model_folder
from tf_landslide.config import CubeConfig, ExportConfig, InputConfig, ModelConfig, SplitSpec, TrainConfig

REPO = Path(__file__).resolve().parents[1]
SUBPROCESS_TIMEOUT = 180
BEST, LAST = model_folder.BEST_WEIGHTS, model_folder.LAST_WEIGHTS


# --- zarr-python 2 and 3 -------------------------------------------------------------------------

# The cube layer supports zarr-python 2.18 and 3.x (.ci/oldest runs the cube tests with 2.18).
# zarr-python 2 can neither write nor read zarr v3 stores: what needs one skips there, and only that.
ZARR_3 = int(zarr.__version__.split(".")[0]) >= 3
ZARR_V3_ONLY = f"zarr-python {zarr.__version__} cannot write or read zarr v3 stores"
needs_zarr3 = pytest.mark.skipif(not ZARR_3, reason=ZARR_V3_ONLY)

# The variants foreign.py writes as zarr v3 stores (test_foreign_writers checks every store's
# format): a test that asks for one skips under zarr-python 2, which cannot write or read them.
ZARR_V3_VARIANTS = frozenset({"object_v3", "unicode_v3", "bytes_v3", "stackstac_like"})


def require_zarr3() -> None:
    """Skip the calling test or fixture under zarr-python 2 (for fixtures, where marks do nothing)."""
    if not ZARR_3:
        pytest.skip(ZARR_V3_ONLY)


def zarr_format_of(group) -> int:
    """The zarr format of an open group; zarr-python 2 (no ``metadata``) opens format 2 only."""
    return group.metadata.zarr_format if ZARR_3 else 2


def zip_store(store: str, zip_path: Path, inner: str = "hokkaido_japan.zarr", dir_entries: bool = True) -> str:
    """Zip a zarr directory as the Zenodo zips are: ``<inner>/`` holding the store ('' = at the root)."""
    store = Path(store)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, _, files in os.walk(store):
            rel = Path(root).relative_to(store)
            prefix = (Path(inner) / rel).as_posix() if inner else rel.as_posix()
            prefix = "" if prefix == "." else prefix.removesuffix("/.")
            if dir_entries and prefix:
                archive.writestr(prefix + "/", b"")
            for name in sorted(files):
                archive.write(Path(root) / name, f"{prefix}/{name}" if prefix else name)
    return str(zip_path)


# --- the tiny cube's export and training run -----------------------------------------------------


def tiny_export_config(cube: str, records_dir, **overrides) -> ExportConfig:
    """An export of the tiny cube with 32-pixel chips, in this process, without progress bars."""
    base = ExportConfig(
        cube=CubeConfig(cube=cube),
        config="vv_vh_dem_t2",
        records_dir=str(records_dir),
        chip_size=32,
        band_rows=64,
        workers=0,
        progress=False,
        split=SplitSpec(),
    )
    return dataclasses.replace(base, **overrides)


def make_config(cube, root, batch_size=4, epochs=2, split_fractions=None, records=None, **overrides) -> TrainConfig:
    """A tiny run: 32-pixel chips of the tiny cube, U-Net/ResNet-18, records and model under ``root``
    (the records under ``records`` instead when given).

    The tiny cube has 9 positive chips: 6 train, 1 val, 2 test by the default split.
    """
    root = Path(root)
    split = SplitSpec(fractions=tuple(split_fractions)) if split_fractions else SplitSpec()
    overrides.setdefault("model_dir", str(root / "model"))
    return TrainConfig(
        export=tiny_export_config(cube, records or root / "records", split=split),
        input=InputConfig(batch_size=batch_size),
        model=ModelConfig(backbone="resnet18"),
        epochs=epochs,
        **overrides,
    )


def read_history(model_dir) -> list[dict]:
    with open(Path(model_dir) / "history.csv") as handle:
        return list(csv.DictReader(handle))


# --- maps without a trained model -----------------------------------------------------------------


def map_run_dir(tiny_cube: str, root: Path) -> Path:
    """A run folder holding an export's manifest (the tiny cube, vv_vh_dem_t2): enough for maps
    made with a stand-in predictor (``dem_model``)."""
    from tf_landslide import export

    manifest = export.export(tiny_export_config(tiny_cube, root / "records"))
    (root / "run").mkdir()
    (root / "run" / "manifest.json").write_text(json.dumps(manifest))
    return root / "run"


def dem_model(manifest: dict):
    """A stand-in model whose probability is a known function of each pixel's raw DEM (``dem_probability``)."""
    dem = manifest["channels"].index("dem")
    return lambda windows: dem_probability(windows[..., dem])


def dem_probability(dem):
    """What ``dem_model`` predicts for a pixel of elevation ``dem``."""
    return 1.0 / (1.0 + np.exp(-(dem - 250.0) / 40.0))


def make_tiny_map(cube: str, run_dir: Path, out, **overrides) -> dict:
    """A map of ``cube`` by ``dem_model`` with 64-pixel windows (``overrides``: MapConfig's fields)."""
    from tf_landslide.config import MapConfig
    from tf_landslide.maps import scene_map

    settings = {"window": 64, "overlap": 16, **overrides}
    cfg = MapConfig(cube=CubeConfig(cube=cube), model_dir=str(run_dir), map_dir=str(out), **settings)
    manifest = json.loads((Path(run_dir) / "manifest.json").read_text())
    return scene_map.make_map(cfg, predictor=dem_model(manifest))


# --- training in a subprocess --------------------------------------------------------------------

# Run in a fresh interpreter: argv[1] is JSON {"config": make_config kwargs, "kill_epoch": int|None,
# "kill_in": a class of tf_landslide.callbacks or of tf.keras.callbacks, "logical_cpus": int,
# "evaluate": bool}. The process kills itself right after that callback's on_epoch_end of kill_epoch.
RUNNER = textwrap.dedent(
    """
    import json, logging, os, signal, sys
    import tf_landslide
    import tensorflow as tf
    from tests.helpers import make_config
    from tf_landslide import callbacks, data, distribution, models, train_lib

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="LOG %(name)s %(message)s")
    args = json.loads(sys.argv[1])
    if args.get("logical_cpus"):
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args["logical_cpus"])
        devices = [f"/cpu:{i}" for i in range(args["logical_cpus"])]
        distribution.make_strategy = lambda cluster: tf.distribute.MirroredStrategy(devices)

    def kill_after(callback, epoch_to_kill):
        end = callback.on_epoch_end

        def on_epoch_end(epoch, logs=None):
            end(epoch, logs)
            if epoch == epoch_to_kill:
                sys.stderr.flush()
                os.kill(os.getpid(), signal.SIGKILL)

        callback.on_epoch_end = on_epoch_end
        return callback

    if args.get("kill_epoch") is not None:
        name = args["kill_in"]
        module = callbacks if hasattr(callbacks, name) else tf.keras.callbacks
        original = getattr(module, name)
        setattr(module, name, lambda *a, **k: kill_after(original(*a, **k), args["kill_epoch"]))

    built = []
    build_model = models.build_model
    models.build_model = lambda *a, **k: built.append(build_model(*a, **k)) or built[-1]

    cfg = make_config(**args["config"])
    summary = train_lib.train(cfg)
    print("SUMMARY " + json.dumps(summary), flush=True)

    if args.get("evaluate"):  # the trained model on the 6 train chips: batches of 4 + 2, or 4 + 2 + 2 padding
        manifest, folder = data.load_manifest(cfg.export.records_dir, cfg.export.config)
        # The first model built is the one training compiled under its strategy (choosing the
        # operating threshold then builds another, outside it).
        model, replicas = built[0], built[0].distribute_strategy.num_replicas_in_sync

        def scores():
            results = {}
            for name, n in (("padded", replicas), ("unpadded", 1)):
                dataset = data.make_dataset(manifest, folder, "train", cfg.input, False, 1, n)
                results[name] = model.evaluate(dataset, verbose=0, return_dict=True)
            return results

        results = {"as_trained": scores()}
        model.set_weights(model.get_weights())  # every replica: the saved, replica-averaged BatchNorm statistics
        results["synced"] = scores()
        print("EVAL " + json.dumps(results), flush=True)
    """
)


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "CLUSTER_SPEC")}
    path = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=path, **extra)
    return env


def start_runner(args: dict, log_path: Path, **env) -> subprocess.Popen:
    log = open(log_path, "w")  # closed by finish_runners
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, json.dumps(args)], cwd=REPO, env=_env(**env), stdout=log, stderr=log
    )
    process.log_file = log
    return process


def finish_runners(processes: list[subprocess.Popen], timeout: float = SUBPROCESS_TIMEOUT) -> list[str]:
    """Wait for all; kill (by pid) whatever is still running at the deadline or on any error."""
    deadline = time.monotonic() + timeout
    try:
        for process in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.log_file.close()
    return [Path(p.log_file.name).read_text() for p in processes]


def run_runner(args: dict, log_path: Path, **env) -> tuple[int, str]:
    process = start_runner(args, log_path, **env)
    (output,) = finish_runners([process])
    return process.returncode, output


def logged_epochs(output: str) -> list[int]:
    """The 1-based epoch numbers of the run's 'epoch i/n' log lines."""
    return [int(n) for n in re.findall(r"tf_landslide\.train epoch (\d+)/\d+", output)]


def config_args(cube, root, **kwargs) -> dict:
    return {"cube": str(cube), "root": str(root), **kwargs}


# --- a run killed in a subprocess and resumed in this process ------------------------------------


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _checkpoint_variables(folder: Path) -> list[str]:
    """Names of the variables in the newest checkpoint of ``folder`` ([] without one)."""
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(folder)) if folder.exists() else None
    return [name for name, _ in tf.train.list_variables(latest)] if latest else []


def kill_and_resume(tiny_cube, exported_root, root: Path, kill_in: str, **config) -> types.SimpleNamespace:
    """Run ``config`` in a subprocess killed after ``kill_in``'s on_epoch_end of epoch 1 (0-based), then
    resume it in this process. Records the model folder after the kill and after the resume, and the
    best value ModelCheckpoint starts the resumed run with."""
    import tensorflow as tf

    from tf_landslide import train_lib

    config = config_args(tiny_cube, root, records=str(exported_root / "records"), batch_size=2, **config)
    code, output = run_runner({"config": config, "kill_epoch": 1, "kill_in": kill_in}, root / "killed.log")
    model_dir = root / "model"
    state_path = model_dir / "backup" / "plateau.json"
    killed = types.SimpleNamespace(
        code=code,
        output=output,
        history=read_history(model_dir) if (model_dir / "history.csv").exists() else [],
        state=json.loads(state_path.read_text()) if state_path.exists() else None,
        summary_exists=(model_dir / "train_summary.json").exists(),
        backup_variables=_checkpoint_variables(model_dir / "backup" / "chief"),
    )
    handler, logger = _Lines(), logging.getLogger("tf_landslide.train")
    level, checkpoint_best = logger.level, []
    model_checkpoint = tf.keras.callbacks.ModelCheckpoint

    def checkpoint(*args, **kwargs):
        callback = model_checkpoint(*args, **kwargs)
        begin = callback.on_epoch_begin

        def on_epoch_begin(epoch, logs=None):
            checkpoint_best.append(callback.best)
            return begin(epoch, logs)

        callback.on_epoch_begin = on_epoch_begin
        return callback

    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(tf.keras.callbacks, "ModelCheckpoint", checkpoint)
            summary = train_lib.train(make_config(**config))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return types.SimpleNamespace(
        killed=killed,
        model_dir=model_dir,
        resumed_epochs=[int(n) for n in re.findall(r"^epoch (\d+)/", "\n".join(handler.lines), re.M)],
        checkpoint_best=checkpoint_best,
        summary=summary,
        history=read_history(model_dir),
        state_exists=state_path.exists(),
    )
