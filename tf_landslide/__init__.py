"""tf_landslide: rapid landslide detection from Sentinel-1 SAR datacubes.

Importing the package only prepares the environment for the stack, which TensorFlow reads when it
is first imported:

* segmentation-models needs the Keras 2 API, which TensorFlow 2.21 provides through tf-keras
  with ``TF_USE_LEGACY_KERAS=1``;
* TensorFlow's Linux build uses its oneDNN kernels by default only on CPUs with AVX512_VNNI,
  AVX512_BF16 or AMX; on others (every AVX2-only CPU) convolutions fall back to Eigen's, much
  slower to train and run the models (bench/README.md, "Against the authors' PyTorch").
  ``TF_ENABLE_ONEDNN_OPTS=1`` turns them on everywhere, except on a machine
  with an NVIDIA GPU, where the models run on the GPU and TensorFlow's default stands.

A variable the user has set is left as it is.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
if not os.path.exists("/dev/nvidiactl"):  # the NVIDIA driver's control device: a GPU machine
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
