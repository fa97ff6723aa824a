"""Voxel grid (Zhu et al. 2019; the E2VID and ESS convention).

B bins; t* = (B-1)(t - t_first)/(t_last - t_first) over the window's events (a span of 0 counts
as 1); each event adds p(1 - frac) to bin floor(t*) and p frac to the next bin when it exists.
With ``separate_polarity``: 2B channels, positive then negative, each event weighing 1.
With ``normalize``: the nonzero entries are standardised (mean 0, population std 1; a std of 0
only subtracts the mean), zeros staying zero.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import cuda as numba_cuda

from evtools.kernels.launch import (CHUNK, cut, per_window_grid, place, run_cpu, run_cuda, time_span,
                                    window_events)


@numba.njit(cache=True)
def _clear_bins(grid, first, stop, bins, groups, plane):
    """Zeroes bins [first, stop) of each of the grid's ``groups`` runs of ``bins`` planes."""
    for group in range(groups):
        grid[(group * bins + first) * plane : (group * bins + stop) * plane] = 0


@numba.njit(parallel=True, nogil=True, cache=True)
def _fill(t, x, y, p, windows, bins, separate, grids, invalid):
    height, width = grids.shape[2], grids.shape[3]
    plane = height * width
    flat_grids = grids.reshape(grids.shape[0], -1)
    groups = 2 if separate else 1
    # an event's lower bin is at most bins - 2, so its upper one always exists: the last event
    # (t* = bins - 1) then gives all its weight to the upper bin, as the definition does
    top = max(bins - 2, 0)
    upper_plane = plane if bins > 1 else 0
    for k in numba.prange(len(windows)):
        grid = flat_grids[k]
        t_w, x_w, y_w, p_w, invalid[k] = window_events(t, x, y, p, windows[k], width, height)
        # Bins [0, cleared) hold zeros. A window's events reach its bins in time order, so each
        # bin is cleared just before the first chunk that adds to it, and is still in the cache
        # when the events come (clearing the whole 1.8 MB grid first left the first bins evicted
        # by the time they were filled: 758 against 842 M events/s in blocks of 16 windows).
        cleared = 0
        if not invalid[k] and len(t_w):
            t_first, span = time_span(t_w)
            scale = (bins - 1) / span
            index = np.empty(CHUNK, np.intp)
            lower_weight = np.empty(CHUNK, np.float32)
            upper_weight = np.empty(CHUNK, np.float32)
            for first in range(0, len(t_w), CHUNK):
                t_c, x_c, y_c, p_c = cut(t_w, x_w, y_w, p_w, first, first + CHUNK)
                # the chunk's last event has its highest lower bin (times ascend in a valid window)
                reached = min(min(np.intp((t_c[-1] - t_first) * scale), top) + 2, bins)
                _clear_bins(grid, cleared, reached, bins, groups, plane)
                cleared = max(cleared, reached)
                for j in range(len(t_c)):
                    t_star = (t_c[j] - t_first) * scale
                    lower = min(np.intp(t_star), top)
                    frac = np.float32(t_star - lower)
                    weight = np.float32(1.0) if separate else np.float32(p_c[j])
                    channel = lower + bins if separate and p_c[j] < 0 else lower
                    index[j] = place(channel, plane, x_c[j], y_c[j], width)
                    lower_weight[j] = weight * (np.float32(1.0) - frac)
                    upper_weight[j] = weight * frac
                for j in range(len(t_c)):
                    grid[index[j]] += lower_weight[j]
                    grid[index[j] + upper_plane] += upper_weight[j]
        _clear_bins(grid, cleared, bins, bins, groups, plane)


@numba_cuda.jit(cache=True)
def _cuda_fill(t, x, y, p, windows, bins, separate, grids):
    k = numba_cuda.blockIdx.y
    start, stop = windows[k, 0], windows[k, 1]
    if stop <= start:
        return
    t_first = t[start]
    scale = (bins - 1) / max(t[stop - 1] - t_first, 1)
    i = start + numba_cuda.blockIdx.x * numba_cuda.blockDim.x + numba_cuda.threadIdx.x
    while i < stop:
        t_star = (t[i] - t_first) * scale
        lower = int(t_star)
        if lower < 0 or lower >= bins:
            i += numba_cuda.gridDim.x * numba_cuda.blockDim.x
            continue
        frac = t_star - lower
        weight = 1.0 if separate else float(p[i])
        channel = lower + bins if separate and p[i] < 0 else lower
        numba_cuda.atomic.add(grids, (k, channel, y[i], x[i]), weight * (1.0 - frac))
        if lower + 1 < bins:
            numba_cuda.atomic.add(grids, (k, channel + 1, y[i], x[i]), weight * frac)
        i += numba_cuda.gridDim.x * numba_cuda.blockDim.x


@numba_cuda.jit(cache=True)
def _cuda_nonzero_sums(grids, stats, pass_number):
    """Per window k: pass 0 adds the count and sum of its nonzero values into stats[k, 0:2];
    pass 1 adds their squared deviations from the mean into stats[k, 2] (two passes, as numpy)."""
    k = numba_cuda.blockIdx.y
    channels, height, width = grids.shape[1], grids.shape[2], grids.shape[3]
    count, total, squares = 0.0, 0.0, 0.0
    mean = stats[k, 1] / stats[k, 0] if pass_number == 1 and stats[k, 0] > 0 else 0.0
    j = numba_cuda.blockIdx.x * numba_cuda.blockDim.x + numba_cuda.threadIdx.x
    while j < channels * height * width:
        value = grids[k, j // (height * width), (j // width) % height, j % width]
        if value != 0:
            count += 1.0
            total += value
            squares += (value - mean) * (value - mean)
        j += numba_cuda.gridDim.x * numba_cuda.blockDim.x
    if pass_number == 0:
        numba_cuda.atomic.add(stats, (k, 0), count)
        numba_cuda.atomic.add(stats, (k, 1), total)
    else:
        numba_cuda.atomic.add(stats, (k, 2), squares)


@numba_cuda.jit(cache=True)
def _cuda_standardise(grids, stats):
    k = numba_cuda.blockIdx.y
    channels, height, width = grids.shape[1], grids.shape[2], grids.shape[3]
    if stats[k, 0] == 0:
        return
    mean = stats[k, 1] / stats[k, 0]
    std = math.sqrt(stats[k, 2] / stats[k, 0])
    j = numba_cuda.blockIdx.x * numba_cuda.blockDim.x + numba_cuda.threadIdx.x
    while j < channels * height * width:
        c, y, x = j // (height * width), (j // width) % height, j % width
        value = grids[k, c, y, x]
        if value != 0:
            grids[k, c, y, x] = (value - mean) / std if std > 0 else value - mean
        j += numba_cuda.gridDim.x * numba_cuda.blockDim.x


def _normalize_on_device(grids, result, stream) -> None:
    """``normalize_nonzero`` of every window, in place on the device."""
    blocks, threads = per_window_grid(grids.shape[0], int(np.prod(grids.shape[1:])))  # a thread a value
    stats = numba_cuda.to_device(np.zeros((grids.shape[0], 3), np.float64), stream=stream)
    for pass_number in (0, 1):
        _cuda_nonzero_sums[blocks, threads, stream](grids, stats, pass_number)
    _cuda_standardise[blocks, threads, stream](grids, stats)


def normalize_nonzero(grid: np.ndarray) -> None:
    """Standardises the nonzero entries of one window's grid in place."""
    nonzero = grid != 0
    if nonzero.any():
        values = grid[nonzero].astype(np.float64)
        mean, std = values.mean(), values.std()
        grid[nonzero] = (values - mean) / std if std > 0 else values - mean


def cpu(t, x, y, p, windows, out, bins=5, normalize=False, separate_polarity=False):
    invalid = run_cpu(_fill, (t, x, y, p), windows, out, bins, separate_polarity)
    if normalize and not invalid:
        for grid in out:
            normalize_nonzero(grid)
    return invalid


def cuda(t, x, y, p, windows, out, bins=5, normalize=False, separate_polarity=False):
    run_cuda(_cuda_fill, (t, x, y, p), windows, out, bins, separate_polarity,
             finish=_normalize_on_device if normalize else None)
