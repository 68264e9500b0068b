"""build_model: every architecture, channel count and precision gives float32 probabilities."""

import numpy as np
import pytest
import tensorflow as tf

from tf_landslide.config import ModelConfig
from tf_landslide.models import BATCHNORM_MOMENTUM, build_model, transfer_weights


@pytest.mark.parametrize("channels", [2, 4, 8])
def test_paper_unet_resnet50_builds_for_the_study_channel_counts(channels):
    model = build_model(ModelConfig("unet", "resnet50"), channels, 128)
    assert model.input_shape == (None, 128, 128, channels)
    assert model.output_shape == (None, 128, 128, 1)
    output = model(np.zeros((1, 128, 128, channels), np.float32), training=False)
    assert output.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(output)) and float(tf.reduce_max(output)) <= 1.0
    momenta = {layer.momentum for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)}
    assert momenta == {BATCHNORM_MOMENTUM}


@pytest.mark.parametrize("arch", ["fpn", "linknet", "unetplusplus"])
def test_other_architectures_build_with_a_small_backbone(arch):
    model = build_model(ModelConfig(arch, "resnet18"), 4, 64)
    assert model.output_shape == (None, 64, 64, 1)
    assert model(np.ones((2, 64, 64, 4), np.float32)).shape == (2, 64, 64, 1)


def test_mixed_precision_still_outputs_float32():
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model(ModelConfig("unet", "resnet18"), 2, 64)
        assert model.layers[-2].compute_dtype == "float16"
        assert model(np.ones((1, 64, 64, 2), np.float32)).dtype == tf.float32
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")


def test_imagenet_weights_are_adapted_to_c_channels_as_smp_does():
    # A randomly initialised 3-channel model stands in for the ImageNet download.
    source = build_model(ModelConfig("unet", "resnet18"), 3, 64)
    model = build_model(ModelConfig("unet", "resnet18", "imagenet"), 5, 64, pretrained_source=source)
    source_conv, conv = source.get_layer("conv0").get_weights()[0], model.get_layer("conv0").get_weights()[0]
    assert conv.shape == (7, 7, 5, 64)
    for c in range(5):  # channel c takes RGB channel c mod 3, scaled by 3/5
        np.testing.assert_allclose(conv[:, :, c], source_conv[:, :, c % 3] * 3 / 5, rtol=1e-6)
    np.testing.assert_array_equal(
        model.get_layer("bn_data").get_weights()[1][3:], source.get_layer("bn_data").get_weights()[1][:2]
    )
    np.testing.assert_array_equal(
        model.get_layer("stage2_unit1_conv1").get_weights()[0], source.get_layer("stage2_unit1_conv1").get_weights()[0]
    )


def test_transfer_reports_the_adapted_layers():
    source = build_model(ModelConfig("unet", "resnet18"), 3, 32)
    target = build_model(ModelConfig("unet", "resnet18"), 3, 32)
    assert transfer_weights(source, target) == []
    np.testing.assert_array_equal(
        target.get_layer("conv0").get_weights()[0], source.get_layer("conv0").get_weights()[0]
    )


@pytest.mark.parametrize(
    "cfg, message",
    [
        (ModelConfig("segformer"), "--arch"),
        (ModelConfig("unet", "resnet51"), "--backbone='resnet51'"),
        (ModelConfig("unet", "resnet50", "coco"), "--encoder_weights"),
    ],
)
def test_bad_model_flags_are_clear_errors(cfg, message):
    with pytest.raises(ValueError, match=message):
        build_model(cfg, 2, 64)


def test_models_and_training_build_when_tensorflow_was_imported_first():
    """A notebook that imports TensorFlow before tf_landslide (which sets TF_USE_LEGACY_KERAS) still
    gets tf-keras models, optimiser and callbacks that fit together."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import tensorflow as tf\n"
        "import numpy as np\n"
        "from tf_landslide import callbacks, optimizer\n"
        "from tf_landslide import models\n"
        "from tf_landslide.config import ModelConfig, TrainConfig, ExportConfig, CubeConfig\n"
        "model = models.build_model(ModelConfig(backbone='resnet18'), 4, 32)\n"
        "model.compile(optimizer=optimizer.make_optimizer(TrainConfig(export=ExportConfig(cube=CubeConfig()))),"
        " loss='binary_crossentropy')\n"
        "x = np.zeros((2, 32, 32, 4), np.float32)\n"
        "model.fit(x, x[..., :1], epochs=1, verbose=0, callbacks=[callbacks.EpochLine(2, 1)])\n"
        "print('built', type(model).__module__)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    # As a fresh interpreter has it: this test process's import of tf_landslide set both.
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "SM_FRAMEWORK")}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "built tf_keras" in done.stdout
