"""What a SavedModel of ours promises the clients and servers that load it: its signature, tensor and
file names, the multiple its inputs' height and width must be, and the error an export raises.
Everything else in the package imports these; this module imports nothing (no TensorFlow)."""

MULTIPLE = 32  # a U-Net halves H and W five times
SERVING_DEFAULT, PREDICT_EXAMPLES = "serving_default", "predict_examples"
INPUT_CHANNELS, INPUT_EXAMPLES, OUTPUT = "channels", "examples", "probability"
ASSETS_EXTRA = "assets.extra"
WARMUP_FILE, PROVENANCE_FILE = "tf_serving_warmup_requests", "tf_landslide.json"
SAVED_MODEL_PB = "saved_model.pb"  # TF Serving (and Vertex AI) take a folder holding it as a complete model


class ServingExportError(ValueError):
    """The export cannot be made as asked (bad version, existing version, bad checkpoint)."""
