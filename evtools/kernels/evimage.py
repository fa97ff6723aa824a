"""EvDistill's 2-channel event image: per-polarity event counts (positive, then negative), each
channel scaled so that its own maximum maps to 1.0; all-zero channels stay zero."""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda as numba_cuda

from evtools.kernels.launch import item_range, run_cpu, run_cuda, sum_parts


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


def _scale(out: np.ndarray) -> None:
    """Counts (exact in float32 below 2^24 per pixel) divided by each channel's maximum, in place."""
    peak = out.max(axis=(2, 3), keepdims=True)
    np.divide(out, peak, out=out, where=peak > 0)


def cpu(t, x, y, p, windows, out):
    run_cpu(_fill, (t, x, y, p), windows, out, sum_parts)
    _scale(out)


def cuda(t, x, y, p, windows, out):
    run_cuda(_cuda_fill, (t, x, y, p), windows, out)
    _scale(out)
