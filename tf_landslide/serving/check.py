"""The export's self-check: the serving graph must reproduce the trained Keras model on a raw chip
with missing values, to float32 round-off, or the export stops before anything is published."""

from __future__ import annotations

import numpy as np

from tf_landslide import data
from tf_landslide.serving.contract import OUTPUT, ServingExportError

# The SavedModel's graph must reproduce the Keras model to float32 round-off: within SELF_CHECK_ATOL, or
# within ROUND_OFF_FACTOR times the model's own response to a one-step change of its input (self_check).
SELF_CHECK_ATOL = 1e-4
ROUND_OFF_FACTOR = 10


def self_check(serve, trained, manifest: dict) -> float:
    """Max |SavedModel graph(raw) - Keras model(standardise(raw))| on a chip with NaN.

    Two correct computations of one network differ by round-off (a graph fuses and orders
    operations differently from eager Keras), and how far round-off carries depends on the
    weights: a model trained briefly at a high rate can have logits in the hundreds, where
    float32's last bit moves a probability by 1e-4. So the bound is SELF_CHECK_ATOL or, when
    larger, ROUND_OFF_FACTOR times how far the Keras model's output moves when its input moves
    by one float32 step; a wrong statistic, channel order or weight moves it by orders more.
    """
    mean, std = data.normalisation(manifest)
    chip, n_channels = manifest["chip_size"], len(manifest["channels"])
    rng = np.random.default_rng(0)
    raw = (mean + std * rng.normal(size=(1, chip, chip, n_channels))).astype(np.float32)
    raw[rng.random(raw.shape) < 0.05] = np.nan
    served = serve(channels=raw)[OUTPUT].numpy()
    standardised = data.standardise(raw, mean, std)
    expected = trained(standardised, training=False).numpy()
    error = float(np.max(np.abs(served - expected)))
    round_off = max(
        float(np.max(np.abs(trained(np.nextafter(standardised, limit), training=False).numpy() - expected)))
        for limit in (np.float32(np.inf), np.float32(-np.inf))
    )
    bound = max(SELF_CHECK_ATOL, ROUND_OFF_FACTOR * round_off)
    if not error <= bound:
        raise ServingExportError(
            f"the serving graph differs from the trained model by {error:.2e} (> {bound:.2e}; a one-step change "
            f"of the model's float32 input moves its output by {round_off:.2e})"
        )
    return error
