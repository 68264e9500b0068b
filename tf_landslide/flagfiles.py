"""The flagfiles that come with the package, found by name: ``--flagfile=quickstart``.

They are the repository's ``configs/*.flags`` (the 17 study configurations, ``quickstart`` and
``smoke``). A wheel carries the same files as ``tf_landslide/configs/``: setup.py maps that
package onto the repository's folder, so there is one copy of each. Every command line passes
through ``expand_argv`` before absl reads it, since absl opens ``--flagfile`` values itself.
"""

from __future__ import annotations

import os
from pathlib import Path

SUFFIX = ".flags"
_PACKAGE = Path(__file__).resolve().parent
_DIRECTIVES = ("--flagfile", "-flagfile")  # the spellings absl reads


class FlagfileError(ValueError):
    """A ``--flagfile`` that is neither a file nor the name of a packaged flagfile."""


def directory() -> Path:
    """The packaged flagfiles' folder: ``tf_landslide/configs/`` in an installed wheel, the
    repository's ``configs/`` beside the package in a checkout (an editable install or PYTHONPATH)."""
    installed = _PACKAGE / "configs"
    return installed if installed.is_dir() else _PACKAGE.parent / "configs"


def names() -> list[str]:
    """The packaged flagfiles' names (``quickstart``, ``smoke``, ``vv_t1``...)."""
    return sorted(path.stem for path in directory().glob(f"*{SUFFIX}"))


def path(name: str) -> Path:
    """The packaged flagfile called ``name`` (``quickstart`` or ``quickstart.flags``)."""
    found = directory() / f"{name.removesuffix(SUFFIX)}{SUFFIX}"
    if not name or not found.is_file():
        raise FlagfileError(f"no packaged flagfile {name!r} in {directory()}; the names are: {', '.join(names())}")
    return found


def resolve(value: str) -> str:
    """A ``--flagfile`` value as absl should read it: a file that exists, or anything with a folder
    in it, unchanged (absl reads it, or says it cannot); otherwise the packaged flagfile of that name."""
    separators = tuple(s for s in (os.sep, os.altsep) if s)
    if os.path.exists(os.path.expanduser(value)) or any(s in value for s in separators):
        return value
    try:
        return str(path(value))
    except FlagfileError:
        raise FlagfileError(
            f"--flagfile={value}: no such file, and no packaged flagfile of that name (the names: {', '.join(names())})"
        ) from None


def expand_argv(argv: list[str]) -> list[str]:
    """``argv`` with each ``--flagfile`` resolved, in every spelling absl accepts (``--flagfile=X``,
    ``-flagfile=X``, ``--flagfile X``); nothing after ``--`` is a flag, as for absl."""
    expanded = list(argv[:1])
    rest = iter(argv[1:])
    for arg in rest:
        directive, equals, value = arg.partition("=")
        if arg == "--":
            expanded += [arg, *rest]
        elif arg in _DIRECTIVES:
            value = next(rest, None)
            expanded += [arg] if value is None else [arg, resolve(value)]  # absl reports a missing value
        elif equals and directive in _DIRECTIVES:
            expanded.append(f"{directive}={resolve(value)}")
        else:
            expanded.append(arg)
    return expanded
