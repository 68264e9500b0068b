"""UNet++ (Zhou et al. 2018, nested dense skip pathways) in Keras on segmentation-models encoders.

The architecture reproduces segmentation-models-pytorch (smp 0.6) ``UnetPlusPlus`` block for block:
the authors train ``smp.UnetPlusPlus('resnet50', in_channels=C, classes=2)``, and segmentation-models
(``sm``, the Keras package) has no UNet++, so the decoder is written here on top of sm's encoders.

Encoder
    ``sm.Backbones.get_backbone(backbone, ...)`` with the skip layers sm's own ``Unet`` uses,
    ``sm.Backbones.get_feature_layers(backbone, n=4)``. For ResNet-50 the features are 64 channels at
    /2, 256 at /4, 512 at /8, 1024 at /16 and the encoder output is 2048 channels at /32, the same
    channels as smp's ``resnet50`` encoder ``(C, 64, 256, 512, 1024, 2048)``. The two ResNet-50s are
    not the same network, though: sm's (qubvel ``classification_models``) is a pre-activation ResNet
    with an input BatchNorm ``bn_data`` and a final ``bn1``, torchvision's is the original post-activation
    one, so the encoders differ by a few thousand BatchNorm parameters (see the tests).

Decoder (``UnetPlusPlusDecoder``)
    With the encoder channels reversed (head first) and the full-resolution input dropped,
    ``in_channels = [head] + decoder_filters[:-1]``, ``skip_channels = encoder_channels[1:] + [0]``,
    ``out_channels = decoder_filters``. Node ``x_{d}_{l}`` upsamples ``x_{d}_{l-1}`` (nearest, x2),
    concatenates ``[x_{d+1}_{l}, ..., x_{l}_{l}, feature[l+1]]`` and applies Conv3x3-BN-ReLU twice;
    ``x_0_4`` upsamples ``x_0_3`` without a skip. Channel order inside every concatenation is smp's, so
    weights can be ported tensor for tensor (PyTorch OIHW kernels transposed to HWIO).

Head (``SegmentationHead``)
    Conv3x3 to ``classes`` with bias, then the activation, computed in float32 so the output is float32
    even under a ``mixed_float16`` policy.

Initialisers follow smp's ``initialize_decoder``/``initialize_head``: decoder convs ``he_uniform``
(= ``kaiming_uniform_(mode='fan_in', nonlinearity='relu')``), BN gamma 1 / beta 0, head conv
``glorot_uniform`` (= ``xavier_uniform_``) with zero bias. Decoder BatchNorms use PyTorch's defaults
(momentum 0.1 in PyTorch's convention = 0.9 in Keras', epsilon 1e-5).
"""

from __future__ import annotations

from collections.abc import Sequence

# tf_landslide/__init__.py (always imported before this module) has set TF_USE_LEGACY_KERAS=1 and
# SM_FRAMEWORK=tf.keras, so `keras` here is tf_keras and sm builds its encoders with it.
import segmentation_models as sm
from tensorflow import keras

__all__ = [
    "DECODER_PREFIX",
    "HEAD_PREFIX",
    "build_unetplusplus",
    "decoder_block_channels",
]

DECODER_PREFIX = "decoder_"
HEAD_PREFIX = "head_"

# PyTorch BatchNorm2d defaults: running = 0.9 * running + 0.1 * batch, eps = 1e-5.
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5
_N_SKIPS = 4


def decoder_block_channels(
    encoder_channels: Sequence[int], decoder_filters: Sequence[int] = (256, 128, 64, 32, 16)
) -> dict[str, tuple[int, int, int]]:
    """smp's ``UnetPlusPlusDecoder`` channel table: block name -> (in, skip, out) channels.

    ``encoder_channels`` are the encoder features from the shallowest skip (/2) to the encoder output
    (/32), without the full-resolution input, e.g. ``(64, 256, 512, 1024, 2048)`` for ResNet-50.
    """
    enc = list(encoder_channels)[::-1]
    in_ch = [enc[0], *decoder_filters[:-1]]
    skip_ch = [*enc[1:], 0]
    out_ch = list(decoder_filters)
    table: dict[str, tuple[int, int, int]] = {}
    for layer_idx in range(len(in_ch) - 1):
        for depth_idx in range(layer_idx + 1):
            if depth_idx == 0:
                table[f"x_{depth_idx}_{layer_idx}"] = (
                    in_ch[layer_idx],
                    skip_ch[layer_idx] * (layer_idx + 1),
                    out_ch[layer_idx],
                )
            else:
                table[f"x_{depth_idx}_{layer_idx}"] = (
                    skip_ch[layer_idx - 1],
                    skip_ch[layer_idx] * (layer_idx + 1 - depth_idx),
                    skip_ch[layer_idx],
                )
    table[f"x_0_{len(in_ch) - 1}"] = (in_ch[-1], 0, out_ch[-1])
    return table


def _conv_bn_relu(x, filters: int, use_batchnorm: bool, name: str):
    x = keras.layers.Conv2D(
        filters,
        3,
        padding="same",
        use_bias=not use_batchnorm,
        kernel_initializer="he_uniform",
        name=f"{name}_conv",
    )(x)
    if use_batchnorm:
        x = keras.layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def _decoder_block(x, skip, filters: int, use_batchnorm: bool, name: str):
    """smp ``DecoderBlock``: nearest x2 upsample, concat skip, (Conv3x3-BN-ReLU) x 2."""
    x = keras.layers.UpSampling2D(size=2, interpolation="nearest", name=f"{name}_upsample")(x)
    if skip is not None:
        x = keras.layers.Concatenate(axis=-1, name=f"{name}_concat")([x, skip])
    x = _conv_bn_relu(x, filters, use_batchnorm, name=f"{name}_1")
    return _conv_bn_relu(x, filters, use_batchnorm, name=f"{name}_2")


def _skip_tensors(backbone: keras.Model, skip_layers) -> list:
    return [
        backbone.get_layer(name=s).output if isinstance(s, str) else backbone.get_layer(index=s).output
        for s in skip_layers
    ]


def _encoder_features(backbone: str, input_shape, encoder_weights) -> tuple[keras.Model, list]:
    """The segmentation-models encoder and its features, deepest first: /32, /16, /8, /4, /2.

    That is smp's feature list after dropping the full-resolution input and reversing it.
    """
    encoder = sm.Backbones.get_backbone(
        backbone,
        input_shape=input_shape,
        weights=encoder_weights,
        include_top=False,
        backend=keras.backend,
        layers=keras.layers,
        models=keras.models,
        utils=keras.utils,
    )
    skip_layers = sm.Backbones.get_feature_layers(backbone, n=_N_SKIPS)
    if len(skip_layers) != _N_SKIPS:
        raise ValueError(f"backbone {backbone!r} has {len(skip_layers)} default skip layers, need {_N_SKIPS}")
    return encoder, [encoder.output, *_skip_tensors(encoder, skip_layers)]


def _nested_decoder(features: list, out_channels: dict[str, int], use_batchnorm: bool):
    """smp's ``UnetPlusPlusDecoder``: the dense grid of nodes x_{d}_{l}, then the last node x_0_{depth}."""

    def block(name, x, skip):
        return _decoder_block(x, skip, out_channels[name], use_batchnorm, f"{DECODER_PREFIX}{name}")

    depth = len(features) - 1  # 4
    dense: dict[str, object] = {}
    for layer_idx in range(depth):
        for depth_idx in range(depth - layer_idx):
            if layer_idx == 0:
                name = f"x_{depth_idx}_{depth_idx}"
                dense[name] = block(name, features[depth_idx], features[depth_idx + 1])
            else:
                dense_l = depth_idx + layer_idx
                name = f"x_{depth_idx}_{dense_l}"
                cat = [dense[f"x_{i}_{dense_l}"] for i in range(depth_idx + 1, dense_l + 1)]
                cat.append(features[dense_l + 1])
                skip = keras.layers.Concatenate(axis=-1, name=f"{DECODER_PREFIX}{name}_skips")(cat)
                dense[name] = block(name, dense[f"x_{depth_idx}_{dense_l - 1}"], skip)
    name = f"x_0_{depth}"
    return block(name, dense[f"x_0_{depth - 1}"], None)


def _head(x, classes: int, activation: str | None):
    x = keras.layers.Conv2D(
        classes,
        3,
        padding="same",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        name=f"{HEAD_PREFIX}conv",
    )(x)
    # float32 even under mixed_float16: sigmoid/softmax and the loss must not run in half precision.
    return keras.layers.Activation(activation or "linear", dtype="float32", name=f"{HEAD_PREFIX}activation")(x)


def build_unetplusplus(
    backbone: str = "resnet50",
    input_shape=(128, 128, 8),
    classes: int = 1,
    activation: str | None = "sigmoid",
    encoder_weights=None,
    decoder_filters=(256, 128, 64, 32, 16),
    decoder_use_batchnorm: bool = True,
) -> keras.Model:
    """Build UNet++ (smp ``UnetPlusPlus`` architecture) on a segmentation-models encoder.

    Args:
        backbone: an ``sm.Backbones`` name with four default skip layers and a /32 output (the ResNets,
            ResNeXts, SE-ResNets, ...). The authors use ``"resnet50"``.
        input_shape: ``(H, W, C)``; H and W must be divisible by 32 (or ``None``).
        classes: output channels of the head (the authors' smp model uses ``classes=2``).
        activation: final activation (``"sigmoid"``, ``"softmax"``, ...) or ``None`` for logits; always
            computed in float32.
        encoder_weights: ``None`` or ``"imagenet"`` (ImageNet weights need 3 input channels in sm).
        decoder_filters: the five decoder output widths, smp's ``decoder_channels``.
        decoder_use_batchnorm: Conv3x3 without bias + BatchNorm (``True``) or Conv3x3 with bias.

    Layers added after the encoder are named ``decoder_x_{d}_{l}_{1|2}_{conv|bn|relu}`` (plus
    ``_upsample``, ``_skips`` for the dense concatenation and ``_concat``) and ``head_conv``/``head_activation``.
    """
    decoder_filters = tuple(int(f) for f in decoder_filters)
    if len(decoder_filters) != _N_SKIPS + 1:
        raise ValueError(f"decoder_filters needs {_N_SKIPS + 1} widths (encoder depth 5), got {decoder_filters}")
    encoder, features = _encoder_features(backbone, input_shape, encoder_weights)
    encoder_channels = [int(f.shape[-1]) for f in features[::-1]]
    out_channels = {k: v[2] for k, v in decoder_block_channels(encoder_channels, decoder_filters).items()}
    x = _nested_decoder(features, out_channels, decoder_use_batchnorm)
    x = _head(x, classes, activation)
    return keras.Model(encoder.input, x, name=f"unetplusplus_{backbone}")
