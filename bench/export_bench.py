"""Export benchmark on a Hokkaido-size synthetic cube: wall time against the I/O floor, and peak RSS.

    .venv/bin/python bench/export_bench.py [--cache_dir DIR] [--repeats N] [--config vv_vh_dem_t4]

1. Generates (once, then reused) the synthetic cube the size of the published Hokkaido cube
   (4398 x 5382 px, 18 timesteps, both orbits) into ``--cache_dir``.
2. Measures the I/O floor: reading once, band by band, exactly the cube planes the export of
   ``--config`` reads (the acquisitions its ChannelPlan selects, the DEM variables, the
   labels) using both cores, and discarding the data. Four ways: a pool of threads or of
   processes, each reading through xarray/zarr or decoding the chunk files directly
   (``cube.planes``); the floor is the fastest. Measured over the whole scene: the needed
   variables read once, the floor both cases are held to; and over only the windows the
   paper's protocol reads (per band, the bounding box of its positive chips), for reference.
3. Times ``export.export`` with a local Dask cluster of ``--workers`` threads (its default) for
   (a) the paper's protocol (positive chips, ``stats_from='train'``) and (b)
   ``stats_from='scene'`` (reads every band and takes the scene's moments);
   median of ``--repeats`` runs each, runs interleaved, a fresh records folder per run.
4. Samples the RSS of the whole process tree (this process, Dask nannies and workers, and
   their children; the list refreshed every 0.5 s) every ``--sample_interval`` seconds during
   each export, and the CPU seconds of the tree and of the whole machine.
5. Prints a summary table.

The machine may be shared: before each measurement the script waits (up to ``--quiet_wait``
seconds) for other processes to go idle, and reports the CPU seconds other processes used
during each export; CPU ratios (export CPU / floor CPU) are less sensitive to that load.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

import machine  # noqa: E402  (bench/machine.py: a script's folder is on sys.path)
import numpy as np
import psutil

from tf_landslide import chips as chips_lib
from tf_landslide import export as export_lib
from tf_landslide.config import CubeConfig, ExportConfig, SplitSpec
from tf_landslide.cube import channels as channels_lib
from tf_landslide.cube import planes as planes_lib
from tf_landslide.cube import schema, synthetic
from tf_landslide.cube.open import open_conformed, orbit_codes
from tf_landslide.cube.scene import open_scene

RSS_TARGET_BYTES = 2e9
REFRESH = 0.5  # seconds between looks for new processes in the tree
# (pool, reader): readers go through xarray and zarr, or decode the chunk files directly (cube.planes)
FLOOR_MODES = (("threads", "xarray"), ("processes", "xarray"), ("threads", "chunks"), ("processes", "chunks"))
RATIO_TARGET = 2.0
GB = 1e9


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the cube -------------------------------------------------------------------------------

def cube_path(cache_dir: Path, size: str) -> Path:
    return cache_dir / f"synthetic-{size}-{synthetic.SIZES[size].key()}.zarr"


def ensure_cube(cache_dir: Path, size: str) -> tuple[Path, float | None, bool]:
    """The cube's path, its generation seconds (if known) and whether this run generated it."""
    path = cube_path(cache_dir, size)
    sidecar = path.with_name(path.name + ".generation.json")
    if path.exists():
        seconds = json.loads(sidecar.read_text())["seconds"] if sidecar.exists() else None
        return path, seconds, False
    cache_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(cache_dir).free
    log(f"generating the {size} synthetic cube into {path} ({free / GB:.0f} GB free there)")
    started = time.perf_counter()
    synthetic.write_cube(synthetic.SIZES[size], path)
    seconds = time.perf_counter() - started
    sidecar.write_text(json.dumps({"seconds": seconds}))
    return path, seconds, True


def disk_bytes(path: Path) -> tuple[int, int]:
    """Apparent size (sum of file sizes) and allocated size (blocks) of a directory tree."""
    apparent = allocated = 0
    for root, _, files in os.walk(path):
        for name in files:
            st = os.stat(os.path.join(root, name))
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return apparent, allocated


def compressor_of(path: Path, variable: str) -> str:
    meta = path / variable / ".zarray"
    if meta.exists():
        data = json.loads(meta.read_text())
        return json.dumps(data.get("compressor"))
    meta = path / variable / "zarr.json"
    if meta.exists():
        return json.dumps(json.loads(meta.read_text()).get("codecs"))
    return "?"


# --- what the export reads ------------------------------------------------------------------

def export_plan(location: str, config_name: str):
    """The ChannelPlan the export builds for ``config_name`` with default cube settings (orbit 'auto')."""
    config = channels_lib.resolve_channel_config(config_name)
    scene = open_scene(location, CubeConfig(cube=location), config)
    return scene.ds, config, scene.plan


def planes_of(plan: channels_lib.ChannelPlan) -> list[tuple[str, str | None, int | None]]:
    """(variable, indexed dim, index) of every 2-D plane the plan reads, each once, plus the labels."""
    pairs = dict(plan.pairs)
    planes = []
    for channel in plan.channels:
        if channel in channels_lib.SAR_CHANNELS:
            pol, side = channel.split("_")
            indices = plan.acquisitions.before if side == "before" else plan.acquisitions.after
            planes.extend((pol, schema.TIME_DIM, int(t)) for t in indices)
        elif channel in channels_lib.COHERENCE_CHANNELS:
            planes.append(("coherence", schema.PAIR_DIM, int(pairs[channel])))
        else:
            planes.append((channel, None, None))
    planes.append((schema.LABEL_VARIABLE, None, None))
    return list(dict.fromkeys(planes))


def candidate_windows(ds, chip_size: int, band_rows: int) -> list[tuple[int, int, int, int]]:
    """Windows (y0, y1, x0, x1) the paper's protocol reads: per band, its positive chips' bounding box.

    Mirrors the export's grouping of candidate chips into bands (positive chips only, no
    negatives), computed from the public chip table.
    """
    table, _ = chips_lib.build_chip_table(ds, chip_size, chip_size, SplitSpec(), band_rows)
    positive = np.flatnonzero(table.positives > 0)
    band_of = table.row[positive] // band_rows
    windows = []
    for band in np.unique(band_of):
        rows, cols = table.row[positive[band_of == band]], table.col[positive[band_of == band]]
        windows.append((int(rows.min()), int(rows.max()) + chip_size, int(cols.min()), int(cols.max()) + chip_size))
    return windows


_OPEN: dict[tuple[str, str], object] = {}


def _reader(location: str, reader: str):
    if (location, reader) not in _OPEN:
        cube = open_conformed(location)
        chunks = reader == "chunks"
        _OPEN[location, reader] = (
            planes_lib.CubePlanes(location, cube.ds, cube.stored) if chunks else planes_lib.DatasetPlanes(cube.ds)
        )
    return _OPEN[location, reader]


def read_window(location: str, reader: str, planes: list, window: tuple[int, int, int, int]) -> int:
    """Read window (y0, y1, x0, x1) of every plane (the way ChannelPlan.read_band indexes), discard it."""
    source = _reader(location, reader)
    y0, y1, x0, x1 = window
    return sum(
        source.plane(variable, {dim: index} if dim else {}, slice(y0, y1), slice(x0, x1)).nbytes
        for variable, dim, index in planes
    )


def _warm(location: str, reader: str, planes: list) -> int:
    """Open the cube and read one row of every plane, so imports and metadata are not timed."""
    read_window(location, reader, planes, (0, 1, 0, 1))
    return os.getpid()


def measure_floor(location: str, planes: list, windows: list[tuple[int, int, int, int]], workers: int,
                  mode: str, reader: str) -> tuple[float, float, int]:
    """Seconds and CPU seconds to read ``planes`` over ``windows`` with ``workers`` threads or processes,
    through ``reader`` ("xarray" or "chunks", as in FLOOR_MODES).

    The pool is started, and the cube opened in each worker, before the clock starts.
    """
    if mode == "threads":
        pool = concurrent.futures.ThreadPoolExecutor(workers)
    else:
        pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    root = psutil.Process()
    with pool:
        list(pool.map(_warm, [location] * workers * 2, [reader] * workers * 2, [planes] * workers * 2))
        cpu_before = cpu_snapshot(root)
        started = time.perf_counter()
        n = len(windows)
        nbytes = sum(pool.map(read_window, [location] * n, [reader] * n, [planes] * n, windows))
        seconds = time.perf_counter() - started
        cpu = sum(c - cpu_before.get(pid, 0.0) for pid, c in cpu_snapshot(root).items())
    return seconds, cpu, nbytes


# --- memory ---------------------------------------------------------------------------------

def tree_processes(root: psutil.Process) -> list[psutil.Process]:
    """``root`` and all its descendants (Dask nannies, workers and their children)."""
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return [root]


def tree_rss(root: psutil.Process) -> int:
    total = 0
    for proc in tree_processes(root):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def cpu_snapshot(root: psutil.Process) -> dict[int, float]:
    """CPU seconds (user + system) so far of every process of the tree, by pid."""
    out = {}
    for proc in tree_processes(root):
        try:
            times = proc.cpu_times()
            out[proc.pid] = times.user + times.system
        except psutil.Error:
            pass
    return out


def busy_seconds(times) -> float:
    """CPU seconds a ``psutil.cpu_times()`` total spent not idle."""
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def wait_for_quiet(max_wait: float, threshold: float, window: float = 2.0) -> tuple[float, float]:
    """Wait (at most ``max_wait`` s) until the machine's busy cores over ``window`` s fall to ``threshold``.

    Other sessions may run tests on this machine; this process is idle meanwhile, so the load
    measured is theirs. Returns the seconds waited and the last load measured.
    """
    started = time.perf_counter()
    while True:
        before = busy_seconds(psutil.cpu_times())
        time.sleep(window)
        load = (busy_seconds(psutil.cpu_times()) - before) / window
        waited = time.perf_counter() - started
        if load <= threshold or waited >= max_wait:
            return waited, load


class TreeSampler:
    """Samples the process tree in a thread while the block runs.

    ``peak``: the largest sum of RSS over the tree, with ``peak_parts`` the per-process RSS
    of that sample (this process first). ``tree_cpu``: CPU seconds of the tree, from the
    last sample of every process (workers exit before the block ends); ``machine_cpu``:
    CPU seconds of the whole machine; their difference is load from other processes.
    """

    def __init__(self, interval: float):
        self.interval = interval
        self.root = psutil.Process()
        self.peak = 0
        self.peak_parts: list[int] = []
        self.samples = 0
        self.baseline = tree_rss(self.root)
        self._cpu: dict[int, float] = {}
        self._cpu_start = cpu_snapshot(self.root)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        # Finding the children walks all of /proc: refresh the list every ``REFRESH`` seconds
        # only, so the sampler (a thread of the measured process) perturbs the export less.
        tree, found = [], -math.inf
        while True:
            if time.perf_counter() - found >= REFRESH:
                tree, found = tree_processes(self.root), time.perf_counter()
            parts = []
            for proc in tree:
                try:
                    parts.append(proc.memory_info().rss)
                    times = proc.cpu_times()
                    self._cpu[proc.pid] = times.user + times.system
                except psutil.Error:
                    pass
            self.samples += 1
            if sum(parts) > self.peak:
                self.peak, self.peak_parts = sum(parts), parts
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Self:
        self._machine_start = busy_seconds(psutil.cpu_times())
        self._wall_start = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.wall = time.perf_counter() - self._wall_start
        self.machine_cpu = busy_seconds(psutil.cpu_times()) - self._machine_start
        self._cpu.update(cpu_snapshot(self.root))
        self.tree_cpu = sum(cpu - self._cpu_start.get(pid, 0.0) for pid, cpu in self._cpu.items())
        self.other_cpu = max(0.0, self.machine_cpu - self.tree_cpu)


# --- the export -----------------------------------------------------------------------------

CASES = {
    "a": ("paper protocol: positive chips, stats_from=train", "train"),
    "b": ("stats_from=scene: every band is read", "scene"),
}


def run_export(location: str, args, case: str, repeat: int, work: Path) -> dict:
    records_dir = work / f"case-{case}-run-{repeat}"
    shutil.rmtree(records_dir, ignore_errors=True)
    cfg = ExportConfig(
        cube=CubeConfig(cube=location),
        config=args.config,
        records_dir=str(records_dir),
        stats_from=CASES[case][1],
        workers=args.workers,
        progress=False,
        overwrite=True,
    )
    with TreeSampler(args.sample_interval) as sampler:
        started = time.perf_counter()
        manifest = export_lib.export(cfg)
        seconds = time.perf_counter() - started
    shutil.rmtree(records_dir, ignore_errors=True)
    chips = {split: info["chips"] for split, info in manifest["splits"].items()}
    return {
        "case": case,
        "repeat": repeat,
        "seconds": seconds,
        "manifest_seconds": manifest.get("export_seconds"),
        "peak_rss": sampler.peak,
        "peak_procs": len(sampler.peak_parts),
        "peak_parts": sampler.peak_parts,
        "baseline_rss": sampler.baseline,
        "samples": sampler.samples,
        "tree_cpu": sampler.tree_cpu,
        "other_cpu": sampler.other_cpu,
        "chips": chips,
        "total_chips": manifest["totals"]["chips"],
        "skipped": manifest["totals"]["skipped_nodata_chips"],
        "shards": sum(len(info["shards"]) for info in manifest["splits"].values()),
        "record_bytes": sum(s["bytes"] for info in manifest["splits"].values() for s in info["shards"]),
    }


# --- report ---------------------------------------------------------------------------------

def listed(results: list[dict], key: str) -> str:
    return ", ".join(f"{r[key]:.1f}" for r in results)


def code_version() -> str:
    """The library's commit, and whether tf_landslide/ has uncommitted changes (others edit it meanwhile)."""
    repo = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%h %ci"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "tf_landslide"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (" + uncommitted changes in tf_landslide/" if dirty else "")


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache_dir", default="/tmp/tf_landslide_bench", help="where the cube and records go")
    parser.add_argument("--repeats", type=int, default=3, help="export runs per case (median reported)")
    parser.add_argument("--size", default="hokkaido", choices=sorted(synthetic.SIZES),
                        help="synthetic cube size (hokkaido for the benchmark; smaller ones for a smoke test)")
    parser.add_argument("--config", default="vv_vh_dem_t4", help="channel configuration to export")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers, and the floor's pool size")
    parser.add_argument("--cases", default="ab", help="which export cases to run: a (train stats), b (scene stats)")
    parser.add_argument("--floor_repeats", type=int, default=3, help="floor measurements per mode (fastest kept)")
    parser.add_argument("--quiet_wait", type=float, default=120.0,
                        help="before each measurement, wait up to this many seconds for other processes to go idle")
    parser.add_argument("--quiet_load", type=float, default=0.25,
                        help="machine load (busy cores) below which the machine counts as idle")
    parser.add_argument("--sample_interval", type=float, default=0.05, help="RSS sampling period, seconds")
    parser.add_argument("--json", default="", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    print(machine.describe(), flush=True)
    cache_dir = Path(args.cache_dir)
    code = code_version()  # the modules were imported just now

    # 1. the cube
    path, generation_seconds, generated = ensure_cube(cache_dir, args.size)
    location = str(path)
    apparent, allocated = disk_bytes(path)
    ds, config, plan = export_plan(location, args.config)
    memory = sum(ds[name].nbytes for name in ds.data_vars)
    sizes = dict(ds.sizes)
    gen_text = (f"{generation_seconds:.1f} s" if generation_seconds is not None else "unknown") + (
        " (this run)" if generated else " (earlier run, reused)")
    log(f"cube {path}: sizes {sizes}; generation {gen_text}; on disk {apparent / GB:.2f} GB "
        f"({allocated / GB:.2f} GB allocated); data variables in memory {memory / GB:.2f} GB; "
        f"compressor {compressor_of(path, 'vv')}")

    # 2. the I/O floor
    planes = planes_of(plan)
    plane_bytes = sum(ds[v].isel({d: i} if d else {}).nbytes for v, d, i in planes)
    height, width = sizes["y"], sizes["x"]
    band_rows = ExportConfig(cube=CubeConfig()).band_rows
    chip_size = ExportConfig(cube=CubeConfig()).chip_size
    scopes = {"scene": [(y0, min(height, y0 + band_rows), 0, width) for y0 in range(0, height, band_rows)]}
    scopes["windows"] = candidate_windows(ds, chip_size, band_rows)
    window_fraction = sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in scopes["windows"]) / (height * width)
    log(f"{config.name}: acquisitions before {plan.acquisitions.before} after {plan.acquisitions.after} "
        f"({plan.acquisitions.orbit}); {len(planes)} planes read: {planes}; {plane_bytes / GB:.2f} GB decoded")
    floors: dict[tuple[str, str], list[float]] = {}
    floor_cpus: dict[str, list[float]] = {}
    for repeat in range(args.floor_repeats):
        for scope, windows in scopes.items():
            for mode, reader in FLOOR_MODES:
                waited, load = wait_for_quiet(args.quiet_wait, args.quiet_load)
                seconds, cpu, nbytes = measure_floor(location, planes, windows, args.workers, mode, reader)
                floors.setdefault((scope, f"{mode}/{reader}"), []).append(seconds)
                floor_cpus.setdefault(scope, []).append(cpu)
                log(f"floor {scope:8s} {mode:9s} {reader:6s} run {repeat + 1}/{args.floor_repeats}: {seconds:6.2f} s "
                    f"(CPU {cpu:.2f} s) for {nbytes / GB:.2f} GB ({nbytes / seconds / 1e6:.0f} MB/s decoded), "
                    f"{len(windows)} bands "
                    f"(waited {waited:.0f} s for other load to drop to {load:.2f} cores)")
    floor_scene, floor_windows = (min(min(v) for (s, _), v in floors.items() if s == scope) for scope in scopes)

    # 3-4. the exports, interleaved
    work = cache_dir / "records-bench"
    runs: dict[str, list[dict]] = {case: [] for case in args.cases}
    for repeat in range(args.repeats):
        for case in args.cases:
            waited, load = wait_for_quiet(args.quiet_wait, args.quiet_load)
            result = run_export(location, args, case, repeat, work)
            result["waited"], result["load_before"] = waited, load
            runs[case].append(result)
            parts = " + ".join(f"{rss / GB:.2f}" for rss in result["peak_parts"])
            log(f"export ({case}) run {repeat + 1}/{args.repeats}: {result['seconds']:.2f} s "
                f"(manifest {result['manifest_seconds']} s); CPU: ours {result['tree_cpu']:.1f} s, other processes "
                f"{result['other_cpu']:.1f} s; peak RSS {result['peak_rss'] / GB:.2f} GB = {parts} (this process "
                f"first; baseline {result['baseline_rss'] / GB:.2f} GB, {result['samples']} samples); "
                f"chips {result['chips']}, skipped {result['skipped']}; waited {waited:.0f} s for other load to "
                f"drop to {load:.2f} cores")
    shutil.rmtree(work, ignore_errors=True)

    # 5. summary
    figures = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "code": code,
        "cube": {"path": location, "sizes": sizes, "orbits": _orbit_counts(ds), "generation": gen_text,
                 "disk_bytes": apparent, "disk_allocated_bytes": allocated, "memory_bytes": memory},
        "config": {"name": config.name, "channels": len(config.channels), "timesteps": config.timesteps,
                   "orbit": plan.acquisitions.orbit, "planes": len(planes), "plane_bytes": plane_bytes},
        "floor": {f"{scope}/{mode}": seconds for (scope, mode), seconds in floors.items()},
        "floor_scene": floor_scene,
        "floor_windows": floor_windows,
        "window_fraction": window_fraction,
        "floor_cpu": {scope: min(values) for scope, values in floor_cpus.items()},
        "window_bands": len(scopes["windows"]),
        "workers": args.workers,
        "runs": runs,
    }
    print("\n==== tf_landslide export benchmark summary ====")
    print(summary_table(figures), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=str))
    return 0


def summary_table(f: dict) -> str:
    cube, config, floor = f["cube"], f["config"], f["floor"]
    sizes = cube["sizes"]
    orbits = ", ".join(f"{k}: {v}" for k, v in sorted(cube["orbits"].items()))

    def fastest(scope: str) -> str:
        return "; ".join(f"{mode} {min(floor[f'{scope}/{mode}']):.2f}" for mode in (f"{m}/{r}" for m, r in FLOOR_MODES))
    rows = [
        ("command", f["command"]),
        ("library commit", f["code"]),
        ("machine", f"{os.cpu_count()} cpus, {psutil.virtual_memory().total / GB:.1f} GB RAM"),
        ("cube", f"{sizes['y']} x {sizes['x']} px, {sizes[schema.TIME_DIM]} timesteps ({orbits}), "
                 + f"{sizes.get(schema.PAIR_DIM, 0)} pairs"),
        ("cube generation", cube["generation"]),
        ("cube on disk", f"{cube['disk_bytes'] / GB:.2f} GB ({cube['disk_allocated_bytes'] / GB:.2f} GB allocated)"),
        ("cube data variables in memory", f"{cube['memory_bytes'] / GB:.2f} GB"),
        ("config", f"{config['name']}: {config['channels']} channels, k={config['timesteps']}, "
                   + f"orbit {config['orbit']}, {config['planes']} planes incl. labels"),
        ("planes read, whole scene", f"{config['plane_bytes'] / GB:.2f} GB decoded"),
        ("floor: the needed planes, whole scene", f"{f['floor_scene']:.2f} s, the fastest of ({f['workers']} "
                                                  + f"workers, best run each): {fastest('scene')}; "
                                                  + f"CPU {f['floor_cpu']['scene']:.2f} s"),
        ("floor: positive-chip windows only", f"{f['floor_windows']:.2f} s ({f['window_fraction']:.0%} of the "
                                              + f"scene's pixels, {f['window_bands']} bands): {fastest('windows')}; "
                                              + f"CPU {f['floor_cpu']['windows']:.2f} s"),
    ]
    for case, results in f["runs"].items():
        if not results:
            continue
        own_scope, own_floor = "scene", f["floor_scene"]
        own_cpu = f["floor_cpu"][own_scope]
        cpu_median = statistics.median(r["tree_cpu"] for r in results)
        seconds = [r["seconds"] for r in results]
        median = statistics.median(seconds)
        peaks = [r["peak_rss"] for r in results]
        last = results[-1]
        worst = max(results, key=lambda r: r["peak_rss"])
        ratio = median / own_floor
        ratio_text = (f"{ratio:.2f}x the floor ({own_floor:.2f} s); fastest run "
                      + f"{min(seconds) / own_floor:.2f}x  [target <= {RATIO_TARGET:g}x: "
                      + f"{'met' if ratio <= RATIO_TARGET else 'MISSED'}]")
        if case == "a":
            ratio_text += f"; {median / f['floor_windows']:.2f}x the floor of its windows only"
        rss_verdict = "met" if max(peaks) <= RSS_TARGET_BYTES else "MISSED"
        rows += [
            (f"export ({case})", CASES[case][0]),
            ("  wall time, median", f"{median:.2f} s (runs: {', '.join(f'{s:.2f}' for s in seconds)})"),
            ("  ratio export / floor", ratio_text),
            ("  peak RSS, process tree", f"{max(peaks) / GB:.2f} GB (runs: {', '.join(f'{p / GB:.2f}' for p in peaks)};"
                                        + f" {last['peak_procs']} processes)"
                                        + f"  [target <= {RSS_TARGET_BYTES / GB:g} GB: {rss_verdict}]"),
            ("  peak RSS by process", " + ".join(f"{rss / GB:.2f}" for rss in worst["peak_parts"])
                                      + " GB (this process first, worst run)"),
            ("  chips per split", ", ".join(f"{k} {v}" for k, v in last["chips"].items())
                                  + f" (total {last['total_chips']}, skipped as no-data {last['skipped']})"),
            ("  CPU seconds per run", f"ours {listed(results, 'tree_cpu')}; other processes "
                                     + f"{listed(results, 'other_cpu')}"),
            # A tiny cube's floor can take less CPU than psutil resolves (10 ms): no ratio then.
            ("  CPU ratio export / floor", (f"{cpu_median / own_cpu:.1f}x" if own_cpu else "n/a")
                                           + f" (median {cpu_median:.1f} s vs the floor's "
                                           + f"{own_cpu:.2f} s; less sensitive to other load than wall time)"),
            ("  records", f"{last['shards']} shards, {last['record_bytes'] / 1e6:.0f} MB"),
            ("  chips/s", f"{last['total_chips'] / median:.1f}"),
        ]
    return table(rows)


def _orbit_counts(ds) -> dict[str, int]:
    codes = orbit_codes(ds)
    return {str(code): int((codes == code).sum()) for code in np.unique(codes)}


if __name__ == "__main__":
    sys.exit(main())
