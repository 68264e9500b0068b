"""Evaluate a trained model on a split: exact pixel metrics, a PR curve, a prediction panel."""

from __future__ import annotations

import logging

import numpy as np

from tf_landslide import data, model_folder, plots, storage
from tf_landslide.config import EvalConfig
from tf_landslide.cube.channels import resolve_channel_config
from tf_landslide.metrics import PixelCurve

log = logging.getLogger("tf_landslide.evaluate")


def evaluate(cfg: EvalConfig) -> dict:
    """Write ``<model_dir>/eval/{metrics.json, pr_curve.png, predictions.png}``; return the metrics."""
    config = resolve_channel_config(cfg.export.config, cfg.export.channels, cfg.export.timesteps)
    manifest, folder = data.load_manifest(cfg.export.records_dir, config.name)
    data.check_manifest(manifest, config.name, config.channels, cfg.export.chip_size)
    if storage.exists(model_folder.path(cfg.model_dir, model_folder.MANIFEST)):
        fingerprint = model_folder.read_manifest(cfg.model_dir)["fingerprint"]
        if fingerprint != manifest["fingerprint"]:
            raise data.DataError(
                f"{cfg.model_dir} was trained on another export than {folder} (fingerprint {fingerprint[:12]} vs "
                f"{manifest['fingerprint'][:12]}): its normalisation and splits differ. Evaluate with the flags it "
                f"was trained with (--flagfile={model_folder.path(cfg.model_dir, model_folder.FLAGS)})"
            )
    model = model_folder.load_trained_model(cfg.model_dir, cfg.checkpoint)
    dataset = data.make_dataset(manifest, folder, cfg.split, cfg.input, training=False)
    curve = PixelCurve()
    panel_probabilities, panel_labels = [], []
    for image, label in dataset:
        probability = model(image, training=False).numpy()
        label = label.numpy()
        curve.update(probability, label)
        if len(panel_probabilities) < cfg.panel_chips:
            panel_probabilities.extend(probability[: cfg.panel_chips - len(panel_probabilities)])
            panel_labels.extend(label[: len(panel_probabilities) - len(panel_labels)])
    metrics = curve.summary(cfg.threshold)
    metrics.update(
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
    recall, precision = curve.pr_points()
    plots.pr_curve(
        recall,
        precision,
        metrics["pr_auc"],
        metrics["positive_fraction"],
        f"{config.name}, {cfg.split} split ({metrics['chips']} chips)",
        storage.join(out, "pr_curve.png"),
    )
    plots.prediction_panel(
        np.array(panel_probabilities),
        np.array(panel_labels),
        f"{config.name}: predicted (top) vs ground truth (bottom)",
        storage.join(out, "predictions.png"),
    )
    log.info(
        "%s %s: PR-AUC %.4f (baseline %.4f), ROC-AUC %.4f, best F1 %.3f at %.2f, IoU@%.2f %.3f",
        config.name,
        cfg.split,
        metrics["pr_auc"],
        metrics["positive_fraction"],
        metrics["roc_auc"],
        metrics["best_f1"],
        metrics["best_f1_threshold"],
        cfg.threshold,
        metrics["iou"],
    )
    return metrics
