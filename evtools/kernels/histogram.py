"""Stacked histogram (RVT, Gehrig and Scaramuzza 2023).

2 x B channels, channel = polarity * B + bin with polarity 0 for negative and 1 for positive
(RVT's order), bin = min(floor(B (t - t_first) / max(t_last - t_first, 1)), B - 1); counts are
clipped at ``cutoff`` (0 means no cutoff beyond uint8's 255), uint8.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda as numba_cuda

from evtools.kernels.launch import (CHUNK, cut, elementwise_launch, open_window, place, run_cpu,
                                    run_cuda, time_span)

UINT8_MAX = 255


def _limit(cutoff: int) -> int:
    return cutoff if 0 < cutoff < UINT8_MAX else UINT8_MAX


@numba.njit(cache=True)
def time_bin(dt, bins, span, inverse_span):
    """min(floor(bins * dt / span), bins - 1), clamped at 0, without an integer division (ten
    times slower than the rest of the event's work): a float estimate, corrected to the exact
    quotient for spans below 2^53 / bins microseconds."""
    numerator = bins * dt
    q = np.int64(numerator * inverse_span)
    q -= np.int64(q * span > numerator)
    q += np.int64((q + 1) * span <= numerator)
    return max(min(q, bins - 1), 0)


@numba.njit(parallel=True, nogil=True, cache=True)
def _fill(t, x, y, p, windows, bins, limit, grids, invalid):
    height, width = grids.shape[2], grids.shape[3]
    plane = height * width
    flat_grids = grids.reshape(grids.shape[0], -1)
    for k in numba.prange(len(windows)):
        grid = flat_grids[k]
        t_w, x_w, y_w, p_w, invalid[k] = open_window(t, x, y, p, windows[k], grid, width, height)
        if invalid[k] or len(t_w) == 0:
            continue
        t_first, span = time_span(t_w)
        inverse_span = 1.0 / span
        index = np.empty(CHUNK, np.intp)
        for first in range(0, len(t_w), CHUNK):
            t_c, x_c, y_c, p_c = cut(t_w, x_w, y_w, p_w, first, first + CHUNK)
            for j in range(len(t_c)):
                channel = (bins if p_c[j] > 0 else 0) + time_bin(t_c[j] - t_first, bins, span, inverse_span)
                index[j] = place(channel, plane, x_c[j], y_c[j], width)
            for j in range(len(t_c)):
                # saturating: equal to clipping the final count
                grid[index[j]] += np.uint8(grid[index[j]] < limit)


@numba_cuda.jit(cache=True)
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


@numba_cuda.jit(cache=True)
def _cuda_clip(counts, limit, out):
    i = numba_cuda.grid(1)
    while i < counts.shape[0]:
        out[i] = min(counts[i], limit)
        i += numba_cuda.gridsize(1)


def _clip_on_device(limit: int):
    def finish(counts, result, stream) -> None:
        size = counts.size
        if size:
            _cuda_clip[(*elementwise_launch(size), stream)](counts.reshape(size), limit, result.reshape(size))

    return finish


def cpu(t, x, y, p, windows, out, bins=5, cutoff=10):
    return run_cpu(_fill, (t, x, y, p), windows, out, bins, _limit(cutoff))


def cuda(t, x, y, p, windows, out, bins=5, cutoff=10):
    # counted in int32 (uint8 has no atomics), clipped into the uint8 output on the device
    run_cuda(_cuda_fill, (t, x, y, p), windows, out, bins, grids_dtype=np.int32, finish=_clip_on_device(_limit(cutoff)))
