"""The chip stage of a scanned window: which candidate chips are kept, their records' pixels,
and the moments the statistics need, in one compiled pass a chip (``kernels.scan_chips``)."""

from __future__ import annotations

import dataclasses

import numpy as np

from tf_landslide.export.plan import BandTask
from tf_landslide.normalisation import ChannelMoments


@dataclasses.dataclass(frozen=True)
class ChipStage:
    """A window's candidate chips after the chip stage (``stage_chips``)."""

    kept: list[int]  # chip indices of the chips that are not mostly no-data, in the task's order
    skipped: list[list]  # [chip index, no-data fraction] of the others
    corners: list[tuple[int, int]]  # the kept chips' top-left (row, col) in the window
    images: np.ndarray  # [len(kept), size, size, C] the kept chips, channels last, in the record dtype
    error: np.ndarray  # [C] float32: the largest rounding error to the record dtype per channel
    moments: dict[str, dict]  # ChannelMoments (JSON) of the kept chips in the task's moments_for, by chip index


def stage_chips(
    band: np.ndarray, task: BandTask, chip_size: int, max_nodata_fraction: float, record_dtype: str
) -> ChipStage:
    """The no-data check, record layout and moments of ``task``'s chips in ``band`` [C, rows, cols]:
    a compiled loop (``kernels.scan_chips``), one pass a chip where numpy would make a dozen."""
    from tf_landslide import kernels  # numba is slow to import: train.py and predict.py need it only to export

    n, channels = len(task.chips), band.shape[0]
    corners = [(row - task.y0, col - task.x0) for _, row, col in task.chips]
    last_row, last_col = band.shape[1] - chip_size, band.shape[2] - chip_size
    outside = [(r, c) for r, c in corners if not (0 <= r <= last_row and 0 <= c <= last_col)]
    if outside:  # the compiled loop does not check its indices
        raise ValueError(f"chips at {outside[:3]} of window {task.name} are not inside its band {band.shape[1:]}")
    rows, cols = (np.array([corner[k] for corner in corners], np.int64).reshape(n) for k in (0, 1))
    wants_moments = np.array([index in task.moments_for for index, _, _ in task.chips], bool).reshape(n)
    to_half = record_dtype == "float16"
    shape = (n, chip_size, chip_size, channels)
    halves = np.empty(shape if to_half else (0, *shape[1:]), np.uint16)
    floats = np.empty((0, *shape[1:]) if to_half else shape, np.float32)
    error = np.zeros(channels, np.float32)
    moments = np.empty((n, 3, channels))
    nodata, kept = np.empty(n), np.empty(n, bool)
    count = kernels.scan_chips(
        band, rows, cols, chip_size, max_nodata_fraction, wants_moments, halves, floats, error, moments, nodata, kept
    )
    indices = [index for index, _, _ in task.chips]
    kept_indices = [index for index, keep in zip(indices, kept, strict=True) if keep]
    return ChipStage(
        kept=kept_indices,
        skipped=[[index, float(f)] for index, f, keep in zip(indices, nodata, kept, strict=True) if not keep],
        corners=[corner for corner, keep in zip(corners, kept, strict=True) if keep],
        images=halves[:count].view(np.float16) if to_half else floats[:count],
        error=error,
        moments={
            str(index): ChannelMoments(*moments[slot]).to_json()
            for slot, index in enumerate(kept_indices)
            if index in task.moments_for
        },
    )
