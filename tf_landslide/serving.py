"""SavedModels for TensorFlow Serving (and anything else that loads a SavedModel).

``export_saved_model(model_dir, export_dir)`` writes ``<export_dir>/<version>/``, a SavedModel
that needs nothing but TensorFlow to run: no tf_landslide, no segmentation-models, no Keras.

Signatures (``saved_model_cli show --dir <export_dir>/<version> --all`` lists them):

* ``serving_default``: ``channels`` float32 [N, H, W, C], the configuration's channels as the
  records hold them, *before* standardisation (log backscatter, DEM values...; NaN = missing),
  H and W any positive multiple of 32 -> ``probability`` float32 [N, H, W, 1]. The graph
  standardises with the training manifest's statistics and sets NaN to 0, exactly as the
  training input pipeline does (``data.standardise``). Infinite values are refused: send NaN.
* ``predict_examples``: ``examples`` string [N], serialised ``tf.train.Example`` records in
  the export's format (``records.py``; the ``label`` and location features may be absent),
  chips of the export's size, channel count and record dtype -> ``probability`` as above.

Missing values over REST: TF Serving's JSON parser accepts the non-standard ``NaN`` token
(Python's ``json.dumps`` writes it), but strict JSON encoders refuse it (``requests.post(json=...)``
among them). Sending the channel's training mean instead gives exactly the same prediction,
since it standardises to 0 like NaN does: ``rest_request_body(..., missing="mean")``. The
means are in ``assets.extra/tf_landslide.json``.

The version folder is written under a temporary (non-numeric) name and renamed when complete,
so a TF Serving instance polling ``export_dir`` never loads a half-written version. On a URL
(``gs://...``) the version is written locally and uploaded file by file, ``saved_model.pb``
last: TF Serving loads a version only once that file exists.

``export_flat(model_dir, target)`` writes the SavedModel files directly into ``target`` (no
version folder), as Vertex AI's model upload and its prebuilt TensorFlow serving containers
expect of a model's artifact folder (``AIP_MODEL_DIR``); again ``saved_model.pb`` comes last. It holds
``assets.extra/tf_serving_warmup_requests`` (one PredictionLog per signature, zero-filled
chips; skipped with a warning when tensorflow-serving-api is not installed) and
``assets.extra/tf_landslide.json`` (provenance: channels, normalisation, chip size,
configuration, model directory, checkpoint and its SHA-256).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shutil
from collections.abc import Iterator

import numpy as np

import tf_landslide
from tf_landslide import data, model_folder, records, storage

log = logging.getLogger("tf_landslide.serving")

MULTIPLE = 32  # a U-Net halves H and W five times
SERVING_DEFAULT, PREDICT_EXAMPLES = "serving_default", "predict_examples"
INPUT_CHANNELS, INPUT_EXAMPLES, OUTPUT = "channels", "examples", "probability"
ASSETS_EXTRA = "assets.extra"
WARMUP_FILE, PROVENANCE_FILE = "tf_serving_warmup_requests", "tf_landslide.json"
SAVED_MODEL_PB = "saved_model.pb"  # TF Serving (and Vertex AI) take a folder holding it as a complete model
CHECKPOINTS = ("best", "last")
MISSING_MODES = ("nan", "mean")
# The SavedModel's graph must reproduce the Keras model to float32 round-off: within SELF_CHECK_ATOL, or
# within ROUND_OFF_FACTOR times the model's own response to a one-step change of its input (_self_check).
SELF_CHECK_ATOL = 1e-4
ROUND_OFF_FACTOR = 10


class ServingExportError(ValueError):
    """The export cannot be made as asked (bad version, existing version, bad checkpoint)."""


# --- versions ------------------------------------------------------------------------------


def existing_versions(export_dir: str | os.PathLike) -> list[int]:
    """The numeric version folders of ``export_dir`` (what TF Serving would load), sorted."""
    return sorted(
        int(name)
        for name in storage.listdir(export_dir)
        if name.isdigit() and storage.isdir(storage.join(export_dir, name))
    )


def next_version(export_dir: str | os.PathLike) -> int:
    versions = existing_versions(export_dir)
    return versions[-1] + 1 if versions else 1


def _version_dir(export_dir: str, version: int | None) -> tuple[str, int]:
    if version is None:
        version = next_version(export_dir)
    elif isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ServingExportError(f"--version={version!r} must be a positive integer")
    target = storage.join(export_dir, str(version))
    # Any existing entry of that name, numeric padding aside ("01" is version 1 for TF Serving).
    if storage.exists(target) or version in existing_versions(export_dir):
        raise ServingExportError(
            f"version {version} already exists in {export_dir}: versions are never overwritten; "
            f"omit --version to write version {next_version(export_dir)}, or delete the old one"
        )
    return target, version


# --- the serving graph ----------------------------------------------------------------------


def _serving_module(model, manifest: dict):
    """A tf.Module holding the model's variables and the two signature functions."""
    import tensorflow as tf

    channels = tuple(manifest["channels"])
    n_channels, chip, dtype = len(channels), int(manifest["chip_size"]), manifest["records"]["dtype"]
    mean, std = data.normalisation(manifest)

    def probability(raw):
        # Neither a loaded signature nor TF Serving checks a float32 input's shape against the
        # signature at run time: the graph does, layout first, then the size, then the values.
        shape = tf.shape(raw)
        dims = tf.concat([shape, tf.zeros([4], tf.int32)], axis=0)  # rank < 4 must not break indexing
        layout_check = tf.debugging.Assert(
            tf.logical_and(tf.size(shape) == 4, dims[3] == n_channels),
            [
                f"{INPUT_CHANNELS} must be float32 [N, H, W, {n_channels}] ({', '.join(channels)}); got shape",
                shape,
            ],
            summarize=8,  # the whole shape (Assert shows 3 values by default)
        )
        with tf.control_dependencies([layout_check]):
            height, width = tf.identity(dims[1]), tf.identity(dims[2])
        size_ok = tf.reduce_all(
            [height > 0, width > 0, tf.math.floormod(height, MULTIPLE) == 0, tf.math.floormod(width, MULTIPLE) == 0]
        )
        size_check = tf.debugging.Assert(
            size_ok,
            [
                f"{INPUT_CHANNELS}: height and width must be positive multiples of {MULTIPLE} "
                f"(the U-Net halves them 5 times); got height, width =",
                height,
                width,
            ],
        )
        with tf.control_dependencies([size_check]):
            finite_check = tf.debugging.Assert(
                tf.logical_not(tf.reduce_any(tf.math.is_inf(raw))),
                [f"{INPUT_CHANNELS} holds infinite values: send NaN for a missing value"],
            )
        with tf.control_dependencies([layout_check, size_check, finite_check]):
            raw = tf.identity(raw)
        return {OUTPUT: model(data.standardise(raw, mean, std), training=False)}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, n_channels], tf.float32, name=INPUT_CHANNELS)])
    def serve(channels):
        return probability(channels)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_EXAMPLES)])
    def predict_examples(examples):
        spec = records.feature_spec()
        parsed = tf.io.parse_example(
            examples,
            {
                records.IMAGE: spec[records.IMAGE],
                records.SHAPE: tf.io.FixedLenFeature([3], tf.int64, default_value=[chip, chip, n_channels]),
                records.DTYPE: tf.io.FixedLenFeature([], tf.string, default_value=dtype),
                records.CHANNELS: tf.io.RaggedFeature(tf.string),
            },
        )
        names = parsed[records.CHANNELS]
        same_channels = tf.logical_or(
            names.row_lengths() == 0, tf.strings.reduce_join(names, axis=1, separator=",") == ",".join(channels)
        )
        checks = [
            tf.debugging.Assert(
                tf.reduce_all(parsed[records.SHAPE] == [chip, chip, n_channels]),
                [f"{INPUT_EXAMPLES}: this model takes {chip} x {chip} x {n_channels} chips; a record's shape is"]
                + [parsed[records.SHAPE]],
            ),
            tf.debugging.Assert(
                tf.reduce_all(parsed[records.DTYPE] == dtype),
                [
                    f"{INPUT_EXAMPLES}: this model's records hold {dtype} values; a record's dtype is",
                    parsed[records.DTYPE],
                ],
                summarize=3,
            ),
            tf.debugging.Assert(
                tf.reduce_all(same_channels),
                [
                    f"{INPUT_EXAMPLES}: this model takes channels {','.join(channels)}; a record holds",
                    names.flat_values,
                ],
                summarize=3 * n_channels,
            ),
        ]
        with tf.control_dependencies(checks):
            image = tf.io.decode_raw(parsed[records.IMAGE], tf.dtypes.as_dtype(dtype), little_endian=True)
        image = tf.reshape(image, [-1, chip, chip, n_channels])
        return probability(tf.cast(image, tf.float32))

    module = tf.Module(name="tf_landslide_serving")
    # Only the variables are tracked, not the Keras model: the SavedModel then holds the two
    # signatures and nothing that needs Keras (and saving skips tracing every Keras layer).
    module.model_variables = list(model.variables)
    module.serve, module.predict_examples = serve, predict_examples
    return module


def _serving_model(model_dir: str, which: str, manifest: dict):
    """The trained model rebuilt with free spatial dimensions (None, None, C), and the trained
    fixed-size model (for the self-check)."""
    return model_folder.load_trained_model(model_dir, which, size=None), model_folder.load_trained_model(
        model_dir, which
    )


def _self_check(serve, trained, manifest: dict) -> float:
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


# --- assets.extra ---------------------------------------------------------------------------


def grpc_predict_request(chips, model_name: str = "", signature_name: str = SERVING_DEFAULT):
    """A tensorflow_serving PredictRequest for ``serving_default``: ``chips`` float32 [N, H, W, C]
    of raw channel values (NaN allowed: protobuf carries it)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    request.inputs[INPUT_CHANNELS].CopyFrom(tf.make_tensor_proto(np.asarray(chips, np.float32)))
    return request


def grpc_examples_request(examples: list[bytes], model_name: str = ""):
    """A PredictRequest for ``predict_examples``: serialised tf.train.Example records."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = PREDICT_EXAMPLES
    request.inputs[INPUT_EXAMPLES].CopyFrom(tf.make_tensor_proto(list(examples), dtype=tf.string))
    return request


def rest_request_body(
    chips, columnar: bool = False, missing: str = "nan", mean=None, signature_name: str = SERVING_DEFAULT
) -> str:
    """The JSON body of a TF Serving REST predict request for ``chips`` [N, H, W, C] raw values.

    ``columnar=False`` gives the row form (``instances``: one [H][W][C] list per chip),
    ``True`` the columnar form (``inputs``: {"channels": [N][H][W][C]}). Missing values:
    ``missing="nan"`` writes the ``NaN`` token, which TF Serving accepts but strict JSON does
    not; ``missing="mean"`` writes the channel's training ``mean`` (the provenance file's
    ``normalisation.mean_used``) instead, which gives the same prediction and is strict JSON.
    """
    values = np.asarray(chips, np.float32)
    if values.ndim != 4:
        raise ValueError(f"chips must be [N, H, W, C]; got shape {values.shape}")
    if missing not in MISSING_MODES:
        raise ValueError(f"missing={missing!r}; choose one of {list(MISSING_MODES)}")
    if missing == "mean":
        if mean is None:
            raise ValueError("missing='mean' needs the per-channel training mean")
        values = np.where(np.isnan(values), np.asarray(mean, np.float32), values)
    # float32 -> Python float is exact, and repr round-trips: the server parses the same float32.
    payload = values.tolist()
    body = {"signature_name": signature_name}
    body.update({"inputs": {INPUT_CHANNELS: payload}} if columnar else {"instances": payload})
    return json.dumps(body, allow_nan=missing == "nan")


def _write_warmup(folder: str | os.PathLike, manifest: dict, model_name: str) -> bool:
    """Warm-up requests into the local folder ``folder`` (False when tensorflow-serving-api is missing)."""
    try:
        from tensorflow_serving.apis import prediction_log_pb2
    except ImportError:
        log.warning(
            "tensorflow-serving-api is not installed: no warm-up requests written "
            "(pip install 'tf_landslide[serving]' to get them)"
        )
        return False
    import tensorflow as tf

    chip, channels, dtype = manifest["chip_size"], tuple(manifest["channels"]), manifest["records"]["dtype"]
    zeros = np.zeros((1, chip, chip, len(channels)), np.float32)
    example = records.encode_example(
        zeros[0].astype(dtype), np.zeros((chip, chip), np.uint8), channels, 0, 0, (0.0, 0.0), "test"
    )
    requests = [grpc_predict_request(zeros, model_name), grpc_examples_request([example], model_name)]
    os.makedirs(folder, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(folder, WARMUP_FILE)) as writer:
        for request in requests:
            entry = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(entry.SerializeToString())
    return True


def _provenance(model_dir: str, which: str, manifest: dict, version: int | None, self_check: float) -> dict:
    import tensorflow as tf

    mean, std = data.normalisation(manifest)
    saved = model_folder.read_train_config(model_dir)
    weights = model_folder.weights_path(model_dir, which)
    return {
        "version": version,
        "exported_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": manifest["config"]["name"],
        "channels": list(manifest["channels"]),
        "chip_size": manifest["chip_size"],
        "record_dtype": manifest["records"]["dtype"],
        "spatial_multiple": MULTIPLE,
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
        "signatures": {
            SERVING_DEFAULT: {
                "inputs": {INPUT_CHANNELS: f"float32 [N, H, W, {len(manifest['channels'])}] raw values, NaN = missing"},
                "outputs": {OUTPUT: "float32 [N, H, W, 1]"},
            },
            PREDICT_EXAMPLES: {
                "inputs": {INPUT_EXAMPLES: "string [N] serialised tf.train.Example (tf_landslide records)"},
                "outputs": {OUTPUT: f"float32 [N, {manifest['chip_size']}, {manifest['chip_size']}, 1]"},
            },
        },
        "tf_landslide_version": tf_landslide.__version__,
        "tensorflow_version": tf.__version__,
    }


# --- the export -----------------------------------------------------------------------------


def _check_checkpoint(which: str) -> None:
    if which not in CHECKPOINTS:
        raise ServingExportError(f"--checkpoint={which!r}; choose one of {list(CHECKPOINTS)}")


def _trained_manifest(model_dir: str) -> dict:
    if not model_folder.holds_run(model_dir):
        raise FileNotFoundError(f"no trained model in {model_dir} ({model_folder.TRAIN_CONFIG} missing)")
    return model_folder.read_manifest(model_dir)


def _write_saved_model(model_dir: str, which: str, manifest: dict, folder: str, version: int | None) -> float:
    """The SavedModel and its assets.extra into the local folder ``folder``; the self-check's error."""
    import tensorflow as tf

    model, trained = _serving_model(model_dir, which, manifest)
    module = _serving_module(model, manifest)
    signatures = {
        SERVING_DEFAULT: module.serve.get_concrete_function(),
        PREDICT_EXAMPLES: module.predict_examples.get_concrete_function(),
    }
    error = _self_check(signatures[SERVING_DEFAULT], trained, manifest)
    tf.saved_model.save(module, folder, signatures=signatures)
    assets = os.path.join(folder, ASSETS_EXTRA)
    os.makedirs(assets, exist_ok=True)
    _write_warmup(assets, manifest, manifest["config"]["name"])
    provenance = _provenance(model_dir, which, manifest, version, error)
    storage.write_json(os.path.join(assets, PROVENANCE_FILE), provenance)
    return error


@contextlib.contextmanager
def _staged(model_dir: str, which: str, target: str, version: int | None) -> Iterator[str]:
    """The SavedModel of ``model_dir`` written into a local staging folder for ``target``: the
    block publishes it; the folder is removed afterwards, and a published export logged."""
    manifest = _trained_manifest(model_dir)
    partial = storage.staging_beside(target)
    try:
        error = _write_saved_model(model_dir, which, manifest, partial, version)
        yield partial
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log.info(
        "exported %s (%s checkpoint of %s) to %s; serving graph vs Keras max abs difference %.1e",
        manifest["config"]["name"],
        which,
        model_dir,
        target,
        error,
    )


def export_saved_model(
    model_dir: str | os.PathLike, export_dir: str | os.PathLike, version: int | None = None, which: str = "best"
) -> str:
    """Write the trained model of ``model_dir`` as ``<export_dir>/<version>/``; return that folder.

    ``version`` defaults to one more than the highest existing numeric version (1 at first);
    an existing version is an error, never overwritten. ``which`` is the checkpoint: 'best'
    (validation PR-AUC) or 'last'. Both folders may be URLs.
    """
    _check_checkpoint(which)
    model_dir, export_dir = os.fspath(model_dir), os.fspath(export_dir)
    target, version = _version_dir(export_dir, version)
    with _staged(model_dir, which, target, version) as partial:
        appeared = ServingExportError(f"version {version} appeared in {export_dir} during the export")
        local_target = storage.local_path(target)
        if local_target is not None:
            try:
                # Fails if another export created the version meanwhile (a non-empty folder).
                os.rename(partial, local_target)
            except OSError as rename_error:
                raise appeared from rename_error
        else:
            if storage.exists(target):
                raise appeared
            storage.upload_tree(partial, target, last=(SAVED_MODEL_PB,))
    return target


def export_flat(model_dir: str | os.PathLike, target: str | os.PathLike, which: str = "best") -> str:
    """Write the trained model of ``model_dir`` as a SavedModel directly into the folder ``target``
    (``target/saved_model.pb``, ``target/variables/``...; no version folder), as Vertex AI's model
    upload expects of ``AIP_MODEL_DIR``. ``target`` may already hold other files (the run's own,
    when it is the model folder): their names do not collide. ``saved_model.pb`` is published
    last; a folder that already holds one is an error."""
    _check_checkpoint(which)
    model_dir, target = os.fspath(model_dir), os.fspath(target)
    if storage.exists(storage.join(target, SAVED_MODEL_PB)):
        raise ServingExportError(f"{target} already holds a SavedModel: delete it or export elsewhere")
    with _staged(model_dir, which, target, None) as partial:
        local_target = storage.local_path(target)
        if local_target is not None:
            os.makedirs(local_target, exist_ok=True)
            for name in sorted(os.listdir(partial), key=lambda entry: entry == SAVED_MODEL_PB):
                destination = os.path.join(local_target, name)
                if os.path.isdir(destination):  # left by an export that died before its saved_model.pb
                    shutil.rmtree(destination)
                os.replace(os.path.join(partial, name), destination)
        else:
            storage.upload_tree(partial, target, last=(SAVED_MODEL_PB,))
    return target
