"""Cube builder benchmark: a Hokkaido-size cube from a local catalog of COGs, against reading them once.

    .venv/bin/python bench/build_bench.py [--cache_dir ~/.cache/tf_landslide] [--repeats 3] [--quiet_wait 120]
    .venv/bin/python bench/build_bench.py --size tiny --repeats 1 --floor_repeats 1   # a smoke test

1. Writes once (then reuses) the offline demo catalog (``tf_landslide.cube.demo_catalog``) of a
   Hokkaido-size synthetic scene (4398 x 5382 px) with 10 acquisitions per orbit (20 in all):
   VV/VH COGs, the DEMs, the inventory and the HyP3-named phase products, into
   ``--cache_dir/demo-catalog-hokkaido-t10-<spec key>``. Writing it takes minutes on two cores
   (bench/README.md has the figure) and about 8 GB of disk; the time it took is printed and kept
   beside it.
2. The floor: every VV and VH COG of the acquisitions the build takes, read once over the build's
   window (the AOI on the COGs' grid) with 2 threads, one dataset per file (GDAL releases the
   GIL), the data discarded; the fastest of ``--floor_repeats`` runs, with the GB decoded. The
   DEM asset's read over the AOI and the phase products' reads are timed the same way, for
   reference (the ratio is to the VV/VH floor).
3. The build: ``tf_landslide.cube.build.build`` in a child process (this script with
   ``--child``), as the README's command asks for it (labels from the inventory, phase products
   from the catalog's ``phase/``), ``acquisitions=0`` (all 20 in the search window), chunk 512,
   ``--repeats`` times, each into a fresh folder deleted after. The child's peak RSS is sampled
   with psutil (its whole process tree) and cross-checked with its own ``ru_maxrss``; its CPU
   seconds are ``getrusage``'s. Then the same with ``acquisitions=2`` (8 acquisitions): the
   peak RSS should not grow with the number of acquisitions.
4. Per-stage times and peak RSS from the builder's own log lines and a progress object (no tqdm)
   that timestamps every plane written, against the RSS samples (one monotonic clock): search and
   plan, DEM, labels, template and static layers, time-step writes, phase writes.
5. Prints a summary table.

The page cache is warm for both the floor and the build: the files a measurement reads are read
once, raw, just before it (after the wait for quiet: some VMs reclaim page cache left idle for a
while). The child reports the bytes it read from disk, which is what the cache did not hold.
The machine may be shared: before each measurement the script waits (up to ``--quiet_wait``
seconds) for other processes to go idle, and reports the CPU seconds other processes used during
each build.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import machine  # noqa: E402  (bench/machine.py: a script's folder is on sys.path)
import pandas as pd
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tf_landslide.cube import demo_catalog  # noqa: E402
from tf_landslide.cube.synthetic import SIZES  # noqa: E402

TIMESTEPS_PER_ORBIT = 10  # 20 acquisitions
RSS_TARGET_BYTES = 2e9
RATIO_TARGET = 3.0  # beyond it, the build is profiled (bench/README.md)
GROWTH_TOLERANCE = 0.10  # "not growing": the larger build's peak within this fraction of the smaller's
FEWER_ACQUISITIONS = 2  # per orbit track and side: 8 of the 20
GB = 1e9


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the catalog ----------------------------------------------------------------------------


def ensure_catalog(cache_dir: Path, size: str) -> tuple[demo_catalog.DemoCatalog, float | None, bool]:
    """The demo catalog of synthetic size ``size`` with ``TIMESTEPS_PER_ORBIT``, its generation
    seconds (if known) and whether this run wrote it."""
    spec = dataclasses.replace(SIZES[size], timesteps_per_orbit=TIMESTEPS_PER_ORBIT)
    root = cache_dir / f"demo-catalog-{size}-t{TIMESTEPS_PER_ORBIT}-{spec.key()}"
    sidecar = root.with_name(root.name + ".generation.json")
    generated = not (root / demo_catalog.CATALOG_FILE).exists()
    if generated:
        cache_dir.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(cache_dir).free
        log(f"writing the demo catalog into {root} (minutes; about 8 GB, {free / GB:.0f} GB free there)")
        started = time.perf_counter()
        demo_catalog.write_demo_catalog(root, spec=spec)
        sidecar.write_text(json.dumps({"seconds": time.perf_counter() - started}))
    seconds = json.loads(sidecar.read_text())["seconds"] if sidecar.exists() else None
    event = pd.Timestamp(spec.event_time).tz_localize("UTC").to_pydatetime()
    demo = demo_catalog.DemoCatalog(
        root,
        root / demo_catalog.CATALOG_FILE,
        root / demo_catalog.INVENTORY_FILE,
        root / demo_catalog.PHASE_DIR,
        demo_catalog.aoi_bbox(spec),
        event,
        spec,
    )
    return demo, seconds, generated


def request_fields(demo: demo_catalog.DemoCatalog, out: str, acquisitions: int) -> dict:
    """The BuildRequest the README's command makes for the demo catalog (as keyword arguments)."""
    return {
        "out": out,
        "stac": str(demo.root),
        "bbox": list(demo.aoi_bbox),
        "event_start": f"{demo.event_time:%Y-%m-%dT%H:%M:%SZ}",
        "event_name": "demo",
        "labels": str(demo.inventory),
        "phase_dir": str(demo.phase_dir),
        "acquisitions": acquisitions,
        "chunk": 512,
    }


def plan(fields: dict):
    """What the build will read: its chosen acquisitions, its grid and the DEM items (the builder's
    own search and selection, as ``build`` runs them)."""
    from tf_landslide.cube.build import BuildRequest, catalog, grid
    from tf_landslide.cube.build import acquisitions as acquisitions_lib
    from tf_landslide.cube.events import parse_utc

    request = BuildRequest(**(fields | {"bbox": tuple(fields["bbox"])}))
    start = end = parse_utc(request.event_start, "event_start")
    aoi = grid.area_of_interest(request)
    bbox = tuple(aoi.boundingbox)
    days = pd.Timedelta(days=request.search_days)
    items = catalog.search(request.stac, request.collection, bbox, (start - days, end + days))
    chosen = acquisitions_lib.around_event(
        acquisitions_lib.group_passes(items), start, end, request.acquisitions, "the benchmark's query"
    )
    geobox = grid.output_grid(request, aoi, [item for a in chosen for item in a.items]).geobox
    dem_items = catalog.search(request.stac, request.dem_collection, bbox)
    return chosen, geobox, dem_items, bbox


# --- the floor ------------------------------------------------------------------------------


def window_of(path: str, bounds, shape=None):
    """The window of the raster at ``path`` over ``bounds`` (its CRS), rounded outward to whole pixels."""
    import rasterio
    from rasterio.windows import from_bounds

    with rasterio.open(path) as source:
        window = from_bounds(*bounds, transform=source.transform).round_offsets().round_lengths()
    if shape is not None and (window.height, window.width) != tuple(shape):
        raise AssertionError(f"{path}: window {window} is not the build's grid {shape}")
    return window


def read_once(path: str, window) -> int:
    """Open ``path``, decode ``window`` of band 1, discard it; the bytes decoded."""
    import rasterio

    with rasterio.open(path) as source:
        return source.read(1, window=window).nbytes


def warm_page_cache(paths: list[str]) -> float:
    """Read every file once (raw bytes, discarded), so the measurement after it reads from memory,
    not from a disk other sessions compete for; the seconds it took."""
    started = time.perf_counter()
    for path in paths:
        with open(path, "rb", buffering=0) as raw:
            while raw.read(1 << 23):
                pass
    return time.perf_counter() - started


def measure_reads(tasks: list[tuple[str, object]], threads: int) -> tuple[float, float, int]:
    """Seconds, CPU seconds (this process) and bytes decoded reading every (path, window) once."""
    cpu = time.process_time()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        nbytes = sum(pool.map(lambda task: read_once(*task), tasks))
    return time.perf_counter() - started, time.process_time() - cpu, nbytes


# --- the build, in a child process ----------------------------------------------------------


def child(fields: dict) -> dict:
    """One build: its wall and CPU seconds, ``ru_maxrss``, and the time of every log line and plane."""
    import resource

    started = time.perf_counter()
    # What the builder imports on its way, imported before the clock: the floor has them loaded too.
    import dask.array  # noqa: F401
    import geopandas  # noqa: F401
    import odc.stac  # noqa: F401
    import rasterio  # noqa: F401
    import rioxarray  # noqa: F401
    import zarr  # noqa: F401

    from tf_landslide.cube.build import BuildRequest, build

    imports = time.perf_counter() - started
    events: list[tuple[float, str]] = []

    class Planes:
        """A tqdm-like progress that timestamps every plane written."""

        def __init__(self, total, initial, unit):
            events.append((time.perf_counter(), f"writing {total} planes"))

        def update(self, n):
            events.append((time.perf_counter(), "plane"))

        def close(self):
            pass

    request = BuildRequest(**(fields | {"bbox": tuple(fields["bbox"])}))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    io = psutil.Process().io_counters()
    path = build(request, log=lambda line: events.append((time.perf_counter(), line)), progress=Planes)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    io_after = psutil.Process().io_counters()
    return {
        "disk_read": io_after.read_bytes - io.read_bytes,  # what the page cache did not hold
        "disk_write": io_after.write_bytes - io.write_bytes,
        "cube_bytes": disk_bytes(path),
        "imports": imports,
        "seconds": seconds,
        "cpu": after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime,
        "maxrss": after.ru_maxrss * 1024,  # kB on Linux
        "clock": started,  # perf_counter is CLOCK_MONOTONIC: the parent's samples share its clock
        "events": [(t - started, line) for t, line in events],
    }


def tree_processes(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return [root]


def busy_seconds(times) -> float:
    """CPU seconds a ``psutil.cpu_times()`` total spent not idle."""
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def wait_for_quiet(max_wait: float, threshold: float, window: float = 2.0) -> tuple[float, float]:
    """Wait (at most ``max_wait`` s) until the machine's busy cores over ``window`` s fall to ``threshold``;
    the seconds waited and the last load measured (as in export_bench.py)."""
    started = time.perf_counter()
    while True:
        before = busy_seconds(psutil.cpu_times())
        time.sleep(window)
        load = (busy_seconds(psutil.cpu_times()) - before) / window
        waited = time.perf_counter() - started
        if load <= threshold or waited >= max_wait:
            return waited, load


def run_build(fields: dict, interval: float) -> dict:
    """The build in a child process, its process tree's RSS sampled every ``interval`` seconds."""
    command = [sys.executable, __file__, "--child", json.dumps(fields)]
    machine_before = busy_seconds(psutil.cpu_times())
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root, timeline = psutil.Process(process.pid), []
    output: dict[str, str] = {}
    readers = [
        threading.Thread(target=lambda name, stream: output.__setitem__(name, stream.read()), args=(name, stream))
        for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))
    ]
    for reader in readers:
        reader.start()
    tree, found, tree_cpu = [root], time.perf_counter(), {}
    while process.poll() is None:
        if time.perf_counter() - found >= 0.5:  # finding children walks /proc: not every sample
            tree, found = tree_processes(root), time.perf_counter()
        rss = 0
        for proc in tree:
            try:
                rss += proc.memory_info().rss
                times = proc.cpu_times()
                tree_cpu[proc.pid] = times.user + times.system
            except psutil.Error:
                pass
        timeline.append((time.perf_counter(), rss))
        time.sleep(interval)
    for reader in readers:
        reader.join()
    wall = time.perf_counter() - started
    machine_cpu = busy_seconds(psutil.cpu_times()) - machine_before
    if process.returncode:
        sys.exit(f"the build failed ({process.returncode}):\n{output['stderr'][-4000:]}")
    result = json.loads(output["stdout"].strip().splitlines()[-1])
    return result | {
        "peak_rss": max(rss for _, rss in timeline),
        "samples": len(timeline),
        "timeline": [(t - result["clock"], rss) for t, rss in timeline],
        "process_wall": wall,
        # The child's CPU from its last sample: it misses the last interval, a few tens of milliseconds.
        "other_cpu": max(0.0, machine_cpu - sum(tree_cpu.values())),
    }


# --- stages ---------------------------------------------------------------------------------

# (stage name, the log line that ends it, by its first word); the planes are split by dimension.
STAGE_ENDS = (("search and plan", "grid:"), ("DEM and derivatives", "dem:"), ("labels", "labels:"))


def stages(result: dict, timesteps: int) -> dict[str, tuple[float, int]]:
    """Seconds and peak RSS of each stage of one build, from its timestamped log lines and planes
    and the RSS samples taken meanwhile."""
    events = result["events"]
    times = {line.split()[0]: t for t, line in events if not line.startswith(("plane", "writing"))}
    planes = [t for t, line in events if line == "plane"]
    writing = next(t for t, line in events if line.startswith("writing"))
    bounds, last = {}, 0.0
    for name, first_word in STAGE_ENDS:
        bounds[name], last = (last, times[first_word]), times[first_word]
    bounds["phase pairs found, template, static layers written"] = (last, writing)
    bounds[f"time-step writes ({timesteps})"] = (writing, planes[timesteps - 1])
    bounds[f"phase writes ({len(planes) - timesteps})"] = (planes[timesteps - 1], planes[-1])
    bounds["consolidate and rename"] = (planes[-1], times["wrote"])
    return {
        name: (end - start, max((rss for t, rss in result["timeline"] if start <= t <= end), default=0))
        for name, (start, end) in bounds.items()
    }


# --- report ---------------------------------------------------------------------------------


def gb(rss: int) -> str:
    """A peak RSS in GB; 0 is a stage shorter than the sampling period."""
    return f"{rss / GB:.2f} GB" if rss else "(too short to sample)"


def listed(results: list[dict], key: str, unit: float = 1.0) -> str:
    return ", ".join(f"{r[key] / unit:.2f}" for r in results)


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def code_version() -> str:
    """The library's commit, and whether tf_landslide/ has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "log", "-1", "--format=%h %ci"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "tf_landslide"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (" + uncommitted changes in tf_landslide/" if dirty else "")


def disk_bytes(path: Path) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, files in os.walk(path) for f in files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache_dir", default=str(Path.home() / ".cache" / "tf_landslide"), help="catalog cache")
    parser.add_argument("--repeats", type=int, default=3, help="builds per case (median reported)")
    parser.add_argument(
        "--size", default="hokkaido", choices=sorted(SIZES), help="synthetic scene (tiny for a smoke test)"
    )
    parser.add_argument("--floor_repeats", type=int, default=3, help="floor measurements (fastest kept)")
    parser.add_argument("--threads", type=int, default=2, help="the floor's threads")
    parser.add_argument("--quiet_wait", type=float, default=120.0, help="wait up to this long for other load to stop")
    parser.add_argument("--quiet_load", type=float, default=0.25, help="busy cores below which the machine is idle")
    parser.add_argument("--sample_interval", type=float, default=0.05, help="RSS sampling period, seconds")
    parser.add_argument("--cases", default="all,fewer", help="all (every acquisition), fewer (acquisitions=2)")
    parser.add_argument("--json", default="", help="also write the figures to this JSON file")
    parser.add_argument("--report", default="", help="print the summary of an earlier run's --json file and stop")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one build, its request as JSON
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return 0
    if args.report:
        print(summary_table(json.loads(Path(args.report).read_text())))
        return 0
    print(machine.describe(), flush=True)
    code = code_version()
    cache_dir = Path(args.cache_dir).expanduser()

    # 1. the catalog
    demo, generation, generated = ensure_catalog(cache_dir, args.size)
    generation_text = (f"{generation / 60:.1f} min" if generation is not None else "unknown") + (
        " (this run)" if generated else " (earlier run, reused)"
    )
    catalog_bytes = disk_bytes(demo.root)
    log(f"catalog {demo.root}: {catalog_bytes / GB:.2f} GB; written in {generation_text}")

    # 2. the floor
    cases = {"all": 0, "fewer": FEWER_ACQUISITIONS}
    plans = {case: plan(request_fields(demo, "unused", cases[case])) for case in args.cases.split(",")}
    chosen, geobox, dem_items, bbox = plans["all"] if "all" in plans else next(iter(plans.values()))
    bounds = tuple(geobox.extent.boundingbox)
    sar_files = [item.assets[a].get_absolute_href() for acq in chosen for item in acq.items for a in ("vv", "vh")]
    sar_window = window_of(sar_files[0], bounds, geobox.shape.yx)
    dem_file = dem_items[0].assets["elevation"].get_absolute_href()  # nasadem, the builder's default
    phase_files = sorted(str(p) for p in demo.phase_dir.glob("*.tif"))
    floor_tasks = {
        "vv/vh": [(path, sar_window) for path in sar_files],
        "dem": [(dem_file, window_of(dem_file, bbox))],
        "phase": [(path, None) for path in phase_files],  # the builder reads each whole, then reprojects
    }
    log(
        f"build grid {geobox.shape.y} x {geobox.shape.x} px; {len(chosen)} acquisitions, {len(sar_files)} "
        f"VV/VH COGs; window {sar_window}; {len(phase_files)} phase files"
    )
    floors: dict[str, list[tuple[float, float, int]]] = {}
    for repeat in range(args.floor_repeats):
        for name, tasks in floor_tasks.items():
            waited, load = wait_for_quiet(args.quiet_wait, args.quiet_load)
            warm_page_cache([path for path, _ in tasks])
            disk_before = psutil.Process().io_counters().read_bytes
            seconds, cpu, nbytes = measure_reads(tasks, args.threads)
            disk = psutil.Process().io_counters().read_bytes - disk_before
            floors.setdefault(name, []).append((seconds, cpu, nbytes))
            log(
                f"floor {name:6s} run {repeat + 1}/{args.floor_repeats}: {seconds:6.2f} s (CPU {cpu:.2f} s) "
                f"for {nbytes / GB:.2f} GB decoded ({nbytes / seconds / 1e6:.0f} MB/s); waited {waited:.0f} s "
                f"for other load to drop to {load:.2f} cores; {disk / GB:.2f} GB read from disk"
            )
    floor = {name: min(runs) for name, runs in floors.items()}

    # 3-4. the builds, the cases interleaved
    inputs = {
        case: [
            *(item.assets[a].get_absolute_href() for acq in picked for item in acq.items for a in ("vv", "vh")),
            dem_file,
            str(demo.inventory),
            *phase_files,
        ]
        for case, (picked, *_) in plans.items()
    }
    work = Path(tempfile.mkdtemp(prefix="build-bench-", dir=cache_dir))
    runs: dict[str, list[dict]] = {case: [] for case in plans}
    try:
        for repeat in range(args.repeats):
            for case in plans:
                out = work / f"{case}-{repeat}.zarr"
                waited, load = wait_for_quiet(args.quiet_wait, args.quiet_load)
                warm_page_cache(inputs[case])
                result = run_build(request_fields(demo, str(out), cases[case]), args.sample_interval)
                shutil.rmtree(out, ignore_errors=True)
                result |= {"waited": waited, "load_before": load, "stages": stages(result, len(plans[case][0]))}
                del result["timeline"]
                runs[case].append(result)
                log(
                    f"build ({case}, {len(plans[case][0])} acquisitions) run {repeat + 1}/{args.repeats}: "
                    f"{result['seconds']:.1f} s (process {result['process_wall']:.1f} s, imports "
                    f"{result['imports']:.1f} s); CPU {result['cpu']:.1f} s, other processes "
                    f"{result['other_cpu']:.1f} s; peak RSS {result['peak_rss'] / GB:.2f} GB (ru_maxrss "
                    f"{result['maxrss'] / GB:.2f} GB, {result['samples']} samples); waited {waited:.0f} s for "
                    f"other load to drop to {load:.2f} cores; disk: {result['disk_read'] / GB:.2f} GB read, "
                    f"{result['disk_write'] / GB:.2f} GB written"
                )
                log("  " + "; ".join(f"{k} {v:.1f} s, {gb(rss)}" for k, (v, rss) in result["stages"].items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    # 5. summary
    figures = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine.describe(),
        "code": code,
        "catalog": {"path": str(demo.root), "bytes": catalog_bytes, "generation": generation_text},
        "grid": list(geobox.shape.yx),
        "scene": [demo.spec.height, demo.spec.width],
        "acquisitions": {case: len(p[0]) for case, p in plans.items()},
        "floor": floor,
        "floor_runs": floors,
        "threads": args.threads,
        "runs": runs,
    }
    print("\n==== tf_landslide cube build benchmark summary ====")
    print(summary_table(figures), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=str))
    return 0


def summary_table(f: dict) -> str:
    floor = f["floor"]
    sar_seconds, sar_cpu, sar_bytes = floor["vv/vh"]
    inputs_seconds = sum(floor[name][0] for name in ("vv/vh", "phase", "dem"))
    inputs_cpu = sum(floor[name][1] for name in ("vv/vh", "phase", "dem"))
    rows = [
        ("command", f["command"]),
        ("machine", f["machine"].removeprefix("machine: ")),
        ("RAM", f"{psutil.virtual_memory().total / GB:.1f} GB"),
        ("library commit", f["code"]),
        ("catalog", f"{f['catalog']['bytes'] / GB:.2f} GB of COGs, written in {f['catalog']['generation']}"),
        (
            "build grid",
            f"{f['grid'][0]} x {f['grid'][1]} px (the AOI inside the {f['scene'][0]} x {f['scene'][1]} scene), "
            "chunk 512",
        ),
        (
            "floor: VV/VH",
            f"{sar_seconds:.2f} s for {sar_bytes / GB:.2f} GB decoded ({f['acquisitions'].get('all', '?')} "
            f"acquisitions x 2 COGs), {f['threads']} threads, fastest of "
            f"{', '.join(f'{s:.2f}' for s, _, _ in f['floor_runs']['vv/vh'])}; CPU {sar_cpu:.1f} s",
        ),
        ("floor: DEM asset", f"{floor['dem'][0]:.2f} s for {floor['dem'][2] / 1e6:.0f} MB decoded"),
        (
            "reference: phase products",
            f"{floor['phase'][0]:.2f} s for {floor['phase'][2] / GB:.2f} GB decoded (whole files, as the "
            f"builder reads them); CPU {floor['phase'][1]:.1f} s",
        ),
    ]
    peaks = {}
    for case, results in f["runs"].items():
        if not results:
            continue
        seconds = [r["seconds"] for r in results]
        median = statistics.median(seconds)
        cpu = statistics.median(r["cpu"] for r in results)
        peaks[case] = max(r["peak_rss"] for r in results)
        ratio = median / sar_seconds
        rows += [
            (f"build ({case}): {f['acquisitions'][case]} acquisitions", ""),
            ("  wall, median", f"{median:.1f} s (runs: {', '.join(f'{s:.1f}' for s in seconds)})"),
            (
                "  ratio build / VV/VH floor",
                f"{ratio:.1f}x  [{'within' if ratio <= RATIO_TARGET else 'beyond'} {RATIO_TARGET:g}x]",
            ),
            (
                "  ratio to every input read once",
                f"{median / inputs_seconds:.1f}x ({inputs_seconds:.1f} s: VV/VH, phase products and DEM floors added)",
            ),
            (
                "  CPU ratio build / floor",
                f"{cpu / sar_cpu:.1f}x the VV/VH floor's CPU, {cpu / inputs_cpu:.1f}x every input's "
                "(less sensitive to other load than wall time)",
            ),
            (
                "  CPU seconds, median",
                f"{cpu:.1f} (runs: {listed(results, 'cpu')}); other processes {listed(results, 'other_cpu')}",
            ),
            (
                "  peak RSS, child tree",
                f"{peaks[case] / GB:.2f} GB (runs: {listed(results, 'peak_rss', GB)}; ru_maxrss "
                f"{listed(results, 'maxrss', GB)})  [target <= {RSS_TARGET_BYTES / GB:g} GB: "
                f"{'met' if peaks[case] <= RSS_TARGET_BYTES else 'MISSED'}]",
            ),
            ("  child imports", f"{statistics.median(r['imports'] for r in results):.1f} s (not in the wall time)"),
        ]
        written = results[0].get("cube_bytes")  # runs before the figure was added lack it
        if written:
            rows.append(
                ("  cube written", f"{written / GB:.2f} GB on disk ({written / median / 1e6:.0f} MB/s of wall)")
            )
            rows.append(
                ("  inputs read from disk", f"{listed(results, 'disk_read', GB)} GB (0: all from the page cache)")
            )
        rows.append(("  stages: median wall, largest peak RSS", ""))
        for name in results[0]["stages"]:
            seconds = statistics.median(r["stages"][name][0] for r in results)
            rows.append((f"    {name}", f"{seconds:.1f} s, {gb(max(r['stages'][name][1] for r in results))}"))
    if {"all", "fewer"} <= peaks.keys():
        growth = peaks["all"] / peaks["fewer"] - 1
        verdict = "not growing" if abs(growth) <= GROWTH_TOLERANCE else "GROWING"
        rows.append(
            (
                "peak RSS against acquisitions",
                f"{f['acquisitions']['fewer']}: {peaks['fewer'] / GB:.2f} GB, {f['acquisitions']['all']}: "
                f"{peaks['all'] / GB:.2f} GB ({growth:+.0%}): {verdict}",
            )
        )
    return table(rows)


if __name__ == "__main__":
    sys.exit(main())
