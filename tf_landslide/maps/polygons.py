"""Landslide polygons: connected regions of the map above a threshold, found while the map's
rows stream past (memory grows with the number of regions, not the scene), then traced from
their bounding boxes and written as GeoJSON with their areas."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import numpy as np

from tf_landslide.cube.scene import pixel_area

EIGHT_NEIGHBOURS = np.ones((3, 3), bool)


@dataclasses.dataclass(frozen=True)
class Region:
    pixels: int
    mean_probability: float
    max_probability: float
    bbox: tuple[int, int, int, int]  # row0, col0, row1, col1 (exclusive ends)
    seed: tuple[int, int]  # one pixel of the region


class Regions:
    """8-connected regions of ``probability >= threshold``, labelled block by block; a region
    crossing a block boundary is joined through union-find on its provisional labels."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.parent = np.zeros(0, np.int64)
        self.stats: list[np.ndarray] = []  # per block: [n, 8] pixels, sum, max, r0, c0, r1, c1, seed index
        self.width = None
        self.last_row: np.ndarray | None = None  # provisional ids of the previous block's last row, -1 = none

    def write(self, row: int, probability: np.ndarray) -> None:
        from scipy import ndimage

        mask = probability >= self.threshold  # NaN is never a landslide
        labels, n = ndimage.label(mask, structure=EIGHT_NEIGHBOURS)
        self.width = probability.shape[1]
        base = self.parent.size
        if n:
            flat = labels.ravel()
            pixels = np.bincount(flat, minlength=n + 1)[1:]
            sums = np.bincount(flat, weights=np.where(mask, probability, 0).ravel(), minlength=n + 1)[1:]
            maxima = np.asarray(ndimage.maximum(probability, labels, np.arange(1, n + 1)))
            boxes = ndimage.find_objects(labels)
            _, first = np.unique(flat, return_index=True)  # first pixel of each label, in raster order
            first = first[1:] if flat[first[0]] == 0 else first
            block = np.empty((n, 8))
            block[:, 0], block[:, 1], block[:, 2] = pixels, sums, maxima
            block[:, 3] = [b[0].start + row for b in boxes]
            block[:, 4] = [b[1].start for b in boxes]
            block[:, 5] = [b[0].stop + row for b in boxes]
            block[:, 6] = [b[1].stop for b in boxes]
            block[:, 7] = first + row * self.width  # scene-wide flat index
            self.stats.append(block)
            self.parent = np.concatenate([self.parent, np.arange(base, base + n)])
        current_first = np.where(labels[0] > 0, labels[0] - 1 + base, -1)
        if self.last_row is not None:
            self._join(self.last_row, current_first)
        self.last_row = np.where(labels[-1] > 0, labels[-1] - 1 + base, -1)

    def _find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def _join(self, above: np.ndarray, below: np.ndarray) -> None:
        pairs = []
        for shift in (-1, 0, 1):  # diagonal neighbours count (8-connectivity)
            a = above[max(shift, 0) : above.size + min(shift, 0)]
            b = below[max(-shift, 0) : below.size + min(-shift, 0)]
            touching = (a >= 0) & (b >= 0)
            pairs.append(np.stack([a[touching], b[touching]], 1))
        for a, b in np.unique(np.concatenate(pairs), axis=0):
            root_a, root_b = self._find(int(a)), self._find(int(b))
            if root_a != root_b:
                self.parent[max(root_a, root_b)] = min(root_a, root_b)

    def regions(self) -> list[Region]:
        """The joined regions, largest first."""
        if not self.stats:
            return []
        stats = np.concatenate(self.stats)
        roots = np.array([self._find(i) for i in range(self.parent.size)])
        unique, group = np.unique(roots, return_inverse=True)
        count = unique.size
        pixels = np.bincount(group, weights=stats[:, 0], minlength=count)
        sums = np.bincount(group, weights=stats[:, 1], minlength=count)
        combined = np.full((count, 6), np.inf)
        combined[:, [1, 4, 5]] = -np.inf
        np.minimum.at(combined[:, 0], group, stats[:, 3])
        np.minimum.at(combined[:, 2], group, stats[:, 4])
        np.minimum.at(combined[:, 3], group, stats[:, 7])
        np.maximum.at(combined[:, 1], group, stats[:, 5])
        np.maximum.at(combined[:, 4], group, stats[:, 6])
        np.maximum.at(combined[:, 5], group, stats[:, 2])
        found = [
            Region(
                pixels=int(pixels[g]),
                mean_probability=float(sums[g] / pixels[g]),
                max_probability=float(combined[g, 5]),
                bbox=(int(combined[g, 0]), int(combined[g, 2]), int(combined[g, 1]), int(combined[g, 4])),
                seed=divmod(int(combined[g, 3]), self.width),
            )
            for g in range(count)
        ]
        return sorted(found, key=lambda r: (-r.pixels, r.seed))


def trace(region: Region, read_window: Callable[[int, int, int, int], np.ndarray], threshold: float) -> np.ndarray:
    """The region's pixels as a boolean mask over its bounding box."""
    from scipy import ndimage

    row0, col0, row1, col1 = region.bbox
    labels, _ = ndimage.label(read_window(row0, col0, row1, col1) >= threshold, structure=EIGHT_NEIGHBOURS)
    return labels == labels[region.seed[0] - row0, region.seed[1] - col0]


def write_geojson(
    regions: list[Region],
    read_window: Callable[[int, int, int, int], np.ndarray],
    threshold: float,
    transform: list[float],
    crs_wkt: str | None,
    min_area: float,
    path: str,
) -> dict:
    """GeoJSON (RFC 7946: WGS 84 longitude/latitude) of the regions of at least ``min_area``
    (m2, counted in pixels of the projected grid); returns counts and the total area."""
    from affine import Affine
    from rasterio import features, warp

    area = pixel_area(transform)
    grid = Affine(*transform)
    kept = [r for r in regions if r.pixels * area >= min_area]
    items = []
    for number, region in enumerate(kept, start=1):
        mask = trace(region, read_window, threshold)
        window_transform = grid @ Affine.translation(region.bbox[1], region.bbox[0])
        shapes = [
            geometry
            for geometry, _ in features.shapes(
                mask.astype(np.uint8), mask=mask, connectivity=8, transform=window_transform
            )
        ]
        geometry = (
            shapes[0]
            if len(shapes) == 1
            else {"type": "MultiPolygon", "coordinates": [s["coordinates"] for s in shapes]}
        )
        if crs_wkt:
            geometry = warp.transform_geom(crs_wkt, "EPSG:4326", geometry)
        items.append(
            {
                "type": "Feature",
                "id": number,
                "geometry": geometry,
                "properties": {
                    "id": number,
                    "area_m2": round(region.pixels * area, 3),
                    "pixels": region.pixels,
                    "mean_probability": round(region.mean_probability, 4),
                    "max_probability": round(region.max_probability, 4),
                },
            }
        )
    collection = {"type": "FeatureCollection", "features": items}
    if not crs_wkt:
        collection["note"] = "the cube carries no CRS: coordinates are the cube's own x/y, not WGS 84"
    with open(path, "w") as handle:
        json.dump(collection, handle)
    return {
        "polygons": len(items),
        "regions_below_min_area": len(regions) - len(kept),
        "area_m2": round(sum(r.pixels for r in kept) * area, 1),
    }
