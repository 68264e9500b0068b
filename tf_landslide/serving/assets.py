"""A SavedModel's ``assets.extra``: the warm-up requests TF Serving runs when it loads a version (one
PredictionLog per signature, zero-filled chips; skipped with a warning when tensorflow-serving-api is
not installed), and ``tf_landslide.json``, the provenance (channels, normalisation, chip size,
configuration, model directory, checkpoint and its SHA-256, the self-check's error)."""

from __future__ import annotations

import datetime
import logging
import os

import numpy as np
import tensorflow as tf

import tf_landslide
from tf_landslide import data, model_folder, records, storage
from tf_landslide.serving import contract
from tf_landslide.serving.payloads import grpc_examples_request, grpc_predict_request

log = logging.getLogger("tf_landslide.serving")


def write_assets_extra(
    folder: str, model_dir: str, which: str, manifest: dict, version: int | None, self_check: float
) -> None:
    """The warm-up requests and the provenance into ``<folder>/assets.extra`` (``folder`` local)."""
    assets = os.path.join(folder, contract.ASSETS_EXTRA)
    os.makedirs(assets, exist_ok=True)
    write_warmup(assets, manifest, manifest["config"]["name"])
    storage.write_json(
        os.path.join(assets, contract.PROVENANCE_FILE), provenance(model_dir, which, manifest, version, self_check)
    )


def write_warmup(folder: str | os.PathLike, manifest: dict, model_name: str) -> bool:
    """Warm-up requests into the local folder ``folder`` (False when tensorflow-serving-api is missing)."""
    try:
        from tensorflow_serving.apis import prediction_log_pb2
    except ImportError:
        log.warning(
            "tensorflow-serving-api is not installed: no warm-up requests written "
            "(pip install 'tf_landslide[serving]' to get them)"
        )
        return False

    chip, channels, dtype = manifest["chip_size"], tuple(manifest["channels"]), manifest["records"]["dtype"]
    zeros = np.zeros((1, chip, chip, len(channels)), np.float32)
    example = records.encode_example(
        zeros[0].astype(dtype), np.zeros((chip, chip), np.uint8), channels, 0, 0, (0.0, 0.0), "test"
    )
    requests = [grpc_predict_request(zeros, model_name), grpc_examples_request([example], model_name)]
    os.makedirs(folder, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(folder, contract.WARMUP_FILE)) as writer:
        for request in requests:
            entry = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(entry.SerializeToString())
    return True


def provenance(model_dir: str, which: str, manifest: dict, version: int | None, self_check: float) -> dict:
    """What the export was made from and what its signatures take, for ``tf_landslide.json``."""
    mean, std = data.normalisation(manifest)
    saved = model_folder.read_train_config(model_dir)
    weights = model_folder.weights_path(model_dir, which)
    return {
        "version": version,
        "exported_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": manifest["config"]["name"],
        "timesteps": manifest["config"]["timesteps"],
        "channels": list(manifest["channels"]),
        "chip_size": manifest["chip_size"],
        "record_dtype": manifest["records"]["dtype"],
        "spatial_multiple": contract.MULTIPLE,
        "normalisation": {
            **manifest["normalisation"],
            "mean_used": [float(v) for v in mean],
            "std_used": [float(v) for v in std],
            "applied": "(x - mean_used) / std_used per channel, then NaN -> 0, inside the graph",
        },
        "model": saved["model"],
        "model_dir": storage.absolute(model_dir),
        "checkpoint": which,
        "weights_file": storage.basename(weights),
        "weights_sha256": storage.sha256(weights),
        "self_check_max_abs_error": self_check,
        # Where a client should cut the probabilities: the run's choice on its validation split.
        "operating_threshold": model_folder.read_threshold(model_dir)
        or {"threshold": model_folder.DEFAULT_THRESHOLD, "rule": "default", "note": "the run chose none"},
        "signatures": _signatures(manifest),
        "tf_landslide_version": tf_landslide.__version__,
        "tensorflow_version": tf.__version__,
    }


def _signatures(manifest: dict) -> dict:
    chip, n_channels = manifest["chip_size"], len(manifest["channels"])
    return {
        contract.SERVING_DEFAULT: {
            "inputs": {contract.INPUT_CHANNELS: f"float32 [N, H, W, {n_channels}] raw values, NaN = missing"},
            "outputs": {contract.OUTPUT: "float32 [N, H, W, 1]"},
        },
        contract.PREDICT_EXAMPLES: {
            "inputs": {contract.INPUT_EXAMPLES: "string [N] serialised tf.train.Example (tf_landslide records)"},
            "outputs": {contract.OUTPUT: f"float32 [N, {chip}, {chip}, 1]"},
        },
    }
