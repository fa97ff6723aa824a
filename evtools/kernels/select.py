"""The pass over decoded columns that keeps the events on the sensor (and in a band of rows),
casting them to the in-memory dtypes as it goes: five numpy passes and their temporaries were a
fifth of a conversion's time. Every event is cast and counted in one pass on all cores, which is
the selection where every event is kept (nearly always); else one more pass moves the kept ones
to the front."""

from __future__ import annotations

import numba
import numpy as np

from evtools.kernels.parallel import PARALLEL_LAUNCH_LOCK


@numba.njit(cache=True)
def on_sensor(x, y, width, height):
    """Whether an event at (x, y), raw values of any numeric type, lies on the width x height sensor."""
    return (x >= 0) & (x < width) & (y >= 0) & (y < height)


@numba.njit(cache=True)
def _is_kept(inside, y, row_lo, row_hi):
    return inside & (y >= row_lo) & (y < row_hi)


@numba.njit(cache=True)
def is_bad_polarity(p):
    return not ((p == 1) | (p == 0) | (p == -1))


@numba.njit(cache=True)
def _cast_event(t, x, y, p, i, row_lo, t_out, x_out, y_out, p_out, j):
    """Event i cast into place j of the ``*_out`` arrays (y shifted by row_lo, p as -1/+1)."""
    t_out[j] = t[i]
    x_out[j] = np.uint16(x[i])
    y_out[j] = np.uint16(y[i] - row_lo)
    p_out[j] = 1 if p[i] > 0 else -1


@numba.njit(parallel=True, nogil=True, cache=True)
def _cast_every_event(t, x, y, p, width, height, row_lo, row_hi, t_out, x_out, y_out, p_out):
    """Every event cast into its place in the ``*_out`` arrays, in one pass that also counts:
    returns (events kept, events off the sensor, index of the first polarity that is not -1, 0 or
    1, or -1). The casts are what the selection is only when every event is kept; the values
    cast from events that are not are never used."""
    n = len(t)
    kept, outside, bad = 0, 0, n
    for i in numba.prange(n):
        inside = on_sensor(x[i], y[i], width, height)
        kept += np.int64(_is_kept(inside, y[i], row_lo, row_hi))
        outside += np.int64(not inside)
        _cast_event(t, x, y, p, i, row_lo, t_out, x_out, y_out, p_out, i)
        bad = min(bad, i if is_bad_polarity(p[i]) else n)
    return kept, outside, (bad if bad < n else -1)


@numba.njit(nogil=True, cache=True)
def _move_kept_to_front(t, x, y, p, width, height, row_lo, row_hi, t_out, x_out, y_out, p_out, keep):
    """The kept events cast to the front of the ``*_out`` arrays, marked in ``keep``; returns the
    index of the first kept event whose polarity is not -1, 0 or 1, or -1."""
    n_kept, bad_polarity = 0, -1
    for i in range(len(t)):
        kept = _is_kept(on_sensor(x[i], y[i], width, height), y[i], row_lo, row_hi)
        keep[i] = kept
        if kept:
            _cast_event(t, x, y, p, i, row_lo, t_out, x_out, y_out, p_out, n_kept)
            if bad_polarity < 0 and is_bad_polarity(p[i]):
                bad_polarity = i
            n_kept += 1
    return bad_polarity


def keep_on_sensor(t, x, y, p, width, height, row_lo, row_hi, t_out, x_out, y_out, p_out, keep):
    """Writes the kept events (on the width x height sensor, rows row_lo..row_hi-1, y shifted by
    row_lo; p as -1/+1) to the front of the ``*_out`` arrays and marks them in ``keep`` (left
    unwritten when every event is kept). Returns (kept, off the sensor, index of the first kept
    event whose polarity is not -1, 0 or 1, or -1). The bounds are compared on the raw values,
    before any cast, so that a negative or huge coordinate cannot wrap onto the sensor."""
    with PARALLEL_LAUNCH_LOCK:
        n_kept, n_outside, bad_polarity = _cast_every_event(t, x, y, p, width, height, row_lo, row_hi,
                                                            t_out, x_out, y_out, p_out)
    if n_kept == len(t):
        return n_kept, n_outside, bad_polarity
    return n_kept, n_outside, _move_kept_to_front(t, x, y, p, width, height, row_lo, row_hi,
                                                  t_out, x_out, y_out, p_out, keep)
