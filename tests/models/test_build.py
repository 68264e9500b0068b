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
