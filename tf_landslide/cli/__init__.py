"""The command line: ``tf-landslide COMMAND [flags]`` (or ``python -m tf_landslide COMMAND``).

Each command is a function ``run(argv)`` (``argv[0]`` names the program): the modules of this
package hold the export, training, evaluation, map, study and SavedModel commands; the cube's
commands live beside the code they drive (``cube/check.py``, ``cube/build/__main__.py``,
``cube/demo_catalog.py``). The repository's scripts (``train.py``, ``python -m export``...) and the
console scripts users already have (``tf-landslide-export``, ``tf-landslide-build-cube``) call the
same functions, so every way in parses the same flags and finds flagfiles the same way.
"""

from __future__ import annotations

import importlib
import sys
import textwrap

from tf_landslide import flagfiles

PROG = "tf-landslide"

# command: (its run function, what it does). A command's module is imported only when it runs:
# modules define their absl flags on import (the cube builder's --event_start would clash with the
# export's), and the list below should print without importing TensorFlow.
COMMANDS = {
    "export": ("tf_landslide.cli.export:run", "export a configuration of a cube to sharded TFRecords"),
    "train": ("tf_landslide.cli.train:run", "train a model on an export (exporting first if needed)"),
    "eval": ("tf_landslide.cli.eval:run", "evaluate a trained model: metrics, PR curve, prediction panel"),
    "predict": ("tf_landslide.cli.predict:run", "map a whole cube with a trained model (COG, Zarr, polygons, page)"),
    "study": ("tf_landslide.cli.study:run", "the paper's study: train and evaluate configurations, tabulate"),
    "export-savedmodel": ("tf_landslide.cli.export_savedmodel:run", "export a trained model for TF Serving"),
    "check": ("tf_landslide.cube.check:run", "preflight: what a cube holds and which configurations it feeds"),
    "build-cube": ("tf_landslide.cube.build.__main__:run", "build a cube for an area and an event from STAC"),
    "demo-catalog": ("tf_landslide.cube.demo_catalog:run", "write an offline STAC catalogue of the synthetic scene"),
}
HELP = ("-h", "--help", "--helpshort", "--helpfull", "help")


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join(
        [
            f"usage: {PROG} COMMAND [flags]",
            "",
            "commands:",
            *lines,
            "",
            f"{PROG} COMMAND --help describes a command, --helpfull lists its flags.",
            *textwrap.wrap(
                f"--flagfile takes a file or the name of a flagfile of the package: {', '.join(flagfiles.names())}.",
                width=100,
                subsequent_indent="  ",
            ),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    """The ``tf-landslide`` console script: run the command named by ``argv[1]``."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] not in COMMANDS:
        if len(argv) >= 2 and argv[1] in HELP:
            print(usage())
            sys.exit(0)
        problem = f"unknown command {argv[1]!r}" if len(argv) >= 2 else "no command given"
        print(f"{PROG}: {problem}\n\n{usage()}", file=sys.stderr)
        sys.exit(1)  # absl's exit code for a usage error, as the commands themselves use
    name = argv[1]
    module, _, function = COMMANDS[name][0].partition(":")
    getattr(importlib.import_module(module), function)([f"{PROG} {name}", *argv[2:]])


def run_command(main_function, argv: list[str] | None = None, doc: str | None = None) -> None:
    """absl's ``app.run(main_function)`` on ``argv`` (default ``sys.argv``) once its flagfile names
    are resolved; ``doc`` is what ``--help`` prints."""
    from absl import app

    argv = list(sys.argv if argv is None else argv)
    try:
        argv = flagfiles.expand_argv(argv)
    except flagfiles.FlagfileError as error:
        # absl's words and exit code for a flagfile it cannot open.
        print(f"FATAL Flags parsing error: {error}", file=sys.stderr)
        print("Pass --helpshort or --helpfull to see help on flags.", file=sys.stderr)
        sys.exit(1)
    if doc:
        sys.modules["__main__"].__doc__ = doc  # absl's --help prints the main module's docstring
    app.run(main_function, argv=argv)
