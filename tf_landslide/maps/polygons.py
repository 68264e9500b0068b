"""Landslide polygons: connected regions of the map above a threshold, found while the map's
rows stream past (memory grows with the number of regions, not the scene), then traced from
their bounding boxes and written as GeoJSON with their areas."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator

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


def _shapes(labels: np.ndarray, mask: np.ndarray, transform) -> Iterator[tuple[dict, int]]:
    from rasterio import features

    for geometry, value in features.shapes(labels, mask=mask, connectivity=8, transform=transform):
        yield geometry, int(value)


def outlines(
    regions: list[Region],
    read_window: Callable[[int, int, int, int], np.ndarray],
    threshold: float,
    transform: list[float],
    shape: tuple[int, int],
    band_rows: int = 1024,
) -> Iterator[list[tuple[int, dict]]]:
    """(index in ``regions``, polygon in the grid's CRS) for every region, a band at a time.

    The map is read again in bands of rows and the regions lying inside a band are traced by
    one call for the whole band; the few regions crossing a band boundary are traced from
    their own bounding box."""
    from affine import Affine
    from scipy import ndimage

    grid = Affine(*transform)
    groups: dict[int, list[int]] = {}
    for i, region in enumerate(regions):
        band = region.bbox[0] // band_rows
        inside = region.bbox[2] <= (band + 1) * band_rows
        groups.setdefault(band if inside else -1 - i, []).append(i)
    for key, members in sorted(groups.items(), key=lambda item: regions[item[1][0]].bbox[0]):
        if key >= 0:
            row0, col0, row1, col1 = key * band_rows, 0, min((key + 1) * band_rows, shape[0]), shape[1]
        else:
            row0, col0, row1, col1 = regions[members[0]].bbox
        mask = read_window(row0, col0, row1, col1) >= threshold
        labels, _ = ndimage.label(mask, structure=EIGHT_NEIGHBOURS)
        wanted = {int(labels[regions[i].seed[0] - row0, regions[i].seed[1] - col0]): i for i in members}
        yield [
            (wanted[value], geometry)
            for geometry, value in _shapes(labels.astype(np.int32), mask, grid @ Affine.translation(col0, row0))
            if value in wanted
        ]


def to_wgs84(geometries: list[dict], crs_wkt: str) -> list[dict]:
    """Polygons reprojected to longitude/latitude, all vertices in one vectorised call."""
    from pyproj import Transformer

    rings = [np.asarray(ring, np.float64) for geometry in geometries for ring in geometry["coordinates"]]
    if not rings:
        return []
    points = np.concatenate(rings)
    lon, lat = Transformer.from_crs(crs_wkt, "EPSG:4326", always_xy=True).transform(points[:, 0], points[:, 1])
    lonlat = np.round(np.stack([lon, lat], 1), 7).tolist()  # 7 decimals: about 1 cm
    out, at = [], 0
    for geometry in geometries:
        coordinates = []
        for ring in geometry["coordinates"]:
            coordinates.append(lonlat[at : at + len(ring)])
            at += len(ring)
        out.append({"type": "Polygon", "coordinates": coordinates})
    return out


def write_geojson(
    regions: list[Region],
    read_window: Callable[[int, int, int, int], np.ndarray],
    threshold: float,
    transform: list[float],
    crs_wkt: str | None,
    shape: tuple[int, int],
    min_area: float,
    path: str,
) -> dict:
    """GeoJSON (RFC 7946: WGS 84 longitude/latitude) of the regions of at least ``min_area``
    (m2, counted in pixels of the projected grid), written band by band so memory stays
    bounded; feature ids rank the regions by area. Returns counts and the total area."""
    area = pixel_area(transform)
    kept = [r for r in regions if r.pixels * area >= min_area]
    with open(path, "w") as handle:
        handle.write('{"type": "FeatureCollection",')
        if not crs_wkt:
            handle.write(' "note": "the cube carries no CRS: coordinates are the cube\'s own x/y, not WGS 84",')
        handle.write(' "features": [')
        separator = "\n"
        for band in outlines(kept, read_window, threshold, transform, shape):
            geometries = [geometry for _, geometry in band]
            if crs_wkt:
                geometries = to_wgs84(geometries, crs_wkt)
            for (index, _), geometry in zip(band, geometries, strict=True):
                region = kept[index]
                properties = {
                    "id": index + 1,
                    "area_m2": round(region.pixels * area, 3),
                    "pixels": region.pixels,
                    "mean_probability": round(region.mean_probability, 4),
                    "max_probability": round(region.max_probability, 4),
                }
                feature = {"type": "Feature", "id": index + 1, "geometry": geometry, "properties": properties}
                handle.write(separator + json.dumps(feature, separators=(",", ":")))
                separator = ",\n"
        handle.write("\n]}\n")
    return {
        "polygons": len(kept),
        "regions_below_min_area": len(regions) - len(kept),
        "area_m2": round(sum(r.pixels for r in kept) * area, 1),
    }
