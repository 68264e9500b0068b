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
    def of(cls, values: np.ndarray, channel_axis: int = -1) -> ChannelMoments:
        """Moments per channel of ``values`` (channels on ``channel_axis``), ignoring NaN and infinities.

        Compiled (``kernels.channel_moments``): two passes in float64, no float64 copy of the
        values. Channels first (``channel_axis=0``) reads each channel in place; other layouts
        are copied to it first, and give the same bits.
        """
        from tf_landslide import kernels  # numba's import is slow: only the export needs it

        values = np.moveaxis(np.asarray(values), channel_axis, 0)
        channels = len(values)
        if not values.size:
            return cls.empty(channels)
        by_channel = values.reshape(channels, -1, values.shape[-1] if values.ndim > 1 else 1)
        out = np.empty((3, channels))
        kernels.channel_moments(by_channel, 0, 0, *by_channel.shape[1:], out)
        return cls(*out)

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
