"""Ev-SegNet's 6 channels (Alonso and Murillo 2019): for each polarity, positive first, the event
count and the mean and (population) standard deviation of the event timestamps normalised to
[0, 1] over the window ((t - t_first) / (t_last - t_first), a span of 0 counting as 1); pixels
without events are 0."""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import cuda as numba_cuda

from evtools.kernels.launch import CHUNK, cut, open_window, per_window_grid, place, run_cpu, run_cuda, time_span

# The kernels accumulate per polarity (count, sum of tn, sum of tn^2) in float64, in the six
# channels' places; the standard deviation from these sums needs float64 to stay accurate.
SUMS = 3


@numba.njit(parallel=True, nogil=True, cache=True)
def _fill(t, x, y, p, windows, out, invalid):
    height, width = out.shape[2], out.shape[3]
    plane = height * width
    flat_out = out.reshape(out.shape[0], -1)
    for k in numba.prange(len(windows)):
        sums = np.empty(2 * SUMS * plane, np.float64)
        t_w, x_w, y_w, p_w, invalid[k] = open_window(t, x, y, p, windows[k], sums, width, height)
        if invalid[k]:
            continue
        if len(t_w):
            t_first, span = time_span(t_w)
            index = np.empty(CHUNK, np.intp)
            tn = np.empty(CHUNK, np.float64)
            for first in range(0, len(t_w), CHUNK):
                t_c, x_c, y_c, p_c = cut(t_w, x_w, y_w, p_w, first, first + CHUNK)
                for j in range(len(t_c)):
                    index[j] = place(0 if p_c[j] > 0 else SUMS, plane, x_c[j], y_c[j], width)
                    tn[j] = (t_c[j] - t_first) / span
                for j in range(len(t_c)):
                    sums[index[j]] += 1.0
                    sums[index[j] + plane] += tn[j]
                    sums[index[j] + 2 * plane] += tn[j] * tn[j]
        for base in (0, SUMS * plane):
            moments(sums[base : base + SUMS * plane], flat_out[k, base : base + SUMS * plane], plane)


@numba.njit(cache=True)
def moments(sums, out, plane):
    """One polarity's count, mean and standard deviation planes from its count and sum planes,
    branch-free (a count of 0 divides by 1: its sums are 0) so that LLVM vectorises it. One
    division a pixel, then products: 38 us against 47 for two divisions a polarity of a 346x260
    window, the same float32 values."""
    count, total, squares = sums[:plane], sums[plane : 2 * plane], sums[2 * plane :]
    count_out, mean_out, std_out = out[:plane], out[plane : 2 * plane], out[2 * plane :]
    for pixel in range(plane):
        inverse = 1.0 / max(count[pixel], 1.0)
        mean = total[pixel] * inverse
        count_out[pixel] = count[pixel]
        mean_out[pixel] = mean
        std_out[pixel] = math.sqrt(max(squares[pixel] * inverse - mean * mean, 0.0))


@numba_cuda.jit(cache=True)
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


@numba_cuda.jit(cache=True)
def _cuda_moments(sums, out):
    """The moments on the device: one thread a pixel of a window (window k on grid row k)."""
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
    return run_cpu(_fill, (t, x, y, p), windows, out)


def cuda(t, x, y, p, windows, out):
    run_cuda(_cuda_fill, (t, x, y, p), windows, out, grids_dtype=np.float64, finish=_moments_on_device)
