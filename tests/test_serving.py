"""SavedModel export for TF Serving: parity with the Keras model, signatures, requests, versions."""

import base64
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from tests.helpers import tiny_export_config
from tf_landslide import data, float16, model_folder, records, serving, train_lib
from tf_landslide.config import InputConfig, ModelConfig, TrainConfig
from tf_landslide.serving import assets, check

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tiny_cube, tmp_path_factory):
    """A tiny U-Net/ResNet-18 whose probabilities are spread out, not saturated at 0 or 1:
    overlapping chips (stride 8) give enough steps for BatchNorm's moving statistics in one
    epoch, and a smaller learning rate keeps the logits moderate. Parity is then meaningful."""
    root = tmp_path_factory.mktemp("serving")
    cfg = TrainConfig(
        export=tiny_export_config(tiny_cube, root / "records", stride=8),
        input=InputConfig(batch_size=4),
        model=ModelConfig(backbone="resnet18"),
        model_dir=str(root / "model"),
        epochs=1,
        learning_rate=1e-3,
    )
    train_lib.train(cfg)
    return cfg


@pytest.fixture(scope="module")
def manifest(trained):
    return json.loads((Path(trained.model_dir) / data.MANIFEST_NAME).read_text())


@pytest.fixture(scope="module")
def export_dir(trained, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports") / "landslide"
    assert serving.export_saved_model(trained.model_dir, folder) == str(folder / "1")
    return folder


@pytest.fixture(scope="module")
def loaded(export_dir):
    return tf.saved_model.load(str(export_dir / "1"))


@pytest.fixture(scope="module")
def test_records(trained, manifest):
    folder = Path(trained.export.records_dir) / manifest["config"]["name"]
    compression = manifest["records"]["compression"]
    return [
        record
        for shard in manifest["splits"]["test"]["shards"]
        for record in records.read_tfrecord(folder / shard["file"], compression)
    ]


@pytest.fixture(scope="module")
def raw_chips(test_records, manifest):
    """Raw (unstandardised) test chips, with missing values: the records' own NaN plus a missing
    channel over a block of the first chip and 3% scattered NaN."""
    size, channels = manifest["chip_size"], len(manifest["channels"])
    image, _ = records.decode_batch(test_records[:6], size, size, channels, manifest["records"]["dtype"])
    image = image.numpy()
    image[0, :12, :20, 1] = np.nan
    image[np.random.default_rng(1).random(image.shape) < 0.03] = np.nan
    return image


def serve(loaded, chips):
    return loaded.signatures[serving.SERVING_DEFAULT](channels=tf.constant(chips))[serving.OUTPUT].numpy()


# --- 1. parity --------------------------------------------------------------------------------

FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    before = set(sys.modules)  # TensorFlow 2.21's own import already loads Keras 3
    version, chips, out = sys.argv[1:4]
    model = tf.saved_model.load(version)
    probability = model.signatures["serving_default"](channels=tf.constant(np.load(chips)))["probability"]
    np.save(out, probability.numpy())
    project = ("tf_landslide", "segmentation_models", "tf_keras", "efficientnet", "classification_models")
    print(json.dumps({
        "project_modules": sorted(m for m in sys.modules if m.startswith(project)),
        "keras_modules_loaded_by_the_model": sorted(m for m in set(sys.modules) - before if "keras" in m),
    }))
    """
)


def test_a_fresh_tensorflow_process_matches_the_keras_model_on_raw_chips(trained, export_dir, raw_chips, tmp_path):
    assert np.isnan(raw_chips).sum() > 100
    np.save(tmp_path / "chips.npy", raw_chips)
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "SM_FRAMEWORK", "PYTHONPATH")}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            FRESH_PROCESS,
            str(export_dir / "1"),
            str(tmp_path / "chips.npy"),
            str(tmp_path / "p.npy"),
        ],
        cwd=tmp_path,  # not the repository: nothing of the project on the path
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert modules == {"project_modules": [], "keras_modules_loaded_by_the_model": []}
    served = np.load(tmp_path / "p.npy")

    model = model_folder.load_trained_model(trained.model_dir)
    mean, std = data.normalisation(json.loads((Path(trained.model_dir) / data.MANIFEST_NAME).read_text()))
    expected = model(data.standardise(raw_chips, mean, std), training=False).numpy()
    assert served.shape == expected.shape == (*raw_chips.shape[:3], 1)
    # The comparison means something only if the probabilities are not all saturated.
    assert ((expected > 0.01) & (expected < 0.99)).mean() > 0.5
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-5)


# A Python with the TensorFlow of Vertex AI's newest prebuilt serving container (tensorflow-cpu==2.15.1):
# TensorFlow promises that newer releases read older SavedModels, not the reverse, so ours is tried there.
OLDER_TENSORFLOW_PYTHON = os.environ.get("TF_LANDSLIDE_OLDER_TF_PYTHON", "")


@pytest.mark.skipif(not OLDER_TENSORFLOW_PYTHON, reason="TF_LANDSLIDE_OLDER_TF_PYTHON is not set")
def test_the_prebuilt_containers_tensorflow_serves_our_savedmodel_alike(loaded, export_dir, raw_chips, tmp_path):
    np.save(tmp_path / "chips.npy", raw_chips)
    done = subprocess.run(
        [OLDER_TENSORFLOW_PYTHON, "-c", FRESH_PROCESS, str(export_dir / "1"), str(tmp_path / "chips.npy"), "p.npy"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "SM_FRAMEWORK", "PYTHONPATH")},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), serve(loaded, raw_chips), rtol=0, atol=1e-5)


# --- 2. the examples signature -----------------------------------------------------------------


def test_predict_examples_equals_serving_default_on_the_decoded_records(loaded, test_records, manifest):
    size, channels, dtype = manifest["chip_size"], len(manifest["channels"]), manifest["records"]["dtype"]
    batch = test_records[:5]
    from_examples = loaded.signatures[serving.PREDICT_EXAMPLES](examples=tf.constant(batch))[serving.OUTPUT].numpy()
    image, _ = records.decode_batch(batch, size, size, channels, dtype)
    np.testing.assert_allclose(from_examples, serve(loaded, image.numpy()), rtol=0, atol=1e-6)
    assert from_examples.shape == (5, size, size, 1)


def test_predict_examples_needs_only_the_image_and_refuses_other_exports(loaded, test_records, manifest):
    signature = loaded.signatures[serving.PREDICT_EXAMPLES]
    size, names = manifest["chip_size"], tuple(manifest["channels"])
    image = np.random.default_rng(2).normal(size=(size, size, len(names))).astype(np.float16)
    image_only = tf.train.Example(
        features=tf.train.Features(
            feature={records.IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()]))}
        )
    ).SerializeToString()
    full = records.encode_example(image, np.zeros((size, size), np.uint8), names, 0, 0, (0.0, 0.0), "test")
    np.testing.assert_array_equal(
        signature(examples=tf.constant([image_only]))[serving.OUTPUT].numpy(),
        signature(examples=tf.constant([full]))[serving.OUTPUT].numpy(),
    )
    label = np.zeros((size, size), np.uint8)
    float32 = records.encode_example(image.astype(np.float32), label, names, 0, 0, (0.0, 0.0), "test")
    with pytest.raises(tf.errors.InvalidArgumentError, match="records hold float16 values"):
        signature(examples=tf.constant([full, float32]))
    bigger = records.encode_example(
        np.zeros((2 * size, 2 * size, len(names)), np.float16),
        np.zeros((64, 64), np.uint8),
        names,
        0,
        0,
        (0.0, 0.0),
        "test",
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"takes {size} x {size} x {len(names)} chips"):
        signature(examples=tf.constant([bigger]))
    shuffled = records.encode_example(image, label, names[::-1], 0, 0, (0.0, 0.0), "test")
    with pytest.raises(tf.errors.InvalidArgumentError, match="takes channels vv_before,vv_after"):
        signature(examples=tf.constant([shuffled]))


# --- 3. input sizes, channel counts and dtypes --------------------------------------------------


def test_any_multiple_of_32_is_served(loaded, manifest):
    chips = np.random.default_rng(3).normal(size=(2, 64, 96, len(manifest["channels"]))).astype(np.float32)
    probability = serve(loaded, chips)
    assert probability.shape == (2, 64, 96, 1)
    assert np.isfinite(probability).all() and (probability >= 0).all() and (probability <= 1).all()


@pytest.mark.parametrize(
    ("shape", "dtype", "message"),
    [
        ((1, 40, 40, 8), tf.float32, "height and width must be positive multiples of 32"),
        ((1, 64, 33, 8), tf.float32, "height and width must be positive multiples of 32"),
        (
            (1, 32, 32, 5),
            tf.float32,
            r"channels must be float32 \[N, H, W, 8\] \(vv_before, .*got shape\] \[1 32 32 5\]",
        ),
        ((32, 32, 8), tf.float32, r"channels must be float32 \[N, H, W, 8\]"),
        ((1, 32, 32, 8), tf.float64, "expected to be a float tensor but is a double tensor"),
        ((1, 32, 32, 8), tf.int32, "expected to be a float tensor but is a int32 tensor"),
    ],
)
def test_bad_inputs_are_clear_errors(loaded, manifest, shape, dtype, message):
    assert len(manifest["channels"]) == 8  # the messages above name 8 channels
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures[serving.SERVING_DEFAULT](channels=tf.zeros(shape, dtype))


def test_infinite_values_are_refused_nan_is_missing(loaded, raw_chips):
    chips = raw_chips[:1].copy()
    chips[0, 3, 4, 0] = -np.inf  # e.g. log(0): not a missing value the model knows
    with pytest.raises(tf.errors.InvalidArgumentError, match="infinite values: send NaN"):
        serve(loaded, chips)


# --- 4. requests: REST JSON and gRPC ------------------------------------------------------------


def _strict_json(text):
    def refuse(token):
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_rest_bodies_are_json_of_the_signatures_shape_and_missing_values_travel(loaded, raw_chips, export_dir):
    chips = raw_chips[:2]
    spec = loaded.signatures[serving.SERVING_DEFAULT].structured_input_signature[1][serving.INPUT_CHANNELS]
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, None, None, 8]

    # Row form with NaN tokens: TF Serving's REST API accepts them (its "JSON conformance"
    # rules), Python's json does, a strict JSON parser does not.
    body = serving.rest_request_body(chips)
    with pytest.raises(ValueError, match="NaN is not JSON"):
        _strict_json(body)
    parsed = json.loads(body)
    assert parsed["signature_name"] == "serving_default" and set(parsed) == {"signature_name", "instances"}
    assert set(json.loads(serving.rest_request_body(chips, signature_name=None))) == {"instances"}  # Vertex's predict
    instances = np.asarray(parsed["instances"], np.float32)
    assert spec.is_compatible_with(tf.TensorSpec(instances.shape, tf.float32))
    np.testing.assert_array_equal(instances, chips)  # float32 values round-trip exactly, NaN included

    # Columnar form, strict JSON: missing values sent as the channel's training mean, read from
    # the export's provenance file. They standardise to 0 like NaN: the same prediction.
    mean = json.loads((export_dir / "1" / serving.ASSETS_EXTRA / serving.PROVENANCE_FILE).read_text())["normalisation"][
        "mean_used"
    ]
    strict = _strict_json(serving.rest_request_body(chips, columnar=True, missing="mean", mean=mean))
    assert set(strict) == {"signature_name", "inputs"} and set(strict["inputs"]) == {"channels"}
    columns = np.asarray(strict["inputs"]["channels"], np.float32)
    assert columns.shape == chips.shape and spec.is_compatible_with(tf.TensorSpec(columns.shape, tf.float32))
    assert not np.isnan(columns).any()
    np.testing.assert_array_equal(serve(loaded, columns), serve(loaded, chips))
    with pytest.raises(ValueError, match="needs the per-channel training mean"):
        serving.rest_request_body(chips, missing="mean")


def test_grpc_predict_request_carries_the_chip(loaded, raw_chips, test_records):
    chips = raw_chips[:2]
    request = serving.grpc_predict_request(chips, model_name="landslide")
    request = type(request).FromString(request.SerializeToString())  # what the server receives
    assert request.model_spec.name == "landslide"
    assert request.model_spec.signature_name == "serving_default"
    assert set(request.inputs) == {"channels"}
    tensor = request.inputs["channels"]
    assert tensor.dtype == types_pb2.DT_FLOAT
    assert [d.size for d in tensor.tensor_shape.dim] == list(chips.shape) == [2, 32, 32, 8]
    values = tf.make_ndarray(tensor)
    np.testing.assert_array_equal(values, chips)
    np.testing.assert_array_equal(serve(loaded, values), serve(loaded, chips))

    examples = serving.grpc_examples_request(test_records[:3])
    assert examples.model_spec.signature_name == "predict_examples"
    assert examples.inputs["examples"].dtype == types_pb2.DT_STRING
    assert [d.size for d in examples.inputs["examples"].tensor_shape.dim] == [3]


def _as_tf_serving_reads(body: str) -> tuple[str, list[bytes]]:
    """The signature and the strings TF Serving's REST API makes of a row-form body for a signature
    whose one input is a string (tensorflow_serving/util/json_tensor.cc, FillTensorMapFromInstancesList):
    an instance is the input's value, or an object naming the input; a value that is an object with the
    single key "b64" is base64-decoded."""
    parsed = _strict_json(body)  # strict JSON too: missing values travel inside the records

    def value(item):
        assert isinstance(item, dict) and set(item) == {"b64"} and isinstance(item["b64"], str), item
        return base64.b64decode(item["b64"], validate=True)

    strings = []
    for instance in parsed["instances"]:
        if set(instance) != {"b64"}:
            assert set(instance) == {serving.INPUT_EXAMPLES}, "an object must name the signature's one input"
            instance = instance[serving.INPUT_EXAMPLES]
        strings.append(value(instance))
    return parsed.get("signature_name", serving.SERVING_DEFAULT), strings


def test_b64_examples_body_carries_the_records_and_predicts_like_serving_default(loaded, raw_chips, manifest):
    names, dtype = tuple(manifest["channels"]), manifest["records"]["dtype"]
    # The test chips came from float16 records: moved off float16's grid, as a new scene's values are.
    chips = raw_chips[:3] + np.random.default_rng(4).normal(0, 0.01, raw_chips[:3].shape).astype(np.float32)
    assert dtype == "float16" and np.isnan(chips).any() and (chips.astype(dtype) != chips).mean() > 0.9
    examples = serving.chip_examples(chips, names, dtype)
    signature, received = _as_tf_serving_reads(serving.rest_examples_body(examples))
    assert signature == serving.PREDICT_EXAMPLES and received == examples

    # The records hold the chips rounded as the export rounds them (float16.round_half), NaN kept.
    features = [tf.train.Example.FromString(record).features.feature for record in received]
    assert {key for feature in features for key in feature} == {
        records.IMAGE,
        records.SHAPE,
        records.CHANNELS,
        records.DTYPE,
    }
    image = np.stack([np.frombuffer(f[records.IMAGE].bytes_list.value[0], "<f2") for f in features])
    exported = np.empty(chips.shape[::-1], np.float16)  # round_half takes channels first
    float16.round_half(np.ascontiguousarray(chips.T), exported)
    np.testing.assert_array_equal(image.view(np.uint16), exported.T.reshape(len(chips), -1).view(np.uint16))

    from_body = loaded.signatures[signature](examples=tf.constant(received))[serving.OUTPUT].numpy()
    rounded = image.reshape(chips.shape).astype(np.float32)
    np.testing.assert_allclose(from_body, serve(loaded, rounded), rtol=0, atol=1e-6)
    # Rounding aside, the same prediction as the float32 chips: float16's error is far below the model's scale.
    np.testing.assert_allclose(from_body, serve(loaded, chips), rtol=0, atol=1e-2)
    with pytest.raises(ValueError, match="the record dtypes are"):
        serving.chip_examples(chips, names, "bfloat16")


# --- 5. warm-up, provenance, versions ------------------------------------------------------------


def test_warmup_requests_parse_and_run(loaded, export_dir, manifest):
    from tensorflow_serving.apis import prediction_log_pb2

    path = export_dir / "1" / serving.ASSETS_EXTRA / serving.WARMUP_FILE
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    requests = {entry.predict_log.request.model_spec.signature_name: entry.predict_log.request for entry in logs}
    assert list(requests) == ["serving_default", "predict_examples"]
    chip, channels = manifest["chip_size"], len(manifest["channels"])
    shape = [d.size for d in requests["serving_default"].inputs["channels"].tensor_shape.dim]
    assert shape == [1, chip, chip, channels]
    for name, request in requests.items():  # what TF Serving runs when it loads the version
        inputs = {key: tf.constant(tf.make_ndarray(value)) for key, value in request.inputs.items()}
        assert loaded.signatures[name](**inputs)[serving.OUTPUT].shape == (1, chip, chip, 1)


def test_warmup_is_skipped_with_a_warning_without_tensorflow_serving(manifest, tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", None)  # import fails
    with caplog.at_level(logging.WARNING, logger="tf_landslide.serving"):
        assert not assets.write_warmup(tmp_path, manifest, "landslide")
    assert not (tmp_path / serving.WARMUP_FILE).exists()
    assert "tensorflow-serving-api is not installed" in caplog.text


def test_provenance_names_what_the_export_was_made_from(export_dir, trained, manifest):
    provenance = json.loads((export_dir / "1" / serving.ASSETS_EXTRA / serving.PROVENANCE_FILE).read_text())
    mean, std = data.normalisation(manifest)
    assert provenance["version"] == 1 and provenance["checkpoint"] == "best"
    assert provenance["config"] == "vv_vh_dem_t2" and provenance["channels"] == manifest["channels"]
    assert provenance["chip_size"] == 32 and provenance["record_dtype"] == manifest["records"]["dtype"]
    assert Path(provenance["model_dir"]) == Path(trained.model_dir).resolve()
    np.testing.assert_array_equal(np.float32(provenance["normalisation"]["mean_used"]), mean)
    np.testing.assert_array_equal(np.float32(provenance["normalisation"]["std_used"]), std)
    assert provenance["self_check_max_abs_error"] <= serving.SELF_CHECK_ATOL
    assert provenance["operating_threshold"] == model_folder.read_threshold(trained.model_dir)  # the run's choice


def _sine_model(frequency: float, n_channels: int):
    """probability = (1 + sin(frequency * x0)) / 2: steep for a high frequency, as a briefly trained model
    with logits in the hundreds is."""
    inputs = tf.keras.Input((None, None, n_channels))
    outputs = tf.keras.layers.Lambda(lambda x: 0.5 + 0.5 * tf.sin(frequency * x[..., :1]))(inputs)
    return tf.keras.Model(inputs, outputs)


def _served_by(model, manifest, std_factor=1.0, rounded_up=False):
    """A serving function computing ``model`` on raw chips, with a wrong std, or rounding the standardised
    input one float32 step up (as another correct computation may)."""
    mean, std = data.normalisation(manifest)

    def serve(channels):
        standardised = data.standardise(channels, mean, std * np.float32(std_factor))
        if rounded_up:
            standardised = np.nextafter(standardised, np.float32(np.inf))
        return {serving.OUTPUT: model(standardised, training=False)}

    return serve


def test_the_self_check_allows_round_off_and_refuses_a_wrong_statistic(manifest):
    n_channels = len(manifest["channels"])
    steep, smooth = _sine_model(1e4, n_channels), _sine_model(1.0, n_channels)
    # Round-off of a steep model is beyond the fixed bound and accepted...
    assert check.self_check(_served_by(steep, manifest, rounded_up=True), steep, manifest) > serving.SELF_CHECK_ATOL
    # ... and a standard deviation 1% off is refused for the steep model and the smooth one alike.
    for model in (steep, smooth):
        with pytest.raises(serving.ServingExportError, match="differs from the trained model"):
            check.self_check(_served_by(model, manifest, std_factor=1.01), model, manifest)


def test_versions_count_up_and_are_never_overwritten(trained, export_dir):
    # The command line writes the next version...
    command = [sys.executable, "export_savedmodel.py", f"--model_dir={trained.model_dir}", f"--export_dir={export_dir}"]
    done = subprocess.run([*command, "--checkpoint=last"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == str(export_dir / "2")
    assert serving.existing_versions(export_dir) == [1, 2]
    assert (
        json.loads((export_dir / "2" / serving.ASSETS_EXTRA / serving.PROVENANCE_FILE).read_text())["checkpoint"]
        == "last"
    )
    assert not [p for p in export_dir.iterdir() if p.name.startswith(".partial")]
    # ... and refuses an existing one (exit code 2, the library raises).
    refused = subprocess.run([*command, "--version=1"], cwd=REPO, capture_output=True, text=True)
    assert refused.returncode == 2 and "version 1 already exists" in refused.stderr
    unnamed = subprocess.run(command[:-1], cwd=REPO, capture_output=True, text=True)
    assert unnamed.returncode == 2 and "--export_dir is required" in unnamed.stderr
    with pytest.raises(serving.ServingExportError, match="version 2 already exists"):
        serving.export_saved_model(trained.model_dir, export_dir, version=2)
    with pytest.raises(serving.ServingExportError, match="positive integer"):
        serving.export_saved_model(trained.model_dir, export_dir, version=0)
    with pytest.raises(FileNotFoundError, match="no trained model"):
        serving.export_saved_model(export_dir / "nowhere", export_dir)


# --- 6. saved_model_cli ---------------------------------------------------------------------------


def test_saved_model_cli_lists_both_signatures(export_dir):
    cli = Path(sys.executable).with_name("saved_model_cli")
    assert cli.exists(), f"{cli} is installed with tensorflow"
    done = subprocess.run([str(cli), "show", "--dir", str(export_dir / "1"), "--all"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    for expected in (
        "signature_def['serving_default']",
        "inputs['channels'] tensor_info:",
        "shape: (-1, -1, -1, 8)",
        "signature_def['predict_examples']",
        "inputs['examples'] tensor_info:",
        "dtype: DT_STRING",
        "outputs['probability'] tensor_info:",
        "shape: (-1, 32, 32, 1)",
    ):
        assert expected in done.stdout
