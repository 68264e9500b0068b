"""Requests for a served model of ours, for clients: REST JSON bodies and gRPC PredictRequests.

Importing this module loads neither TensorFlow nor the serving graph: a client that only builds
REST bodies needs numpy alone, and the gRPC builders import TensorFlow (for its tensor protos) and
tensorflow-serving-api when called.

Missing values over REST: TF Serving's JSON parser accepts the non-standard ``NaN`` token (Python's
``json.dumps`` writes it), but strict JSON encoders refuse it (``requests.post(json=...)`` among
them). Sending the channel's training mean instead gives exactly the same prediction, since it
standardises to 0 like NaN does: ``rest_request_body(..., missing="mean")``. The means are in
``assets.extra/tf_landslide.json``."""

from __future__ import annotations

import json

import numpy as np

from tf_landslide.serving.contract import INPUT_CHANNELS, INPUT_EXAMPLES, PREDICT_EXAMPLES, SERVING_DEFAULT

MISSING_MODES = ("nan", "mean")


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
