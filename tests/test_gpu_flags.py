"""The GPU flags on CPU: ``--mixed_precision`` trains, resumes from a kill, evaluates and serves
float32 probabilities (every Vertex AI job config passes it)."""

import signal

import numpy as np
import pytest
import tensorflow as tf

from tests.test_train_lib import (
    _kill_and_resume,
    config_args,
    logged_epochs,
    make_config,
    read_history,
    run_runner,
    run_two_workers,
)
from tf_landslide import evaluate, export, serving, train_lib
from tf_landslide.config import EvalConfig


@pytest.fixture(scope="module")
def exported_root(tiny_cube, tmp_path_factory):
    root = tmp_path_factory.mktemp("exported")
    export.export(make_config(tiny_cube, root).export)
    return root


def test_mixed_precision_trains_evaluates_and_serves_float32(tiny_cube, exported_root, tmp_path):
    savedmodel = tmp_path / "savedmodel"
    cfg = make_config(
        tiny_cube, tmp_path, records=exported_root / "records", mixed_precision=True, savedmodel_dir=str(savedmodel)
    )
    summary = train_lib.train(cfg)
    assert summary["epochs"] == 2
    # The policy is the run's: what the caller builds next is float32 again.
    assert tf.keras.mixed_precision.global_policy().name == "float32"
    history = read_history(cfg.model_dir)
    assert [row["epoch"] for row in history] == ["0", "1"]
    assert all(np.isfinite(float(row["loss"])) and 0 <= float(row["val_pr_auc"]) <= 1 for row in history)
    metrics = evaluate.evaluate(EvalConfig(export=cfg.export, input=cfg.input, model_dir=cfg.model_dir, panel_chips=2))
    assert 0 < metrics["pr_auc"] <= 1
    loaded = tf.saved_model.load(str(savedmodel))
    chips = np.ones((1, 32, 32, 8), np.float32)
    probability = loaded.signatures[serving.SERVING_DEFAULT](channels=tf.constant(chips))[serving.OUTPUT]
    assert probability.dtype == tf.float32 and np.isfinite(probability.numpy()).all()


def test_a_mixed_precision_run_killed_after_its_backup_resumes_with_its_loss_scale(tiny_cube, exported_root, tmp_path):
    run = _kill_and_resume(tiny_cube, exported_root, tmp_path, "TensorBoard", epochs=3, mixed_precision=True)
    assert run.killed.code == -signal.SIGKILL, run.killed.output[-4000:]
    assert run.resumed_epochs == [3]
    assert [int(row["epoch"]) for row in run.history] == [0, 1, 2]
    assert all(np.isfinite(float(row["loss"])) for row in run.history)
    assert tf.keras.mixed_precision.global_policy().name == "float32"
    # The optimiser's dynamic loss scale is part of what the backup restores.
    saved = run.killed.backup_variables
    assert any("loss_scale" in name for name in saved), saved


def test_mixed_precision_over_two_replicas(tiny_cube, exported_root, tmp_path):
    config = config_args(
        tiny_cube, tmp_path, records=str(exported_root / "records"), batch_size=4, epochs=1, mixed_precision=True
    )
    code, output = run_runner({"config": config, "logical_cpus": 2}, tmp_path / "mirrored.log")
    assert code == 0, output[-4000:]
    assert "2 replica(s) over 1 worker(s), global batch 4" in output, output[-4000:]
    assert logged_epochs(output) == [1]
    (row,) = read_history(tmp_path / "model")
    assert np.isfinite(float(row["loss"])) and 0 <= float(row["val_pr_auc"]) <= 1


def test_mixed_precision_over_two_worker_processes(tiny_cube, exported_root, tmp_path):
    records = str(exported_root / "records")
    processes, outputs, _ = run_two_workers(tiny_cube, tmp_path, records=records, mixed_precision=True)
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-4000:]
        assert "2 replica(s) over 2 worker(s), global batch 4" in output, output[-4000:]
        assert logged_epochs(output) == [1]
    (row,) = read_history(tmp_path / "model")
    assert np.isfinite(float(row["loss"]))


# --- --jit_compile: nearest upsampling XLA can differentiate ------------------------------------


@pytest.mark.parametrize("arch", ["unet", "fpn", "linknet", "unetplusplus"])
def test_repeat_upsampling_gives_the_same_values_and_gradients(arch):
    from tf_landslide.models import ModelConfig, build_model
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


@pytest.mark.parametrize("mixed", [False, True], ids=["xla", "xla_and_mixed"])
def test_jit_compile_trains(tiny_cube, exported_root, tmp_path, mixed):
    cfg = make_config(
        tiny_cube, tmp_path, records=exported_root / "records", epochs=1, jit_compile=True, mixed_precision=mixed
    )
    summary = train_lib.train(cfg)
    assert summary["epochs"] == 1 and np.isfinite(summary["final_loss"])
    (row,) = read_history(cfg.model_dir)
    assert 0 <= float(row["val_pr_auc"]) <= 1
    # The run's weights load into the model as evaluation and serving build it (UpSampling2D).
    model = train_lib.load_trained_model(cfg.model_dir, "last")
    assert any(isinstance(layer, tf.keras.layers.UpSampling2D) for layer in model.layers)


@pytest.mark.parametrize("arch", ["fpn", "linknet", "unetplusplus"])
def test_the_other_architectures_take_an_xla_compiled_training_step(arch):
    """U-Net trains end to end above; the others' decoders (FPN's bilinear head too) compile as well."""
    from tf_landslide.models import ModelConfig, build_model
    from tf_landslide.models.xla import for_xla

    chips = np.random.default_rng(0).normal(size=(2, 32, 32, 4)).astype(np.float32)
    model = for_xla(build_model(ModelConfig(arch, "resnet18"), 4, 32))
    model.compile(optimizer="adam", loss="binary_crossentropy", jit_compile=True)
    history = model.fit(chips, (chips[..., :1] > 0).astype(np.float32), batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
