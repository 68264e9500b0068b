"""UNet++ on sm's ResNet-50: smp ``UnetPlusPlus`` architecture, parameter counts pinned against PyTorch.

Parameter counts are *trainable* weights only: Keras BatchNorm moving mean/variance are non-trainable,
like PyTorch buffers, and PyTorch counts BN weight+bias as parameters just as Keras counts gamma+beta.

Reference numbers (smp 0.6, ``smp.UnetPlusPlus('resnet50', in_channels=C, classes=2)``):
    whole model  C=2: 48,982,754   C=8: 49,001,570
    decoder      25,477,568 (independent of C)
    head         290 (Conv3x3 16 -> 2 with bias)
    encoder      torchvision ResNet-50 without fc: 23,508,032 for C=3, first conv 64 * C * 7 * 7,
                 i.e. 23,498,624 + 3,136 * C (23,504,896 for C=2, 23,523,712 for C=8).

Keras vs PyTorch, whole model: Keras has 7,552 - C fewer trainable parameters (7,550 for C=2, 7,544 for
C=8). Decoder and head are identical; the difference is entirely the encoder's BatchNorms, because the two
ResNet-50s are different networks with the same convolutions:

* convolutions: identical, 23,451,776 + 3,136 * (C - 2) in both (conv0 7x7, the bottleneck 1x1/3x3/1x1
  convs and the four projection shortcuts; no biases in either).
* torchvision (post-activation, conv-BN-ReLU): BN affine over 26,560 channels = 53,120 params
  (bn1 64; per bottleneck bn1 f + bn2 f + bn3 4f; per stage a downsample BN 4f; f = 64/128/256/512,
  3/4/6/3 blocks).
* sm / qubvel classification_models (pre-activation, BN-ReLU-conv): ``bn_data`` on the input with
  ``scale=False`` (C betas), ``bn0`` 64, per unit a pre-activation ``bn1`` over the unit's *input*
  channels (13,120 in total), ``bn2`` f + ``bn3`` f (7,552 in total), final ``bn1`` 2,048; no BN on the
  shortcuts: 22,784 channels = 45,568 params, + C = 45,570 for C=2, 45,576 for C=8.

53,120 - (45,568 + C) = 7,552 - C.
"""

import numpy as np
import pytest

import tf_landslide  # noqa: F401  (sets TF_USE_LEGACY_KERAS / SM_FRAMEWORK before TensorFlow is imported)

# isort: split
import segmentation_models as sm
from tensorflow import keras  # tf_keras (Keras 2 API)

from tf_landslide.models.unetplusplus import (
    DECODER_PREFIX,
    HEAD_PREFIX,
    build_unetplusplus,
    decoder_block_channels,
)

SMP_UNETPP_TOTAL = {2: 48_982_754, 8: 49_001_570}
SMP_UNETPP_DECODER = 25_477_568
SMP_HEAD_2_CLASSES = 290  # 3 * 3 * 16 * 2 + 2
SMP_UNET_DECODER = 9_012_928

TORCHVISION_R50_NO_FC_3CH = 23_508_032
FIRST_CONV_PER_CHANNEL = 64 * 7 * 7  # 3,136
TORCHVISION_R50_BN_AFFINE = 2 * 26_560  # 53,120
SM_R50_BN_AFFINE_WITHOUT_BN_DATA = 2 * 22_784  # 45,568; bn_data adds C betas

RESNET50_ENCODER_CHANNELS = (64, 256, 512, 1024, 2048)  # /2 ... /32, as smp's resnet50 without the input


def trainable(layers) -> int:
    return sum(int(np.prod(w.shape)) for layer in layers for w in layer.trainable_weights)


def is_decoder(layer) -> bool:
    return layer.name.startswith(DECODER_PREFIX)


def is_head(layer) -> bool:
    return layer.name.startswith(HEAD_PREFIX)


def torchvision_encoder(channels: int) -> int:
    return TORCHVISION_R50_NO_FC_3CH + FIRST_CONV_PER_CHANNEL * (channels - 3)


def sm_encoder(channels: int) -> int:
    """sm's ResNet-50: torchvision's convolutions with the pre-activation BatchNorm layout (see module doc)."""
    return torchvision_encoder(channels) - TORCHVISION_R50_BN_AFFINE + SM_R50_BN_AFFINE_WITHOUT_BN_DATA + channels


@pytest.fixture(scope="module")
def model_for():
    """Build each 128x128, 2-class ResNet-50 UNet++ once per module, keyed by input channels."""
    cache = {}

    def get(channels: int) -> keras.Model:
        if channels not in cache:
            cache[channels] = build_unetplusplus(
                "resnet50", input_shape=(128, 128, channels), classes=2, encoder_weights=None
            )
        return cache[channels]

    return get


@pytest.fixture(params=[2, 8])
def unetpp(request, model_for):
    return request.param, model_for(request.param)


@pytest.fixture
def mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_reference_formula_reproduces_smp_totals():
    for channels, total in SMP_UNETPP_TOTAL.items():
        assert torchvision_encoder(channels) + SMP_UNETPP_DECODER + SMP_HEAD_2_CLASSES == total


def test_decoder_and_head_parameters_match_smp(unetpp):
    _, model = unetpp
    assert trainable([layer for layer in model.layers if is_decoder(layer)]) == SMP_UNETPP_DECODER
    assert trainable([layer for layer in model.layers if is_head(layer)]) == SMP_HEAD_2_CLASSES


def test_whole_model_parameters(unetpp):
    channels, model = unetpp
    encoder = [layer for layer in model.layers if not (is_decoder(layer) or is_head(layer))]
    bn = [layer for layer in encoder if isinstance(layer, keras.layers.BatchNormalization)]
    conv = [layer for layer in encoder if isinstance(layer, keras.layers.Conv2D)]
    # Convolutions equal torchvision's; only the BatchNorm layout differs.
    assert trainable(conv) == torchvision_encoder(channels) - TORCHVISION_R50_BN_AFFINE
    assert trainable(bn) == SM_R50_BN_AFFINE_WITHOUT_BN_DATA + channels
    assert trainable(encoder) == trainable(conv) + trainable(bn) == sm_encoder(channels)

    total = trainable(model.layers)
    assert total == sm_encoder(channels) + SMP_UNETPP_DECODER + SMP_HEAD_2_CLASSES
    assert total == {2: 48_975_204, 8: 48_994_026}[channels]
    assert SMP_UNETPP_TOTAL[channels] - total == 7_552 - channels


def test_block_channels_follow_smp(unetpp):
    _, model = unetpp
    table = decoder_block_channels(RESNET50_ENCODER_CHANNELS)
    assert len(table) == 11  # 10 nested nodes x_{d}_{l} (l < 4) + x_0_4
    assert table["x_0_0"] == (2048, 1024, 256)
    assert table["x_3_3"] == (256, 64, 64)  # features[3] (/4) up, features[4] (/2) skip
    assert table["x_0_3"] == (64, 64 * 4, 32)
    assert table["x_0_4"] == (32, 0, 16)
    for name, (in_ch, skip_ch, out_ch) in table.items():
        conv1 = model.get_layer(f"{DECODER_PREFIX}{name}_1_conv")
        conv2 = model.get_layer(f"{DECODER_PREFIX}{name}_2_conv")
        assert tuple(conv1.kernel.shape) == (3, 3, in_ch + skip_ch, out_ch), name
        assert tuple(conv2.kernel.shape) == (3, 3, out_ch, out_ch), name
        assert conv1.bias is None and conv2.bias is None
    head = model.get_layer(f"{HEAD_PREFIX}conv")
    assert tuple(head.kernel.shape) == (3, 3, 16, 2) and head.bias is not None


@pytest.mark.parametrize("channels", [2, 4, 8])
def test_builds_for_channel_counts(channels, model_for):
    model = model_for(channels)
    assert model.input_shape == (None, 128, 128, channels)
    assert model.output_shape == (None, 128, 128, 2)
    assert model.output.dtype == "float32"


def test_forward_pass_probabilities():
    model = build_unetplusplus(input_shape=(64, 64, 4), classes=1)
    x = np.random.default_rng(0).normal(size=(1, 64, 64, 4)).astype("float32")
    y = model(x, training=False).numpy()
    assert y.shape == (1, 64, 64, 1) and y.dtype == np.float32
    assert np.all(np.isfinite(y)) and y.min() >= 0.0 and y.max() <= 1.0


def test_mixed_precision_outputs_float32(mixed_precision):
    model = build_unetplusplus(input_shape=(64, 64, 2), classes=2, activation="softmax")
    assert model.get_layer(f"{DECODER_PREFIX}x_0_4_2_conv").compute_dtype == "float16"
    assert model.get_layer(f"{HEAD_PREFIX}conv").compute_dtype == "float16"
    assert model.output.dtype == "float32"
    y = model(np.ones((1, 64, 64, 2), "float32"), training=False).numpy()
    assert y.dtype == np.float32 and y.shape == (1, 64, 64, 2)
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)


def test_sm_unet_decoder_matches_smp_unet():
    """sm's own Unet decoder has exactly smp's Unet decoder parameter count.

    For ResNets sm adds no center block (that is only for VGG, whose encoder ends in max pooling), and its
    blocks are smp's: nearest x2 upsample, concat skip, (Conv3x3 without bias + BN + ReLU) twice, with
    in-channels [2048, 256, 128, 64, 32], skips [1024, 512, 256, 64, none], out (256, 128, 64, 32, 16).
    """
    model = sm.Unet("resnet50", encoder_weights=None, input_shape=(128, 128, 8), classes=2)
    decoder = [layer for layer in model.layers if layer.name.startswith("decoder_")]
    assert trainable(decoder) == SMP_UNET_DECODER
    assert trainable([model.get_layer("final_conv")]) == SMP_HEAD_2_CLASSES
