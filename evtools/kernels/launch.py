"""How the kernels share out work: CPU items over windows and parts of windows, CUDA grids.

Every kernel fills a caller-given output (K, C, H, W), so that conversion can reuse one buffer
for block after block of windows: allocating and first touching a fresh output for every block
costs more than the scatter itself.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
from numba import cuda as numba_cuda


def parts_per_window(n_windows: int) -> int:
    """Enough parts per window to give every thread work: one window is split across all threads
    into private partial grids that are merged afterwards; many windows each get one part."""
    return max(1, -(-numba.get_num_threads() // max(n_windows, 1)))


@numba.njit(cache=True)
def item_range(item, parts, windows):
    """Work item ``item`` of ``parts`` per window: (window, its start, its stop, first, last event)."""
    k, part = item // parts, item % parts
    start, stop = windows[k, 0], windows[k, 1]
    n = stop - start
    return k, start, stop, start + n * part // parts, start + n * (part + 1) // parts


@numba.njit(cache=True)
def time_span(t, start, stop):
    """A non-empty window's first time and its span (t_last - t_first, at least 1)."""
    return t[start], max(t[stop - 1] - t[start], 1)


@numba.njit(parallel=True, cache=True)
def first_descents(t, windows):
    """For each window, the index of its first event whose time is below the one before it, or -1
    (one parallel pass, no temporaries: a tenth of a kernel's time when done with numpy)."""
    found = np.full(len(windows), -1, np.int64)
    for k in numba.prange(len(windows)):
        for i in range(windows[k, 0] + 1, windows[k, 1]):
            if t[i] < t[i - 1]:
                found[k] = i
                break
    return found


def as_windows(windows: np.ndarray, n_events: int) -> np.ndarray:
    """(K, 2) int64 [start, stop) index ranges into the event arrays, checked."""
    windows = np.ascontiguousarray(windows, dtype=np.int64).reshape(-1, 2)
    if len(windows) and (windows.min() < 0 or windows.max() > n_events or (windows[:, 1] < windows[:, 0]).any()):
        raise ValueError(f"windows must be [start, stop) ranges within 0..{n_events}")
    return windows


def run_cpu(fill: Callable, columns: tuple, windows: np.ndarray, out: np.ndarray, merge: Callable, *args) -> None:
    """``fill(*columns, windows, parts, *args, grids)`` zeroes and fills one grid per work item;
    with several parts per window, ``merge(partials (K, parts, ...), out)`` combines them."""
    parts = parts_per_window(len(windows))
    if parts == 1:
        fill(*columns, windows, parts, *args, out)
        return
    partials = np.empty((len(windows) * parts, *out.shape[1:]), out.dtype)
    fill(*columns, windows, parts, *args, partials)
    merge(partials.reshape(len(windows), parts, *out.shape[1:]), out)


def sum_parts(partials: np.ndarray, out: np.ndarray) -> None:
    np.sum(partials, axis=1, out=out)


CUDA_THREADS = 256
CUDA_MAX_BLOCKS_X = 1024
CUDA_MAX_GRID_Y = 65535


def run_cuda(kernel, columns: tuple, windows: np.ndarray, out: np.ndarray, *args) -> None:
    """Runs ``kernel[(blocks, windows), threads](*columns, windows, *args, grids)``, window k on
    grid row k (at most 65535 windows a launch), and copies the grids into ``out``.

    On one stream: the event columns, the windows and any array argument (which Numba would
    otherwise copy there and back at every launch) go to the device once, the zeroed grids once,
    and the grids come back with one copy per launch (into pinned memory when ``out`` comes from
    ``host_buffer``)."""
    stream = numba_cuda.stream()
    device_columns = [numba_cuda.to_device(np.ascontiguousarray(c), stream=stream) for c in columns]
    device_args = [numba_cuda.to_device(np.ascontiguousarray(a), stream=stream) if isinstance(a, np.ndarray) else a
                   for a in args]
    device_windows = numba_cuda.to_device(windows, stream=stream)
    longest = int((windows[:, 1] - windows[:, 0]).max()) if len(windows) else 0
    blocks = max(1, min(CUDA_MAX_BLOCKS_X, -(-longest // CUDA_THREADS)))
    zeros = np.zeros((min(len(windows), CUDA_MAX_GRID_Y), *out.shape[1:]), out.dtype)
    for first in range(0, len(windows), CUDA_MAX_GRID_Y):
        n = min(CUDA_MAX_GRID_Y, len(windows) - first)
        part = numba_cuda.to_device(zeros[:n], stream=stream)
        kernel[(blocks, n), CUDA_THREADS, stream](*device_columns, device_windows[first : first + n], *device_args, part)
        part.copy_to_host(out[first : first + n], stream=stream)
    stream.synchronize()


def host_buffer(shape: tuple[int, ...], dtype, device: str) -> np.ndarray:
    """An output buffer for ``device``'s kernels: page-locked for CUDA (faster copies back)."""
    return numba_cuda.pinned_array(shape, dtype) if device == "cuda" else np.empty(shape, dtype)
