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

Beside them, ``assets.extra/`` holds ``tf_serving_warmup_requests`` (one PredictionLog per
signature, zero-filled chips; skipped with a warning when tensorflow-serving-api is not installed)
and ``tf_landslide.json`` (provenance: channels, normalisation, chip size, configuration, model
directory, checkpoint and its SHA-256).

The version folder is written under a temporary (non-numeric) name and renamed when complete,
so a TF Serving instance polling ``export_dir`` never loads a half-written version. On a URL
(``gs://...``) the version is written locally and uploaded file by file, ``saved_model.pb``
last: TF Serving loads a version only once that file exists.

``export_flat(model_dir, target)`` writes the SavedModel files directly into ``target`` (no
version folder), as Vertex AI's model upload and its prebuilt TensorFlow serving containers
expect of a model's artifact folder (``AIP_MODEL_DIR``); again ``saved_model.pb`` comes last.

The files:

* ``__init__.py`` (here): the export itself, in order: load the model, build the graph, check
  it, save it with its assets into a staging folder, publish that folder.
* ``contract.py``: the signature, tensor and file names, the spatial multiple, the export's error.
* ``signatures.py``: the tf.Module with the two signature functions and their input checks.
* ``check.py``: the self-check of the graph against the Keras model (``SELF_CHECK_ATOL``).
* ``assets.py``: ``assets.extra``, the warm-up requests and the provenance JSON.
* ``versions.py``: the version folders (existing, next) and publishing a staged folder.
* ``payloads.py``: REST bodies and gRPC requests for clients (missing values over REST there),
  serialised Examples as ``{"b64": ...}``, and the requests' sizes against Vertex AI's limit.

Only ``signatures.py`` and ``assets.py`` import TensorFlow at their top; the export imports them
when it runs, so that importing this package (train_lib does, and clients building requests) loads
no TensorFlow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator

from tf_landslide import model_folder, storage
from tf_landslide.serving.check import ROUND_OFF_FACTOR, SELF_CHECK_ATOL, self_check
from tf_landslide.serving.contract import (
    ASSETS_EXTRA,
    INPUT_CHANNELS,
    INPUT_EXAMPLES,
    MULTIPLE,
    OUTPUT,
    PREDICT_EXAMPLES,
    PROVENANCE_FILE,
    SAVED_MODEL_PB,
    SERVING_DEFAULT,
    WARMUP_FILE,
    ServingExportError,
)
from tf_landslide.serving.payloads import (
    MISSING_MODES,
    VERTEX_ONLINE_LIMIT_BYTES,
    chip_examples,
    grpc_examples_request,
    grpc_predict_request,
    rest_examples_body,
    rest_request_body,
)
from tf_landslide.serving.versions import existing_versions, next_version, publish_flat, publish_version, version_dir

__all__ = [
    "ASSETS_EXTRA",
    "CHECKPOINTS",
    "INPUT_CHANNELS",
    "INPUT_EXAMPLES",
    "MISSING_MODES",
    "MULTIPLE",
    "OUTPUT",
    "PREDICT_EXAMPLES",
    "PROVENANCE_FILE",
    "ROUND_OFF_FACTOR",
    "SAVED_MODEL_PB",
    "SELF_CHECK_ATOL",
    "SERVING_DEFAULT",
    "VERTEX_ONLINE_LIMIT_BYTES",
    "WARMUP_FILE",
    "ServingExportError",
    "chip_examples",
    "existing_versions",
    "export_flat",
    "export_saved_model",
    "grpc_examples_request",
    "grpc_predict_request",
    "next_version",
    "rest_examples_body",
    "rest_request_body",
]

log = logging.getLogger("tf_landslide.serving")

CHECKPOINTS = ("best", "last")


def _check_checkpoint(which: str) -> None:
    if which not in CHECKPOINTS:
        raise ServingExportError(f"--checkpoint={which!r}; choose one of {list(CHECKPOINTS)}")


def _trained_manifest(model_dir: str) -> dict:
    if not model_folder.holds_run(model_dir):
        raise FileNotFoundError(f"no trained model in {model_dir} ({model_folder.TRAIN_CONFIG} missing)")
    return model_folder.read_manifest(model_dir)


def _serving_model(model_dir: str, which: str, manifest: dict):
    """The trained model rebuilt with free spatial dimensions (None, None, C), and the trained
    fixed-size model (for the self-check)."""
    return model_folder.load_trained_model(model_dir, which, size=None), model_folder.load_trained_model(
        model_dir, which
    )


def _write_saved_model(model_dir: str, which: str, manifest: dict, folder: str, version: int | None) -> float:
    """The SavedModel and its assets.extra into the local folder ``folder``; the self-check's error."""
    # Here, not at the top: these load TensorFlow, which importing the package must not.
    import tensorflow as tf

    from tf_landslide.serving import assets, signatures

    model, trained = _serving_model(model_dir, which, manifest)
    module = signatures.serving_module(model, manifest)
    concrete = {
        SERVING_DEFAULT: module.serve.get_concrete_function(),
        PREDICT_EXAMPLES: module.predict_examples.get_concrete_function(),
    }
    error = self_check(concrete[SERVING_DEFAULT], trained, manifest)
    tf.saved_model.save(module, folder, signatures=concrete)
    assets.write_assets_extra(folder, model_dir, which, manifest, version, error)
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
    target, version = version_dir(export_dir, version)
    with _staged(model_dir, which, target, version) as partial:
        publish_version(partial, target, export_dir, version)
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
        publish_flat(partial, target)
    return target
