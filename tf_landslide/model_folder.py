"""The model folder of a training run: the one module that names its files, writes the run's own
files and reads them back (training, evaluation, serving, maps and the study ask it).

    <model_dir>/
      train_config.json    the run's TrainConfig: what makes a restarted run the same run
      manifest.json        the manifest of the export it trained on (channels, normalisation)
      flags.txt            a flagfile that reproduces the run
      history.csv          one row per epoch (loss, validation PR-AUC, learning rate, chips/s)
      best_weights.h5      the layers' weights at the best validation PR-AUC, and at the last
      last_weights.h5      epoch (the architecture is rebuilt from train_config.json)
      train_summary.json   written once the run has finished
      threshold.json       the operating threshold chosen on the validation split, and how
      logs/  backup/       TensorBoard events and BackupAndRestore's state (unless elsewhere)
      eval/                eval.py's metrics.json and plots
      map/                 predict.py's map (unless --map_dir)

Every path may be a URL (``gs://...``): all access goes through ``tf_landslide.storage``.
"""

from __future__ import annotations

import csv
import dataclasses
import os

from tf_landslide import models, storage
from tf_landslide.config import ModelConfig, TrainConfig

TRAIN_CONFIG, MANIFEST, FLAGS = "train_config.json", "manifest.json", "flags.txt"
HISTORY, SUMMARY = "history.csv", "train_summary.json"
THRESHOLD = "threshold.json"
# What maps, evaluation and serving fall back to for a run that chose no threshold (an older run).
DEFAULT_THRESHOLD = 0.5
# Weights only: the architecture is rebuilt from train_config.json, which loads in a moment
# where a .keras archive of a ResNet-50 U-Net with its optimizer state is slow to load. Plain
# ".h5" names on purpose: tf-keras writes "*.weights.h5" files with the optimizer's slots too
# (3x the size under Adam), which inference never reads; resuming uses the backup instead.
BEST_WEIGHTS, LAST_WEIGHTS = "best_weights.h5", "last_weights.h5"
# The names earlier versions wrote (with the optimizer's slots): load_trained_model reads both.
OLDER_WEIGHTS = {BEST_WEIGHTS: "best.weights.h5", LAST_WEIGHTS: "last.weights.h5"}
LOGS, BACKUP, EVAL, MAP = "logs", "backup", "eval", "map"
EVAL_METRICS = "metrics.json"  # in EVAL


def path(model_dir: str | os.PathLike, *names: str) -> str:
    """A file or folder of the model folder, by the names above."""
    return storage.join(model_dir, *names)


def weights_path(model_dir: str | os.PathLike, which: str = "best") -> str:
    return path(model_dir, BEST_WEIGHTS if which == "best" else LAST_WEIGHTS)


def holds_run(model_dir: str | os.PathLike) -> bool:
    """Whether a run has started in ``model_dir`` (its train_config.json is written first)."""
    return storage.exists(path(model_dir, TRAIN_CONFIG))


def write_run_files(model_dir: str, cfg: TrainConfig, manifest: dict, flags_text: str) -> None:
    """What a run writes before its first epoch: its configuration, its export's manifest, its flags."""
    storage.write_json(path(model_dir, TRAIN_CONFIG), dataclasses.asdict(cfg))
    storage.write_json(path(model_dir, MANIFEST), manifest)
    if flags_text:
        storage.write_text(path(model_dir, FLAGS), flags_text)


def read_train_config(model_dir: str | os.PathLike) -> dict:
    """The run's TrainConfig as saved (JSON)."""
    return storage.read_json(path(model_dir, TRAIN_CONFIG))


def read_manifest(model_dir: str | os.PathLike) -> dict:
    """The export manifest a training run in ``model_dir`` was trained on (channels, normalisation)."""
    manifest = path(model_dir, MANIFEST)
    if not storage.exists(manifest):
        raise FileNotFoundError(
            f"no trained run in {model_dir} ({manifest} is missing): train first, or fix --model_dir"
        )
    return storage.read_json(manifest)


def read_summary(model_dir: str | os.PathLike) -> dict | None:
    """The summary of a finished run, None while it has not finished."""
    summary = path(model_dir, SUMMARY)
    return storage.read_json(summary) if storage.exists(summary) else None


def write_summary(model_dir: str, summary: dict) -> None:
    storage.write_json(path(model_dir, SUMMARY), summary)


def read_history(model_dir: str | os.PathLike) -> list[dict]:
    """The rows of history.csv (strings, as CSV holds them); [] before the first epoch."""
    history = path(model_dir, HISTORY)
    if not storage.exists(history):
        return []
    with storage.open(history, "r", newline="") as handle:
        return list(csv.DictReader(handle))


def write_history(model_dir: str, rows: list[dict]) -> None:
    """history.csv replaced by ``rows`` in one step (a rename, or one upload)."""
    fields = list(dict.fromkeys(k for row in rows for k in row)) or ["epoch"]
    with storage.open(path(model_dir, HISTORY), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def load_trained_model(model_dir: str | os.PathLike, which: str = "best", size: int | None = 0):
    """The best (by validation PR-AUC) or last model of a training run, rebuilt from its
    train_config.json and manifest.json and loaded with its weights; for inputs of ``size``
    pixels square (0: the training chip size; None: any multiple of 32)."""
    model_dir = os.fspath(model_dir)
    weights = weights_path(model_dir, which)
    older = path(model_dir, OLDER_WEIGHTS[os.path.basename(weights)])
    if not storage.exists(weights) and storage.exists(older):
        weights = older
    if not storage.exists(weights):
        raise FileNotFoundError(f"no trained model at {weights}: train first (python train.py --model_dir={model_dir})")
    saved = read_train_config(model_dir)["model"]
    manifest = read_manifest(model_dir)
    architecture = dataclasses.replace(ModelConfig(**saved), encoder_weights="")  # the weights come next
    model = models.build_model(architecture, len(manifest["channels"]), manifest["chip_size"] if size == 0 else size)
    with storage.local_input(weights) as local:
        model.load_weights(local)
    return model


def write_threshold(model_dir: str, chosen: dict) -> None:
    """The run's operating threshold (``metrics.PixelCurve.operating_point``'s dict, with the split)."""
    storage.write_json(path(model_dir, THRESHOLD), chosen)


def read_threshold(model_dir: str | os.PathLike) -> dict | None:
    """The run's operating threshold, or None when it chose none."""
    where = path(model_dir, THRESHOLD)
    return storage.read_json(where) if storage.exists(where) else None


def operating_threshold(model_dir: str | os.PathLike, given: float | None) -> tuple[float, str]:
    """The threshold to cut probabilities at, and where it comes from: ``given`` (a flag) wins, then
    the run's own choice, then DEFAULT_THRESHOLD."""
    return resolve_threshold(given, read_threshold(model_dir), "the run's", "the run chose none")


def resolve_threshold(given: float | None, chosen: dict | None, owner: str, unchosen: str) -> tuple[float, str]:
    """``given`` wins, then ``chosen`` (a ``threshold.json`` dict, from a run or a SavedModel's assets),
    then DEFAULT_THRESHOLD, which is also what a choice that fell back to the default holds."""
    if given is not None:
        return float(given), "--threshold"
    if chosen is not None and chosen.get("rule") != "default":
        return float(chosen["threshold"]), f"{owner} ({chosen['rule']} on the {chosen['split']} split)"
    why = chosen.get("note", unchosen) if chosen else unchosen
    return DEFAULT_THRESHOLD, f"the default {DEFAULT_THRESHOLD:g} ({why})"
