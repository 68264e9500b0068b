"""Models that XLA can compile with their gradients (``--jit_compile``).

Keras' nearest-neighbour ``UpSampling2D`` (every decoder here: sm's U-Net, FPN and Linknet, and
our UNet++) runs ``ResizeNearestNeighbor``, whose gradient op XLA has no CPU kernel for. An
integer-factor nearest upsampling is each pixel repeated: a broadcast and a reshape, whose
gradient is a sum over the repeats, both of which XLA compiles. ``for_xla`` swaps the layers and
keeps every weight and layer name, so weights saved from either model load into the other.
"""

from __future__ import annotations


def _nearest_upsampling_class():
    import tensorflow as tf

    class RepeatUpsampling2D(tf.keras.layers.Layer):
        """Nearest-neighbour upsampling by integer factors, as broadcast + reshape (NHWC)."""

        def __init__(self, size=(2, 2), **kwargs):
            super().__init__(**kwargs)
            self.size = tuple(int(s) for s in size)

        def call(self, inputs):
            rows, cols = self.size
            shape = tf.shape(inputs)
            n, h, w, c = shape[0], shape[1], shape[2], shape[3]
            spread = tf.broadcast_to(inputs[:, :, None, :, None, :], [n, h, rows, w, cols, c])
            return tf.reshape(spread, [n, h * rows, w * cols, c])

        def compute_output_shape(self, input_shape):
            n, h, w, c = input_shape
            rows, cols = self.size
            return (n, None if h is None else h * rows, None if w is None else w * cols, c)

        def get_config(self):
            return {**super().get_config(), "size": self.size}

    return RepeatUpsampling2D


def for_xla(model):
    """``model`` with each nearest ``UpSampling2D`` replaced by ``RepeatUpsampling2D`` (the same
    values and gradients), its weights copied; the model itself if it has none."""
    import tensorflow as tf

    nearest = [
        layer
        for layer in model.layers
        if isinstance(layer, tf.keras.layers.UpSampling2D) and layer.interpolation == "nearest"
    ]
    if not nearest:
        return model
    repeat = _nearest_upsampling_class()

    def clone(layer):
        if layer in nearest:
            return repeat(size=layer.size, name=layer.name, dtype=layer.dtype_policy)
        return layer.__class__.from_config(layer.get_config())

    compiled = tf.keras.models.clone_model(model, clone_function=clone)
    compiled.set_weights(model.get_weights())
    return compiled
