"""EvDistill's 2-channel event image: per-polarity event counts (positive, then negative), each
channel scaled so that its own maximum maps to 1.0; all-zero channels stay zero."""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda as numba_cuda

from evtools.kernels.launch import launch_cuda, parts_per_window


@numba.njit(parallel=True, cache=True)
def _accumulate(t, x, y, p, windows, width, height, parts):
    n_windows = windows.shape[0]
    partial = np.zeros((n_windows, parts, 2, height, width), np.int32)
    for item in numba.prange(n_windows * parts):
        k, part = item // parts, item % parts
        start, stop = windows[k, 0], windows[k, 1]
        n = stop - start
        for i in range(start + n * part // parts, start + n * (part + 1) // parts):
            partial[k, part, 0 if p[i] > 0 else 1, y[i], x[i]] += 1
    out = partial[:, 0].copy()
    for part in range(1, parts):
        out += partial[:, part]
    return out


def _finish(counts: np.ndarray) -> np.ndarray:
    peak = counts.max(axis=(2, 3), keepdims=True).astype(np.float32)
    return np.divide(counts, peak, out=np.zeros(counts.shape, np.float32), where=peak > 0)


def cpu(t, x, y, p, windows, width, height):
    return _finish(_accumulate(t, x, y, p, windows, width, height, parts_per_window(len(windows))))


@numba_cuda.jit
def _cuda_accumulate(t, x, y, p, windows, out):
    k = numba_cuda.blockIdx.y
    start, stop = windows[k, 0], windows[k, 1]
    i = start + numba_cuda.blockIdx.x * numba_cuda.blockDim.x + numba_cuda.threadIdx.x
    while i < stop:
        numba_cuda.atomic.add(out, (k, 0 if p[i] > 0 else 1, y[i], x[i]), 1)
        i += numba_cuda.gridDim.x * numba_cuda.blockDim.x


def cuda(t, x, y, p, windows, width, height):
    counts = np.zeros((len(windows), 2, height, width), np.int32)
    launch_cuda(_cuda_accumulate, (t, x, y, p), windows, (counts,))
    return _finish(counts)
