"""The serving graph: a tf.Module holding the trained model's variables and the two signature
functions, ``serving_default`` (raw channels) and ``predict_examples`` (serialised records), each
checking its input before the model sees it.

Neither a loaded signature nor TF Serving checks an input's shape against the signature at run
time, so the graph does, with messages that name what the model takes."""

from __future__ import annotations

import tensorflow as tf

from tf_landslide import data, records
from tf_landslide.serving.contract import INPUT_CHANNELS, INPUT_EXAMPLES, MULTIPLE, OUTPUT


def serving_module(model, manifest: dict) -> tf.Module:
    """A tf.Module holding the model's variables and the two signature functions."""
    channels = tuple(manifest["channels"])
    chip, dtype = int(manifest["chip_size"]), manifest["records"]["dtype"]
    mean, std = data.normalisation(manifest)

    def probability(raw):
        return {OUTPUT: model(data.standardise(checked_channels(raw, channels), mean, std), training=False)}

    module = tf.Module(name="tf_landslide_serving")
    # Only the variables are tracked, not the Keras model: the SavedModel then holds the two
    # signatures and nothing that needs Keras (and saving skips tracing every Keras layer).
    module.model_variables = list(model.variables)
    module.serve = _serve_function(probability, len(channels))
    module.predict_examples = _examples_function(probability, channels, chip, dtype)
    return module


def _serve_function(probability, n_channels: int):
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, n_channels], tf.float32, name=INPUT_CHANNELS)])
    def serve(channels):
        return probability(channels)

    return serve


def _examples_function(probability, channels: tuple[str, ...], chip: int, dtype: str):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_EXAMPLES)])
    def predict_examples(examples):
        return probability(decoded_examples(examples, channels, chip, dtype))

    return predict_examples


def checked_channels(raw: tf.Tensor, channels: tuple[str, ...]) -> tf.Tensor:
    """``raw`` once checked: layout [N, H, W, C] first, then the size, then the values (no infinity)."""
    n_channels = len(channels)
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
        return tf.identity(raw)


def decoded_examples(examples: tf.Tensor, channels: tuple[str, ...], chip: int, dtype: str) -> tf.Tensor:
    """The float32 chips [N, chip, chip, C] of serialised records, once each record's shape, dtype
    and channel names (when present) are checked against the model's."""
    n_channels = len(channels)
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
    with tf.control_dependencies(_record_checks(parsed, channels, chip, dtype)):
        image = tf.io.decode_raw(parsed[records.IMAGE], tf.dtypes.as_dtype(dtype), little_endian=True)
    image = tf.reshape(image, [-1, chip, chip, n_channels])
    return tf.cast(image, tf.float32)


def _record_checks(parsed: dict, channels: tuple[str, ...], chip: int, dtype: str) -> list:
    """Asserts that the parsed records are chips of this model's size, record dtype and channels."""
    n_channels = len(channels)
    names = parsed[records.CHANNELS]
    same_channels = tf.logical_or(
        names.row_lengths() == 0, tf.strings.reduce_join(names, axis=1, separator=",") == ",".join(channels)
    )
    return [
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
