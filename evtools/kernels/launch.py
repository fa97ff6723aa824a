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


def device_view(out):
    """The device array to write for ``out``: None for a host (numpy) array, ``out`` itself for a
    Numba device array, a zero-copy view of anything else on the GPU that exposes
    ``__cuda_array_interface__`` (a torch CUDA tensor, a CuPy array)."""
    if out is None or isinstance(out, np.ndarray):
        return None
    if hasattr(out, "copy_to_host"):  # Numba's device arrays, the simulator's included
        return out
    if hasattr(out, "__cuda_array_interface__"):
        return numba_cuda.as_cuda_array(out)
    raise TypeError(f"out must be a numpy array or a CUDA array, got {type(out).__name__}")


@numba_cuda.jit
def _zero(flat):
    i = numba_cuda.grid(1)
    while i < flat.shape[0]:
        flat[i] = 0
        i += numba_cuda.gridsize(1)


def elementwise_blocks(n: int) -> int:
    """Blocks for a grid-stride loop over ``n`` elements."""
    return max(1, min(CUDA_MAX_BLOCKS_X * 4, -(-n // CUDA_THREADS)))


def per_window_grid(n_windows: int, per_window: int) -> tuple[tuple[int, int], int]:
    """A launch of (blocks, K) blocks of CUDA_THREADS for grid-stride loops over ``per_window``
    values of each of ``n_windows`` windows (window k on grid row k)."""
    return (max(1, min(64, -(-per_window // CUDA_THREADS))), n_windows), CUDA_THREADS


def run_cuda(kernel, columns: tuple, windows: np.ndarray, out, *args, grids_dtype=None, finish=None) -> None:
    """Runs ``kernel[(blocks, windows), threads](*columns, windows, *args, grids)``, window k on
    grid row k (at most 65535 windows a launch), all on one stream, and delivers the result.

    The event columns, the windows and any array argument go to the device once per call (a
    conversion's block); the grids (``grids_dtype``, default ``out``'s) are zeroed there.
    ``finish(grids, result, stream)`` turns them into ``out``'s values on the device (a clip, a
    normalisation) when given. A host ``out`` receives the result with one copy (pinned when it
    comes from ``host_buffer``); a device ``out`` (see ``device_view``) is written in place, so a
    torch CUDA tensor receives the representation without leaving the GPU."""
    stream = numba_cuda.stream()
    device_columns = [numba_cuda.to_device(np.ascontiguousarray(c), stream=stream) for c in columns]
    device_args = [numba_cuda.to_device(np.ascontiguousarray(a), stream=stream) if isinstance(a, np.ndarray) else a
                   for a in args]
    device_windows = numba_cuda.to_device(windows, stream=stream)
    given = device_view(out)
    result = given if given is not None else numba_cuda.device_array(out.shape, out.dtype, stream=stream)
    # ``finish`` works in place when the grids have the output's dtype
    in_place = grids_dtype is None or np.dtype(grids_dtype) == np.dtype(out.dtype)
    grids = result if in_place else numba_cuda.device_array(out.shape, grids_dtype, stream=stream)
    size = int(np.prod(out.shape))
    if size:
        _zero[elementwise_blocks(size), CUDA_THREADS, stream](grids.reshape(size))
    longest = int((windows[:, 1] - windows[:, 0]).max()) if len(windows) else 0
    blocks = max(1, min(CUDA_MAX_BLOCKS_X, -(-longest // CUDA_THREADS)))
    for first in range(0, len(windows), CUDA_MAX_GRID_Y):
        n = min(CUDA_MAX_GRID_Y, len(windows) - first)
        part = slice(first, first + n)
        kernel[(blocks, n), CUDA_THREADS, stream](*device_columns, device_windows[part], *device_args, grids[part])
        if finish is not None:
            finish(grids[part], result[part], stream)
    if given is None:
        result.copy_to_host(out, stream=stream)
    stream.synchronize()


def host_buffer(shape: tuple[int, ...], dtype, device: str) -> np.ndarray:
    """An output buffer for ``device``'s kernels: page-locked for CUDA (faster copies back)."""
    return numba_cuda.pinned_array(shape, dtype) if device == "cuda" else np.empty(shape, dtype)
