"""The run's own Keras callbacks: the learning-rate plateau with PyTorch's semantics, the history
file, the epoch's log line and the publishing of a checkpoint written in place.

Their order in the run matters at each epoch's end: the log line adds chips/s and the learning
rate used, the plateau may lower the rate, the history row is written, and only then
BackupAndRestore saves the epoch (``train_lib`` builds the list).
"""

from __future__ import annotations

import logging
import math
import os
import time

# The Keras 2 package itself, not tf.keras: a class body resolves its base at import, and a
# caller that imported TensorFlow before tf_landslide set TF_USE_LEGACY_KERAS would get Keras 3's
# Callback there, while segmentation-models builds tf-keras layers.
import tf_keras

from tf_landslide import model_folder, storage

log = logging.getLogger("tf_landslide.train")


class TorchPlateau(tf_keras.callbacks.Callback):
    """ReduceLROnPlateau with PyTorch's semantics (mode min, relative threshold) on 'loss'.

    Keras' own callback uses an absolute ``min_delta``; PyTorch's epoch improves when loss <
    best * (1 - threshold). Its state (best loss, bad epochs) is saved each epoch at
    ``state_path``, beside the BackupAndRestore checkpoint, so a resumed run reduces the learning
    rate exactly when an unbroken one would. It must run before BackupAndRestore, so that the
    backup of an epoch holds the learning rate this callback set at its end. A finished run
    deletes the state; a worker that is not the chief reads it but never writes (``write``).
    """

    def __init__(self, factor: float, patience: int, threshold: float, state_path: str | None, write: bool = True):
        super().__init__()
        self.factor, self.patience, self.threshold = factor, patience, threshold
        self.state_path, self.write = state_path, write
        self.best, self.bad_epochs = math.inf, 0

    def on_train_begin(self, logs=None):
        if self.state_path and storage.exists(self.state_path):
            state = storage.read_json(self.state_path)
            self.best, self.bad_epochs = state["best"], state["bad_epochs"]

    def on_epoch_end(self, epoch, logs=None):
        current = float(logs["loss"])
        if current < self.best * (1 - self.threshold):
            self.best, self.bad_epochs = current, 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            lr = float(self.model.optimizer.learning_rate.numpy())
            new_lr = lr * self.factor
            if lr - new_lr > 1e-8:  # PyTorch's eps: smaller reductions are skipped
                self.model.optimizer.learning_rate.assign(new_lr)
                log.info("epoch %d: reducing learning rate to %.1e", epoch + 1, new_lr)
            self.bad_epochs = 0
        if self.state_path and self.write:
            storage.write_json(self.state_path, {"best": self.best, "bad_epochs": self.bad_epochs}, indent=None)

    def on_train_end(self, logs=None):
        if self.state_path and self.write:
            storage.remove(self.state_path)


class HistoryWriter(tf_keras.callbacks.Callback):
    """Append each epoch's logs to the run's history; on resume, drop rows of epochs about to be redone.

    It runs before BackupAndRestore, so a row is on disk before its epoch's backup: a kill
    between the two redoes the epoch and replaces its row instead of losing it.
    """

    def __init__(self, model_dir: str):
        super().__init__()
        self.model_dir, self.first = model_dir, True

    def on_epoch_begin(self, epoch, logs=None):
        rows = model_folder.read_history(self.model_dir) if self.first else []
        if rows:
            model_folder.write_history(self.model_dir, [r for r in rows if int(r["epoch"]) < epoch])
        self.first = False

    def on_epoch_end(self, epoch, logs=None):
        rows = model_folder.read_history(self.model_dir)
        rows.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
        model_folder.write_history(self.model_dir, rows)


class EpochLine(tf_keras.callbacks.Callback):
    """One log line per epoch: loss, validation PR-AUC (Keras' approximation), lr, chips/s; the
    last two are added to the epoch's logs, so the history holds them too."""

    def __init__(self, train_chips: int, epochs: int):
        super().__init__()
        self.train_chips, self.epochs = train_chips, epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.train_seconds = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        self.train_seconds = time.perf_counter() - self.started

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        seconds = self.train_seconds or (time.perf_counter() - self.started)
        logs["chips_per_second"] = self.train_chips / seconds
        logs["learning_rate"] = float(self.model.optimizer.learning_rate.numpy())
        log.info(
            "epoch %d/%d  loss %.4f  val_loss %.4f  val_pr_auc~ %.4f  lr %.1e  %.1f chips/s",
            epoch + 1,
            self.epochs,
            logs.get("loss", math.nan),
            logs.get("val_loss", math.nan),
            logs.get("val_pr_auc", math.nan),
            logs["learning_rate"],
            logs["chips_per_second"],
        )


class PublishFile(tf_keras.callbacks.Callback):
    """Move the file ``local``, when an earlier callback of the epoch wrote it, to ``destination``
    in one step (a rename, or one upload): ModelCheckpoint writes its HDF5 file in place, so it
    writes to a local scratch file and this publishes it complete."""

    def __init__(self, local: str, destination: str):
        super().__init__()
        self.local, self.destination = local, destination

    def on_epoch_end(self, epoch, logs=None):
        if os.path.exists(self.local):
            storage.put_file(self.local, self.destination)
            os.remove(self.local)
