"""Importing the package prepares TensorFlow's environment: tf-keras, and oneDNN's kernels on every CPU."""

import os
import subprocess
import sys

import pytest

ONEDNN_STATE = (
    "import os, tf_landslide\n"
    "from tensorflow.python.util import _pywrap_util_port\n"
    "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], _pywrap_util_port.IsMklEnabled())\n"
)


def tensorflow_sees(onednn_variable: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if onednn_variable is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = onednn_variable
    done = subprocess.run([sys.executable, "-c", ONEDNN_STATE], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(os.path.exists("/dev/nvidiactl"), reason="on a GPU machine TensorFlow's default stands")
def test_onednn_kernels_are_on_whatever_the_cpu():
    # TensorFlow's own default turns them on only on CPUs with AVX512_VNNI/BF16 or AMX; the package
    # turns them on before TensorFlow loads, so an AVX2-only CPU gets them too.
    assert tensorflow_sees(None) == "1 True"


def test_a_users_onednn_choice_is_kept():
    assert tensorflow_sees("0") == "0 False"
