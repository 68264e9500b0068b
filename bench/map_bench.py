"""Full-scene mapping on the CPU against raw batched inference of the same windows.

    python bench/map_bench.py [--sizes=embedded,hokkaido] [--runs=3] [--model_dir=runs/quickstart]

Each run is one fresh child process per scene size that loads the trained model once and times,
in an order alternating between runs:

* raw: the same number of windows as the map, of the same size, in the same batches, through
  the same compiled predictor, from real windows of the cube already in memory (the inference
  floor);
* map: ``make_map`` on the whole cube with every output (COG, Zarr, PNG, GeoJSON, scores):
  reading and computing the channels, blending, writing.

The model computes as predict.py's does: ``--bfloat16`` (auto: mixed bfloat16 on CPUs with native
bfloat16, float32 elsewhere; the map and the raw inference alike).

It prints both times, their ratio (target <= 1.25) and the child's peak RSS (target <= 3 GB,
and not growing with the scene). The model is a trained run (README command 1 makes
``runs/quickstart``: U-Net/ResNet-50, 8 channels); the cubes are the project's synthetic cubes
(``embedded`` 2048 x 2048, ``hokkaido`` 4398 x 5382 like the published cube), cached in
--cache_dir.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine  # noqa: E402  (bench/machine.py: a script's folder is on sys.path)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def first_windows(cube: str, manifest: dict, tiling, count: int):
    """The first ``count`` windows of the cube's top strip, raw channels [count, window, window, C]."""
    import numpy as np

    from tf_landslide.config import CubeConfig
    from tf_landslide.cube.channels import resolve_channel_config
    from tf_landslide.cube.scene import open_scene

    trained = manifest["config"]
    config = resolve_channel_config(trained["name"], manifest["channels"], trained["timesteps"])
    scene = open_scene(cube, CubeConfig(cube=cube), config)
    strip = np.moveaxis(scene.plan.read_band(scene.ds, slice(0, tiling.window)), 0, -1)
    return np.stack([strip[:, i * tiling.stride : i * tiling.stride + tiling.window] for i in range(count)])


def child(args) -> dict:
    """One measurement: raw inference and the map, in the order given."""

    from tf_landslide.config import CubeConfig, MapConfig
    from tf_landslide.cube import synthetic
    from tf_landslide.maps import scene_map
    from tf_landslide.maps.tiling import Tiling

    cube = str(synthetic.embedded_cube(args.cache_dir, args.size))
    manifest = json.loads((Path(args.model_dir) / "manifest.json").read_text())
    tiling = Tiling(args.window, args.overlap)
    from tf_landslide import distribution

    policy = distribution.compute_policy(False, args.bfloat16)  # as predict.py's --bfloat16 chooses
    predict = scene_map.keras_predictor(args.model_dir, "best", manifest, tiling.window, policy)
    # Real windows of the cube (values matter little to a CNN's speed, but denormals and NaN would).
    windows = first_windows(cube, manifest, tiling, args.batch_size)
    predict(windows)  # trace and warm up
    size = synthetic.SIZES[args.size]
    strips, across = tiling.count(size.height), tiling.count(size.width)

    def raw() -> float:
        started = time.perf_counter()
        for _ in range(strips):
            for first in range(0, across, args.batch_size):
                predict(windows[: min(args.batch_size, across - first)])
        return time.perf_counter() - started

    def mapped(out: str) -> tuple[float, dict]:
        cfg = MapConfig(
            cube=CubeConfig(cube=cube, orbit="auto"),
            model_dir=args.model_dir,
            map_dir=out,
            window=args.window,
            overlap=args.overlap,
            batch_size=args.batch_size,
        )
        started = time.perf_counter()
        summary = scene_map.make_map(cfg, predictor=predict)
        return time.perf_counter() - started, summary

    with tempfile.TemporaryDirectory(dir=args.cache_dir) as work:
        if args.map_first:
            map_seconds, summary = mapped(os.path.join(work, "map"))
            raw_seconds = raw()
        else:
            raw_seconds = raw()
            map_seconds, summary = mapped(os.path.join(work, "map"))
    return {
        "size": args.size,
        "pixels": size.height * size.width,
        "windows": strips * across,
        "raw_seconds": raw_seconds,
        "map_seconds": map_seconds,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "policy": policy,
        "scene_pr_auc": (summary.get("scores", {}).get("scene") or {}).get("pr_auc"),
        "polygons": summary.get("geojson", {}).get("polygons"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="embedded,hokkaido", help="synthetic cube sizes to map")
    parser.add_argument("--runs", type=int, default=3, help="runs per size (medians reported)")
    parser.add_argument("--model_dir", default=str(REPO / "runs" / "quickstart"), help="a trained run")
    parser.add_argument("--cache_dir", default="/tmp/tf_landslide_bench", help="where the cubes are cached")
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--bfloat16", choices=("auto", "on", "off"), default="auto", help="predict.py's --bfloat16")
    parser.add_argument("--size", help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--map_first", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    print(machine.describe(), flush=True)
    if args.size:
        print(json.dumps(child(args)))
        return 0
    if not (Path(args.model_dir) / "best_weights.h5").exists():
        sys.exit(f"no trained run in {args.model_dir}: run README command 1 first, or pass --model_dir")
    os.makedirs(args.cache_dir, exist_ok=True)
    results = []
    for size in args.sizes.split(","):
        for run in range(args.runs):
            command = [
                sys.executable,
                __file__,
                f"--size={size}",
                f"--model_dir={args.model_dir}",
                f"--cache_dir={args.cache_dir}",
                f"--window={args.window}",
                f"--overlap={args.overlap}",
                f"--batch_size={args.batch_size}",
                f"--bfloat16={args.bfloat16}",
            ] + (["--map_first"] if run % 2 else [])
            done = subprocess.run(
                command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
            )
            if done.returncode:
                sys.exit(f"{size} run {run + 1} failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result["ratio"] = result["map_seconds"] / result["raw_seconds"]
            results.append(result)
            print(
                f"{size} run {run + 1}: map {result['map_seconds']:.1f} s, raw {result['raw_seconds']:.1f} s, "
                f"ratio {result['ratio']:.3f}, peak RSS {result['peak_rss_gb']:.2f} GB",
                flush=True,
            )
    policies = "/".join(sorted({r["policy"] for r in results}))
    print(f"\nwindow {args.window}, overlap {args.overlap}, batch {args.batch_size}, model {args.model_dir}")
    print(f"compute: {policies}")
    print("| size | pixels | windows | map s (median) | raw s (median) | ratio (median; runs) | peak RSS GB (max) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for size in args.sizes.split(","):
        rows = [r for r in results if r["size"] == size]
        ratios = ", ".join(f"{r['ratio']:.3f}" for r in rows)
        print(
            f"| {size} | {rows[0]['pixels'] / 1e6:.1f} M | {rows[0]['windows']} "
            f"| {statistics.median(r['map_seconds'] for r in rows):.1f} "
            f"| {statistics.median(r['raw_seconds'] for r in rows):.1f} "
            f"| {statistics.median(r['ratio'] for r in rows):.3f} ({ratios}) "
            f"| {max(r['peak_rss_gb'] for r in rows):.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
