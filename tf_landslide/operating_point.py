"""The run's operating threshold, chosen on the validation split after training.

A model's probabilities are not calibrated to 0.5: a well-trained model can have its best F1 far
below it, and a map cut at 0.5 then misses most landslides. The threshold is chosen on the
validation split (never the test split, which stays for reporting) by a rule
(``metrics.parse_threshold_rule``), stored in the model folder, and used by evaluation, maps and
the SavedModel's assets unless ``--threshold`` overrides it.
"""

from __future__ import annotations

import logging

from tf_landslide import data, model_folder
from tf_landslide.config import InputConfig
from tf_landslide.metrics import PixelCurve

log = logging.getLogger("tf_landslide.train")
SPLIT = "val"


def choose(model_dir: str, manifest: dict, folder: str, batching: InputConfig, rule: str) -> dict:
    """Predict the validation split with the run's best weights, pick the threshold ``rule`` asks
    for, write it into the model folder and return it (the default when the split cannot choose)."""
    chips = manifest["splits"].get(SPLIT, {}).get("chips", 0)
    if not chips:
        return _fallback(model_dir, rule, f"the export has no {SPLIT} chips")
    model = model_folder.load_trained_model(model_dir, "best")
    curve = PixelCurve()
    for image, label in data.make_dataset(manifest, folder, SPLIT, batching, training=False):
        curve.update(model(image, training=False).numpy(), label.numpy())
    try:
        chosen = curve.operating_point(rule) | {"asked": rule, "split": SPLIT, "chips": chips}
    except ValueError as error:  # no landslide pixel, or a precision no threshold reaches
        return _fallback(model_dir, rule, str(error))
    model_folder.write_threshold(model_dir, chosen)
    log.info(
        "operating threshold %.3f (%s on %d %s chips: precision %.3f, recall %.3f, F1 %.3f)",
        chosen["threshold"],
        rule,
        chips,
        SPLIT,
        chosen["precision"],
        chosen["recall"],
        chosen["f1"],
    )
    return chosen


def _fallback(model_dir: str, rule: str, why: str) -> dict:
    chosen = {
        "threshold": model_folder.DEFAULT_THRESHOLD,
        "rule": "default",
        "asked": rule,
        "split": SPLIT,
        "note": why,
    }
    model_folder.write_threshold(model_dir, chosen)
    log.warning("operating threshold %g: %s could not choose one (%s)", chosen["threshold"], rule, why)
    return chosen
