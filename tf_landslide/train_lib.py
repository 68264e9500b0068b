"""Training: the records made if needed, the run's model compiled under its strategy and dtype
policy, fit with the run's callbacks, the summary, and a SavedModel for Vertex AI.

The paper's recipe: Adam, learning rate 0.01, weight decay 1e-4, ReduceLROnPlateau (factor
0.1, patience 10, threshold 1e-4) on the training loss, 100 epochs, batch 64, cross-entropy;
with PyTorch's semantics for the optimiser (``optimizer``) and the plateau (``callbacks``). Two
sigmoid-output classes in PyTorch (softmax over background/landslide) and one sigmoid output
with binary cross-entropy are the same model up to the parametrisation of the last layer; we
use the latter, so a probability map comes out directly. Where the run trains: ``distribution``;
what its folder holds: ``model_folder``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time

import tensorflow as tf

from tf_landslide import callbacks, data, distribution, export, model_folder, models, operating_point, serving, storage
from tf_landslide.config import TrainConfig
from tf_landslide.cube.channels import resolve_channel_config
from tf_landslide.distribution import cluster_workers, is_chief
from tf_landslide.models.xla import for_xla
from tf_landslide.optimizer import make_optimizer

log = logging.getLogger("tf_landslide.train")

# --- the run ----------------------------------------------------------------------------------


def ensure_records(cfg: TrainConfig) -> tuple[dict, str]:
    """The export's manifest, running the export first if the records do not exist yet."""
    config = resolve_channel_config(cfg.export.config, cfg.export.channels, cfg.export.timesteps)
    folder = storage.join(cfg.export.records_dir, config.name)
    if not storage.exists(storage.join(folder, data.MANIFEST_NAME)):
        if cluster_workers(cfg.cluster) > 1:
            raise data.DataError(
                f"no records at {folder}: run `python -m export` with the same flags once, before starting the workers"
            )
        log.info("no records at %s yet: running the export first", folder)
        export.export(cfg.export)
    manifest, folder = data.load_manifest(cfg.export.records_dir, config.name)
    data.check_manifest(manifest, config.name, config.channels, cfg.export.chip_size)
    data.check_export_settings(manifest, export.comparable_settings(cfg.export, config))
    return manifest, folder


def _write_dir(model_dir: str, chief: bool) -> str:
    """Non-chief workers write their (identical) copies to a scratch folder, as Keras expects."""
    return model_dir if chief else tempfile.mkdtemp(prefix="worker-")


def backup_dir(cfg: TrainConfig) -> str:
    """BackupAndRestore's folder: --checkpoint_dir (Vertex AI's AIP_CHECKPOINT_DIR), else <model_dir>/backup.
    Every worker names the same one; Keras redirects the non-chief's writes."""
    return cfg.checkpoint_dir or model_folder.path(cfg.model_dir, model_folder.BACKUP)


def train(cfg: TrainConfig, flags_text: str = "") -> dict:
    """Train ``cfg``'s model on its export; return the training summary (also in the model dir).

    With ``cfg.savedmodel_dir`` the chief then exports the best model there as a SavedModel
    (``serving.export_flat``), for Vertex AI's model upload.
    """

    chief = is_chief(cfg.cluster)
    finished = _finished_run(cfg, chief)
    if finished is not None:
        log.info("%s already holds this finished run: nothing to do (--overwrite trains again)", cfg.model_dir)
        chosen = model_folder.read_threshold(cfg.model_dir) if chief else None
        # A run from before thresholds, or one asked for another rule: choosing needs no training,
        # only the best weights (a summary without them is no model to choose for).
        has_weights = chief and storage.exists(model_folder.weights_path(cfg.model_dir, "best"))
        if has_weights and (chosen is None or chosen.get("asked") != cfg.threshold_rule):
            operating_point.choose(cfg.model_dir, *ensure_records(cfg), cfg.input, cfg.threshold_rule)
        _export_savedmodel(cfg, chief)
        return finished
    manifest, folder = ensure_records(cfg)
    tf.get_logger().setLevel(logging.WARNING)  # checkpoint saves log at INFO every epoch
    tf.keras.utils.set_random_seed(cfg.seed)
    if cfg.input.deterministic:
        tf.config.experimental.enable_op_determinism()
    with dtype_policy(cfg):
        summary = _train(cfg, chief, manifest, folder, flags_text)
    # After the run's policy: the threshold is chosen, and the served model computes, in float32
    # whatever trained it; the SavedModel carries the threshold.
    if chief:
        operating_point.choose(cfg.model_dir, manifest, folder, cfg.input, cfg.threshold_rule)
    _export_savedmodel(cfg, chief)
    return summary


@contextlib.contextmanager
def dtype_policy(cfg: TrainConfig):
    """Keras' global dtype policy of the run (``distribution.compute_policy``: mixed_float16 with
    --mixed_precision, mixed_bfloat16 with --bfloat16) for the run only."""
    with distribution.policy_scope(distribution.compute_policy(cfg.mixed_precision, cfg.bfloat16)):
        yield


def compiled_model(cfg: TrainConfig, manifest: dict):
    """The run's model, compiled as the run trains it; build it inside ``dtype_policy(cfg)`` and the
    strategy's scope."""

    model = models.build_model(cfg.model, len(manifest["channels"]), manifest["chip_size"])
    if cfg.jit_compile:
        model = for_xla(model)
    model.compile(
        optimizer=make_optimizer(cfg),
        loss=tf.keras.losses.BinaryCrossentropy(),
        # Weighted, so the zero-weight padding of multi-replica validation counts for nothing.
        # float32 whatever the policy: under mixed_float16 its confusion variables would be
        # AutoCastVariables, which AUC's result indexes inside the sync-on-read context of a
        # distribution strategy, and that read is not supported there.
        weighted_metrics=[tf.keras.metrics.AUC(curve="PR", num_thresholds=200, name="pr_auc", dtype="float32")],
        jit_compile=cfg.jit_compile,
    )
    return model


def _train(cfg: TrainConfig, chief: bool, manifest: dict, folder: str, flags_text: str) -> dict:
    """``train`` once the records are there and the run is a new or an unfinished one."""
    strategy = distribution.make_strategy(cfg.cluster)
    workers = cluster_workers(cfg.cluster)
    model_dir = _write_dir(cfg.model_dir, chief)
    storage.makedirs(model_dir)
    log.info(
        "training %s %s on %s: %d replica(s) over %d worker(s), global batch %d, compute %s",
        cfg.model.arch,
        cfg.model.backbone,
        manifest["config"]["name"],
        strategy.num_replicas_in_sync,
        workers,
        cfg.input.batch_size,
        tf.keras.mixed_precision.global_policy().name,
    )

    replicas = strategy.num_replicas_in_sync
    train_data = data.make_dataset(manifest, folder, "train", cfg.input, True, workers, replicas)
    val_data = data.make_dataset(manifest, folder, "val", cfg.input, False, workers, replicas)
    with strategy.scope():
        model = compiled_model(cfg, manifest)
    if chief:
        model_folder.write_run_files(model_dir, cfg, manifest, flags_text)
    staging = tempfile.mkdtemp(prefix="tf_landslide-checkpoint-")
    run_callbacks = _callbacks(cfg, manifest, model_dir, chief, staging)
    started = time.perf_counter()
    try:
        history = model.fit(train_data, validation_data=val_data, epochs=cfg.epochs, callbacks=run_callbacks, verbose=0)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with storage.local_output(model_folder.weights_path(model_dir, "last")) as local:
        model.save_weights(local)
    summary = _summary(model_dir, history, time.perf_counter() - started, manifest)
    if chief:
        model_folder.write_summary(model_dir, summary)
    else:
        storage.remove_tree(model_dir)
    return summary


def _callbacks(cfg: TrainConfig, manifest: dict, model_dir: str, chief: bool, staging: str) -> list:
    """The run's callbacks, in the order that matters at each epoch's end: the log line adds chips/s
    and the learning rate used, the plateau may lower the rate, the history row is written, and
    only then the backup; the best weights are written to ``staging`` and published complete."""
    backup = backup_dir(cfg)
    best_local = os.path.join(staging, model_folder.BEST_WEIGHTS)
    return [
        callbacks.EpochLine(manifest["splits"]["train"]["chips"], cfg.epochs),
        callbacks.TorchPlateau(
            cfg.lr_factor, cfg.lr_patience, cfg.lr_threshold, storage.join(backup, "plateau.json"), write=chief
        ),
        *([callbacks.HistoryWriter(model_dir)] if chief else []),
        tf.keras.callbacks.BackupAndRestore(backup),
        tf.keras.callbacks.TerminateOnNaN(),
        tf.keras.callbacks.ModelCheckpoint(
            best_local,
            monitor="val_pr_auc",
            mode="max",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=_best_so_far(cfg.model_dir),
        ),
        callbacks.PublishFile(best_local, model_folder.weights_path(model_dir, "best")),
        tf.keras.callbacks.TensorBoard(cfg.tensorboard_dir or model_folder.path(model_dir, model_folder.LOGS)),
    ]


def _export_savedmodel(cfg: TrainConfig, chief: bool) -> None:
    """The chief exports the best model as a SavedModel into ``cfg.savedmodel_dir``, unless one is there."""
    if not (chief and cfg.savedmodel_dir):
        return
    if storage.exists(storage.join(cfg.savedmodel_dir, serving.SAVED_MODEL_PB)):
        log.info("%s already holds a SavedModel: not exported again", cfg.savedmodel_dir)
        return
    serving.export_flat(cfg.model_dir, cfg.savedmodel_dir, "best")


def _run_identity(saved: dict) -> dict:
    """What makes two runs (as saved in train_config.json) the same run: not where they
    write or how they were launched."""
    # The threshold rule too: it is applied after training, to weights it does not change.
    where = ("cluster", "tensorboard_dir", "checkpoint_dir", "model_dir", "savedmodel_dir", "threshold_rule")
    identity = {k: v for k, v in saved.items() if k not in where}
    identity["export"] = {
        k: v
        for k, v in saved.get("export", {}).items()
        if k not in ("overwrite", "progress", "workers", "worker_processes", "dask_scheduler")
    }
    return identity


def _finished_run(cfg: TrainConfig, chief: bool) -> dict | None:
    """The summary of a finished identical run in ``model_dir``, or None to train.

    A folder holding another run, finished or interrupted, is an error (resuming it would
    restore its weights under other settings); ``--overwrite`` clears it instead (the chief
    does), and the run's backup in a separate ``--checkpoint_dir`` with it. A backup in a
    separate checkpoint folder while the model folder holds no run belongs to another run:
    an error too.
    """
    if cfg.export.overwrite:
        if chief:
            storage.remove_tree(cfg.model_dir)
            if cfg.checkpoint_dir:
                _remove_backup(cfg.checkpoint_dir)
        return None
    if not model_folder.holds_run(cfg.model_dir):
        stale = storage.join(backup_dir(cfg), "chief")
        if cfg.checkpoint_dir and storage.exists(stale):
            raise ValueError(
                f"{cfg.checkpoint_dir} holds a training backup, but {cfg.model_dir} holds no run it could belong to: "
                "choose another --checkpoint_dir, delete it, or pass --overwrite to replace it"
            )
        return None
    previous = model_folder.read_train_config(cfg.model_dir)
    summary = model_folder.read_summary(cfg.model_dir)
    if _run_identity(previous) != _run_identity(json.loads(json.dumps(dataclasses.asdict(cfg)))):
        state = "finished" if summary is not None else "unfinished"
        raise ValueError(
            f"{cfg.model_dir} holds an {state} run with other settings (see its {model_folder.TRAIN_CONFIG}): "
            "choose another --model_dir or pass --overwrite to replace it"
        )
    return summary


def _remove_backup(folder: str) -> None:
    """What BackupAndRestore and the plateau keep in ``folder`` (not the folder: it may hold more)."""
    storage.remove_tree(storage.join(folder, "chief"))
    storage.remove(storage.join(folder, "plateau.json"))


def _best_so_far(model_dir: str) -> float | None:
    """Best validation PR-AUC of the epochs a resumed run already has, so the best-model
    checkpoint is not replaced by a worse epoch after the resume."""
    scores = [float(row["val_pr_auc"]) for row in model_folder.read_history(model_dir) if row.get("val_pr_auc")]
    return max(scores) if scores else None


def _summary(model_dir: str, history, seconds: float, manifest: dict) -> dict:
    """Best epoch by validation PR-AUC over the whole history (resumed runs included)."""
    rows = model_folder.read_history(model_dir)
    if not rows:
        rows = [{k: v[i] for k, v in history.history.items()} | {"epoch": i} for i in range(len(history.epoch))]
    best = max(rows, key=lambda r: float(r.get("val_pr_auc", -1)))
    return {
        "epochs": len(rows),
        "best_epoch": int(best["epoch"]) + 1,
        "best_val_pr_auc_keras_approx": float(best.get("val_pr_auc", math.nan)),
        "final_loss": float(rows[-1]["loss"]),
        "final_learning_rate": float(rows[-1].get("learning_rate", math.nan)),
        "mean_chips_per_second": sum(float(r.get("chips_per_second", 0)) for r in rows) / len(rows),
        "train_seconds_this_run": round(seconds, 1),
        "config": manifest["config"]["name"],
        "train_chips": manifest["splits"]["train"]["chips"],
        "compute_policy": tf.keras.mixed_precision.global_policy().name,
    }
