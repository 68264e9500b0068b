"""Files that appear complete or not at all: written to a temporary name, then renamed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def atomic_write_bytes(path: Path, data: bytes) -> None:
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    partial.write_bytes(data)
    os.replace(partial, path)


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}.npy")
    np.save(partial, array)
    os.replace(partial, path)
