"""Time surface: per polarity (positive, then negative), exp(-(t_end - t_last(x, y)) / tau) of the
most recent event at each pixel, 0 where there is none. t_end is the window's last event unless
window end times are given; tau is in microseconds.

The CPU kernel takes a window's events in time order (it checks that), so the last value written
to a pixel is its most recent event's. It computes exp from two tables instead of calling exp per
event: with d = t_end - t (whole microseconds) = 1024 h + l, exp(-d/tau) = exp(-1024 h/tau) *
exp(-l/tau); the tables hold each factor in float64 (their product is within two float64 ulps of
exp(-d/tau), so its float32 rounding is the reference's but for a tie), and the lookups vectorise
where exp does not (LLVM has no vector exp without Intel's SVML). The CUDA kernel calls exp and
keeps the largest value per pixel (atomic max), whatever the order.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import cuda as numba_cuda

from evtools.kernels.launch import CHUNK, cut, open_window, place, run_cpu, run_cuda


LOW_BITS = 10
LOW_MASK = (1 << LOW_BITS) - 1
# exp(-x) rounds to 0 in float32 (below half the smallest subnormal, 2^-150) for x > 150 ln 2
FLOAT32_ZERO_BEYOND = 150 * math.log(2)


# The high table's size limit (512 KiB): d up to 2^26 us (67 s), or any d for tau up to 0.6 s;
# beyond it (a long window with a long tau) the kernel calls exp for each event instead.
MAX_HIGH_ENTRIES = 1 << 16


NO_TABLES = (np.empty(0), np.empty(0))  # what the kernel takes as "call exp for each event"


def decay_tables(tau_us: float, longest_us: int) -> tuple[np.ndarray, np.ndarray]:
    """exp(-l/tau) for l < 1024, and exp(-1024 h/tau) for every h up to the longest d's
    (``longest_us``) high part or up to where the decay is 0 in float32, whichever comes first:
    the kernel looks up min(h, last) and the last entry is then 0 as the true value is.
    NO_TABLES when that would pass MAX_HIGH_ENTRIES."""
    zero_from = math.ceil(FLOAT32_ZERO_BEYOND * tau_us / (LOW_MASK + 1))
    needed = min(max(longest_us, 0) >> LOW_BITS, zero_from) + 1
    if needed > MAX_HIGH_ENTRIES:
        return NO_TABLES
    # a power of two, so that calls with similar windows share one cached pair of tables
    return _tables(float(tau_us), min(1 << (needed - 1).bit_length(), zero_from + 1))


@functools.lru_cache(maxsize=16)
def _tables(tau_us: float, high_entries: int) -> tuple[np.ndarray, np.ndarray]:
    low = np.exp(-np.arange(LOW_MASK + 1) / tau_us)
    high = np.exp(-np.arange(high_entries) * float(LOW_MASK + 1) / tau_us)
    low.flags.writeable = high.flags.writeable = False  # shared by every call that needs them
    return low, high


@numba.njit(parallel=True, nogil=True, cache=True)
def _fill(t, x, y, p, windows, ends, tau_us, low, high, grids, invalid):
    height, width = grids.shape[2], grids.shape[3]
    plane = height * width
    flat_grids = grids.reshape(grids.shape[0], -1)
    last_high = np.uint64(max(len(high), 1) - 1)
    for k in numba.prange(len(windows)):
        grid = flat_grids[k]
        t_w, x_w, y_w, p_w, invalid[k] = open_window(t, x, y, p, windows[k], grid, width, height)
        if invalid[k] or len(t_w) == 0:
            continue
        index = np.empty(CHUNK, np.intp)
        value = np.empty(CHUNK, np.float32)
        end = ends[k]
        for first in range(0, len(t_w), CHUNK):
            t_c, x_c, y_c, p_c = cut(t_w, x_w, y_w, p_w, first, first + CHUNK)
            for j in range(len(t_c)):
                index[j] = place(0 if p_c[j] > 0 else 1, plane, x_c[j], y_c[j], width)
            if len(low):
                for j in range(len(t_c)):
                    # unsigned (d >= 0 in a valid window): the lookups need no wraparound branch
                    since = np.uint64(end - t_c[j])
                    value[j] = np.float32(low[since & np.uint64(LOW_MASK)] * high[min(since >> np.uint64(LOW_BITS), last_high)])
            else:
                for j in range(len(t_c)):
                    value[j] = math.exp(-(end - t_c[j]) / tau_us)
            for j in range(len(t_c)):
                grid[index[j]] = value[j]  # in time order: the last write is the most recent event


@numba_cuda.jit(cache=True)
def _cuda_fill(t, x, y, p, windows, ends, tau_us, grids):
    k = numba_cuda.blockIdx.y
    start, stop = windows[k, 0], windows[k, 1]
    i = start + numba_cuda.blockIdx.x * numba_cuda.blockDim.x + numba_cuda.threadIdx.x
    while i < stop:
        value = math.exp(-(ends[k] - t[i]) / tau_us)
        numba_cuda.atomic.max(grids, (k, 0 if p[i] > 0 else 1, y[i], x[i]), value)
        i += numba_cuda.gridDim.x * numba_cuda.blockDim.x


def window_ends(t: np.ndarray, windows: np.ndarray, ends_us) -> np.ndarray:
    """Each window's t_end: given, or its last event's time (0 for an empty window)."""
    last = np.maximum(windows[:, 1] - 1, 0)
    last_t = np.where(windows[:, 1] > windows[:, 0], t[last] if len(t) else 0, 0).astype(np.int64)
    if ends_us is None:
        return last_t
    ends = np.asarray(ends_us)
    if ends.size != len(windows) or ends.dtype.kind not in "iu":
        raise ValueError(f"ends_us must hold one whole number of microseconds per window ({len(windows)})")
    ends = ends.astype(np.int64).reshape(len(windows))
    early = (windows[:, 1] > windows[:, 0]) & (ends < last_t)
    if early.any():
        k = int(np.flatnonzero(early)[0])
        raise ValueError(f"window {k} ends at {ends[k]} us, before its last event ({last_t[k]} us)")
    return ends


def cpu(t, x, y, p, windows, out, tau_us=50_000.0, ends_us=None):
    ends = window_ends(t, windows, ends_us)
    filled = windows[:, 1] > windows[:, 0]
    longest = int((ends[filled] - t[windows[filled, 0]]).max()) if filled.any() else 0
    tau_us = float(tau_us)
    return run_cpu(_fill, (t, x, y, p), windows, out, ends, tau_us, *decay_tables(tau_us, longest))


def cuda(t, x, y, p, windows, out, tau_us=50_000.0, ends_us=None):
    ends = window_ends(t, windows, ends_us)
    run_cuda(_cuda_fill, (t, x, y, p), windows, out, ends, float(tau_us))
