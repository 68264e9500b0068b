"""Per-channel mean and standard deviation, merged exactly across chips and workers."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class ChannelMoments:
    """Count, mean and sum of squared deviations per channel over finite values.

    Merged with Chan et al.'s pairwise update, which stays accurate where the naive
    sum-of-squares formula cancels (elevations in the thousands of metres).
    """

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, channels: int) -> ChannelMoments:
        return cls(np.zeros(channels), np.zeros(channels), np.zeros(channels))

    @classmethod
    def of(cls, values: np.ndarray) -> ChannelMoments:
        """Moments of ``values`` shaped [..., C] (channels last), ignoring NaN."""
        flat = np.asarray(values, np.float64).reshape(-1, values.shape[-1])
        finite = np.isfinite(flat)
        count = finite.sum(0).astype(np.float64)
        filled = np.where(finite, flat, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, filled.sum(0) / count, 0.0)
        m2 = (np.where(finite, flat - mean, 0.0) ** 2).sum(0)
        return cls(count, mean, m2)

    def merge(self, other: ChannelMoments) -> ChannelMoments:
        count = self.count + other.count
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = other.mean - self.mean
            mean = np.where(count > 0, self.mean + delta * np.where(count > 0, other.count / count, 0), 0.0)
            m2 = self.m2 + other.m2 + np.where(count > 0, delta**2 * self.count * other.count / count, 0.0)
        return ChannelMoments(count, mean, m2)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (numpy's and xarray's default, as the authors used)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, np.sqrt(self.m2 / np.maximum(self.count, 1)), 0.0)

    def to_json(self) -> dict:
        return {"count": self.count.tolist(), "mean": self.mean.tolist(), "m2": self.m2.tolist()}

    @classmethod
    def from_json(cls, data: dict) -> ChannelMoments:
        return cls(*(np.asarray(data[k], np.float64) for k in ("count", "mean", "m2")))
