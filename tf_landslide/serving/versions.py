"""Where a finished SavedModel goes: the numeric version folders TF Serving polls (which exist, which
comes next), and publishing a complete local staging folder as a version or into a flat folder.

A version is written under a temporary (non-numeric) name and renamed when complete, so a TF Serving
instance polling the export folder never loads a half-written one; on a URL the files are uploaded
with ``saved_model.pb`` last, since TF Serving loads a version only once that file exists."""

from __future__ import annotations

import os
import shutil

from tf_landslide import storage
from tf_landslide.serving.contract import SAVED_MODEL_PB, ServingExportError


def existing_versions(export_dir: str | os.PathLike) -> list[int]:
    """The numeric version folders of ``export_dir`` (what TF Serving would load), sorted."""
    return sorted(
        int(name)
        for name in storage.listdir(export_dir)
        if name.isdigit() and storage.isdir(storage.join(export_dir, name))
    )


def next_version(export_dir: str | os.PathLike) -> int:
    versions = existing_versions(export_dir)
    return versions[-1] + 1 if versions else 1


def version_dir(export_dir: str, version: int | None) -> tuple[str, int]:
    """The folder of ``version`` in ``export_dir`` (the next version when None), and that version."""
    if version is None:
        version = next_version(export_dir)
    elif isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ServingExportError(f"--version={version!r} must be a positive integer")
    target = storage.join(export_dir, str(version))
    # Any existing entry of that name, numeric padding aside ("01" is version 1 for TF Serving).
    if storage.exists(target) or version in existing_versions(export_dir):
        raise ServingExportError(
            f"version {version} already exists in {export_dir}: versions are never overwritten; "
            f"omit --version to write version {next_version(export_dir)}, or delete the old one"
        )
    return target, version


def publish_version(partial: str, target: str, export_dir: str, version: int) -> None:
    """The local staging folder ``partial`` becomes the version folder ``target``, all at once."""
    appeared = ServingExportError(f"version {version} appeared in {export_dir} during the export")
    local_target = storage.local_path(target)
    if local_target is not None:
        try:
            # Fails if another export created the version meanwhile (a non-empty folder).
            os.rename(partial, local_target)
        except OSError as rename_error:
            raise appeared from rename_error
    else:
        if storage.exists(target):
            raise appeared
        storage.upload_tree(partial, target, last=(SAVED_MODEL_PB,))


def publish_flat(partial: str, target: str) -> None:
    """The files of the local staging folder ``partial`` moved into the folder ``target``, beside
    what it holds already, ``saved_model.pb`` last."""
    local_target = storage.local_path(target)
    if local_target is not None:
        os.makedirs(local_target, exist_ok=True)
        for name in sorted(os.listdir(partial), key=lambda entry: entry == SAVED_MODEL_PB):
            destination = os.path.join(local_target, name)
            if os.path.isdir(destination):  # left by an export that died before its saved_model.pb
                shutil.rmtree(destination)
            os.replace(os.path.join(partial, name), destination)
    else:
        storage.upload_tree(partial, target, last=(SAVED_MODEL_PB,))
