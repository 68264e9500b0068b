"""The progress bars of the scan and of the shards written after it."""

from __future__ import annotations


def progress(total: int, unit: str, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, disable=not enabled, dynamic_ncols=True, smoothing=0.1)
