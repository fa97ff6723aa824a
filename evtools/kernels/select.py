"""One pass over decoded columns that keeps the events on the sensor (and in a band of rows),
casting them to the in-memory dtypes as it goes: five numpy passes and their temporaries were a
fifth of a conversion's time."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def on_sensor(x, y, width, height):
    """Whether an event at (x, y), raw values of any numeric type, lies on the width x height sensor."""
    return (x >= 0) & (x < width) & (y >= 0) & (y < height)


@numba.njit(nogil=True, cache=True)
def keep_on_sensor(t, x, y, p, width, height, row_lo, row_hi, t_out, x_out, y_out, p_out, keep):
    """Writes the kept events (on the width x height sensor, rows row_lo..row_hi-1, y shifted by
    row_lo; p as -1/+1) to the front of the ``*_out`` arrays and marks them in ``keep``. Returns
    (kept, off the sensor, index of the first kept event whose polarity is not -1, 0 or 1, or -1).
    The bounds are compared on the raw values, before any cast, so that a negative or huge
    coordinate cannot wrap onto the sensor."""
    n_kept, n_outside, bad_polarity = 0, 0, -1
    for i in range(len(t)):
        inside = on_sensor(x[i], y[i], width, height)
        kept = inside & (y[i] >= row_lo) & (y[i] < row_hi)
        n_outside += np.int64(not inside)
        keep[i] = kept
        if kept:
            t_out[n_kept] = t[i]
            x_out[n_kept] = np.uint16(x[i])
            y_out[n_kept] = np.uint16(y[i] - row_lo)
            p_out[n_kept] = 1 if p[i] > 0 else -1
            if bad_polarity < 0 and not ((p[i] == 1) | (p[i] == 0) | (p[i] == -1)):
                bad_polarity = i
            n_kept += 1
    return n_kept, n_outside, bad_polarity
