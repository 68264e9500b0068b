"""The export stage: records equal the chips, manifests tell the truth, runs resume."""

import dataclasses
import functools
import gc
import json
import logging
import os
import pickle
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import xarray as xr

from tests.helpers import tiny_export_config
from tf_landslide import export, records, storage
from tf_landslide.cube import channels, events
from tf_landslide.cube.open import open_cube
from tf_landslide.export import chip_stage, executors, plan
from tf_landslide.normalisation import ChannelMoments

REPO = Path(__file__).resolve().parents[1]


def _read_split(out_dir: Path, manifest: dict, split: str):
    """All records of a split as (image float32 NHWC, label NHW, rows, cols, origins, splits)."""
    spec = records.feature_spec()
    images, labels, meta = [], [], []
    for shard in manifest["splits"][split]["shards"]:
        for raw in records.read_tfrecord(out_dir / shard["file"], manifest["records"]["compression"]):
            parsed = tf.io.parse_single_example(raw, spec)
            shape = parsed[records.SHAPE].numpy()
            image = np.frombuffer(parsed[records.IMAGE].numpy(), manifest["records"]["dtype"]).reshape(shape)
            images.append(image.astype(np.float32))
            labels.append(np.frombuffer(parsed[records.LABEL].numpy(), np.uint8).reshape(shape[:2]))
            origin = np.frombuffer(parsed[records.ORIGIN].numpy(), "<f8")
            meta.append(
                (
                    int(parsed[records.ROW]),
                    int(parsed[records.COL]),
                    tuple(origin),
                    parsed[records.SPLIT].numpy().decode(),
                )
            )
    return images, labels, meta


def _shard_bytes(out_dir: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(out_dir.glob("*-of-*"))}


@pytest.fixture(scope="module")
def exported(tiny_cube, tmp_path_factory):
    cfg = tiny_export_config(tiny_cube, tmp_path_factory.mktemp("records"))
    manifest = export.export(cfg)
    return cfg, manifest, Path(cfg.records_dir) / cfg.config


def test_records_decode_back_to_exactly_the_chips(exported, tiny_cube):
    cfg, manifest, out_dir = exported
    ds = open_cube(tiny_cube)
    event = events.resolve_event(None, None, None, tiny_cube, ds.attrs)
    channel_plan = channels.ChannelPlan(manifest["channels"], channels.select_acquisitions(ds, event, 2, "descending"))
    scene = np.moveaxis(channel_plan.read_band(ds, slice(0, ds.sizes["y"])), 0, -1)
    labels = ds["landslides"].values
    x0, dx, y0, dy = (
        manifest["cube"]["transform"][2],
        manifest["cube"]["transform"][0],
        manifest["cube"]["transform"][5],
        manifest["cube"]["transform"][4],
    )
    total = 0
    for split in ("train", "val", "test"):
        images, masks, meta = _read_split(out_dir, manifest, split)
        assert [[r, c] for r, c, _, _ in meta] == manifest["splits"][split]["locations"]
        for image, mask, (row, col, origin, record_split) in zip(images, masks, meta, strict=False):
            expected = scene[row : row + 32, col : col + 32].astype(np.float16).astype(np.float32)
            np.testing.assert_array_equal(image, expected)
            np.testing.assert_array_equal(mask, labels[row : row + 32, col : col + 32])
            assert mask.any(), "the paper keeps only chips with a landslide pixel"
            assert origin == pytest.approx((x0 + col * dx, y0 + row * dy))
            assert record_split == split
        total += len(images)
    assert total == manifest["totals"]["chips"] > 0


def test_manifest_tells_the_truth(exported):
    cfg, manifest, out_dir = exported
    assert manifest["channels"] == list(channels.study_configs()["vv_vh_dem_t2"].channels)
    assert [a["time"] for a in manifest["acquisitions"]["after"]][0] == "2018-09-05T20:40:12Z"
    assert all(a["orbit"] == "d" for side in manifest["acquisitions"].values() for a in side)
    train_images, _, _ = _read_split(out_dir, manifest, "train")
    stack = np.stack(train_images).reshape(-1, len(manifest["channels"])).astype(np.float64)
    mean = [manifest["normalisation"]["mean"][c] for c in manifest["channels"]]
    std = [manifest["normalisation"]["std"][c] for c in manifest["channels"]]
    # Statistics come from float32 values; records hold float16: agreement within quantisation.
    np.testing.assert_allclose(np.nanmean(stack, 0), mean, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(np.nanstd(stack, 0), std, rtol=2e-3)
    for split, info in manifest["splits"].items():
        _, masks, _ = _read_split(out_dir, manifest, split)
        assert info["chips"] == len(masks)
        assert info["positive_pixels"] == sum(int(m.sum()) for m in masks)
        for shard in info["shards"]:
            path = out_dir / shard["file"]
            assert records.count_records(path) == shard["records"]
            assert storage.sha256(path) == shard["sha256"] and path.stat().st_size == shard["bytes"]
    assert not (out_dir / export.WORK_DIR).exists()
    assert "whole scene" in manifest["normalisation"]["note"]


def test_rerun_is_a_no_op(exported):
    cfg, manifest, out_dir = exported
    before = {p.name: p.stat().st_mtime_ns for p in out_dir.iterdir()}
    again = export.export(cfg)
    assert again == manifest
    assert {p.name: p.stat().st_mtime_ns for p in out_dir.iterdir()} == before


def test_splits_are_per_location_and_identical_across_configurations(tiny_cube, tmp_path):
    locations = {}
    for config in ("vv_t1", "dem", "vv_vh_dem_t3"):
        manifest = export.export(tiny_export_config(tiny_cube, tmp_path, config=config, max_nodata_fraction=1.0))
        locations[config] = {s: info["locations"] for s, info in manifest["splits"].items()}
    assert locations["vv_t1"] == locations["dem"] == locations["vv_vh_dem_t3"]
    assert all(locations["dem"][s] for s in ("train", "val", "test"))


def test_other_settings_need_overwrite(exported, tmp_path):
    cfg, manifest, out_dir = exported
    changed = dataclasses.replace(cfg, split=dataclasses.replace(cfg.split, seed=7))
    with pytest.raises(export.ExportError, match="--overwrite"):
        export.export(changed)
    assert json.loads((out_dir / export.MANIFEST_NAME).read_text()) == manifest  # nothing lost
    fresh = dataclasses.replace(changed, records_dir=str(tmp_path))
    replaced = export.export(dataclasses.replace(fresh, overwrite=True))
    assert replaced["fingerprint"] != manifest["fingerprint"]


def test_interrupted_export_resumes_to_identical_shards(tiny_cube, tmp_path, monkeypatch):
    """A hard kill (SIGKILL, no clean-up) after the first shard, then a plain re-run."""
    reference_cfg = tiny_export_config(tiny_cube, tmp_path / "reference", shard_mb=0.03)
    reference = export.export(reference_cfg)
    n_shards = sum(len(s["shards"]) for s in reference["splits"].values())
    assert n_shards >= 4, "the test needs several shards"

    killed_dir = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import os, signal
        from tests.helpers import tiny_export_config
        from tf_landslide import export, records
        close = records.TFRecordWriter.close
        def close_then_die(writer):
            close(writer)
            os.kill(os.getpid(), signal.SIGKILL)
        records.TFRecordWriter.close = close_then_die
        export.export(tiny_export_config({tiny_cube!r}, {str(killed_dir)!r}, shard_mb=0.03))
    """)
    killed = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stderr=subprocess.PIPE, text=True)
    assert killed.wait() == -9, killed.stderr.read()
    out_dir = killed_dir / "vv_vh_dem_t2"
    assert not (out_dir / export.MANIFEST_NAME).exists(), "a killed export must not leave a manifest"
    assert len(list(out_dir.glob("*-of-?????"))) == 1
    # Shards are written side by side: a kill can leave unfinished ones (this one for sure).
    (out_dir / f"test-00000-of-00001.partial-{killed.pid}").write_bytes(b"half a record")

    resumed = export.export(tiny_export_config(tiny_cube, killed_dir, shard_mb=0.03))
    assert _shard_bytes(out_dir) == _shard_bytes(tmp_path / "reference" / "vv_vh_dem_t2")
    assert resumed["splits"] == reference["splits"]
    assert not list(out_dir.glob("*.partial-*")), "the killed run's unfinished files are cleared"


def test_shards_of_an_earlier_layout_are_never_reused(exported, tmp_path):
    """An unfinished export of a version that cut shards another way: a file with the right name
    and record count may hold other chips, so every shard is written again."""
    cfg, manifest, out_dir = exported
    old = tmp_path / cfg.config
    (old / export.WORK_DIR).mkdir(parents=True)
    (old / export.WORK_DIR / "plan.json").write_text(json.dumps({"fingerprint": manifest["fingerprint"]}))
    first = manifest["splits"]["train"]["shards"][0]
    records.write_tfrecord(old / first["file"], [b"other chips"] * first["records"])
    again = export.export(dataclasses.replace(cfg, records_dir=str(tmp_path)))
    assert _shard_bytes(old) == _shard_bytes(out_dir)
    assert again["records"]["shard_layout"] == export.SHARD_LAYOUT


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_dask_local_cluster_gives_the_same_bytes(exported, tiny_cube, tmp_path, processes):
    cfg, manifest, out_dir = exported
    parallel = export.export(dataclasses.replace(cfg, records_dir=str(tmp_path), workers=2, worker_processes=processes))
    assert parallel["splits"] == manifest["splits"]
    assert _shard_bytes(tmp_path / cfg.config) == _shard_bytes(out_dir)


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_local_cluster_workers_run_without_the_dashboard_profiler(tiny_cube, tmp_path, processes, monkeypatch):
    import dask

    def monitors() -> tuple:
        return dask.config.get("distributed.worker.profile.enabled"), dask.config.get(
            "distributed.admin.system-monitor.gil.enabled"
        )

    cfg = dataclasses.replace(tiny_export_config(tiny_cube, tmp_path), workers=2, worker_processes=processes)
    names = [*export.WORKER_MALLOC_ENV, "OMP_NUM_THREADS", "PYTHONHASHSEED"]
    for name in names:  # as a fresh process has them (an earlier cluster of this session may have left them)
        monkeypatch.delenv(name, raising=False)
    before = {name: os.environ.get(name) for name in names}
    with export.executor(cfg) as pool:
        seen = set(pool.client.run(monitors).values())
        environments = pool.client.run(executors.malloc_environment)
    assert seen == {(False, False)}
    assert dask.config.get("distributed.worker.profile.enabled")  # this process's config is left as it was
    # Worker processes get glibc settings that keep plane-sized buffers (not Dask's MALLOC_TRIM_THRESHOLD_ alone).
    assert export.malloc_advice(environments) is None
    if processes:
        assert all(env == export.WORKER_MALLOC_ENV for env in environments.values())
    assert all(os.environ.get(name) == value for name, value in before.items())  # as it was


def test_malloc_advice_names_the_slow_workers_and_the_fix():
    assert export.malloc_advice({}) is None
    assert export.malloc_advice({"tcp://a:1": {}}) is None  # glibc's own dynamic thresholds
    assert export.malloc_advice({"tcp://a:1": {"MALLOC_MMAP_THRESHOLD_": str(32 << 20)}}) is None
    nanny = {"MALLOC_TRIM_THRESHOLD_": "65536"}  # what Dask's nanny sets by default
    advice = export.malloc_advice({"tcp://a:1": {}, "tcp://b:2": nanny})
    assert "1 of 2 Dask workers (e.g. tcp://b:2) run with MALLOC_TRIM_THRESHOLD_=65536" in advice
    assert f"MALLOC_MMAP_THRESHOLD_={32 << 20}" in advice and "distributed.nanny.pre-spawn-environ" in advice
    assert export.malloc_advice({"tcp://a:1": {**nanny, "MALLOC_MMAP_THRESHOLD_": "131072"}}) is not None
    assert "MALLOC_MMAP_THRESHOLD_=32M" in export.malloc_advice({"tcp://a:1": {"MALLOC_MMAP_THRESHOLD_": "32M"}})


def test_export_on_a_running_scheduler_gives_the_same_bytes_and_says_how_to_start_faster_workers(
    exported, tmp_path, caplog, monkeypatch
):
    from distributed import LocalCluster

    cfg, manifest, out_dir = exported
    # Workers under a nanny with Dask's default environment, as `dask worker` starts them (the
    # nanny writes it into this process's environment too: monkeypatch puts it back after).
    for name in export.WORKER_MALLOC_ENV:
        monkeypatch.delenv(name, raising=False)
    with LocalCluster(n_workers=1, threads_per_worker=2, dashboard_address=None) as cluster:
        with caplog.at_level(logging.WARNING, logger="tf_landslide.export"):
            remote = export.export(
                dataclasses.replace(cfg, records_dir=str(tmp_path), dask_scheduler=cluster.scheduler_address)
            )
    assert remote["splits"] == manifest["splits"]
    assert _shard_bytes(tmp_path / cfg.config) == _shard_bytes(out_dir)
    assert "run with MALLOC_TRIM_THRESHOLD_=65536" in caplog.text
    assert not (tmp_path / cfg.config / export.WORK_DIR).exists()  # the spool is removed


def test_negatives_gzip_and_scene_statistics(tiny_cube, tmp_path):
    cfg = tiny_export_config(
        tiny_cube, tmp_path, config="vv_t1", negative_ratio=0.5, compression="GZIP", stats_from="scene"
    )
    manifest = export.export(cfg)
    out_dir = tmp_path / "vv_t1"
    positive_chips = sum(info["positive_chips"] for info in manifest["splits"].values())
    assert manifest["totals"]["chips"] - positive_chips == int(np.ceil(0.5 * positive_chips))
    shard = out_dir / manifest["splits"]["train"]["shards"][0]["file"]
    assert (
        sum(1 for _ in tf.data.TFRecordDataset(str(shard), "GZIP"))
        == manifest["splits"]["train"]["shards"][0]["records"]
    )
    # Whole-scene statistics: the mean log-VV over every valid pixel of the scene.
    ds = open_cube(tiny_cube)
    event = events.resolve_event(None, None, None, tiny_cube, ds.attrs)
    channel_plan = channels.ChannelPlan(("vv_before",), channels.select_acquisitions(ds, event, 1, "descending"))
    scene = channel_plan.read_band(ds, slice(0, ds.sizes["y"]))
    assert manifest["normalisation"]["mean"]["vv_before"] == pytest.approx(float(np.nanmean(scene)), rel=1e-5)
    assert manifest["normalisation"]["source"].startswith("whole scene")


def test_mostly_empty_chips_are_skipped_and_counted(tiny_cube, tmp_path):
    ds = xr.open_zarr(tiny_cube).load()
    rows, cols = np.nonzero(ds["landslides"].values)
    row, col = rows[0] // 32 * 32, cols[0] // 32 * 32  # a positive chip
    vv = ds["vv"].values
    vv[:, row : row + 32, col : col + 32] = np.nan
    ds["vv"] = (ds["vv"].dims, vv)
    path = tmp_path / "holes.zarr"
    ds.to_zarr(path, zarr_format=2, consolidated=True)
    manifest = export.export(tiny_export_config(str(path), tmp_path / "records", config="vv_t1"))
    assert manifest["totals"]["skipped_nodata_chips"] == 1
    kept = [loc for info in manifest["splits"].values() for loc in info["locations"]]
    assert [row, col] not in kept


def test_cli_exports_with_a_flagfile_and_reports_bad_flags(tiny_cube, tmp_path):
    command = [
        sys.executable,
        "-m",
        "export",
        "--flagfile=configs/smoke.flags",
        f"--cube={tiny_cube}",
        f"--records_dir={tmp_path}",
        "--progress=false",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "smoke" / export.MANIFEST_NAME).exists()
    assert "chips" in done.stderr  # the summary

    bad = subprocess.run(command + ["--channels=", "--config=vv_t9"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "--config='vv_t9' is not a study configuration" in bad.stderr and "Traceback" not in bad.stderr
    plain = [sys.executable, "-m", "export", f"--cube={tiny_cube}", f"--records_dir={tmp_path}", "--chip_size=32"]
    many = subprocess.run(plain + ["--config=vv_t4"], cwd=REPO, capture_output=True, text=True)
    assert many.returncode == 2 and "*_t3 configuration" in many.stderr  # names the configuration the cube can feed


def chip_stage_task(moments_for=frozenset()):
    """A window at rows 100.., cols 200.. of a band [3, 40, 70] and four candidate chips of 16 px,
    one of them (index 7) mostly NaN, with large values elsewhere that would overflow a half."""
    rng = np.random.default_rng(0)
    band = rng.normal(0, 300, (3, 40, 70)).astype(np.float32)
    band[1, :6, :6] = np.nan
    band[2, 30:, 60:] = np.nan  # 100 of the third chip's 256 pixels
    band[0, 10, 12] = np.inf
    band[:, 24:40, 0:16] = 70000.0
    band[1, 24:36, 0:16] = np.nan  # 12 of 16 rows: 75% no-data
    corners = ((0, 0), (8, 30), (24, 54), (24, 0))
    chips = tuple((index, 100 + row, 200 + col) for index, (row, col) in zip((3, 4, 5, 7), corners, strict=True))
    task = export.BandTask(band=0, y0=100, y1=140, x0=200, x1=270, chips=chips, moments_for=frozenset(moments_for))
    return band, task, corners


@pytest.mark.parametrize("dtype", records.RECORD_DTYPES)
def test_chip_stage_drops_mostly_empty_chips_and_writes_the_others_channels_last_with_their_error(dtype):
    band, task, corners = chip_stage_task()
    stage = chip_stage.stage_chips(band, task, 16, 0.5, dtype)
    chips = [band[:, row : row + 16, col : col + 16] for row, col in corners]
    nodata = [float(np.isnan(chip).any(0).mean()) for chip in chips]
    assert nodata == [36 / 256, 0.0, 100 / 256, 0.75]
    assert stage.kept == [3, 4, 5] and stage.skipped == [[7, 0.75]] and stage.corners == list(corners[:3])
    channels_last = np.stack([np.moveaxis(chip, 0, -1) for chip in chips[:3]])
    expected = channels_last.astype(dtype)
    assert stage.images.flags.c_contiguous and stage.images.dtype == dtype
    bits = f"u{expected.itemsize}"
    np.testing.assert_array_equal(stage.images.view(bits), expected.view(bits))
    with np.errstate(invalid="ignore"):
        difference = np.abs(expected.astype(np.float32) - channels_last).reshape(-1, 3)
    # The dropped chip's 70000 would overflow float16 to an infinite error: it must not count.
    np.testing.assert_array_equal(stage.error, np.nanmax(difference, axis=0, initial=0.0))
    assert stage.error.dtype == np.float32 and np.isfinite(stage.error).all()
    assert stage.moments == {}


def test_chip_stage_moments_are_those_of_each_wanted_kept_chip_over_finite_values():
    band, task, corners = chip_stage_task(moments_for={3, 5, 7, 99})  # 7 is dropped, 99 not a candidate
    band[0] += 2500.0  # elevations: the naive sum of squares would cancel
    stage = chip_stage.stage_chips(band, task, 16, 0.5, "float16")
    assert sorted(stage.moments) == ["3", "5"]
    for index, (row, col) in ((3, corners[0]), (5, corners[2])):
        got = ChannelMoments.from_json(stage.moments[str(index)])
        for c, values in enumerate(band[:, row : row + 16, col : col + 16].astype(np.float64)):
            finite = values[np.isfinite(values)]
            assert got.count[c] == finite.size
            mean = finite.mean() if finite.size else 0.0
            np.testing.assert_allclose(got.mean[c], mean, rtol=1e-13)
            np.testing.assert_allclose(got.m2[c], ((finite - mean) ** 2).sum(), rtol=1e-11)
    assert ChannelMoments.from_json(stage.moments["3"]).count.tolist() == [255, 256 - 36, 256]  # inf, NaN left out
    assert ChannelMoments.from_json(stage.moments["5"]).count.tolist() == [256, 256, 256 - 100]


def test_chip_stage_refuses_chips_outside_the_band_it_would_read_past():
    band, task, _ = chip_stage_task()
    beyond = dataclasses.replace(task, chips=(*task.chips, (9, 100 + 30, 200 + 60)))  # rows 30..45 of 40
    with pytest.raises(ValueError, match=r"chips at \[\(30, 60\)\] of window band-00000-cols-00200-00270"):
        chip_stage.stage_chips(band, beyond, 16, 0.5, "float16")


def test_band_buffers_reuse_a_threads_memory_and_never_share_it_between_threads():
    buffers = export.BandBuffers()
    first = buffers.get((2, 4, 8))
    assert first.shape == (2, 4, 8) and first.dtype == np.float32 and first.flags.c_contiguous
    assert np.shares_memory(buffers.get((3, 4, 4)), first)  # smaller: the same memory
    grown = buffers.get((2, 8, 8))
    assert not np.shares_memory(grown, first) and np.shares_memory(buffers.get((2, 4, 8)), grown)
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(buffers.get, (2, 4, 8)).result()
    assert not np.shares_memory(other, grown)
    assert pickle.loads(pickle.dumps(buffers)) is buffers  # Dask pickles tasks for threads of this process too
    # Where the set is not alive (another process; here, after it is gone) a new, empty one.
    elsewhere = pickle.dumps(buffers)
    del buffers
    gc.collect()
    fresh = pickle.loads(elsewhere)
    assert not hasattr(fresh._local, "buffer")
    assert not np.shares_memory(fresh.get((2, 4, 8)), grown)


def test_bands_scanned_through_one_buffer_return_what_fresh_arrays_give(exported, tiny_cube):
    """Nothing a scan returns may be a view of the band: the next band overwrites it."""
    cfg = exported[0]
    job = plan.open_job(cfg)
    candidates = plan.candidates(job)
    height, width = job.scene.ds.sizes["y"], job.scene.ds.sizes["x"]
    tasks = plan.band_tasks(candidates.table, candidates.indices, cfg, height, width)
    assert len(tasks) >= 2
    scan = functools.partial(
        export.scan_band,
        export.SharedCube(job.scene.location),
        job.scene.plan,
        chip_size=cfg.chip_size,
        max_nodata_fraction=cfg.max_nodata_fraction,
        record_dtype=cfg.record_dtype,
        spool=None,
    )
    buffers = export.BandBuffers()
    reused = [scan(task, buffers=buffers) for task in tasks]
    for task, got in zip(tasks, reused, strict=True):
        fresh = scan(task)
        assert got["kept"] == fresh["kept"] and got["moments"] == fresh["moments"]
        for key in ("images", "labels"):
            np.testing.assert_array_equal(got[key], fresh[key], err_msg=f"{task.name} {key}")
