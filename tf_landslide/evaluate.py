"""Evaluate a trained model on a split: exact pixel metrics, a PR curve, a prediction panel."""

from __future__ import annotations

import logging

import numpy as np

from tf_landslide import data, model_card, model_folder, plots, storage
from tf_landslide.config import EvalConfig
from tf_landslide.cube.channels import resolve_channel_config
from tf_landslide.metrics import PixelCurve

log = logging.getLogger("tf_landslide.evaluate")


def _check_trained_on(model_dir: str, manifest: dict, folder: str) -> None:
    """Raise DataError when the run in ``model_dir`` was trained on another export than ``folder``'s
    (a run without a manifest is not checked)."""
    if storage.exists(model_folder.path(model_dir, model_folder.MANIFEST)):
        fingerprint = model_folder.read_manifest(model_dir)["fingerprint"]
        if fingerprint != manifest["fingerprint"]:
            raise data.DataError(
                f"{model_dir} was trained on another export than {folder} (fingerprint {fingerprint[:12]} vs "
                f"{manifest['fingerprint'][:12]}): its normalisation and splits differ. Evaluate with the flags it "
                f"was trained with (--flagfile={model_folder.path(model_dir, model_folder.FLAGS)})"
            )


def _predict(model, dataset, panel_chips: int) -> tuple[PixelCurve, tuple[list, list]]:
    """The pixel curve of the model's predictions over ``dataset``, and the panel: the
    probabilities and labels of its first ``panel_chips`` chips."""
    curve = PixelCurve()
    panel_probabilities, panel_labels = [], []
    for image, label in dataset:
        probability = model(image, training=False).numpy()
        label = label.numpy()
        curve.update(probability, label)
        if len(panel_probabilities) < panel_chips:
            panel_probabilities.extend(probability[: panel_chips - len(panel_probabilities)])
            panel_labels.extend(label[: len(panel_probabilities) - len(panel_labels)])
    return curve, (panel_probabilities, panel_labels)


def _plot(curve: PixelCurve, metrics: dict, panel: tuple[list, list], name: str, split: str, out: str) -> None:
    """Write the PR curve and the prediction panel (predicted over ground truth) into ``out``."""
    recall, precision = curve.pr_points()
    plots.pr_curve(
        recall,
        precision,
        metrics["pr_auc"],
        metrics["positive_fraction"],
        f"{name}, {split} split ({metrics['chips']} chips)",
        storage.join(out, "pr_curve.png"),
    )
    plots.prediction_panel(
        np.array(panel[0]),
        np.array(panel[1]),
        f"{name}: predicted (top) vs ground truth (bottom)",
        storage.join(out, "predictions.png"),
    )


def _log_metrics(name: str, split: str, threshold: float, metrics: dict) -> None:
    """The headline metrics on one line."""
    log.info(
        "%s %s: PR-AUC %.4f (baseline %.4f), ROC-AUC %.4f, best F1 %.3f at %.2f, IoU@%.2f %.3f",
        name,
        split,
        metrics["pr_auc"],
        metrics["positive_fraction"],
        metrics["roc_auc"],
        metrics["best_f1"],
        metrics["best_f1_threshold"],
        threshold,
        metrics["iou"],
    )


def evaluate(cfg: EvalConfig) -> dict:
    """Write ``<model_dir>/eval/{metrics.json, pr_curve.png, predictions.png, model_card.md}``; return the metrics."""
    config = resolve_channel_config(cfg.export.config, cfg.export.channels, cfg.export.timesteps)
    manifest, folder = data.load_manifest(cfg.export.records_dir, config.name)
    data.check_manifest(manifest, config.name, config.channels, cfg.export.chip_size)
    _check_trained_on(cfg.model_dir, manifest, folder)
    model = model_folder.load_trained_model(cfg.model_dir, cfg.checkpoint)
    dataset = data.make_dataset(manifest, folder, cfg.split, cfg.input, training=False)
    curve, panel = _predict(model, dataset, cfg.panel_chips)
    threshold, threshold_source = model_folder.operating_threshold(cfg.model_dir, cfg.threshold)
    metrics = curve.summary(threshold)
    metrics.update(
        threshold_source=threshold_source,
        config=config.name,
        split=cfg.split,
        chips=manifest["splits"][cfg.split]["chips"],
        checkpoint=cfg.checkpoint,
        model_dir=str(cfg.model_dir),
        metric_note="pr_auc is the exact average precision over all pixels of the split (as sklearn computes it)",
    )
    out = model_folder.path(cfg.model_dir, model_folder.EVAL)
    storage.makedirs(out)
    storage.write_json(storage.join(out, model_folder.EVAL_METRICS), metrics)
    _plot(curve, metrics, panel, config.name, cfg.split, out)
    model_card.write(cfg.model_dir, metrics, out)
    _log_metrics(config.name, cfg.split, threshold, metrics)
    return metrics
