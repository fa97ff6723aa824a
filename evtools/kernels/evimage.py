"""EvDistill's 2-channel event image: per-polarity event counts (positive, then negative), each
channel scaled so that its own maximum maps to 1.0; all-zero channels stay zero."""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda as numba_cuda

from evtools.kernels.launch import item_range, per_window_grid, run_cpu, run_cuda, sum_parts


@numba.njit(parallel=True, cache=True)
def _fill(t, x, y, p, windows, parts, grids):
    for item in numba.prange(grids.shape[0]):
        k, start, stop, first, last = item_range(item, parts, windows)
        grid = grids[item]
        grid[:] = 0
        for i in range(first, last):
            grid[0 if p[i] > 0 else 1, y[i], x[i]] += 1.0


@numba_cuda.jit
def _cuda_fill(t, x, y, p, windows, grids):
    k = numba_cuda.blockIdx.y
    start, stop = windows[k, 0], windows[k, 1]
    i = start + numba_cuda.blockIdx.x * numba_cuda.blockDim.x + numba_cuda.threadIdx.x
    while i < stop:
        numba_cuda.atomic.add(grids, (k, 0 if p[i] > 0 else 1, y[i], x[i]), 1.0)
        i += numba_cuda.gridDim.x * numba_cuda.blockDim.x


@numba_cuda.jit
def _cuda_channel_peaks(grids, peaks):
    """peaks[k, c] = the largest value of window k's channel c (window k on grid row k)."""
    k = numba_cuda.blockIdx.y
    channels, height, width = grids.shape[1], grids.shape[2], grids.shape[3]
    local = numba_cuda.local.array(2, numba.float32)
    local[0], local[1] = 0.0, 0.0
    j = numba_cuda.blockIdx.x * numba_cuda.blockDim.x + numba_cuda.threadIdx.x
    while j < channels * height * width:
        c = j // (height * width)
        local[c] = max(local[c], grids[k, c, (j // width) % height, j % width])
        j += numba_cuda.gridDim.x * numba_cuda.blockDim.x
    for c in range(channels):
        numba_cuda.atomic.max(peaks, (k, c), local[c])


@numba_cuda.jit
def _cuda_divide(grids, peaks):
    k = numba_cuda.blockIdx.y
    channels, height, width = grids.shape[1], grids.shape[2], grids.shape[3]
    j = numba_cuda.blockIdx.x * numba_cuda.blockDim.x + numba_cuda.threadIdx.x
    while j < channels * height * width:
        c, y, x = j // (height * width), (j // width) % height, j % width
        if peaks[k, c] > 0:
            grids[k, c, y, x] = grids[k, c, y, x] / peaks[k, c]
        j += numba_cuda.gridDim.x * numba_cuda.blockDim.x


def _scale_on_device(grids, result, stream) -> None:
    """``_scale`` of every window, in place on the device."""
    blocks, threads = per_window_grid(grids.shape[0], int(np.prod(grids.shape[1:])))  # a thread a value
    peaks = numba_cuda.to_device(np.zeros((grids.shape[0], 2), np.float32), stream=stream)
    _cuda_channel_peaks[blocks, threads, stream](grids, peaks)
    _cuda_divide[blocks, threads, stream](grids, peaks)


def _scale(out: np.ndarray) -> None:
    """Counts (exact in float32 below 2^24 per pixel) divided by each channel's maximum, in place."""
    peak = out.max(axis=(2, 3), keepdims=True)
    np.divide(out, peak, out=out, where=peak > 0)


def cpu(t, x, y, p, windows, out):
    run_cpu(_fill, (t, x, y, p), windows, out, sum_parts)
    _scale(out)


def cuda(t, x, y, p, windows, out):
    run_cuda(_cuda_fill, (t, x, y, p), windows, out, finish=_scale_on_device)
