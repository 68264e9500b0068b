"""Exports to a URL: staged locally, shards uploaded, the manifest last; reused when intact."""

import dataclasses

import fsspec
import pytest

from tests.helpers import tiny_export_config
from tf_landslide import data, export, storage


@pytest.fixture
def bucket():
    """An fsspec memory:// 'bucket', emptied after the test."""
    yield "memory://bucket/records"
    fs = fsspec.filesystem("memory")
    if fs.exists("/bucket"):
        fs.rm("/bucket", recursive=True)


def test_an_export_to_a_url_uploads_every_shard_and_the_manifest_last(tiny_cube, bucket, tmp_path, monkeypatch):
    base = tiny_export_config(tiny_cube, bucket)
    cfg = dataclasses.replace(base, cube=dataclasses.replace(base.cube, cache_dir=str(tmp_path / "cache")))
    uploads = []
    original = storage.put_file
    monkeypatch.setattr(storage, "put_file", lambda local, path: (uploads.append(path), original(local, path)))
    manifest = export.export(cfg)
    assert uploads[-1].endswith("vv_vh_dem_t2/manifest.json") and len(uploads) > 1
    read_back, folder = data.load_manifest(bucket, "vv_vh_dem_t2")
    assert read_back == manifest and folder.startswith("memory://")
    for split in manifest["splits"].values():
        for shard in split["shards"]:
            assert storage.size(storage.join(folder, shard["file"])) == shard["bytes"]

    uploads.clear()
    assert export.export(cfg) == manifest and uploads == []  # intact: nothing uploaded again

    other = dataclasses.replace(cfg, chip_size=64)
    with pytest.raises(export.ExportError, match="--overwrite"):
        export.export(other)
    assert data.load_manifest(bucket, "vv_vh_dem_t2")[0] == manifest  # nothing lost
    replaced = export.export(dataclasses.replace(other, overwrite=True))
    assert data.load_manifest(bucket, "vv_vh_dem_t2")[0]["fingerprint"] == replaced["fingerprint"]
    listed = {s["file"] for split in replaced["splits"].values() for s in split["shards"]}
    assert set(storage.listdir(storage.join(bucket, "vv_vh_dem_t2"))) == listed | {"manifest.json"}  # old shards gone


def test_a_file_url_exports_into_that_local_folder(tiny_cube, tmp_path):
    manifest = export.export(tiny_export_config(tiny_cube, f"file://{tmp_path}/records"))
    assert (tmp_path / "records" / "vv_vh_dem_t2" / "manifest.json").exists()
    assert manifest["config"]["name"] == "vv_vh_dem_t2"
