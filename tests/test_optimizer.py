"""AdamL2 is torch.optim.Adam(weight_decay=...); the 'decoupled' mode is torch.optim.AdamW."""

import tf_landslide  # noqa: F401, I001  (first: it sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import tiny_export_config
from tf_landslide import optimizer as optimizer_lib
from tf_landslide.config import TrainConfig

BETA_1, BETA_2, TORCH_EPSILON = 0.9, 0.999, 1e-8


def torch_reference(w, gradients, lr, weight_decay=0.0, decoupled=False):
    """float64 torch.optim.Adam(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay) (g += wd w) or, with
    ``decoupled``, torch.optim.AdamW (w -= lr wd w); eps is added to sqrt(v_hat)."""
    w = np.array(w, np.float64)
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(gradients, start=1):
        g = np.asarray(g, np.float64) + (0.0 if decoupled else weight_decay) * w
        if decoupled:
            w = w * (1 - lr * weight_decay)
        m = BETA_1 * m + (1 - BETA_1) * g
        v = BETA_2 * v + (1 - BETA_2) * g * g
        m_hat, v_hat = m / (1 - BETA_1**t), v / (1 - BETA_2**t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + TORCH_EPSILON)
    return w


W0 = [1.0, -2.0, 0.5, 3.0]
GRADIENTS = [[0.1, 0.2, -0.3, 0.0], [-0.05, 0.4, 0.1, 1e-3], [0.02, -0.1, 0.3, -0.2]]
# where eps matters: Keras' default (1e-7 on the uncorrected sqrt(v)) makes these steps several times
# smaller than torch's, and 1e-9 is a tenth of torch's eps
SMALL_GRADIENTS = [[1e-6, -2e-6, 5e-7, 1e-9], [2e-6, 1e-9, -5e-7, 3e-9], [-1e-6, 1e-6, 1e-8, 1e-9]]


def _steps(optimizer, gradients, w0=W0):
    w = tf.Variable(w0, dtype=tf.float32)
    for g in gradients:
        optimizer.apply_gradients([(tf.constant(g, tf.float32), w)])
    return w.numpy()


def assert_matches_torch(optimizer, gradients, lr, weight_decay=0.0, decoupled=False):
    """The float32 parameters to 1e-6 relative, and the updates themselves to float32's resolution."""
    w = _steps(optimizer, gradients)
    expected = torch_reference(W0, gradients, lr, weight_decay, decoupled)
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    np.testing.assert_allclose(w - np.float32(W0), expected - np.array(W0), rtol=1e-3)


def _train_config(**overrides) -> TrainConfig:
    return TrainConfig(export=tiny_export_config("unused", "unused"), **overrides)


@pytest.mark.parametrize("gradients", [GRADIENTS, SMALL_GRADIENTS], ids=["gradients", "small-gradients"])
def test_adam_l2_is_torch_adam_with_weight_decay(gradients):
    optimizer = optimizer_lib.make_optimizer(_train_config(learning_rate=0.01, weight_decay=0.1))
    assert isinstance(optimizer, tf.keras.optimizers.Adam) and type(optimizer).__name__ == "AdamL2"
    assert optimizer.l2 == 0.1 and optimizer.weight_decay is None  # coupled, not Keras' decoupled decay
    assert (optimizer.beta_1, optimizer.beta_2) == (BETA_1, BETA_2) and not optimizer.amsgrad
    assert_matches_torch(optimizer, gradients, 0.01, weight_decay=0.1)
    without_decay = optimizer_lib.make_optimizer(_train_config(learning_rate=0.01, weight_decay=0.0))
    assert_matches_torch(without_decay, gradients, 0.01)


def test_adam_l2_differs_from_plain_adam_adamw_and_keras_epsilon():
    coupled = _steps(optimizer_lib.make_optimizer(_train_config(learning_rate=0.01, weight_decay=0.1)), GRADIENTS)
    # the decay enters the moments: plain Adam on g alone lands elsewhere (w[3] has g = 0 at step 1), so does AdamW
    assert np.abs(coupled - torch_reference(W0, GRADIENTS, 0.01)).max() > 1e-3
    assert np.abs(coupled - torch_reference(W0, GRADIENTS, 0.01, 0.1, decoupled=True)).max() > 1e-3
    # and the small-gradient reference is sharp enough to see the epsilon: Keras' default Adam is far off
    ours = _steps(optimizer_lib.make_optimizer(_train_config(learning_rate=0.01, weight_decay=0.0)), SMALL_GRADIENTS)
    keras_default = _steps(tf.keras.optimizers.Adam(learning_rate=0.01), SMALL_GRADIENTS)
    assert np.abs((keras_default - W0) / (ours - W0) - 1).max() > 0.5


def test_adam_l2_survives_serialisation():
    optimizer = optimizer_lib.AdamL2(learning_rate=0.01, l2=1e-4)
    config = optimizer.get_config()
    assert config["l2"] == 1e-4
    again = optimizer_lib.custom_objects()["AdamL2"].from_config(config)
    assert again.l2 == 1e-4 and float(again.learning_rate) == pytest.approx(0.01)


def test_adam_l2_from_config_keeps_torch_epsilon():
    optimizer = optimizer_lib.make_optimizer(_train_config(learning_rate=0.01, weight_decay=0.0))
    again = optimizer_lib.custom_objects()["AdamL2"].from_config(optimizer.get_config())
    assert_matches_torch(again, SMALL_GRADIENTS, 0.01)


def test_unknown_weight_decay_mode_raises():
    with pytest.raises(ValueError, match="weight_decay_mode"):
        optimizer_lib.make_optimizer(_train_config(weight_decay_mode="adamw"))


@pytest.mark.parametrize("gradients", [GRADIENTS, SMALL_GRADIENTS], ids=["gradients", "small-gradients"])
def test_decoupled_mode_is_torch_adamw(gradients):
    cfg = _train_config(learning_rate=0.01, weight_decay=0.1, weight_decay_mode="decoupled")
    optimizer = optimizer_lib.make_optimizer(cfg)
    assert optimizer.weight_decay == pytest.approx(0.1) and not getattr(optimizer, "l2", 0.0)
    assert_matches_torch(optimizer, gradients, 0.01, weight_decay=0.1, decoupled=True)
