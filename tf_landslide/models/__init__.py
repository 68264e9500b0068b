"""Segmentation models: segmentation-models architectures and our Keras UNet++.

Every model maps standardised chips [N, H, W, C] to landslide probability [N, H, W, 1] in
float32, also under a mixed-precision policy (the sigmoid runs in float32).
"""

from __future__ import annotations

import logging

import numpy as np

from tf_landslide.config import ARCHITECTURES, ENCODER_WEIGHTS, ModelConfig

log = logging.getLogger("tf_landslide.models")


def _builder(arch: str):
    import segmentation_models as sm

    if arch == "unetplusplus":
        from tf_landslide.models.unetplusplus import build_unetplusplus

        return build_unetplusplus
    return {"unet": sm.Unet, "fpn": sm.FPN, "linknet": sm.Linknet}[arch]


def check_model_config(cfg: ModelConfig) -> None:
    import segmentation_models as sm

    if cfg.arch not in ARCHITECTURES:
        raise ValueError(f"--arch={cfg.arch!r}; choose one of {list(ARCHITECTURES)}")
    backbones = sm.Backbones.models_names()
    if cfg.backbone not in backbones:
        raise ValueError(
            f"--backbone={cfg.backbone!r} is not a segmentation-models backbone; choose one of {backbones}"
        )
    if cfg.encoder_weights not in ENCODER_WEIGHTS:
        raise ValueError(f"--encoder_weights={cfg.encoder_weights!r}; choose '' (none) or imagenet")


# PyTorch's BatchNorm momentum 0.1 is Keras' 0.9. Keras' default 0.99 leaves the moving
# statistics far from the batch statistics after the few hundred steps of the paper's recipe
# (216 chips, batch 64, 100 epochs), and evaluation then collapses.
BATCHNORM_MOMENTUM = 0.9


def _sigmoid_head(model, name: str):
    """Logits -> probability in float32, whatever the global dtype policy."""
    import tensorflow as tf

    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = BATCHNORM_MOMENTUM

    probability = tf.keras.layers.Activation("sigmoid", dtype="float32", name="probability")(model.output)
    return tf.keras.Model(model.input, probability, name=name)


def build_model(cfg: ModelConfig, channels: int, chip_size: int, pretrained_source=None):
    """The configured architecture for ``channels`` input channels, one output probability.

    With ``encoder_weights='imagenet'`` and C != 3 channels, the ImageNet weights of a
    3-channel model are transferred as segmentation-models-pytorch does (the authors' stack):
    every weight is copied, and the input-side weights are tiled over the C channels
    (channel i takes RGB weight i mod 3) with convolution kernels scaled by 3/C so the first
    activations keep their scale. ``pretrained_source`` replaces the download in tests.
    """
    check_model_config(cfg)
    build = _builder(cfg.arch)
    shape = (chip_size, chip_size, channels)
    name = f"{cfg.arch}_{cfg.backbone}"
    if cfg.encoder_weights == "imagenet" and channels != 3:
        model = build(cfg.backbone, input_shape=shape, classes=1, activation="linear", encoder_weights=None)
        source = pretrained_source or build(
            cfg.backbone,
            input_shape=(chip_size, chip_size, 3),
            classes=1,
            activation="linear",
            encoder_weights="imagenet",
        )
        adapted = transfer_weights(source, model)
        log.info("ImageNet weights adapted to %d input channels in %s", channels, ", ".join(adapted))
    else:
        model = build(
            cfg.backbone, input_shape=shape, classes=1, activation="linear", encoder_weights=cfg.encoder_weights or None
        )
    return _sigmoid_head(model, name)


def transfer_weights(source, target) -> list[str]:
    """Copy weights layer by layer (by name); tile input-channel axes of 3 to C. Returns the
    names of the layers whose weights were adapted."""
    sources = {layer.name: layer for layer in source.layers}
    adapted = []
    for layer in target.layers:
        if not layer.weights or layer.name not in sources:
            continue
        new_values = []
        for old, new in zip(sources[layer.name].get_weights(), layer.get_weights(), strict=True):
            if old.shape == new.shape:
                new_values.append(old)
                continue
            axis = next(a for a, (o, n) in enumerate(zip(old.shape, new.shape, strict=True)) if o != n)
            channels = new.shape[axis]
            tiled = np.take(old, np.arange(channels) % old.shape[axis], axis=axis)
            if old.ndim == 4:  # a convolution kernel [kh, kw, in, out]
                tiled = tiled * (old.shape[axis] / channels)
            new_values.append(tiled.astype(new.dtype))
            if layer.name not in adapted:
                adapted.append(layer.name)
        layer.set_weights(new_values)
    return adapted
