import subprocess
import sys

# As on a read-only install with a read-only home: numba finds no cache location.
NO_CACHE_LOCATION = """
import numba.core.caching as caching
caching.CacheImpl._locator_classes = []
import numpy as np
from tf_landslide.cube.channels import log_mean
print(log_mean([np.array([1.0, np.e], np.float32), np.array([np.nan, np.e], np.float32)]).tolist())
"""


def test_compiled_loops_work_without_a_writable_cache_location_and_say_how_to_cache_them():
    done = subprocess.run([sys.executable, "-c", NO_CACHE_LOCATION], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[0.0,", "1.0]"]
    assert done.stderr.count("set NUMBA_CACHE_DIR to a writable folder") == 1  # once, not per function
