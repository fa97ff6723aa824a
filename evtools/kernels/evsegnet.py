"""Ev-SegNet's 6 channels (Alonso and Murillo 2019): for each polarity, positive first, the event
count and the mean and (population) standard deviation of the event timestamps normalised to
[0, 1] over the window ((t - t_first) / (t_last - t_first), a span of 0 counting as 1); pixels
without events are 0."""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import cuda as numba_cuda

from evtools.kernels.launch import item_range, per_window_grid, run_cpu, run_cuda, sum_parts, time_span

# The kernels accumulate per polarity (count, sum of tn, sum of tn^2) in float64, in the six
# channels' places; the standard deviation from these sums needs float64 to stay accurate.
SUMS = 3


@numba.njit(parallel=True, cache=True)
def _fill(t, x, y, p, windows, parts, sums):
    for item in numba.prange(sums.shape[0]):
        k, start, stop, first, last = item_range(item, parts, windows)
        grid = sums[item]
        grid[:] = 0
        if stop <= start:
            continue
        t_first, span = time_span(t, start, stop)
        for i in range(first, last):
            tn = (t[i] - t_first) / span
            base = 0 if p[i] > 0 else SUMS
            grid[base, y[i], x[i]] += 1.0
            grid[base + 1, y[i], x[i]] += tn
            grid[base + 2, y[i], x[i]] += tn * tn


@numba_cuda.jit
def _cuda_fill(t, x, y, p, windows, sums):
    k = numba_cuda.blockIdx.y
    start, stop = windows[k, 0], windows[k, 1]
    if stop <= start:
        return
    t_first = t[start]
    span = max(t[stop - 1] - t_first, 1)
    i = start + numba_cuda.blockIdx.x * numba_cuda.blockDim.x + numba_cuda.threadIdx.x
    while i < stop:
        tn = (t[i] - t_first) / span
        base = 0 if p[i] > 0 else SUMS
        numba_cuda.atomic.add(sums, (k, base, y[i], x[i]), 1.0)
        numba_cuda.atomic.add(sums, (k, base + 1, y[i], x[i]), tn)
        numba_cuda.atomic.add(sums, (k, base + 2, y[i], x[i]), tn * tn)
        i += numba_cuda.gridDim.x * numba_cuda.blockDim.x


def _finish(sums: np.ndarray, out: np.ndarray) -> None:
    for base in (0, SUMS):
        count, total, squares = sums[:, base], sums[:, base + 1], sums[:, base + 2]
        seen = count > 0
        mean = np.divide(total, count, out=np.zeros_like(total), where=seen)
        variance = np.divide(squares, count, out=np.zeros_like(total), where=seen) - mean * mean
        out[:, base], out[:, base + 1] = count, mean
        out[:, base + 2] = np.sqrt(np.maximum(variance, 0.0))


@numba_cuda.jit
def _cuda_moments(sums, out):
    """``_finish`` on the device: one thread a pixel of a window (window k on grid row k)."""
    k = numba_cuda.blockIdx.y
    height, width = sums.shape[2], sums.shape[3]
    j = numba_cuda.blockIdx.x * numba_cuda.blockDim.x + numba_cuda.threadIdx.x
    while j < height * width:
        y, x = j // width, j % width
        for base in (0, SUMS):
            count = sums[k, base, y, x]
            mean, variance = 0.0, 0.0
            if count > 0:
                mean = sums[k, base + 1, y, x] / count
                variance = sums[k, base + 2, y, x] / count - mean * mean
            out[k, base, y, x] = count
            out[k, base + 1, y, x] = mean
            out[k, base + 2, y, x] = math.sqrt(max(variance, 0.0))
        j += numba_cuda.gridDim.x * numba_cuda.blockDim.x


def _moments_on_device(sums, result, stream) -> None:
    blocks, threads = per_window_grid(sums.shape[0], sums.shape[2] * sums.shape[3])  # a thread a pixel
    _cuda_moments[blocks, threads, stream](sums, result)


def cpu(t, x, y, p, windows, out):
    sums = np.empty(out.shape, np.float64)
    run_cpu(_fill, (t, x, y, p), windows, sums, sum_parts)
    _finish(sums, out)


def cuda(t, x, y, p, windows, out):
    run_cuda(_cuda_fill, (t, x, y, p), windows, out, grids_dtype=np.float64, finish=_moments_on_device)
