"""Preflight: what a cube holds, what opening it conformed, and which configurations it can feed.

    tf-landslide check [CUBE] [--event=hokkaido | --event_start=... --event_end=...]
                              [--orbit=auto|descending|ascending|both|any] [--flagfile=<config>]
    python -m tf_landslide.cube.check [CUBE] ...   (the same)

Run it before anything else on a cube another tool wrote: it reads the coordinates and the
label raster only, takes the export's flags (a flagfile too; no CUBE and no --cube: the
embedded cube), and exits with 0 when at least one configuration can be exported, 1 when none
can, 2 when the cube cannot be opened.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pandas as pd
import xarray as xr

from tf_landslide.cube import channels as channels_lib
from tf_landslide.cube import events, schema
from tf_landslide.cube.conform import orbit_problem
from tf_landslide.cube.open import check_labels, location_of, open_conformed, orbit_codes
from tf_landslide.cube.planes import landslide_mask
from tf_landslide.cube.scene import cube_location, georeference
from tf_landslide.cube.schema import CubeError

_ORBIT_NAMES = {"a": "ascending", "d": "descending", "": "unknown orbit"}


@dataclasses.dataclass(frozen=True)
class Feasibility:
    """Whether one channel configuration can be exported from the cube, and with what."""

    config: channels_lib.ChannelConfig
    problem: str | None  # why not, or None
    before: tuple[str, ...] = ()  # acquisition times used, ISO
    after: tuple[str, ...] = ()
    pairs: tuple[str, ...] = ()  # InSAR pairs used: 'coevent 20180824_20180905', ...

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclasses.dataclass(frozen=True)
class Report:
    """The preflight of one cube for one event and orbit choice."""

    lines: tuple[str, ...]
    feasible: tuple[Feasibility, ...]

    @property
    def exportable(self) -> list[str]:
        return [f.config.name for f in self.feasible if f.ok]

    def __str__(self) -> str:
        return "\n".join(self.lines)


# Free channel lists worth naming beside the study's 17: the InSAR coherence (the paper's future work).
EXTRA_CONFIGS = (
    channels_lib.ChannelConfig("vv_vh_coherence_t1", channels_lib.SAR_CHANNELS + channels_lib.COHERENCE_CHANNELS, 1),
)


def preflight(
    source: str | xr.Dataset,
    event: str = "",
    event_start: str = "",
    event_end: str = "",
    orbit: str = "auto",
    acquisition_rule: str = "paper",
) -> Report:
    """Describe the cube at ``source`` and try every configuration for the event; raises
    CubeError only when the cube cannot be opened at all."""
    conformed = open_conformed(source)
    ds = conformed.ds
    location = location_of(source)
    lines = [f"cube: {location}"]
    lines += _grid_lines(ds)
    lines.append("variables: " + _grouped_variables(ds))
    missing = [name for name in schema.REQUIRED_VARIABLES if name not in ds.data_vars]
    if missing:
        lines.append(f"missing: {', '.join(missing)}")
    lines.append("conformed: " + ("; ".join(conformed.changes) if conformed.changes else "nothing (already canonical)"))
    lines += _acquisition_lines(ds)
    lines += _label_lines(ds)
    try:
        chosen_event = events.resolve_event(event, event_start, event_end, location, ds.attrs)
    except CubeError as error:
        lines.append(f"event: {error}")
        return Report(tuple(lines), ())
    lines.append(f"event: {chosen_event.name}, {chosen_event.as_dict()['start']} .. {chosen_event.as_dict()['end']}")
    try:
        chosen_orbit = channels_lib.resolve_orbit(ds, orbit)
    except CubeError as error:
        chosen_orbit, orbit_error = None, str(error)
        lines.append(f"orbit: {orbit}: {orbit_error}")
    else:
        lines.append(f"orbit: {orbit}" + (f" -> {chosen_orbit}" if chosen_orbit != orbit else ""))
    configs = (*channels_lib.study_configs().values(), *EXTRA_CONFIGS)
    feasible = tuple(
        _feasibility(ds, config, chosen_event, chosen_orbit, acquisition_rule)
        if chosen_orbit
        else Feasibility(config, "no orbit chosen (see above)")
        for config in configs
    )
    lines += _feasibility_lines(feasible, chosen_orbit)
    return Report(tuple(lines), feasible)


def _feasibility_lines(feasible: tuple[Feasibility, ...], orbit: str | None) -> list[str]:
    """The acquisitions each number of timesteps takes, then the configurations grouped by outcome."""
    lines = []
    by_k = {f.config.timesteps: f for f in feasible if f.config.needs_sar and f.ok}
    if by_k:
        lines.append(f"acquisitions the SAR channels average ({orbit} orbit):")
        for k, f in sorted(by_k.items()):
            lines.append(f"  t{k}  before {', '.join(_minutes(f.before))}  |  after {', '.join(_minutes(f.after))}")
    lines.append(f"configurations ({sum(f.ok for f in feasible)} of {len(feasible)} can be exported):")
    ok = [f.config.name + (f" (pairs {', '.join(f.pairs)})" if f.pairs else "") for f in feasible if f.ok]
    if ok:
        lines.append("  ok: " + ", ".join(ok))
    problems: dict[str, list[str]] = {}
    for f in feasible:
        if not f.ok:
            problems.setdefault(f.problem, []).append(f.config.name)
    lines += [f"  no: {', '.join(names)}: {problem}" for problem, names in problems.items()]
    return lines


def _minutes(times: tuple[str, ...]) -> list[str]:
    return [t[:16] for t in times]


def _grouped_variables(ds: xr.Dataset) -> str:
    """'vh, vv (timestep, y, x) float32; dem, ... (y, x) float32': variables grouped by dims and dtype."""
    groups: dict[tuple, list[str]] = {}
    for name in sorted(ds.data_vars):
        groups.setdefault((ds[name].dims, str(ds[name].dtype)), []).append(name)
    return "; ".join(f"{', '.join(names)} ({', '.join(dims)}) {dtype}" for (dims, dtype), names in groups.items())


def _grid_lines(ds: xr.Dataset) -> list[str]:
    if not set(schema.SPATIAL_DIMS) <= set(ds.dims):
        return [f"grid: no {schema.SPATIAL_DIMS} dimensions; dims {dict(ds.sizes)}"]
    geo = georeference(ds)
    a, _, c, _, e, f = geo["transform"]
    crs = "no CRS (no spatial_ref coordinate)"
    if geo["crs_wkt"]:
        import pyproj

        crs = pyproj.CRS.from_wkt(geo["crs_wkt"]).to_string()
    return [
        f"grid: {geo['height']} x {geo['width']} px of {abs(a):g} x {abs(e):g}, {crs}, "
        f"x {c:.1f} .. {c + a * geo['width']:.1f}, y {f:.1f} .. {f + e * geo['height']:.1f}"
    ]


def _acquisition_lines(ds: xr.Dataset) -> list[str]:
    if schema.TIME_DIM not in ds.dims:
        return [f"acquisitions: none (no {schema.TIME_DIM!r} dimension)"]
    times = pd.DatetimeIndex(ds[schema.TIME_DIM].values)
    codes = orbit_codes(ds)
    lines = [f"acquisitions: {len(times)}, {times[0]:%Y-%m-%d} .. {times[-1]:%Y-%m-%d}"]
    for code in sorted(set(codes.tolist())):
        chosen = times[codes == code]
        lines.append(f"  {_ORBIT_NAMES[code]} ({len(chosen)}): " + ", ".join(f"{t:%Y-%m-%dT%H:%M}" for t in chosen))
    problem = orbit_problem(ds)
    if problem:
        lines.append(f"  orbits unusable: {problem}")
    if schema.PAIR_DIM in ds.dims:
        labels = ds[schema.PAIR_DIM].values
        lines.append(f"InSAR pairs: {len(labels)}" + (f", {labels[0]} .. {labels[-1]}" if len(labels) else ""))
    return lines


def _label_lines(ds: xr.Dataset) -> list[str]:
    if schema.LABEL_VARIABLE not in ds.data_vars:
        return [f"labels: none ({schema.LABEL_VARIABLE!r} missing): the cube can be mapped, not exported"]
    values = ds[schema.LABEL_VARIABLE].values
    try:
        nan = check_labels(values)
    except CubeError as error:
        return [f"labels: {error}"]
    fraction = float(np.mean(landslide_mask(values)))
    return [f"labels: {values.dtype}, {fraction:.2%} landslide pixels" + (f", {nan} NaN" if nan else "")]


def _feasibility(
    ds: xr.Dataset, config: channels_lib.ChannelConfig, event: events.Event, orbit: str, rule: str
) -> Feasibility:
    needed = channels_lib.ChannelPlan(config.channels, channels_lib.Acquisitions(orbit, (), ())).variables()
    absent = [name for name in [*needed, schema.LABEL_VARIABLE] if name not in ds.data_vars]
    if absent:
        return Feasibility(config, f"the cube lacks {', '.join(absent)}")
    times = ds[schema.TIME_DIM].values
    try:
        before = after = ()
        if config.needs_sar:
            chosen = channels_lib.select_acquisitions(ds, event, config.timesteps, orbit, rule)
            before, after = (tuple(str(times[i])[:19] for i in side) for side in (chosen.before, chosen.after))
        pairs = channels_lib.select_pairs(ds, event, orbit) if config.needs_insar else {}
    except CubeError as error:
        return Feasibility(config, _first_sentence(str(error)))
    labels = tuple(
        f"{name.removeprefix('coherence_')} {ds[schema.PAIR_DIM].values[i]}" for name, i in sorted(pairs.items())
    )
    return Feasibility(config, None, before, after, labels)


def _first_sentence(text: str) -> str:
    return text.split(". ")[0]


def main(argv: list[str]) -> int:
    from tf_landslide import flags as landslide_flags  # the export's flags (defined on import)

    values = landslide_flags.FLAGS
    if len(argv) > 2 or (len(argv) == 2 and values.cube):
        print(f"give the cube once, as CUBE or --cube; got {argv[1:]} and --cube={values.cube!r}")
        return 2
    cube = argv[1] if len(argv) == 2 else cube_location(landslide_flags.cube_config(values))
    try:
        report = preflight(
            cube, values.event or "", values.event_start, values.event_end, values.orbit, values.acquisition_rule
        )
    except CubeError as error:
        print(f"cannot open {cube}: {error}")
        return 2
    print(report)
    return 0 if report.exportable else 1


def run(argv: list[str] | None = None) -> None:
    """``tf-landslide check`` and ``python -m tf_landslide.cube.check``: the export's flags, then ``main``."""
    import tf_landslide.flags  # noqa: F401  (defines the flags the command line parses)
    from tf_landslide import cli

    cli.run_command(lambda args: sys.exit(main(args)), argv, __doc__)


if __name__ == "__main__":
    run()
