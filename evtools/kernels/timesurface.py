"""Time surface: per polarity (positive, then negative), exp(-(t_end - t_last(x, y)) / tau) of the
most recent event at each pixel, 0 where there is none. t_end is the window's last event unless
window end times are given; tau is in microseconds."""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda as numba_cuda

from evtools.kernels.launch import launch_cuda, parts_per_window

NONE = np.iinfo(np.int64).min


@numba.njit(parallel=True, cache=True)
def _latest(t, x, y, p, windows, width, height, parts):
    n_windows = windows.shape[0]
    partial = np.full((n_windows, parts, 2, height, width), NONE, np.int64)
    for item in numba.prange(n_windows * parts):
        k, part = item // parts, item % parts
        start, stop = windows[k, 0], windows[k, 1]
        n = stop - start
        for i in range(start + n * part // parts, start + n * (part + 1) // parts):
            channel = 0 if p[i] > 0 else 1
            if t[i] > partial[k, part, channel, y[i], x[i]]:
                partial[k, part, channel, y[i], x[i]] = t[i]
    out = partial[:, 0].copy()
    for part in range(1, parts):
        out = np.maximum(out, partial[:, part])
    return out


def window_ends(t: np.ndarray, windows: np.ndarray, ends_us: np.ndarray | None) -> np.ndarray:
    """Each window's t_end: given, or its last event's time (0 for an empty window)."""
    if ends_us is not None:
        return np.asarray(ends_us, np.int64).reshape(len(windows))
    has_events = windows[:, 1] > windows[:, 0]
    return np.where(has_events, t[np.maximum(windows[:, 1] - 1, 0)] if len(t) else 0, 0).astype(np.int64)


def _finish(latest: np.ndarray, ends: np.ndarray, tau_us: float) -> np.ndarray:
    seen = latest != NONE
    age = ends[:, None, None, None] - np.where(seen, latest, 0)
    return np.where(seen, np.exp(-age / tau_us), 0.0).astype(np.float32)


def cpu(t, x, y, p, windows, width, height, tau_us=50_000.0, ends_us=None):
    latest = _latest(t, x, y, p, windows, width, height, parts_per_window(len(windows)))
    return _finish(latest, window_ends(t, windows, ends_us), tau_us)


@numba_cuda.jit
def _cuda_accumulate(t, x, y, p, windows, out):
    k = numba_cuda.blockIdx.y
    start, stop = windows[k, 0], windows[k, 1]
    i = start + numba_cuda.blockIdx.x * numba_cuda.blockDim.x + numba_cuda.threadIdx.x
    while i < stop:
        numba_cuda.atomic.max(out, (k, 0 if p[i] > 0 else 1, y[i], x[i]), t[i])
        i += numba_cuda.gridDim.x * numba_cuda.blockDim.x


def cuda(t, x, y, p, windows, width, height, tau_us=50_000.0, ends_us=None):
    latest = np.full((len(windows), 2, height, width), NONE, np.int64)
    launch_cuda(_cuda_accumulate, (t, x, y, p), windows, (latest,))
    return _finish(latest, window_ends(t, windows, ends_us), tau_us)
