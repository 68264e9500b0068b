"""Read 2-D windows of a cube's planes: through xarray, or by decoding zarr v2 chunks directly.

zarr-python 3 runs every chunk through one event loop whose per-chunk Python work holds the
GIL, so reads from several threads do not overlap: a second thread reads no faster than one.
Reading the chunk files and decoding them with numcodecs (whose Blosc, Zstd and zlib release
the GIL) scales with the threads (figures: ``bench/README.md``, Export). The published cubes
are zarr v2, as a directory or a Zenodo zip, so that is the direct path; every other store
(zarr v3, URLs) and every variable xarray would decode (scale, offset, a fill value other than
NaN) reads through xarray. Both give the same values: the tests compare them on cubes of every
encoding the boundary conforms. The cube's canonical order (``conform``) may differ from the
stored one (timesteps stored out of time order, y stored south-up): the direct path maps
canonical indices onto the stored arrays with the cube's ``StoredOrder``.
"""

from __future__ import annotations

import json
import os
import threading
import zipfile
from pathlib import Path
from typing import Protocol

import numpy as np
import xarray as xr

from tf_landslide.cube import schema
from tf_landslide.cube.conform import AS_STORED, StoredOrder
from tf_landslide.cube.open import zip_root

# Attributes under which xarray would transform the stored values on reading.
_DECODING_ATTRIBUTES = ("scale_factor", "add_offset", "missing_value", "_Unsigned")


class PlaneReader(Protocol):
    shape: tuple[int, int]  # the scene's (height, width)
    tile_width: int | None  # columns to read at a time (the chunk width), or None: whole windows

    def plane(self, variable: str, index: dict[str, int], rows: slice, cols: slice) -> np.ndarray:
        """``variable`` at ``index`` (its dims other than y, x) over ``rows`` x ``cols``."""


class DatasetPlanes:
    """Planes through xarray: any store xarray opens."""

    def __init__(self, ds: xr.Dataset):
        self.ds = ds
        self.shape = (ds.sizes["y"], ds.sizes["x"])
        self.tile_width = None  # each xarray read has a fixed overhead: read whole windows

    def plane(self, variable: str, index: dict[str, int], rows: slice, cols: slice) -> np.ndarray:
        window = self.ds[variable].isel({**index, "y": rows, "x": cols})
        # A Dataset given in memory may be dask-backed (stackstac, odc-stac): computed with dask's
        # local threads, never the export's distributed client, whose workers would wait on themselves.
        return window.compute(scheduler="threads").values


class _Files:
    """Chunk and metadata files of a zarr v2 store in a local directory or a local zip."""

    def __init__(self, location: str):
        self.location = location
        self.is_zip = location.lower().endswith(".zip")
        self._local = threading.local()  # a ZipFile shares one file position: one per thread
        self.root = ""
        if self.is_zip:
            root = zip_root(self._archive().namelist())
            self.root = f"{root}/" if root else ""

    def _archive(self) -> zipfile.ZipFile:
        archive = getattr(self._local, "archive", None)
        if archive is None:
            archive = self._local.archive = zipfile.ZipFile(self.location)
        return archive

    def read(self, key: str) -> bytes | None:
        """The bytes stored under ``key``, or None when there are none (a chunk never written)."""
        try:
            if self.is_zip:
                return self._archive().read(self.root + key)
            with open(os.path.join(self.location, key), "rb") as handle:
                return handle.read()
        except (FileNotFoundError, KeyError):
            return None


class _Array:
    """One zarr v2 array's layout and codecs."""

    def __init__(self, meta: dict, dims: list[str]):
        import numcodecs

        self.shape = tuple(meta["shape"])
        self.chunks = tuple(meta["chunks"])
        self.dtype = np.dtype(meta["dtype"])
        self.dims = dims
        self.separator = meta.get("dimension_separator") or "."
        self.fill = _fill_value(meta["fill_value"], self.dtype)
        self.codecs = [numcodecs.get_codec(c) for c in (meta.get("filters") or [])]
        if meta.get("compressor"):
            self.codecs.append(numcodecs.get_codec(meta["compressor"]))

    def decode(self, data: bytes) -> np.ndarray:
        for codec in reversed(self.codecs):
            data = codec.decode(data)
        return np.frombuffer(data, self.dtype).reshape(self.chunks)


def _fill_value(value, dtype: np.dtype):
    """What a chunk never written holds, as zarr-python 3 reads it (no fill value: zeros)."""
    if value is None:
        return dtype.type(0)
    if isinstance(value, str) and dtype.kind == "f":
        return dtype.type({"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}[value])
    return dtype.type(value)


class ChunkPlanes:
    """Planes decoded from a local zarr v2 store's chunk files, in the calling thread.

    Only for variables whose dims end in (y, x) and that xarray reads undecoded; ``supports``
    says which. Safe to call from several threads at once.
    """

    def __init__(self, location: str, ds: xr.Dataset, stored: StoredOrder = AS_STORED):
        self.files = _Files(location)
        self.stored = stored
        self.arrays: dict[str, _Array] = {}
        consolidated = self.files.read(".zmetadata")
        metadata = json.loads(consolidated)["metadata"] if consolidated else {}
        for name, variable in ds.variables.items():
            meta = metadata.get(f"{name}/.zarray") or _json(self.files.read(f"{name}/.zarray"))
            attrs = metadata.get(f"{name}/.zattrs") or _json(self.files.read(f"{name}/.zattrs")) or {}
            if meta is None or meta.get("zarr_format") != 2 or meta.get("order", "C") != "C":
                continue
            dims = attrs.get("_ARRAY_DIMENSIONS", [])
            if dims[-2:] != ["y", "x"] or any(a in variable.encoding or a in attrs for a in _DECODING_ATTRIBUTES):
                continue
            array = _Array(meta, dims)
            if variable.dtype != array.dtype or not _fill_is_harmless(variable, array):
                continue
            self.arrays[name] = array

    def supports(self, variable: str, rows: slice = slice(None), cols: slice = slice(None)) -> bool:
        """Whether ``variable`` over windows ``rows`` x ``cols`` is on the direct path (steps of 1 only)."""
        return variable in self.arrays and rows.step in (None, 1) and cols.step in (None, 1)

    def plane(self, variable: str, index: dict[str, int], rows: slice, cols: slice) -> np.ndarray:
        """As ``PlaneReader.plane`` for windows of step 1 (``supports``); indices as numpy's (negative
        from the end, out of range an IndexError). Read-only when the window lies inside one chunk."""
        array = self.arrays[variable]
        lead = tuple(
            self.stored.stored_index(d, range(size)[index[d]])
            for d, size in zip(array.dims[:-2], array.shape[:-2], strict=True)
        )
        y0, y1, _ = rows.indices(array.shape[-2])
        x0, x1, _ = cols.indices(array.shape[-1])
        if y1 <= y0 or x1 <= x0:
            return np.empty((max(0, y1 - y0), max(0, x1 - x0)), array.dtype)
        flip_y, flip_x = ("y" in self.stored.flipped), ("x" in self.stored.flipped)
        if flip_y:  # the stored rows of the window, read and then reversed
            y0, y1 = array.shape[-2] - y1, array.shape[-2] - y0
        if flip_x:
            x0, x1 = array.shape[-1] - x1, array.shape[-1] - x0
        window = self._stored_window(array, variable, lead, y0, y1, x0, x1)
        return window[:: -1 if flip_y else 1, :: -1 if flip_x else 1]

    def _stored_window(
        self, array: _Array, variable: str, lead: tuple[int, ...], y0: int, y1: int, x0: int, x1: int
    ) -> np.ndarray:
        """Rows [y0, y1) and columns [x0, x1) of the stored array at ``lead``, as stored."""
        cy, cx = array.chunks[-2:]
        lead_key = [str(i // c) for i, c in zip(lead, array.chunks[:-2], strict=True)]
        within = tuple(i % c for i, c in zip(lead, array.chunks[:-2], strict=True))

        def chunk(by: int, bx: int) -> np.ndarray | None:
            data = self.files.read(f"{variable}/" + array.separator.join([*lead_key, str(by), str(bx)]))
            return None if data is None else array.decode(data)[within]

        if y0 // cy == (y1 - 1) // cy and x0 // cx == (x1 - 1) // cx:  # one chunk: no copy
            by, bx = y0 // cy, x0 // cx
            whole = chunk(by, bx)
            if whole is None:
                return np.full((y1 - y0, x1 - x0), array.fill, array.dtype)
            return whole[y0 - by * cy : y1 - by * cy, x0 - bx * cx : x1 - bx * cx]
        out = np.empty((y1 - y0, x1 - x0), array.dtype)
        for by in range(y0 // cy, (y1 - 1) // cy + 1):
            for bx in range(x0 // cx, (x1 - 1) // cx + 1):
                # The chunk's part inside the window, in chunk and in window coordinates.
                top, bottom = max(y0, by * cy), min(y1, (by + 1) * cy)
                left, right = max(x0, bx * cx), min(x1, (bx + 1) * cx)
                target = out[top - y0 : bottom - y0, left - x0 : right - x0]
                whole = chunk(by, bx)
                if whole is None:
                    target[...] = array.fill
                else:
                    target[...] = whole[top - by * cy : bottom - by * cy, left - bx * cx : right - bx * cx]
        return out


def _json(data: bytes | None) -> dict | None:
    return json.loads(data) if data else None


def _fill_is_harmless(variable: xr.Variable, array: _Array) -> bool:
    """True when xarray's masking of the fill value changes nothing: NaN in a float array, or no mask."""
    fill = variable.encoding.get("_FillValue", variable.attrs.get("_FillValue"))
    if fill is None:
        return True
    return array.dtype.kind == "f" and np.isnan(fill)


class CubePlanes:
    """The direct chunk path for the variables that have one, xarray for the rest."""

    def __init__(self, location: str, ds: xr.Dataset, stored: StoredOrder = AS_STORED):
        self.dataset = DatasetPlanes(ds)
        self.shape = self.dataset.shape
        self.chunks = _direct_reader(location, ds, stored)
        sar = [self.chunks.arrays[v] for v in ("vv", "vh") if self.chunks and self.chunks.supports(v)]
        self.tile_width = sar[0].chunks[-1] if sar else None

    def plane(self, variable: str, index: dict[str, int], rows: slice, cols: slice) -> np.ndarray:
        if self.chunks is not None and self.chunks.supports(variable, rows, cols):
            return self.chunks.plane(variable, index, rows, cols)
        return self.dataset.plane(variable, index, rows, cols)


def _direct_reader(location: str, ds: xr.Dataset, stored: StoredOrder) -> ChunkPlanes | None:
    """A ChunkPlanes for a local zarr v2 directory or zip, else None."""
    if "://" in location or not Path(location).exists():
        return None
    try:
        reader = ChunkPlanes(location, ds, stored)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # not a v2 layout we know: xarray reads it
        return None
    return reader if reader.arrays else None


def planes_of(source: xr.Dataset | PlaneReader) -> PlaneReader:
    """A reader for a dataset (through xarray), or the reader given."""
    return DatasetPlanes(source) if isinstance(source, xr.Dataset) else source


def landslide_mask(labels: np.ndarray) -> np.ndarray:
    """Label values as booleans: landslide where > 0; NaN is none."""
    return np.nan_to_num(labels, nan=0) > 0 if labels.dtype.kind == "f" else labels > 0


def label_plane(reader: PlaneReader, rows: slice, cols: slice) -> np.ndarray:
    """The label raster over the window as booleans (``landslide_mask``)."""
    return landslide_mask(reader.plane(schema.LABEL_VARIABLE, {}, rows, cols))
