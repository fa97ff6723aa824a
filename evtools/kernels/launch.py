"""How the kernels share out work: CPU items over windows and parts of windows, CUDA grids.

Every kernel fills a caller-given output (K, C, H, W), so that conversion can reuse one buffer
for block after block of windows: allocating and first touching a fresh output for every block
costs more than the scatter itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numba
import numpy as np
from numba import cuda as numba_cuda

from evtools.kernels.select import on_sensor


# Events a CPU kernel takes per pass: a branch-free pass over CHUNK events works out each one's
# place and weight (vectorised by LLVM), then a second pass scatters them; the scratch stays in
# L1. The kernels index views of each window and chunk, never ``t[start + j]``: with indices
# Numba cannot prove non-negative it adds a wraparound branch to every access and LLVM vectorises
# nothing (measured: 3.5 against 30 us for the checks of one 50k-event window).
CHUNK = 1024


@numba.njit(cache=True)
def window_is_invalid(t, x, y, width, height):
    """Whether one window's events (views) hold one off the sensor or earlier than the one
    before it: the CPU kernels then skip the window, and the caller finds and reports the event."""
    if len(t) == 0:
        return False
    descents = 0
    for i in range(1, len(t)):
        descents += np.int64(t[i] < t[i - 1])  # an int, not a bool: LLVM vectorises the sum
    x_lo, x_hi, y_lo, y_hi = x[0], x[0], y[0], y[0]
    for i in range(len(x)):
        x_lo, x_hi = min(x_lo, x[i]), max(x_hi, x[i])
        y_lo, y_hi = min(y_lo, y[i]), max(y_hi, y[i])
    # the corners of the events' bounding box (a minimum and maximum vectorise; a test per event does not)
    return descents > 0 or not (on_sensor(x_lo, y_lo, width, height) and on_sensor(x_hi, y_hi, width, height))


@numba.njit(cache=True)
def cut(t, x, y, p, first, last):
    """Views of the four columns over [first, last)."""
    return t[first:last], x[first:last], y[first:last], p[first:last]


@numba.njit(cache=True)
def window_events(t, x, y, p, window, width, height):
    """Views of a window's events and whether they are invalid (``window_is_invalid``)."""
    t_w, x_w, y_w, p_w = cut(t, x, y, p, window[0], window[1])
    return t_w, x_w, y_w, p_w, window_is_invalid(t_w, x_w, y_w, width, height)


@numba.njit(cache=True)
def open_window(t, x, y, p, window, grid, width, height):
    """Clears a window's (flat) grid and returns ``window_events``: how the CPU kernels begin a
    window (the voxel grid clears its bins as the events reach them instead)."""
    grid[:] = 0
    return window_events(t, x, y, p, window, width, height)


@numba.njit(cache=True)
def place(channel, plane, x, y, width):
    """An event's index in a flat (C, H, W) grid: flat indices cost less than 3-D ones."""
    return channel * plane + np.intp(y) * width + np.intp(x)


@numba.njit(cache=True)
def time_span(t):
    """A non-empty window's first time and its span (t_last - t_first, at least 1)."""
    return t[0], max(t[-1] - t[0], 1)


# Held around every launch of a ``parallel=True`` function of evtools. The CPU kernels release
# the GIL (``nogil``), so that a conversion's writer and compressing threads run while they fill
# a block; two Python threads must still not launch parallel code at once: Numba's workqueue
# threading layer (where neither OpenMP nor TBB is found) aborts the process on concurrent
# launches, and each launch already uses every core.
PARALLEL_LAUNCH_LOCK = threading.Lock()


@numba.njit(parallel=True, cache=True)
def _first_invalid_events(t, x, y, windows, width, height):
    """``first_invalid_events``, launched under the lock."""
    found = np.full(len(windows), -1, np.int64)
    for k in numba.prange(len(windows)):
        start = windows[k, 0]
        for i in range(start, windows[k, 1]):
            if not on_sensor(x[i], y[i], width, height) or (i > start and t[i] < t[i - 1]):
                found[k] = i
                break
    return found


def first_invalid_events(t, x, y, windows, width, height) -> np.ndarray:
    """For each window, the index of its first event that lies off the sensor or is earlier than
    the event before it, or -1."""
    with PARALLEL_LAUNCH_LOCK:
        return _first_invalid_events(t, x, y, windows, width, height)


def as_windows(windows: np.ndarray, n_events: int) -> np.ndarray:
    """(K, 2) int64 [start, stop) index ranges into the event arrays, checked."""
    windows = np.ascontiguousarray(windows, dtype=np.int64).reshape(-1, 2)
    if len(windows) and (windows.min() < 0 or windows.max() > n_events or (windows[:, 1] < windows[:, 0]).any()):
        raise ValueError(f"windows must be [start, stop) ranges within 0..{n_events}")
    return windows


def run_cpu(fill: Callable, columns: tuple, windows: np.ndarray, out: np.ndarray, *args) -> bool:
    """``fill(*columns, windows, *args, out, invalid)`` fills ``out``, a thread a window, and sets
    ``invalid[k]`` when window k holds an event off the sensor or out of order (``out[k]`` is
    then left undefined).
    Returns whether any window did: the check rides along with the kernel instead of costing a
    pass of its own, and the caller finds and reports the culprit.

    One window is one thread's: splitting a window over threads needs a private grid each and a
    merge that costs more than the scatter (measured: 0.10 ms merging against 0.12 ms scattering
    a 50 ms DAVIS346 window on two threads)."""
    invalid = np.zeros(len(windows), np.bool_)
    with PARALLEL_LAUNCH_LOCK:
        fill(*columns, windows, *args, out, invalid)
    return bool(invalid.any())


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
