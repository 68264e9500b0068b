"""A trained model folder: its files, the trained model loaded back, weight files without the optimizer."""

import tf_landslide  # noqa: F401, I001  (first: it sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import dataclasses
import json
import math
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import BEST, LAST, read_history
from tf_landslide import data, model_folder


def test_model_folder_holds_models_history_and_run_files(trained):
    cfg, summary = trained
    model_dir = Path(cfg.model_dir)
    for name in (BEST, LAST, "history.csv", "train_summary.json", "train_config.json", "manifest.json"):
        assert (model_dir / name).is_file(), name
    assert not (model_dir / "history.csv.partial").exists()
    assert json.loads((model_dir / "train_summary.json").read_text()) == summary
    assert summary["epochs"] == 4 and summary["config"] == "vv_vh_dem_t2"
    written = json.loads((model_dir / "train_config.json").read_text())
    assert written == json.loads(json.dumps(dataclasses.asdict(cfg)))
    records_manifest, _ = data.load_manifest(cfg.export.records_dir, cfg.export.config)
    assert json.loads((model_dir / "manifest.json").read_text()) == records_manifest
    assert summary["train_chips"] == records_manifest["splits"]["train"]["chips"]
    history = read_history(model_dir)
    for column in ("loss", "val_loss", "val_pr_auc", "learning_rate", "chips_per_second"):
        assert all(math.isfinite(float(row[column])) for row in history), column
    best = max(history, key=lambda row: float(row["val_pr_auc"]))
    assert summary["best_epoch"] == int(best["epoch"]) + 1
    assert summary["final_learning_rate"] == pytest.approx(cfg.learning_rate)  # patience 10: no reduction yet


def _evaluate(model, dataset) -> dict:
    model.compile(
        loss=tf.keras.losses.BinaryCrossentropy(),
        metrics=[tf.keras.metrics.AUC(curve="PR", num_thresholds=200, name="pr_auc")],
    )
    return model.evaluate(dataset, verbose=0, return_dict=True)


def test_load_trained_model_rebuilds_the_model_with_its_trained_weights(trained):
    cfg, summary = trained
    manifest, folder = data.load_manifest(cfg.export.records_dir, cfg.export.config)
    images, _ = next(iter(data.make_dataset(manifest, folder, "test", cfg.input, training=False)))
    last = model_folder.load_trained_model(cfg.model_dir, "last")
    probability = last.predict(images, verbose=0)
    assert probability.shape == (images.shape[0], 32, 32, 1)
    assert probability.dtype == np.float32
    assert np.all((probability >= 0) & (probability <= 1))
    # the last model: the best of a 4-epoch run can be an early, nearly constant one
    assert probability.std() > 0
    # the weights (BatchNorm statistics included) are those the last epoch was validated with
    final = read_history(cfg.model_dir)[-1]
    scores = _evaluate(last, data.make_dataset(manifest, folder, "val", cfg.input, training=False))
    assert scores["loss"] == pytest.approx(float(final["val_loss"]), rel=1e-4)
    assert scores["pr_auc"] == pytest.approx(float(final["val_pr_auc"]), abs=1e-4)
    # 'best' reads the other file: the same weights only when the last epoch was the best
    best = model_folder.load_trained_model(cfg.model_dir, "best").predict(images, verbose=0)
    assert np.array_equal(best, probability) == (summary["best_epoch"] == cfg.epochs)
    with pytest.raises(FileNotFoundError, match="train first"):
        model_folder.load_trained_model(str(Path(cfg.model_dir) / "nothing-here"))


def test_weight_files_hold_the_layers_only(trained, tmp_path):
    """Inference reads the layers; the optimizer's slots (2x the weights under Adam) stay in the backup."""
    cfg, _ = trained
    model = model_folder.load_trained_model(cfg.model_dir, "last")
    weight_bytes = sum(w.nbytes for w in model.get_weights())
    for name in (BEST, LAST):
        path = Path(cfg.model_dir) / name
        with h5py.File(path, "r") as weights:
            assert "optimizer" not in weights, name
        assert path.stat().st_size < 1.1 * weight_bytes, name
    # a run written under the older file names still loads
    older = tmp_path / "older"
    shutil.copytree(cfg.model_dir, older, ignore=shutil.ignore_patterns("backup", "logs"))
    (older / LAST).unlink()
    model.save_weights(str(older / "last.weights.h5"))  # the name selects Keras's other format
    loaded = model_folder.load_trained_model(str(older), "last")
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True))
