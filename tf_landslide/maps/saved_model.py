"""Maps from a SavedModel alone: the artifact we deploy, without the run folder or segmentation-models.

The SavedModel standardises raw channels in its own graph and says in ``assets.extra/
tf_landslide.json`` which channels, timesteps and normalisation it was exported with and the
operating threshold its run chose; that is all a map needs from a model (``model_inputs``).
The test chips of the run's export are not known from it, so a map made this way scores the
whole scene only.
"""

from __future__ import annotations

from tf_landslide import storage
from tf_landslide.cube.channels import study_configs
from tf_landslide.model_folder import resolve_threshold
from tf_landslide.serving.contract import ASSETS_EXTRA, INPUT_CHANNELS, OUTPUT, PROVENANCE_FILE, SERVING_DEFAULT


def read_provenance(saved_model: str) -> dict:
    path = storage.join(saved_model, ASSETS_EXTRA, PROVENANCE_FILE)
    if not storage.exists(path):
        raise FileNotFoundError(
            f"{saved_model} is not a SavedModel exported by tf_landslide (no {ASSETS_EXTRA}/{PROVENANCE_FILE}): "
            "export one with export_savedmodel.py, or map with --model_dir"
        )
    return storage.read_json(path)


def model_inputs(saved_model: str) -> dict:
    """What a map reads from a run's manifest, from the SavedModel's provenance instead."""
    provenance = read_provenance(saved_model)
    name = provenance["config"]
    timesteps = provenance.get("timesteps")
    if timesteps is None:  # exported before the provenance named them: the study's configurations do
        timesteps = study_configs()[name].timesteps
    return {
        "config": {"name": name, "channels": provenance["channels"], "timesteps": timesteps},
        "channels": provenance["channels"],
        "chip_size": provenance["chip_size"],
        "normalisation": provenance["normalisation"],
        "cube": {},  # unknown: never the same cube as training, so no test-chip scores
        "splits": {"test": {"locations": []}},
    }


def operating_threshold(saved_model: str, given: float | None) -> tuple[float, str]:
    """``given`` (a flag) wins, then the threshold the SavedModel carries, then the default."""
    chosen = read_provenance(saved_model).get("operating_threshold")
    return resolve_threshold(given, chosen, "the SavedModel's", "the SavedModel carries no choice")


def saved_model_predictor(saved_model: str):
    """raw channels [N, H, W, C] -> probability [N, H, W] through the SavedModel's serving_default."""
    import tensorflow as tf

    serve = tf.saved_model.load(saved_model).signatures[SERVING_DEFAULT]
    return lambda windows: serve(**{INPUT_CHANNELS: tf.constant(windows, tf.float32)})[OUTPUT].numpy()[..., 0]
