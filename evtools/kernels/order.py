"""The pass that finds where event times go backwards: one read of the times on all cores, where
numpy's took a copy, a comparison array and a search over it (three passes and 9 bytes of
temporaries an event, in the pass that cuts a conversion's windows)."""

from __future__ import annotations

import numba
import numpy as np

from evtools.kernels.parallel import PARALLEL_LAUNCH_LOCK


@numba.njit(parallel=True, nogil=True, cache=True)
def _first_descent(stamps, previous, has_previous):
    n = len(stamps)
    if n and has_previous and stamps[0] < previous:
        return 0
    first = n
    for i in numba.prange(1, n):
        if stamps[i] < stamps[i - 1]:
            first = min(first, i)
    return first if first < n else -1


def first_descent(stamps: np.ndarray, previous: int | None = None) -> int:
    """The index of the first time in ``stamps`` that is earlier than the one before it (for
    ``stamps[0]``, ``previous``, the time before the array, when given), or -1."""
    with PARALLEL_LAUNCH_LOCK:
        return int(_first_descent(stamps, 0 if previous is None else previous, previous is not None))
