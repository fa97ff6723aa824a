"""Stacked histogram (RVT, Gehrig and Scaramuzza 2023).

2 x B channels, channel = polarity * B + bin with polarity 0 for negative and 1 for positive
(RVT's order), bin = min(floor(B (t - t_first) / max(t_last - t_first, 1)), B - 1); counts are
clipped at ``cutoff`` (0 means no cutoff beyond uint8's 255), uint8.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda as numba_cuda

from evtools.kernels.launch import CUDA_THREADS, elementwise_blocks, item_range, run_cpu, run_cuda, time_span

UINT8_MAX = 255


def _limit(cutoff: int) -> int:
    return cutoff if 0 < cutoff < UINT8_MAX else UINT8_MAX


@numba.njit(parallel=True, cache=True)
def _fill(t, x, y, p, windows, parts, bins, limit, grids):
    plane = grids.shape[2] * grids.shape[3]
    width = grids.shape[3]
    flat_grids = grids.reshape(grids.shape[0], -1)
    for item in numba.prange(grids.shape[0]):
        k, start, stop, first, last = item_range(item, parts, windows)
        grid = flat_grids[item]
        grid[:] = 0
        if stop <= start:
            continue
        t_first, span = time_span(t, start, stop)
        for i in range(first, last):
            # clamped: never outside the window's bins, even for times the API would refuse
            channel = (bins if p[i] > 0 else 0) + max(min(bins * (t[i] - t_first) // span, bins - 1), 0)
            index = channel * plane + np.intp(y[i]) * width + np.intp(x[i])
            if grid[index] < limit:  # saturating: equal to clipping the final count
                grid[index] += 1


@numba_cuda.jit
def _cuda_fill(t, x, y, p, windows, bins, counts):
    k = numba_cuda.blockIdx.y
    start, stop = windows[k, 0], windows[k, 1]
    if stop <= start:
        return
    t_first = t[start]
    span = max(t[stop - 1] - t_first, 1)
    i = start + numba_cuda.blockIdx.x * numba_cuda.blockDim.x + numba_cuda.threadIdx.x
    while i < stop:
        channel = (bins if p[i] > 0 else 0) + max(min(bins * (t[i] - t_first) // span, bins - 1), 0)
        numba_cuda.atomic.add(counts, (k, channel, y[i], x[i]), 1)
        i += numba_cuda.gridDim.x * numba_cuda.blockDim.x


@numba_cuda.jit
def _cuda_clip(counts, limit, out):
    i = numba_cuda.grid(1)
    while i < counts.shape[0]:
        out[i] = min(counts[i], limit)
        i += numba_cuda.gridsize(1)


def _clip_on_device(limit: int):
    def finish(counts, result, stream) -> None:
        size = counts.size
        if size:
            _cuda_clip[elementwise_blocks(size), CUDA_THREADS, stream](counts.reshape(size), limit, result.reshape(size))

    return finish


def cpu(t, x, y, p, windows, out, bins=5, cutoff=10):
    limit = _limit(cutoff)

    def merge(partials, target):
        np.minimum(partials.sum(axis=1, dtype=np.int32), limit, out=target, casting="unsafe")

    run_cpu(_fill, (t, x, y, p), windows, out, merge, bins, limit)


def cuda(t, x, y, p, windows, out, bins=5, cutoff=10):
    # counted in int32 (uint8 has no atomics), clipped into the uint8 output on the device
    run_cuda(_cuda_fill, (t, x, y, p), windows, out, bins, grids_dtype=np.int32, finish=_clip_on_device(_limit(cutoff)))
