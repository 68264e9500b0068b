"""Per-channel mean and standard deviation, merged exactly across chips and workers."""

from __future__ import annotations

import dataclasses

import numpy as np

_BLOCK = 1 << 16  # values: a 512 KB float64 block fits the L2 cache


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
        """Moments per channel of ``values`` (channels on ``channel_axis``), ignoring NaN.

        One channel at a time, in blocks whose float64 copy stays in the cache (2x faster than
        whole planes on a Hokkaido-size band), merged exactly as ``merge`` does; so a band of a
        scene never has a float64 copy of itself. Channels first (``channel_axis=0``) reads each
        channel contiguously; both layouts sum in the same order and give the same bits.
        """
        values = np.asarray(values)
        channels = values.shape[channel_axis]
        count, mean, m2 = (np.zeros(channels) for _ in range(3))
        by_channel = np.moveaxis(values, channel_axis, 0)
        scratch = np.empty(_BLOCK)
        for c in range(channels):
            plane = by_channel[c].ravel()  # a view when channels come first
            n_c = mean_c = m2_c = 0.0
            for start in range(0, plane.size, _BLOCK):
                block = plane[start : start + _BLOCK]
                finite = np.isfinite(block)
                if not finite.all():
                    block = block[finite]
                if not block.size:
                    continue
                deviation = scratch[: block.size]
                np.copyto(deviation, block)
                block_mean = deviation.sum() / block.size
                deviation -= block_mean
                # Not np.dot: OpenBLAS's threads spin after each call, taking the cores from
                # the other export workers (case b of the export benchmark: 1.7 more CPU s).
                block_m2 = np.square(deviation, out=deviation).sum()
                total = n_c + block.size
                delta = block_mean - mean_c
                m2_c += block_m2 + delta * delta * n_c * block.size / total
                mean_c += delta * block.size / total
                n_c = total
            count[c], mean[c], m2[c] = n_c, mean_c, m2_c
        return cls(count, mean, m2)

    @classmethod
    def of_each(cls, stack: np.ndarray, channel_axis: int = -1) -> list[ChannelMoments]:
        """Moments of each item of ``stack`` [N, ...], channels on ``channel_axis`` of the whole
        stack (not 0), ignoring NaN; one pass per channel. Channels first ([N, C, ...]) reads
        each channel contiguously; both layouts give the same bits.
        """
        stack = np.asarray(stack)
        flat = np.moveaxis(stack, channel_axis, 1).reshape(len(stack), stack.shape[channel_axis], -1)
        shape = (flat.shape[0], flat.shape[1])
        count, mean, m2 = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        for c in range(flat.shape[1]):
            values = flat[:, c, :].astype(np.float64)
            finite = np.isfinite(values)
            if finite.all():  # the common case, without masks
                count[:, c] = values.shape[1]
                mean[:, c] = values.sum(1) / values.shape[1]
                deviation = np.subtract(values, mean[:, c : c + 1], out=values)
            else:
                count[:, c] = finite.sum(1)
                values[~finite] = 0.0
                mean[:, c] = values.sum(1) / np.maximum(count[:, c], 1)
                deviation = np.where(finite, values - mean[:, c : c + 1], 0.0)
            m2[:, c] = np.einsum("ij,ij->i", deviation, deviation)
        return [cls(count[i], mean[i], m2[i]) for i in range(flat.shape[0])]

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
