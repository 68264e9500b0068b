"""numba's ``njit`` as the compiled loops use it: no GIL, numpy's error model, a disk cache."""

from __future__ import annotations

import functools
import logging

import numba

log = logging.getLogger(__name__)


def compiled(function):
    """``function`` compiled without the GIL and with numpy's error model (x / 0 is inf or NaN,
    no exception), its machine code cached beside its module, in ``NUMBA_CACHE_DIR`` or in
    numba's user cache. Where none of them can be written (a read-only install and home), it is
    compiled again in every process (seconds) instead of failing."""
    try:
        return numba.njit(nogil=True, cache=True, error_model="numpy")(function)
    except RuntimeError:  # numba found no cache location it can write
        _warn_uncached()
        return numba.njit(nogil=True, error_model="numpy")(function)


@functools.cache  # once a process, not once a function
def _warn_uncached() -> None:
    log.warning(
        "numba finds no writable folder to cache the export's compiled loops in: they are compiled "
        "again in every process (seconds); set NUMBA_CACHE_DIR to a writable folder"
    )
