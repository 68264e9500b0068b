"""storage: the same behaviour on local paths, file:// URLs and fsspec URLs (memory:// standing in
for gs://), and writes that appear complete or not at all."""

import os
import uuid

import fsspec
import pytest

from tf_landslide import storage


@pytest.fixture(params=["local", "file", "memory"])
def base(request, tmp_path):
    root = {
        "local": str(tmp_path / "root"),
        "file": "file://" + str(tmp_path / "root"),
        "memory": f"memory://test-{uuid.uuid4().hex}/root",
    }[request.param]
    yield root
    if request.param == "memory":
        storage.remove_tree(root)


def _everything(base) -> list[str]:
    """Every file under ``base`` (relative), temporaries included."""
    local = storage.local_path(base)
    if local is not None:
        return sorted(
            os.path.relpath(os.path.join(root, name), local) for root, _, names in os.walk(local) for name in names
        )
    fs, root = fsspec.core.url_to_fs(base)
    return sorted(p[len(root) + 1 :] for p in fs.find(root)) if fs.exists(root) else []


def test_kinds_of_path():
    assert not storage.is_remote("runs/model") and not storage.is_remote("/tmp/x")
    assert not storage.is_remote("file:///tmp/x") and storage.local_path("file:///tmp/x") == "/tmp/x"
    assert storage.is_remote("gs://bucket/x") and storage.is_remote("memory://x") and storage.is_remote("s3://b/k")
    assert storage.local_path("gs://bucket/x") is None
    assert storage.is_url("file:///tmp/x") and not storage.is_url("relative/path")
    assert storage.scheme("GS://b/x") == "gs" and storage.scheme("/tmp") == ""


def test_join_keeps_urls_strings():
    assert storage.join("gs://bucket/model/", "run", "best.weights.h5") == "gs://bucket/model/run/best.weights.h5"
    assert storage.join("gs://bucket/model", "/eval", "") == "gs://bucket/model/eval"
    assert storage.join("file:///tmp/a", "b") == "file:///tmp/a/b"
    assert storage.join("runs", "model", "x.json") == os.path.join("runs", "model", "x.json")
    assert storage.dirname("gs://bucket/model/x.json") == "gs://bucket/model"
    assert storage.basename("gs://bucket/model/") == "model" and storage.basename("/a/b.png") == "b.png"
    assert storage.absolute("gs://b/x") == "gs://b/x" and storage.absolute("x") == os.path.abspath("x")


def test_write_read_list_and_remove(base):
    assert not storage.exists(base) and storage.listdir(base) == []
    storage.write_json(storage.join(base, "a.json"), {"x": [1, 2]})
    storage.write_text(storage.join(base, "sub", "b.txt"), "hello")
    storage.write_bytes(storage.join(base, "sub", "c.bin"), b"\x00\x01")
    assert storage.read_json(storage.join(base, "a.json")) == {"x": [1, 2]}
    assert storage.read_text(storage.join(base, "sub", "b.txt")) == "hello"
    assert storage.read_bytes(storage.join(base, "sub", "c.bin")) == b"\x00\x01"
    assert storage.size(storage.join(base, "sub", "c.bin")) == 2
    assert storage.exists(storage.join(base, "sub")) and storage.isdir(storage.join(base, "sub"))
    assert not storage.isdir(storage.join(base, "a.json"))
    assert storage.listdir(base) == ["a.json", "sub"]
    found = storage.glob(storage.join(base, "sub", "*.txt"))
    assert len(found) == 1 and found[0].endswith("/sub/b.txt")
    assert storage.read_text(found[0]) == "hello"  # glob's paths are usable as they are
    assert storage.is_url(found[0]) == storage.is_url(base)
    with storage.open(storage.join(base, "sub", "b.txt")) as handle:
        assert handle.read() == "hello"
    with storage.open(storage.join(base, "d.csv"), "w") as handle:
        handle.write("a,b\n")
    assert storage.read_text(storage.join(base, "d.csv")) == "a,b\n"
    storage.write_text(storage.join(base, "d.csv"), "replaced")  # overwrites
    assert storage.read_text(storage.join(base, "d.csv")) == "replaced"
    storage.remove(storage.join(base, "d.csv"))
    storage.remove(storage.join(base, "d.csv"))  # missing: fine
    assert not storage.exists(storage.join(base, "d.csv"))
    storage.makedirs(storage.join(base, "empty", "deeper"))
    storage.remove_tree(storage.join(base, "sub"))
    storage.remove_tree(storage.join(base, "sub"))  # missing: fine
    assert not storage.exists(storage.join(base, "sub", "b.txt"))
    assert _everything(base) == ["a.json"]


def test_local_output_publishes_only_on_success(base):
    target = storage.join(base, "figures", "plot.png")
    with storage.local_output(target) as local:
        assert not storage.is_url(local) and local.endswith("plot.png")  # the extension libraries look at
        with open(local, "wb") as handle:
            handle.write(b"first")
        assert not storage.exists(target)  # not visible before the block ends
    assert storage.read_bytes(target) == b"first"

    class Failure(Exception):
        pass

    with pytest.raises(Failure), storage.local_output(target) as local:
        with open(local, "wb") as handle:
            handle.write(b"half of a seco")
        raise Failure
    assert storage.read_bytes(target) == b"first"  # the old content, untouched
    with pytest.raises(Failure), storage.local_output(storage.join(base, "new.h5")) as local:
        with open(local, "wb") as handle:
            handle.write(b"partial")
        raise Failure
    assert not storage.exists(storage.join(base, "new.h5"))
    assert _everything(base) == ["figures/plot.png"]  # no temporary file anywhere
    assert not os.path.exists(local)  # nor the local scratch copy


def test_a_failing_write_leaves_nothing(base):
    with pytest.raises(RuntimeError), storage.open(storage.join(base, "log.csv"), "w") as handle:
        handle.write("row 1\n")
        raise RuntimeError("killed halfway")
    assert not storage.exists(storage.join(base, "log.csv"))
    assert _everything(base) == []
    with pytest.raises(TypeError):
        storage.write_json(storage.join(base, "bad.json"), {"not serialisable": object()})
    assert _everything(base) == []


def test_local_writes_replace_in_one_rename(tmp_path):
    path = tmp_path / "history.csv"
    storage.write_text(path, "one")
    inode = path.stat().st_ino
    storage.write_text(path, "two")
    assert path.read_text() == "two" and path.stat().st_ino != inode
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # not mkstemp's 0600
    assert [p.name for p in tmp_path.iterdir()] == ["history.csv"]
    with pytest.raises(ValueError, match="'w' and 'wb'"):
        storage.open(path, "a").__enter__()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_local_input_gives_a_local_copy_and_cleans_up(base):
    target = storage.join(base, "weights.h5")
    storage.write_bytes(target, b"weights")
    with storage.local_input(target) as local:
        assert not storage.is_url(local) and open(local, "rb").read() == b"weights"
    if storage.is_remote(base):
        assert not os.path.exists(local)  # the downloaded copy is gone
    assert storage.read_bytes(target) == b"weights"


def test_upload_tree_puts_the_named_files_last(base, tmp_path):
    source = tmp_path / "saved"
    (source / "variables").mkdir(parents=True)
    (source / "saved_model.pb").write_bytes(b"graph")
    (source / "variables" / "variables.index").write_bytes(b"index")
    (source / "fingerprint.pb").write_bytes(b"fp")
    order = storage.upload_tree(str(source), storage.join(base, "model"), last=("saved_model.pb",))
    assert order == ["fingerprint.pb", "variables/variables.index", "saved_model.pb"]
    assert _everything(base) == ["model/fingerprint.pb", "model/saved_model.pb", "model/variables/variables.index"]
    assert storage.read_bytes(storage.join(base, "model", "variables", "variables.index")) == b"index"
