"""Ev-SegNet's 6 channels (Alonso and Murillo 2019): for each polarity, positive first, the event
count and the mean and (population) standard deviation of the event timestamps normalised to
[0, 1] over the window ((t - t_first) / (t_last - t_first), a span of 0 counting as 1); pixels
without events are 0."""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda as numba_cuda

from evtools.kernels.launch import launch_cuda, parts_per_window

# accumulator layout: per polarity (count, sum of tn, sum of tn^2)
SUMS = 3


@numba.njit(parallel=True, cache=True)
def _accumulate(t, x, y, p, windows, width, height, parts):
    n_windows = windows.shape[0]
    partial = np.zeros((n_windows, parts, 2 * SUMS, height, width), np.float64)
    for item in numba.prange(n_windows * parts):
        k, part = item // parts, item % parts
        start, stop = windows[k, 0], windows[k, 1]
        if stop <= start:
            continue
        t_first = t[start]
        span = max(t[stop - 1] - t_first, 1)
        n = stop - start
        for i in range(start + n * part // parts, start + n * (part + 1) // parts):
            tn = (t[i] - t_first) / span
            base = 0 if p[i] > 0 else SUMS
            partial[k, part, base, y[i], x[i]] += 1.0
            partial[k, part, base + 1, y[i], x[i]] += tn
            partial[k, part, base + 2, y[i], x[i]] += tn * tn
    out = partial[:, 0].copy()
    for part in range(1, parts):
        out += partial[:, part]
    return out


def _finish(sums: np.ndarray) -> np.ndarray:
    out = np.zeros(sums.shape, np.float32)
    for base in (0, SUMS):
        count, total, squares = sums[:, base], sums[:, base + 1], sums[:, base + 2]
        seen = count > 0
        mean = np.divide(total, count, out=np.zeros_like(total), where=seen)
        variance = np.divide(squares, count, out=np.zeros_like(total), where=seen) - mean * mean
        out[:, base], out[:, base + 1] = count, mean
        out[:, base + 2] = np.sqrt(np.maximum(variance, 0.0))
    return out


def cpu(t, x, y, p, windows, width, height):
    return _finish(_accumulate(t, x, y, p, windows, width, height, parts_per_window(len(windows))))


@numba_cuda.jit
def _cuda_accumulate(t, x, y, p, windows, out):
    k = numba_cuda.blockIdx.y
    start, stop = windows[k, 0], windows[k, 1]
    if stop <= start:
        return
    t_first = t[start]
    span = max(t[stop - 1] - t_first, 1)
    i = start + numba_cuda.blockIdx.x * numba_cuda.blockDim.x + numba_cuda.threadIdx.x
    while i < stop:
        tn = (t[i] - t_first) / span
        base = 0 if p[i] > 0 else 3
        numba_cuda.atomic.add(out, (k, base, y[i], x[i]), 1.0)
        numba_cuda.atomic.add(out, (k, base + 1, y[i], x[i]), tn)
        numba_cuda.atomic.add(out, (k, base + 2, y[i], x[i]), tn * tn)
        i += numba_cuda.gridDim.x * numba_cuda.blockDim.x


def cuda(t, x, y, p, windows, width, height):
    sums = np.zeros((len(windows), 2 * SUMS, height, width), np.float64)
    launch_cuda(_cuda_accumulate, (t, x, y, p), windows, (sums,))
    return _finish(sums)
