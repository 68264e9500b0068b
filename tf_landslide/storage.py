"""All of the project's own file I/O, on local paths and on URLs (gs://, s3://, file://, memory://...).

Local paths and ``file://`` URLs go through the operating system: a write goes to a temporary
file beside its destination and is renamed over it when complete (``os.replace``), so a reader
never sees half a file. Other URLs go through fsspec (``fsspec.core.url_to_fs``; ``gs://`` needs
the ``gcp`` extra, gcsfs): a write goes to a local temporary file first and is uploaded in one
``put`` when complete. Cloud Storage creates an object atomically, so there too an object
appears only complete, or not at all.

TensorFlow reads and writes ``gs://`` and ``file://`` itself (TFRecordDataset, checkpoints,
summaries, SavedModels): such paths are handed to it as they are, not through this module.

Paths are strings: :func:`join` joins them (never ``pathlib`` on a URL). Functions accept
``os.PathLike`` too and return strings.
"""

from __future__ import annotations

import builtins
import contextlib
import glob as _glob
import hashlib
import json
import os
import posixpath
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator

import fsspec

_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")
_PARTIAL = ".partial-"  # temporary files beside their destination start with this


def _str(path) -> str:
    return os.fspath(path)


def scheme(path) -> str:
    """The URL scheme ('gs', 's3', 'file', 'memory'...), or '' for a plain local path."""
    match = _URL.match(_str(path))
    return match.group(1).lower() if match else ""


def local_path(path) -> str | None:
    """The operating-system path of a local path or ``file://`` URL; None for any other URL."""
    path = _str(path)
    kind = scheme(path)
    if not kind:
        return path
    if kind == "file":
        return fsspec.core.url_to_fs(path)[1]
    return None


def is_remote(path) -> bool:
    """True for URLs of non-local file systems (gs://, s3://, memory://...); False for local paths
    and ``file://`` URLs."""
    return local_path(path) is None


def is_url(path) -> bool:
    """True for any URL, ``file://`` included: strings that must never meet ``pathlib`` or ``open``."""
    return bool(scheme(path))


def _fs(path):
    """(fsspec file system, its path) of a remote URL."""
    return fsspec.core.url_to_fs(_str(path))


def join(base, *parts: str) -> str:
    """``base/part/part``: ``os.path.join`` for local paths, '/'-joined for URLs."""
    base = _str(base)
    if not is_url(base):
        return os.path.join(base, *parts)
    out = base
    for part in parts:
        part = _str(part)
        if not part:
            continue
        out = out + part.lstrip("/") if out.endswith("/") else out + "/" + part.lstrip("/")
    return out


def basename(path) -> str:
    path = _str(path).rstrip("/")
    return posixpath.basename(path) if is_url(path) else os.path.basename(path)


def dirname(path) -> str:
    """The parent folder (a URL's parent for URLs; '' for a bare bucket)."""
    path = _str(path).rstrip("/")
    if not is_url(path):
        return os.path.dirname(path)
    prefix = _URL.match(path).group(0)
    rest = path[len(prefix) :]
    return prefix + rest.rpartition("/")[0]


def absolute(path) -> str:
    """An absolute local path, or the URL itself."""
    return _str(path) if is_url(path) else os.path.abspath(path)


# --- reading ---------------------------------------------------------------------------------


def exists(path) -> bool:
    local = local_path(path)
    if local is not None:
        return os.path.exists(local)
    fs, rpath = _fs(path)
    return fs.exists(rpath)


def isdir(path) -> bool:
    local = local_path(path)
    if local is not None:
        return os.path.isdir(local)
    fs, rpath = _fs(path)
    return fs.isdir(rpath)


def size(path) -> int:
    local = local_path(path)
    if local is not None:
        return os.path.getsize(local)
    fs, rpath = _fs(path)
    return int(fs.size(rpath))


def listdir(path) -> list[str]:
    """Names (not paths) of the entries of a folder, sorted; [] when it does not exist."""
    local = local_path(path)
    if local is not None:
        return sorted(os.listdir(local)) if os.path.isdir(local) else []
    fs, rpath = _fs(path)
    if not fs.isdir(rpath):
        return []
    return sorted({posixpath.basename(p.rstrip("/")) for p in fs.ls(rpath, detail=False)} - {""})


def glob(pattern) -> list[str]:
    """Paths matching ``pattern``, sorted, in the pattern's own form (URLs stay URLs)."""
    pattern = _str(pattern)
    local = local_path(pattern)
    if local is not None:
        found = sorted(_glob.glob(local))
        return ["file://" + p for p in found] if scheme(pattern) == "file" else found
    fs, rpath = _fs(pattern)
    return sorted(fs.unstrip_protocol(p) for p in fs.glob(rpath))


def open(path, mode: str = "r", **kwargs):  # noqa: A001 (the module's own open)
    """A file object for reading, or (write modes) a context manager whose file becomes visible
    at ``path`` only when the ``with`` block succeeds. Use it in a ``with`` statement."""
    if any(flag in mode for flag in "wax+"):
        return _atomic_writer(path, mode, **kwargs)
    local = local_path(path)
    if local is not None:
        return builtins.open(local, mode, **kwargs)
    fs, rpath = _fs(path)
    return fs.open(rpath, mode, **kwargs)


@contextlib.contextmanager
def _atomic_writer(path, mode: str, **kwargs):
    if "a" in mode or "+" in mode or "x" in mode:
        raise ValueError(f"storage.open supports 'w' and 'wb' writes only (atomic replacement), not {mode!r}")
    with local_output(path) as local, builtins.open(local, mode, **kwargs) as handle:
        yield handle


def read_bytes(path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def read_text(path) -> str:
    with open(path, "r", encoding="utf-8") as handle:
        return handle.read()


def read_json(path):
    return json.loads(read_text(path))


def sha256(path) -> str:
    """Hex SHA-256 of a file's content, read in 4 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


# --- writing -----------------------------------------------------------------------------------


def makedirs(path) -> None:
    """Create a folder and its parents (a no-op on object stores without folders)."""
    local = local_path(path)
    if local is not None:
        os.makedirs(local, exist_ok=True)
        return
    fs, rpath = _fs(path)
    fs.makedirs(rpath, exist_ok=True)


@contextlib.contextmanager
def local_output(path) -> Iterator[str]:
    """Yield a local file path to write ``path``'s content into (for h5py, matplotlib, rasterio...).

    When the block succeeds the file replaces ``path`` in one step (a rename beside it, or one
    upload); when it raises, nothing appears at ``path`` and no temporary file remains. The
    temporary name ends with ``path``'s name, so libraries that infer a format from it work.
    The block must create the file.
    """
    path = _str(path)
    local = local_path(path)
    name = basename(path)
    if local is not None:
        folder = os.path.dirname(os.path.abspath(local))
        os.makedirs(folder, exist_ok=True)
        # Created by the writer (with the usual permissions, not mkstemp's 0600); the name ends
        # with the destination's own name, so Keras (".weights.h5") and matplotlib (".png")
        # pick the destination's format.
        temporary = os.path.join(folder, f"{_PARTIAL}{os.getpid()}-{secrets.token_hex(4)}-{name}")
        try:
            yield temporary
            os.replace(temporary, local)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
        return
    scratch = tempfile.mkdtemp(prefix="tf_landslide-upload-")
    try:
        temporary = os.path.join(scratch, name)
        yield temporary
        put_file(temporary, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def staging_beside(destination) -> str:
    """A fresh, empty local folder to write ``destination``'s content into: beside it when it is
    local (the same file system, so one rename publishes it; named ``.partial-<name>-<pid>``,
    which TF Serving's version polling ignores), else a temporary folder to upload from."""
    local = local_path(destination)
    if local is None:
        return tempfile.mkdtemp(prefix="tf_landslide-staging-")
    parent, name = os.path.split(os.path.abspath(local))
    folder = os.path.join(parent, f".partial-{name}-{os.getpid()}")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    return folder


def put_file(local: str, path) -> None:
    """Copy the local file ``local`` to ``path`` (one upload, or a rename-based local copy)."""
    target = local_path(path)
    if target is not None:
        with local_output(target) as temporary:
            shutil.copyfile(local, temporary)
        return
    fs, rpath = _fs(path)
    fs.put_file(local, rpath)


def write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (complete or not at all)."""
    with local_output(path) as temporary, builtins.open(temporary, "wb") as handle:
        handle.write(data)


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path, value, indent: int | None = 1) -> None:
    write_text(path, json.dumps(value, indent=indent))


def remove(path, missing_ok: bool = True) -> None:
    """Delete one file."""
    local = local_path(path)
    if local is not None:
        if missing_ok and not os.path.exists(local):
            return
        os.remove(local)
        return
    fs, rpath = _fs(path)
    if missing_ok and not fs.exists(rpath):
        return
    fs.rm_file(rpath)


def remove_tree(path) -> None:
    """Delete a folder and everything under it; nothing happens when it does not exist."""
    local = local_path(path)
    if local is not None:
        shutil.rmtree(local, ignore_errors=True)
        return
    fs, rpath = _fs(path)
    if fs.exists(rpath):
        fs.rm(rpath, recursive=True)


def upload_tree(local_dir: str, path, last: tuple[str, ...] = ()) -> list[str]:
    """Copy the files under ``local_dir`` to the folder ``path``, each file atomically; the files
    named in ``last`` (relative paths) are copied after all others. Returns the relative paths
    in the order copied. For a SavedModel, ``last=("saved_model.pb",)``: a TF Serving polling
    the destination sees a version only once everything it needs is there."""
    files = []
    for root, _, names in os.walk(local_dir):
        for name in names:
            files.append(os.path.relpath(os.path.join(root, name), local_dir).replace(os.sep, "/"))
    files.sort(key=lambda rel: (rel in last, last.index(rel) if rel in last else 0, rel))
    for rel in files:
        put_file(os.path.join(local_dir, rel), join(path, rel))
    return files


@contextlib.contextmanager
def local_input(path) -> Iterator[str]:
    """Yield a local file path holding ``path``'s content (itself when local; a downloaded
    temporary copy, deleted afterwards, when remote), for libraries that need a local file."""
    local = local_path(path)
    if local is not None:
        yield local
        return
    scratch = tempfile.mkdtemp(prefix="tf_landslide-download-")
    try:
        temporary = os.path.join(scratch, basename(path))
        fs, rpath = _fs(path)
        fs.get_file(rpath, temporary)
        yield temporary
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
