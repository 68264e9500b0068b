"""The GPU flags on CPU: ``--mixed_precision`` and ``--jit_compile``, alone and together (and the CPU's
``--bfloat16``), train, resume from a kill and export SavedModels serving float32 probabilities
(float32 runs: test_train_lib.py; the Vertex AI job configs, which pass --mixed_precision, run over
several replicas and workers in test_vertex.py)."""

import signal

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import kill_and_resume, make_config
from tf_landslide import evaluate, export, model_folder, serving
from tf_landslide.config import EvalConfig, ModelConfig


@pytest.fixture(scope="module")
def exported_root(tiny_cube, tmp_path_factory):
    root = tmp_path_factory.mktemp("exported")
    export.export(make_config(tiny_cube, root).export)
    return root


def assert_evaluates_and_serves_float32(tiny_cube, exported_root, tmp_path, model_dir, savedmodel):
    """The weights load into the model as evaluation and serving build it (UpSampling2D, float32),
    evaluate, and the SavedModel serves float32 probabilities."""
    model = model_folder.load_trained_model(str(model_dir), "last")
    assert any(isinstance(layer, tf.keras.layers.UpSampling2D) for layer in model.layers)
    assert {weight.dtype for weight in model.weights} == {tf.float32}
    cfg = make_config(tiny_cube, tmp_path, records=exported_root / "records")
    metrics = evaluate.evaluate(EvalConfig(export=cfg.export, input=cfg.input, model_dir=str(model_dir), panel_chips=2))
    assert 0 < metrics["pr_auc"] <= 1
    loaded = tf.saved_model.load(str(savedmodel))
    probability = loaded.signatures[serving.SERVING_DEFAULT](channels=tf.ones([1, 32, 32, 8]))[serving.OUTPUT]
    assert probability.dtype == tf.float32 and np.isfinite(probability.numpy()).all()


def test_a_run_with_both_flags_killed_after_its_backup_resumes_evaluates_and_exports_float32(
    tiny_cube, exported_root, tmp_path
):
    """Both flags at once, as the Vertex AI configs run on GPUs: the union of what each changes (the
    loss-scale optimiser and the XLA model) through a kill and a resume."""
    savedmodel = tmp_path / "savedmodel"
    run = kill_and_resume(
        tiny_cube,
        exported_root,
        tmp_path,
        "TensorBoard",
        epochs=3,
        savedmodel_dir=str(savedmodel),
        jit_compile=True,
        mixed_precision=True,
    )
    assert run.killed.code == -signal.SIGKILL, run.killed.output[-4000:]
    assert run.resumed_epochs == [3]
    assert [int(row["epoch"]) for row in run.history] == [0, 1, 2]
    assert all(np.isfinite(float(row["loss"])) and 0 <= float(row["val_pr_auc"]) <= 1 for row in run.history)
    # The policy is the run's: what the caller builds next is float32 again.
    assert tf.keras.mixed_precision.global_policy().name == "float32"
    # The optimiser's dynamic loss scale is part of what the backup restores.
    assert any("loss_scale" in name for name in run.killed.backup_variables), run.killed.backup_variables
    assert_evaluates_and_serves_float32(tiny_cube, exported_root, tmp_path, run.model_dir, savedmodel)


@pytest.mark.parametrize(
    ("flags", "policy"),
    [
        ({"mixed_precision": True}, "mixed_float16"),
        ({"jit_compile": True, "bfloat16": "off"}, "float32"),
        ({"bfloat16": "on"}, "mixed_bfloat16"),
        ({"jit_compile": True, "bfloat16": "on"}, "mixed_bfloat16"),
    ],
    ids=["mixed", "xla", "bfloat16", "xla-bfloat16"],
)
def test_each_flag_alone_trains_evaluates_and_exports_float32(tiny_cube, exported_root, tmp_path, flags, policy):
    """Each flag without the other (each once crashed alone), and the CPU's bfloat16 (alone and under
    XLA): two epochs, validation included, in the compute dtype asked for."""
    from tf_landslide import train_lib

    savedmodel = tmp_path / "savedmodel"
    cfg = make_config(
        tiny_cube, tmp_path, records=exported_root / "records", batch_size=2, savedmodel_dir=str(savedmodel), **flags
    )
    summary = train_lib.train(cfg)
    assert summary["epochs"] == 2 and tf.keras.mixed_precision.global_policy().name == "float32"
    assert summary["compute_policy"] == policy
    history = model_folder.read_history(cfg.model_dir)
    assert all(np.isfinite(float(row["loss"])) and 0 <= float(row["val_pr_auc"]) <= 1 for row in history)
    assert_evaluates_and_serves_float32(tiny_cube, exported_root, tmp_path, cfg.model_dir, savedmodel)


# --- --jit_compile: nearest upsampling XLA can differentiate ------------------------------------


@pytest.mark.parametrize("arch", ["unet", "fpn", "linknet", "unetplusplus"])
def test_repeat_upsampling_gives_the_same_values_and_gradients(arch):
    from tf_landslide.models import build_model
    from tf_landslide.models.xla import for_xla

    model = build_model(ModelConfig(arch, "resnet18"), 4, 64)
    swapped = for_xla(model)
    replaced = [layer for layer in swapped.layers if type(layer).__name__ == "RepeatUpsampling2D"]
    assert replaced and not [
        layer
        for layer in swapped.layers
        if isinstance(layer, tf.keras.layers.UpSampling2D) and layer.interpolation == "nearest"
    ]
    assert [layer.name for layer in swapped.layers] == [layer.name for layer in model.layers]
    chips = tf.constant(np.random.default_rng(0).normal(size=(2, 64, 64, 4)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(chips)
        outputs = [m(chips, training=True) for m in (model, swapped)]
        losses = [tf.reduce_sum(out * out) for out in outputs]
    np.testing.assert_array_equal(outputs[0].numpy(), outputs[1].numpy())
    gradients = [
        tape.gradient(loss, [chips, *m.trainable_variables]) for m, loss in zip((model, swapped), losses, strict=True)
    ]
    for keras, ours in zip(*gradients, strict=True):
        # Sums over the repeats in another order: equal to float32 round-off.
        np.testing.assert_allclose(
            ours.numpy(), keras.numpy(), rtol=1e-4, atol=1e-4 * float(tf.reduce_max(tf.abs(keras)))
        )


@pytest.mark.parametrize("arch", ["fpn", "linknet", "unetplusplus"])
def test_the_other_architectures_take_an_xla_compiled_training_step(arch):
    """U-Net trains end to end above; the others' decoders (FPN's bilinear head too) compile as well."""
    from tf_landslide.models import build_model
    from tf_landslide.models.xla import for_xla

    chips = np.random.default_rng(0).normal(size=(2, 32, 32, 4)).astype(np.float32)
    model = for_xla(build_model(ModelConfig(arch, "resnet18"), 4, 32))
    model.compile(optimizer="adam", loss="binary_crossentropy", jit_compile=True)
    history = model.fit(chips, (chips[..., :1] > 0).astype(np.float32), batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
