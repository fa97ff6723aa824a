"""Time surface: per polarity (positive, then negative), exp(-(t_end - t_last(x, y)) / tau) of the
most recent event at each pixel, 0 where there is none. t_end is the window's last event unless
window end times are given; tau is in microseconds.

exp is increasing in t_last, so each pixel keeps the largest value written to it: that is the
most recent event's, whatever the order of the events.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import cuda as numba_cuda

from evtools.kernels.launch import CHUNK, cut, open_window, place, run_cpu, run_cuda


@numba.njit(parallel=True, cache=True)
def _fill(t, x, y, p, windows, ends, tau_us, grids, invalid):
    height, width = grids.shape[2], grids.shape[3]
    plane = height * width
    flat_grids = grids.reshape(grids.shape[0], -1)
    for k in numba.prange(len(windows)):
        grid = flat_grids[k]
        t_w, x_w, y_w, p_w, invalid[k] = open_window(t, x, y, p, windows[k], grid, width, height)
        if invalid[k] or len(t_w) == 0:
            continue
        index = np.empty(CHUNK, np.intp)
        value = np.empty(CHUNK, np.float32)
        for first in range(0, len(t_w), CHUNK):
            t_c, x_c, y_c, p_c = cut(t_w, x_w, y_w, p_w, first, first + CHUNK)
            for j in range(len(t_c)):
                index[j] = place(0 if p_c[j] > 0 else 1, plane, x_c[j], y_c[j], width)
                value[j] = math.exp(-(ends[k] - t_c[j]) / tau_us)
            for j in range(len(t_c)):
                grid[index[j]] = max(grid[index[j]], value[j])


@numba_cuda.jit
def _cuda_fill(t, x, y, p, windows, ends, tau_us, grids):
    k = numba_cuda.blockIdx.y
    start, stop = windows[k, 0], windows[k, 1]
    i = start + numba_cuda.blockIdx.x * numba_cuda.blockDim.x + numba_cuda.threadIdx.x
    while i < stop:
        value = math.exp(-(ends[k] - t[i]) / tau_us)
        numba_cuda.atomic.max(grids, (k, 0 if p[i] > 0 else 1, y[i], x[i]), value)
        i += numba_cuda.gridDim.x * numba_cuda.blockDim.x


def window_ends(t: np.ndarray, windows: np.ndarray, ends_us) -> np.ndarray:
    """Each window's t_end: given, or its last event's time (0 for an empty window)."""
    last = np.maximum(windows[:, 1] - 1, 0)
    last_t = np.where(windows[:, 1] > windows[:, 0], t[last] if len(t) else 0, 0).astype(np.int64)
    if ends_us is None:
        return last_t
    ends = np.asarray(ends_us)
    if ends.size != len(windows) or ends.dtype.kind not in "iu":
        raise ValueError(f"ends_us must hold one whole number of microseconds per window ({len(windows)})")
    ends = ends.astype(np.int64).reshape(len(windows))
    early = (windows[:, 1] > windows[:, 0]) & (ends < last_t)
    if early.any():
        k = int(np.flatnonzero(early)[0])
        raise ValueError(f"window {k} ends at {ends[k]} us, before its last event ({last_t[k]} us)")
    return ends


def cpu(t, x, y, p, windows, out, tau_us=50_000.0, ends_us=None):
    ends = window_ends(t, windows, ends_us)
    return run_cpu(_fill, (t, x, y, p), windows, out, ends, float(tau_us))


def cuda(t, x, y, p, windows, out, tau_us=50_000.0, ends_us=None):
    ends = window_ends(t, windows, ends_us)
    run_cuda(_cuda_fill, (t, x, y, p), windows, out, ends, float(tau_us))
