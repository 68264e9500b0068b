"""The paper's optimiser: Adam with PyTorch's semantics.

Weight decay is an **L2 term added to the gradient** (``weight_decay_mode='l2'``), exactly what
``torch.optim.Adam(weight_decay=1e-4)`` in the authors' code does, on every parameter (BN and
biases included). Decoupled decay (AdamW) is a different method; it is offered as
``weight_decay_mode='decoupled'`` for comparison. PyTorch adds its epsilon after the bias
correction: Keras' ``adaptive_epsilon``.
"""

from __future__ import annotations

import tensorflow as tf

# The Keras 2 package itself, not tf.keras: see callbacks.py (a base class resolved at import).
import tf_keras

from tf_landslide.config import TrainConfig

WEIGHT_DECAY_MODES = ("l2", "decoupled")


def make_optimizer(cfg: TrainConfig):
    if cfg.weight_decay_mode not in WEIGHT_DECAY_MODES:
        raise ValueError(f"--weight_decay_mode={cfg.weight_decay_mode!r}; choose one of {list(WEIGHT_DECAY_MODES)}")
    # PyTorch's Adam adds eps = 1e-8 after the bias correction: Keras' adaptive_epsilon.
    torch_epsilon = {"epsilon": 1e-8, "adaptive_epsilon": True}
    if cfg.weight_decay_mode == "decoupled":
        # Keras' Adam applies its weight_decay decoupled, as AdamW (its AdamW lacks adaptive_epsilon).
        return tf_keras.optimizers.Adam(learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay, **torch_epsilon)
    return AdamL2(learning_rate=cfg.learning_rate, l2=cfg.weight_decay, **torch_epsilon)


class AdamL2(tf_keras.optimizers.Adam):
    """Adam with PyTorch's (coupled) weight decay: gradient += l2 * parameter."""

    def __init__(self, l2: float = 0.0, name: str = "AdamL2", **kwargs):
        super().__init__(name=name, **kwargs)
        self.l2 = l2

    def update_step(self, gradient, variable):
        if self.l2:
            gradient = tf.convert_to_tensor(gradient) + tf.cast(self.l2, variable.dtype) * variable
        return super().update_step(gradient, variable)

    def get_config(self):
        return {**super().get_config(), "l2": self.l2, "adaptive_epsilon": self.adaptive_epsilon}


def custom_objects() -> dict:
    return {"AdamL2": AdamL2}
