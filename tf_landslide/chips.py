"""Chip grid over the scene, positive-pixel counts, negatives and train/val/test splits.

Splits are a property of a chip *location* and depend only on the labels, the grid and
the seed, never on the channels: every configuration exported from one cube puts the same
locations in the same split, so configurations are compared on the same test chips.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from tf_landslide.config import SplitSpec
from tf_landslide.cube import schema
from tf_landslide.cube.open import check_labels
from tf_landslide.cube.planes import PlaneReader, landslide_mask, planes_of

SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class ChipTable:
    """One row per chip location of the grid (top-left pixel ``row``, ``col``)."""

    row: np.ndarray
    col: np.ndarray
    positives: np.ndarray  # landslide pixels in the chip
    split: np.ndarray  # index into SPLITS

    def __len__(self) -> int:
        return self.row.size


def grid_origins(length: int, size: int, stride: int) -> np.ndarray:
    """Start offsets of the chips that fit entirely along one axis (the remainder is dropped)."""
    if length < size:
        return np.zeros(0, np.int64)
    return np.arange(0, length - size + 1, stride, dtype=np.int64)


def count_positives(
    source: xr.Dataset | PlaneReader, size: int, stride: int, band_rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Landslide pixels per chip, reading the label raster in bands of rows.

    Returns (row origins, col origins, counts [rows, cols], NaN label count). Raises
    CubeError on labels other than 0/1.
    """
    reader = planes_of(source)
    height, width = reader.shape
    rows, cols = grid_origins(height, size, stride), grid_origins(width, size, stride)
    counts = np.zeros((rows.size, cols.size), np.int64)
    nan_total = 0
    for start in range(0, rows.size, max(1, band_rows // stride)):
        chunk = rows[start : start + max(1, band_rows // stride)]
        y0, y1 = int(chunk[0]), int(chunk[-1]) + size
        band = reader.plane(schema.LABEL_VARIABLE, {}, slice(y0, y1), slice(None))
        nan_total += check_labels(band, f" (rows {y0}..{y1})")
        counts[start : start + chunk.size] = _window_sums(landslide_mask(band), chunk - y0, cols, size)
    return rows, cols, counts, nan_total


def _window_sums(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Sums of ``values`` over the ``size`` x ``size`` windows at ``rows`` x ``cols``."""
    if rows.size and cols.size and (np.diff(rows) == size).all() and (np.diff(cols) == size).all():
        tiles = values[rows[0] : rows[-1] + size, cols[0] : cols[-1] + size]  # the grid's tiles touch
        return tiles.reshape(rows.size, size, cols.size, size).sum(axis=(1, 3), dtype=np.int64)
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1), np.int64)  # summed-area table
    np.cumsum(np.cumsum(values, axis=0, dtype=np.int64), axis=1, out=table[1:, 1:])
    r, c = rows[:, None], cols[None, :]
    return table[r + size, c + size] - table[r, c + size] - table[r + size, c] + table[r, c]


def assign_splits(row_index: np.ndarray, col_index: np.ndarray, positive: np.ndarray, spec: SplitSpec) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) of each chip location.

    'random' shuffles positive and negative locations separately (seeded) and cuts each at
    the fractions, as the authors' 70/20/10 random split does for kept chips. 'blocked'
    groups ``block`` x ``block`` chips, shuffles the blocks, and fills train then val then
    test up to the fractions of positive chips, so neighbouring chips share a split.
    """
    n = row_index.size
    split = np.full(n, 2, np.int8)
    if spec.method == "random":
        for stratum, members in enumerate((np.flatnonzero(positive), np.flatnonzero(~positive))):
            rng = np.random.default_rng(np.random.SeedSequence([spec.seed, stratum]))
            order = members[rng.permutation(members.size)]
            n_train = int(members.size * spec.fractions[0])
            n_val = int(members.size * spec.fractions[1])
            split[order[:n_train]] = 0
            split[order[n_train : n_train + n_val]] = 1
        return split
    block_id = (row_index // spec.block) * (int(col_index.max(initial=0)) // spec.block + 1) + col_index // spec.block
    blocks, inverse = np.unique(block_id, return_inverse=True)
    weight = np.bincount(inverse, weights=positive.astype(float), minlength=blocks.size)
    if weight.sum() == 0:  # no positives anywhere: balance by chip count instead
        weight = np.bincount(inverse, minlength=blocks.size).astype(float)
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 2]))
    order = rng.permutation(blocks.size)
    cumulative = np.cumsum(weight[order]) / weight.sum()
    bounds = np.cumsum(spec.fractions)[:2]
    # A block goes to the first split whose cumulative quota it starts within.
    start = cumulative - weight[order] / weight.sum()
    block_split = np.searchsorted(bounds, start + 1e-12, side="left").astype(np.int8)
    per_block = np.empty(blocks.size, np.int8)
    per_block[order] = np.minimum(block_split, 2)
    return per_block[inverse]


def build_chip_table(
    source: xr.Dataset | PlaneReader, size: int, stride: int, split: SplitSpec, band_rows: int
) -> tuple[ChipTable, int]:
    """Every chip location of the grid with its positives and split; and the NaN label count."""
    rows, cols, counts, nan_labels = count_positives(source, size, stride, band_rows)
    ri, ci = np.meshgrid(np.arange(rows.size), np.arange(cols.size), indexing="ij")
    ri, ci, positives = ri.ravel(), ci.ravel(), counts.ravel()
    splits = assign_splits(ri, ci, positives > 0, split)
    return ChipTable(rows[ri], cols[ci], positives, splits), nan_labels


def negative_order(table: ChipTable, seed: int) -> np.ndarray:
    """Indices of negative chips in a seeded order: negatives are taken from its front."""
    negatives = np.flatnonzero(table.positives == 0)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
    return negatives[rng.permutation(negatives.size)]
