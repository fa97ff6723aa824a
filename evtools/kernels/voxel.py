"""Voxel grid (Zhu et al. 2019; the E2VID and ESS convention).

B bins; t* = (B-1)(t - t_first)/(t_last - t_first) over the window's events (a span of 0 counts
as 1); each event adds p(1 - frac) to bin floor(t*) and p frac to the next bin when it exists.
With ``separate_polarity``: 2B channels, positive then negative, each event weighing 1.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda as numba_cuda

from evtools.kernels.launch import launch_cuda, parts_per_window


@numba.njit(parallel=True, cache=True)
def _accumulate(t, x, y, p, windows, width, height, bins, separate, parts):
    n_windows = windows.shape[0]
    channels = 2 * bins if separate else bins
    partial = np.zeros((n_windows, parts, channels, height, width), np.float32)
    for item in numba.prange(n_windows * parts):
        k, part = item // parts, item % parts
        start, stop = windows[k, 0], windows[k, 1]
        if stop <= start:
            continue
        t_first = t[start]
        span = max(t[stop - 1] - t_first, 1)
        n = stop - start
        for i in range(start + n * part // parts, start + n * (part + 1) // parts):
            t_star = (bins - 1) * ((t[i] - t_first) / span)
            lower = int(np.floor(t_star))
            frac = t_star - lower
            weight = 1.0 if separate else float(p[i])
            channel = lower + bins if separate and p[i] < 0 else lower
            partial[k, part, channel, y[i], x[i]] += weight * (1.0 - frac)
            if lower + 1 < bins:
                partial[k, part, channel + 1, y[i], x[i]] += weight * frac
    out = partial[:, 0].copy()
    for part in range(1, parts):
        out += partial[:, part]
    return out


def normalize_nonzero(grid: np.ndarray) -> np.ndarray:
    """Standardises the nonzero entries of one window's grid, zeros staying zero; a std of 0 only
    subtracts the mean. Returns a new array."""
    grid = grid.copy()
    nonzero = grid != 0
    if nonzero.any():
        values = grid[nonzero].astype(np.float64)
        mean, std = values.mean(), values.std()
        grid[nonzero] = (values - mean) / std if std > 0 else values - mean
    return grid


def _finish(grids: np.ndarray, normalize: bool) -> np.ndarray:
    return np.stack([normalize_nonzero(g) for g in grids]) if normalize and len(grids) else grids


def cpu(t, x, y, p, windows, width, height, bins=5, normalize=False, separate_polarity=False):
    grids = _accumulate(t, x, y, p, windows, width, height, bins, separate_polarity, parts_per_window(len(windows)))
    return _finish(grids, normalize)


@numba_cuda.jit
def _cuda_accumulate(t, x, y, p, windows, bins, separate, out):
    k = numba_cuda.blockIdx.y
    start, stop = windows[k, 0], windows[k, 1]
    if stop <= start:
        return
    t_first = t[start]
    span = max(t[stop - 1] - t_first, 1)
    i = start + numba_cuda.blockIdx.x * numba_cuda.blockDim.x + numba_cuda.threadIdx.x
    while i < stop:
        t_star = (bins - 1) * ((t[i] - t_first) / span)
        lower = int(t_star // 1)
        frac = t_star - lower
        weight = 1.0 if separate else float(p[i])
        channel = lower + bins if separate and p[i] < 0 else lower
        numba_cuda.atomic.add(out, (k, channel, y[i], x[i]), weight * (1.0 - frac))
        if lower + 1 < bins:
            numba_cuda.atomic.add(out, (k, channel + 1, y[i], x[i]), weight * frac)
        i += numba_cuda.gridDim.x * numba_cuda.blockDim.x


def cuda(t, x, y, p, windows, width, height, bins=5, normalize=False, separate_polarity=False):
    out = np.zeros((len(windows), 2 * bins if separate_polarity else bins, height, width), np.float32)
    launch_cuda(_cuda_accumulate, (t, x, y, p), windows, (out,), bins, separate_polarity)
    return _finish(out, normalize)
