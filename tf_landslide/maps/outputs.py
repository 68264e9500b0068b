"""What a map is written as, block of rows by block of rows: a cloud-optimised GeoTIFF, a Zarr
store, a PNG quick-look, and pixel scores against the cube's labels."""

from __future__ import annotations

import math
import os

import numpy as np

from tf_landslide.metrics import BinnedPixelCurve, PixelCurve

PROBABILITY = "probability"
BLOCK = 512  # GeoTIFF tile and Zarr chunk edge
QUICKLOOK_PIXELS = 1600  # longest side of the quick-look
GDAL_CACHE_MB = 64  # GDAL's default (5% of RAM) would let the tiled file's cache grow with the scene


def _affine(transform: list[float]):
    from affine import Affine

    return Affine(*transform)


class GeoTiff:
    """Probabilities streamed into a tiled GeoTIFF, then copied to a cloud-optimised GeoTIFF.

    The tiled file is kept open for random reads (``read_window``) until ``close``.
    """

    def __init__(self, path: str, height: int, width: int, crs_wkt: str | None, transform: list[float]):
        import rasterio

        self.path, self.staging = path, f"{path}.tiled.tif"
        profile = {
            "driver": "GTiff",
            "height": height,
            "width": width,
            "count": 1,
            "dtype": "float32",
            "crs": crs_wkt,
            "transform": _affine(transform),
            "nodata": float("nan"),
            "tiled": True,
            "blockxsize": BLOCK,
            "blockysize": BLOCK,
            "BIGTIFF": "IF_SAFER",  # uncompressed: the COG copy compresses once
        }
        self.env = rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)
        self.env.__enter__()
        self.dataset = rasterio.open(self.staging, "w+", **profile)
        self.width = width

    def write(self, row: int, probability: np.ndarray, inputs: np.ndarray) -> None:
        from rasterio.windows import Window

        self.dataset.write(probability, 1, window=Window(0, row, self.width, probability.shape[0]))

    def read_window(self, row0: int, col0: int, row1: int, col1: int) -> np.ndarray:
        from rasterio.windows import Window

        return self.dataset.read(1, window=Window(col0, row0, col1 - col0, row1 - row0))

    def close(self, keep: bool = True) -> None:
        import rasterio.shutil

        self.dataset.close()
        try:
            if keep:
                rasterio.shutil.copy(
                    self.staging,
                    self.path,
                    driver="COG",
                    COMPRESS="DEFLATE",
                    PREDICTOR="YES",
                    BLOCKSIZE=str(BLOCK),
                    OVERVIEW_RESAMPLING="AVERAGE",
                    BIGTIFF="IF_SAFER",
                    NUM_THREADS="ALL_CPUS",  # compress tiles in parallel
                )
        finally:
            self.env.__exit__(None, None, None)
            os.remove(self.staging)


class ZarrMap:
    """Probabilities on the cube's own x/y coordinates, with its CRS (rioxarray conventions)."""

    def __init__(self, path: str, x: np.ndarray, y: np.ndarray, crs_wkt: str | None, transform: list[float], attrs):
        import dask.array
        import rioxarray  # noqa: F401 (the .rio accessor)
        import xarray as xr
        import zarr

        empty = dask.array.full((y.size, x.size), np.nan, dtype=np.float32, chunks=(BLOCK, BLOCK))
        ds = xr.Dataset({PROBABILITY: (("y", "x"), empty)}, coords={"y": y, "x": x}, attrs=attrs)
        ds[PROBABILITY].attrs.update(long_name="landslide probability", units="1", valid_min=0.0, valid_max=1.0)
        if crs_wkt:
            ds = ds.rio.write_crs(crs_wkt).rio.write_transform(_affine(transform))
        ds.to_zarr(path, mode="w", compute=False, zarr_format=2, consolidated=True)
        self.array = zarr.open_array(f"{path}/{PROBABILITY}", mode="r+")

    def write(self, row: int, probability: np.ndarray, inputs: np.ndarray) -> None:
        self.array[row : row + probability.shape[0]] = probability


class Quicklook:
    """Every ``step``-th pixel of the probabilities, a backdrop channel and the labels, for a PNG."""

    def __init__(self, height: int, width: int, backdrop: int | None):
        self.step = max(1, math.ceil(max(height, width) / QUICKLOOK_PIXELS))
        self.backdrop_channel = backdrop
        self.probability, self.backdrop, self.labels = [], [], []

    def write(self, row: int, probability: np.ndarray, inputs: np.ndarray, labels: np.ndarray | None) -> None:
        keep = slice((-row) % self.step, None, self.step)
        # Copies: a view would keep the whole strip it was cut from alive.
        self.probability.append(probability[keep, :: self.step].copy())
        if self.backdrop_channel is not None:
            self.backdrop.append(inputs[keep, :: self.step, self.backdrop_channel].copy())
        if labels is not None:
            self.labels.append(labels[keep, :: self.step].copy())

    def save(self, path: str, title: str, backdrop_name: str, threshold: float) -> None:
        from tf_landslide import plots

        plots.scene_quicklook(
            np.concatenate(self.probability),
            np.concatenate(self.backdrop) if self.backdrop else None,
            np.concatenate(self.labels) if self.labels else None,
            title=title,
            backdrop_name=backdrop_name,
            threshold=threshold,
            path=path,
        )


class SceneScores:
    """Exact pixel PR/ROC of the map against the labels: the whole scene, and optionally only
    the pixels of given chips (the export's test chips when the map is of the training cube)."""

    def __init__(self, chips: list[tuple[int, int]] = (), chip_size: int = 0):
        # The scene's distinct scores would grow with its size: bin them (chips stay exact).
        self.scene = BinnedPixelCurve()
        self.chips = PixelCurve() if chips else None
        self.chip_origins, self.chip_size = np.array(chips, np.int64).reshape(-1, 2), chip_size
        self.missing_pixels = self.missing_positives = 0

    def write(self, row: int, probability: np.ndarray, labels: np.ndarray) -> None:
        known = ~np.isnan(probability)
        self.missing_pixels += int((~known).sum())
        self.missing_positives += int(labels[~known].sum())
        self.scene.update(probability[known], labels[known])
        if self.chips is not None:
            inside = self._chip_mask(row, probability.shape) & known
            if inside.any():
                self.chips.update(probability[inside], labels[inside])

    def _chip_mask(self, row: int, shape: tuple[int, int]) -> np.ndarray:
        mask = np.zeros(shape, bool)
        for r, c in self.chip_origins:
            top, bottom = max(r - row, 0), min(r + self.chip_size - row, shape[0])
            if bottom > top:
                mask[top:bottom, c : c + self.chip_size] = True
        return mask

    def summary(self, threshold: float) -> dict:
        try:
            scene = self.scene.summary(threshold)
        except ValueError:  # no landslide pixel in the labels: precision-recall is undefined
            return {"scene": None, "note": "the cube's labels hold no landslide pixel where the map has a prediction"}
        result = {
            "scene": scene,
            "pixels_without_prediction": self.missing_pixels,
            "landslide_pixels_without_prediction": self.missing_positives,
        }
        if self.chips is not None:
            result["test_chips"] = self.chips.summary(threshold)
        return result
