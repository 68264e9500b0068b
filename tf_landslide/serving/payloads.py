"""Requests for a served model of ours, for clients: REST JSON bodies and gRPC PredictRequests.

Importing this module loads neither TensorFlow nor the serving graph: a client that only builds
REST bodies needs numpy (and, for records, google-crc32c, which ``records`` imports), and the gRPC
builders import TensorFlow (for its tensor protos) and tensorflow-serving-api when called.

Missing values over REST: TF Serving's JSON parser accepts the non-standard ``NaN`` token (Python's
``json.dumps`` writes it), but strict JSON encoders refuse it (``requests.post(json=...)`` among
them). Sending the channel's training mean instead gives exactly the same prediction, since it
standardises to 0 like NaN does: ``rest_request_body(..., missing="mean")``. The means are in
``assets.extra/tf_landslide.json``.

Serialised Examples over REST: ``chip_examples`` turns raw chips into records of the export's format
(``records.encode_image_example``, values rounded to the record dtype as the export rounds them) and
``rest_examples_body`` wraps them in TF Serving's encoding of binary strings, ``{"b64": ...}``, for
the ``predict_examples`` signature: in float16 records, a seventh of the bytes of the chip's JSON numbers.

Request sizes: ``request_bytes`` measures the body (REST) or message (gRPC) of each ``ENCODINGS``
entry for given chips; ``chips_per_request`` is how many chips like a given one fit under a limit,
by default Vertex AI's online prediction limit ``VERTEX_ONLINE_LIMIT_BYTES``; ``size_table`` is the
README's table of both."""

from __future__ import annotations

import base64
import json

import numpy as np

from tf_landslide import records
from tf_landslide.serving.contract import INPUT_CHANNELS, INPUT_EXAMPLES, PREDICT_EXAMPLES, SERVING_DEFAULT

MISSING_MODES = ("nan", "mean")
# Google documents Vertex AI's online prediction payload limit as "1.5MB" (`gcloud ai endpoints
# predict` reference: "the payload limit size (currently, 1.5MB)"). Read as 1,500,000 bytes, the
# smaller of the two readings (not 1.5 * 2**20): a body under it is under either.
VERTEX_ONLINE_LIMIT_BYTES = 1_500_000
# Compact JSON: the default ", " and ": " separators add a byte to every number of a chip.
_COMPACT = (",", ":")

# The requests a client can send, by name: how it is carried, its signature, the chips' form.
ENCODINGS = {
    "json_instances": ("REST JSON, row form (`instances`)", SERVING_DEFAULT, "float32 numbers"),
    "json_columnar": ("REST JSON, columnar form (`inputs`)", SERVING_DEFAULT, "float32 numbers"),
    "json_examples_float16": ('REST JSON, `{"b64": ...}` Examples', PREDICT_EXAMPLES, "float16 records"),
    "json_examples_float32": ('REST JSON, `{"b64": ...}` Examples', PREDICT_EXAMPLES, "float32 records"),
    "grpc_tensor": ("gRPC PredictRequest, tensor", SERVING_DEFAULT, "float32 tensor"),
    "grpc_examples_float16": ("gRPC PredictRequest, Examples", PREDICT_EXAMPLES, "float16 records"),
}


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
    chips, columnar: bool = False, missing: str = "nan", mean=None, signature_name: str | None = SERVING_DEFAULT
) -> str:
    """The JSON body of a TF Serving REST predict request for ``chips`` [N, H, W, C] raw values.

    ``columnar=False`` gives the row form (``instances``: one [H][W][C] list per chip),
    ``True`` the columnar form (``inputs``: {"channels": [N][H][W][C]}). Missing values:
    ``missing="nan"`` writes the ``NaN`` token, which TF Serving accepts but strict JSON does
    not; ``missing="mean"`` writes the channel's training ``mean`` (the provenance file's
    ``normalisation.mean_used``) instead, which gives the same prediction and is strict JSON.
    ``signature_name=None`` leaves the key out (TF Serving then runs ``serving_default``), as a
    body for Vertex AI's ``predict`` method must.
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
    # No signature_name for Vertex AI's predict method, whose body holds instances (and parameters) only.
    body = {"signature_name": signature_name} if signature_name else {}
    body.update({"inputs": {INPUT_CHANNELS: payload}} if columnar else {"instances": payload})
    return json.dumps(body, allow_nan=missing == "nan", separators=_COMPACT)


def chip_examples(chips, channels: tuple[str, ...], dtype: str = "float16") -> list[bytes]:
    """Serialised records of ``chips`` [N, H, W, C] raw values for ``predict_examples``: each chip
    rounded to the model's record ``dtype`` (the export's ``--record_dtype``, in the provenance file
    as ``record_dtype``), with its ``channels`` names, shape and dtype for the signature to check.

    The rounding is numpy's cast, which the export's (``float16.round_half``) equals bit for bit:
    a chip sent this way gives the model exactly the values its records gave it.
    """
    values = np.asarray(chips, np.float32)
    if values.ndim != 4:
        raise ValueError(f"chips must be [N, H, W, C]; got shape {values.shape}")
    if dtype not in records.RECORD_DTYPES:
        raise ValueError(f"dtype={dtype!r}; the record dtypes are {list(records.RECORD_DTYPES)}")
    return [records.encode_image_example(chip.astype(dtype), tuple(channels)) for chip in values]


def rest_examples_body(examples: list[bytes], signature_name: str = PREDICT_EXAMPLES) -> str:
    """The JSON body of a TF Serving REST predict request carrying serialised Examples: row form,
    each instance ``{"examples": {"b64": <base64 of the record>}}``.

    TF Serving base64-decodes a ``{"b64": ...}`` object into a DT_STRING input. It also takes the
    object alone as an instance when the signature has one input; naming the input costs 13
    bytes a chip and makes a body sent to the wrong signature fail with "does not have named input:
    examples" instead of a type error, as the gRPC request names ``inputs["examples"]``.
    """
    instances = [{INPUT_EXAMPLES: {"b64": base64.b64encode(example).decode("ascii")}} for example in examples]
    return json.dumps({"signature_name": signature_name, "instances": instances}, separators=_COMPACT)


# --- request sizes ---------------------------------------------------------------------------


def request_bytes(encoding: str, chips, channels: tuple[str, ...]) -> int:
    """The size in bytes of the request for ``chips`` [N, H, W, C] raw values in ``encoding`` (one of
    ``ENCODINGS``): the UTF-8 body of a REST request, the serialised message of a gRPC one (the gRPC
    encodings import TensorFlow and tensorflow-serving-api)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding={encoding!r}; choose one of {list(ENCODINGS)}")
    kind, _, dtype = encoding.rpartition("_")
    if encoding == "json_instances":
        return len(rest_request_body(chips).encode())
    if encoding == "json_columnar":
        return len(rest_request_body(chips, columnar=True).encode())
    if encoding == "grpc_tensor":
        return grpc_predict_request(chips).ByteSize()
    examples = chip_examples(chips, channels, dtype)
    if kind == "json_examples":
        return len(rest_examples_body(examples).encode())
    return grpc_examples_request(examples).ByteSize()


def chips_per_request(encoding: str, chip, channels: tuple[str, ...], limit: int = VERTEX_ONLINE_LIMIT_BYTES) -> int:
    """How many chips like ``chip`` [H, W, C] one request in ``encoding`` carries within ``limit``
    bytes (0 when one alone is over it). The requests' sizes are measured, not estimated: for
    JSON numbers the size depends on the values (their digits, NaN), for the others on the shape."""
    return _fit(encoding, chip, channels, limit)[1]


def _fit(encoding: str, chip, channels: tuple[str, ...], limit: int) -> tuple[int, int]:
    """The size of the request for ``chip`` alone, and how many such chips one request carries within ``limit``."""
    chip = np.asarray(chip, np.float32)
    if chip.ndim != 3:
        raise ValueError(f"chip must be [H, W, C]; got shape {chip.shape}")
    sizes = {}

    def size(n: int) -> int:
        if n not in sizes:
            sizes[n] = request_bytes(encoding, np.broadcast_to(chip, (n, *chip.shape)), channels)
        return sizes[n]

    per_chip = size(2) - size(1)
    count = max(0, (limit - (size(1) - per_chip)) // per_chip)
    # The estimate is exact but for a length prefix growing a byte: settle on the measured count.
    while count > 0 and size(count) > limit:
        count -= 1
    while size(count + 1) <= limit:
        count += 1
    return size(1), count


def size_table(chip, channels: tuple[str, ...], limit: int = VERTEX_ONLINE_LIMIT_BYTES) -> str:
    """A Markdown table of each encoding's request for one ``chip`` [H, W, C] and how many such
    chips one request carries within ``limit`` bytes (README, "Serving")."""
    chip = np.asarray(chip, np.float32)
    rows = [
        f"| request | signature | chip as | bytes for one chip | chips within {limit:,} bytes |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for encoding, (request, signature, form) in ENCODINGS.items():
        one, fit = _fit(encoding, chip, channels, limit)
        rows.append(f"| {request} | `{signature}` | {form} | {one:,} | {fit} |")
    return "\n".join(rows) + "\n"
