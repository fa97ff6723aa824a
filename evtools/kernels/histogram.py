"""Stacked histogram (RVT, Gehrig and Scaramuzza 2023).

2 x B channels, channel = polarity * B + bin with polarity 0 for negative and 1 for positive
(RVT's order), bin = min(floor(B (t - t_first) / max(t_last - t_first, 1)), B - 1); counts are
clipped at ``cutoff`` (0 means no cutoff beyond uint8's 255).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda as numba_cuda

from evtools.kernels.launch import launch_cuda, parts_per_window

UINT8_MAX = 255


@numba.njit(parallel=True, cache=True)
def _accumulate(t, x, y, p, windows, width, height, bins, parts):
    n_windows = windows.shape[0]
    partial = np.zeros((n_windows, parts, 2 * bins, height, width), np.int32)
    for item in numba.prange(n_windows * parts):
        k, part = item // parts, item % parts
        start, stop = windows[k, 0], windows[k, 1]
        if stop <= start:
            continue
        t_first = t[start]
        span = max(t[stop - 1] - t_first, 1)
        n = stop - start
        for i in range(start + n * part // parts, start + n * (part + 1) // parts):
            time_bin = min(bins * (t[i] - t_first) // span, bins - 1)
            channel = (bins if p[i] > 0 else 0) + time_bin
            partial[k, part, channel, y[i], x[i]] += 1
    out = partial[:, 0].copy()
    for part in range(1, parts):
        out += partial[:, part]
    return out


def _finish(counts: np.ndarray, cutoff: int) -> np.ndarray:
    return np.minimum(counts, cutoff if cutoff > 0 else UINT8_MAX).astype(np.uint8)


def cpu(t, x, y, p, windows, width, height, bins=5, cutoff=10):
    return _finish(_accumulate(t, x, y, p, windows, width, height, bins, parts_per_window(len(windows))), cutoff)


@numba_cuda.jit
def _cuda_accumulate(t, x, y, p, windows, bins, out):
    k = numba_cuda.blockIdx.y
    start, stop = windows[k, 0], windows[k, 1]
    if stop <= start:
        return
    t_first = t[start]
    span = max(t[stop - 1] - t_first, 1)
    i = start + numba_cuda.blockIdx.x * numba_cuda.blockDim.x + numba_cuda.threadIdx.x
    while i < stop:
        time_bin = min(bins * (t[i] - t_first) // span, bins - 1)
        channel = (bins if p[i] > 0 else 0) + time_bin
        numba_cuda.atomic.add(out, (k, channel, y[i], x[i]), 1)
        i += numba_cuda.gridDim.x * numba_cuda.blockDim.x


def cuda(t, x, y, p, windows, width, height, bins=5, cutoff=10):
    counts = np.zeros((len(windows), 2 * bins, height, width), np.int32)
    launch_cuda(_cuda_accumulate, (t, x, y, p), windows, (counts,), bins)
    return _finish(counts, cutoff)
