"""Training: distribution strategy, optimiser, callbacks and fit (the model folder: ``model_folder``).

The paper's recipe: Adam, learning rate 0.01, weight decay 1e-4, ReduceLROnPlateau (factor
0.1, patience 10, threshold 1e-4) on the training loss, 100 epochs, batch 64, cross-entropy.

* Weight decay is an **L2 term added to the gradient** (``weight_decay_mode='l2'``), exactly what
  ``torch.optim.Adam(weight_decay=1e-4)`` in the authors' code does, on every parameter (BN and
  biases included). Decoupled decay (AdamW) is a different method; it is offered as
  ``weight_decay_mode='decoupled'`` for comparison.
* ReduceLROnPlateau follows PyTorch's semantics (a *relative* threshold: an epoch improves when
  loss < best * (1 - 1e-4)); Keras' own callback uses an absolute ``min_delta``.
* Two sigmoid-output classes in PyTorch (softmax over background/landslide) and one sigmoid
  output with binary cross-entropy are the same model up to the parametrisation of the last
  layer; we use the latter, so a probability map comes out directly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import shutil
import tempfile
import time

from tf_landslide import data, export, model_folder, models, serving, storage
from tf_landslide.config import TrainConfig
from tf_landslide.cube.channels import resolve_channel_config
from tf_landslide.models.xla import for_xla

log = logging.getLogger("tf_landslide.train")

WEIGHT_DECAY_MODES = ("l2", "decoupled")


# --- cluster and strategy -----------------------------------------------------------------


def cluster_from_environment(environ: dict) -> str:
    """The cluster as TF_CONFIG JSON: TF_CONFIG itself, or Vertex AI's CLUSTER_SPEC translated.

    Vertex AI sets CLUSTER_SPEC ({"cluster": {"workerpool0": [...], ...}, "task": {"type":
    "workerpool0", "index": 0}}) for custom containers; pool 0 is the chief.
    """
    if environ.get("TF_CONFIG"):
        return environ["TF_CONFIG"]
    if not environ.get("CLUSTER_SPEC"):
        return ""
    spec = json.loads(environ["CLUSTER_SPEC"])
    pools = spec.get("cluster", {})
    names = {"workerpool0": "chief", "workerpool1": "worker", "workerpool2": "ps", "workerpool3": "evaluator"}
    cluster = {names[pool]: hosts for pool, hosts in pools.items() if pool in names and hosts}
    task = spec.get("task", {})
    return json.dumps(
        {"cluster": cluster, "task": {"type": names.get(task.get("type"), "chief"), "index": int(task.get("index", 0))}}
    )


def cluster_workers(cluster: str) -> int:
    if not cluster:
        return 1
    spec = json.loads(cluster).get("cluster", {})
    return sum(len(spec.get(role, [])) for role in ("chief", "worker")) or 1


def make_strategy(cluster: str):
    """MultiWorkerMirroredStrategy when ``cluster`` names several workers, else MirroredStrategy."""
    import tensorflow as tf

    if cluster_workers(cluster) > 1:
        config = json.loads(cluster)
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(config["cluster"]),
            task_type=config["task"]["type"],
            task_id=config["task"]["index"],
            rpc_layer="grpc",
        )
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    return tf.distribute.MirroredStrategy()


def is_chief(cluster: str) -> bool:
    if cluster_workers(cluster) <= 1:
        return True
    task = json.loads(cluster)["task"]
    return task["type"] == "chief" or (
        task["type"] == "worker" and task["index"] == 0 and "chief" not in json.loads(cluster)["cluster"]
    )


# --- optimiser and callbacks ----------------------------------------------------------------


def make_optimizer(cfg: TrainConfig):
    import tensorflow as tf

    if cfg.weight_decay_mode not in WEIGHT_DECAY_MODES:
        raise ValueError(f"--weight_decay_mode={cfg.weight_decay_mode!r}; choose one of {list(WEIGHT_DECAY_MODES)}")
    # PyTorch's Adam adds eps = 1e-8 after the bias correction: Keras' adaptive_epsilon.
    torch_epsilon = {"epsilon": 1e-8, "adaptive_epsilon": True}
    if cfg.weight_decay_mode == "decoupled":
        # Keras' Adam applies its weight_decay decoupled, as AdamW (its AdamW lacks adaptive_epsilon).
        return tf.keras.optimizers.Adam(learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay, **torch_epsilon)
    return AdamL2(learning_rate=cfg.learning_rate, l2=cfg.weight_decay, **torch_epsilon)


@functools.lru_cache(maxsize=1)
def _adam_l2_class():
    """Built on first use, so importing this module does not load TensorFlow."""
    import tensorflow as tf

    class AdamL2(tf.keras.optimizers.Adam):
        """Adam with PyTorch's (coupled) weight decay: gradient += l2 * parameter."""

        def __init__(self, l2: float = 0.0, name: str = "AdamL2", **kwargs):
            super().__init__(name=name, **kwargs)
            self.l2 = l2

        def update_step(self, gradient, variable):
            if self.l2:
                gradient = tf.convert_to_tensor(gradient) + tf.cast(self.l2, variable.dtype) * variable
            return super().update_step(gradient, variable)

        def get_config(self):
            return {**super().get_config(), "l2": self.l2, "adaptive_epsilon": self.adaptive_epsilon}

    return AdamL2


def AdamL2(**kwargs):  # noqa: N802 (stands for the class)
    return _adam_l2_class()(**kwargs)


def custom_objects() -> dict:
    return {"AdamL2": _adam_l2_class()}


def _callback_base():
    import tensorflow as tf

    return tf.keras.callbacks.Callback


def torch_plateau(factor: float, patience: int, threshold: float, state_path: str | None, write: bool = True):
    """ReduceLROnPlateau with PyTorch's semantics (mode min, relative threshold) on 'loss'.

    Its state (best loss, bad epochs) is saved each epoch beside the BackupAndRestore
    checkpoint, so a resumed run reduces the learning rate exactly when an unbroken one would.
    It must run before BackupAndRestore in the callback list, so that the backup of an epoch
    holds the learning rate this callback set at its end. A finished run deletes the state.
    """

    class TorchPlateau(_callback_base()):
        def __init__(self):
            super().__init__()
            self.best, self.bad_epochs = math.inf, 0

        def on_train_begin(self, logs=None):
            if state_path and storage.exists(state_path):
                state = storage.read_json(state_path)
                self.best, self.bad_epochs = state["best"], state["bad_epochs"]

        def on_epoch_end(self, epoch, logs=None):
            current = float(logs["loss"])
            if current < self.best * (1 - threshold):
                self.best, self.bad_epochs = current, 0
            else:
                self.bad_epochs += 1
            if self.bad_epochs > patience:
                lr = float(self.model.optimizer.learning_rate.numpy())
                new_lr = lr * factor
                if lr - new_lr > 1e-8:
                    self.model.optimizer.learning_rate.assign(new_lr)
                    log.info("epoch %d: reducing learning rate to %.1e", epoch + 1, new_lr)
                self.bad_epochs = 0
            if state_path and write:
                storage.write_json(state_path, {"best": self.best, "bad_epochs": self.bad_epochs}, indent=None)

        def on_train_end(self, logs=None):
            if state_path and write:
                storage.remove(state_path)

    return TorchPlateau()


def history_writer(model_dir: str):
    """Append each epoch's logs to the run's history; on resume, drop rows of epochs about to be redone.

    It runs before BackupAndRestore, so a row is on disk before its epoch's backup: a kill
    between the two redoes the epoch and replaces its row instead of losing it.
    """

    class HistoryWriter(_callback_base()):
        def __init__(self):
            super().__init__()
            self.first = True

        def on_epoch_begin(self, epoch, logs=None):
            rows = model_folder.read_history(model_dir) if self.first else []
            if rows:
                model_folder.write_history(model_dir, [r for r in rows if int(r["epoch"]) < epoch])
            self.first = False

        def on_epoch_end(self, epoch, logs=None):
            rows = model_folder.read_history(model_dir)
            rows.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
            model_folder.write_history(model_dir, rows)

    return HistoryWriter()


def epoch_line(train_chips: int, epochs: int):
    """One log line per epoch: loss, validation PR-AUC (Keras' approximation), lr, chips/s."""

    class EpochLine(_callback_base()):
        def on_epoch_begin(self, epoch, logs=None):
            self.started, self.train_seconds = time.perf_counter(), None

        def on_test_begin(self, logs=None):
            self.train_seconds = time.perf_counter() - self.started

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            seconds = self.train_seconds or (time.perf_counter() - self.started)
            logs["chips_per_second"] = train_chips / seconds
            logs["learning_rate"] = float(self.model.optimizer.learning_rate.numpy())
            log.info(
                "epoch %d/%d  loss %.4f  val_loss %.4f  val_pr_auc~ %.4f  lr %.1e  %.1f chips/s",
                epoch + 1,
                epochs,
                logs.get("loss", math.nan),
                logs.get("val_loss", math.nan),
                logs.get("val_pr_auc", math.nan),
                logs["learning_rate"],
                logs["chips_per_second"],
            )

    return EpochLine()


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


def publish_file(local: str, destination: str):
    """A callback that moves the file ``local``, when an earlier callback of the epoch wrote it,
    to ``destination`` in one step (a rename, or one upload): ModelCheckpoint writes its HDF5
    file in place, so it writes to a local scratch file and this publishes it complete."""

    class PublishFile(_callback_base()):
        def on_epoch_end(self, epoch, logs=None):
            if os.path.exists(local):
                storage.put_file(local, destination)
                os.remove(local)

    return PublishFile()


def train(cfg: TrainConfig, flags_text: str = "") -> dict:
    """Train ``cfg``'s model on its export; return the training summary (also in the model dir).

    With ``cfg.savedmodel_dir`` the chief then exports the best model there as a SavedModel
    (``serving.export_flat``), for Vertex AI's model upload.
    """
    import tensorflow as tf

    chief = is_chief(cfg.cluster)
    finished = _finished_run(cfg, chief)
    if finished is not None:
        log.info("%s already holds this finished run: nothing to do (--overwrite trains again)", cfg.model_dir)
        _export_savedmodel(cfg, chief)
        return finished
    manifest, folder = ensure_records(cfg)
    tf.get_logger().setLevel(logging.WARNING)  # checkpoint saves log at INFO every epoch
    tf.keras.utils.set_random_seed(cfg.seed)
    if cfg.input.deterministic:
        tf.config.experimental.enable_op_determinism()
    with dtype_policy(cfg):
        summary = _train(cfg, chief, manifest, folder, flags_text)
    # After the run's policy: the served model computes in float32 whatever trained it.
    _export_savedmodel(cfg, chief)
    return summary


@contextlib.contextmanager
def dtype_policy(cfg: TrainConfig):
    """Keras' global dtype policy of the run (mixed_float16 with --mixed_precision) for the run only,
    the previous one after: a caller's later models (evaluation, serving, the next test) are not
    built mixed by accident."""
    import tensorflow as tf

    previous = tf.keras.mixed_precision.global_policy()
    if cfg.mixed_precision:
        tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def compiled_model(cfg: TrainConfig, manifest: dict):
    """The run's model, compiled as the run trains it; build it inside ``dtype_policy(cfg)`` and the
    strategy's scope."""
    import tensorflow as tf

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
    import tensorflow as tf

    strategy = make_strategy(cfg.cluster)
    workers = cluster_workers(cfg.cluster)
    model_dir = _write_dir(cfg.model_dir, chief)
    storage.makedirs(model_dir)
    backup = backup_dir(cfg)
    log.info(
        "training %s %s on %s: %d replica(s) over %d worker(s), global batch %d",
        cfg.model.arch,
        cfg.model.backbone,
        manifest["config"]["name"],
        strategy.num_replicas_in_sync,
        workers,
        cfg.input.batch_size,
    )

    replicas = strategy.num_replicas_in_sync
    train_data = data.make_dataset(manifest, folder, "train", cfg.input, True, workers, replicas)
    val_data = data.make_dataset(manifest, folder, "val", cfg.input, False, workers, replicas)
    with strategy.scope():
        model = compiled_model(cfg, manifest)
    if chief:
        model_folder.write_run_files(model_dir, cfg, manifest, flags_text)
    staging = tempfile.mkdtemp(prefix="tf_landslide-checkpoint-")
    # Order matters at each epoch's end: the log line adds chips/s and the learning rate used,
    # the plateau may lower the rate, the history row is written, and only then the backup.
    callbacks = [
        epoch_line(manifest["splits"]["train"]["chips"], cfg.epochs),
        torch_plateau(
            cfg.lr_factor, cfg.lr_patience, cfg.lr_threshold, storage.join(backup, "plateau.json"), write=chief
        ),
        *([history_writer(model_dir)] if chief else []),
        tf.keras.callbacks.BackupAndRestore(backup),
        tf.keras.callbacks.TerminateOnNaN(),
        tf.keras.callbacks.ModelCheckpoint(
            os.path.join(staging, model_folder.BEST_WEIGHTS),
            monitor="val_pr_auc",
            mode="max",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=_best_so_far(cfg.model_dir),
        ),
        publish_file(os.path.join(staging, model_folder.BEST_WEIGHTS), model_folder.weights_path(model_dir, "best")),
        tf.keras.callbacks.TensorBoard(cfg.tensorboard_dir or model_folder.path(model_dir, model_folder.LOGS)),
    ]
    started = time.perf_counter()
    try:
        history = model.fit(train_data, validation_data=val_data, epochs=cfg.epochs, callbacks=callbacks, verbose=0)
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
    where = ("cluster", "tensorboard_dir", "checkpoint_dir", "model_dir", "savedmodel_dir")
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
    }
