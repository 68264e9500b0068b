"""tf_landslide: rapid landslide detection from Sentinel-1 SAR datacubes.

Importing the package only prepares the environment for the stack: segmentation-models
needs the Keras 2 API, which TensorFlow 2.21 provides through tf-keras when
``TF_USE_LEGACY_KERAS=1`` is set before TensorFlow is first imported.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("SM_FRAMEWORK", "tf.keras")

__version__ = "0.1.0"
