"""How the kernels share out work: CPU items over windows and parts of windows, CUDA grids.

Every kernel fills a caller-given output (K, C, H, W), so that conversion can reuse one buffer
for block after block of windows: allocating and first touching a fresh output for every block
costs more than the scatter itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import NamedTuple

import numba
import numpy as np
from numba import cuda as numba_cuda

from evtools.kernels.parallel import PARALLEL_LAUNCH_LOCK
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


# Launch shapes: every kernel loops grid-stride, so these change its speed, never its values
# (the tests run Numba's CUDA simulator, a Python thread per CUDA thread, with small ones).
CUDA_THREADS = 256
CUDA_MAX_BLOCKS_X = 1024
CUDA_MAX_BLOCKS_PER_WINDOW = 64
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


@numba_cuda.jit(cache=True)
def _zero(flat):
    i = numba_cuda.grid(1)
    while i < flat.shape[0]:
        flat[i] = 0
        i += numba_cuda.gridsize(1)


def elementwise_launch(n: int) -> tuple[int, int]:
    """(blocks, threads) for a grid-stride loop over ``n`` elements."""
    return max(1, min(CUDA_MAX_BLOCKS_X * 4, -(-n // CUDA_THREADS))), CUDA_THREADS


def per_window_grid(n_windows: int, per_window: int) -> tuple[tuple[int, int], int]:
    """A launch of (blocks, K) blocks of CUDA_THREADS for grid-stride loops over ``per_window``
    values of each of ``n_windows`` windows (window k on grid row k)."""
    return (max(1, min(CUDA_MAX_BLOCKS_PER_WINDOW, -(-per_window // CUDA_THREADS))), n_windows), CUDA_THREADS


# Events of one CUDA part: a call's windows go to the GPU in parts of about this many events, each
# copied by the host into page-locked buffers (all cores) while the GPU copies and fills the part
# before it (two buffer sets, a stream each).
CUDA_PART_EVENTS = 1 << 21


@numba.njit(parallel=True, nogil=True, cache=True)
def _copy_in_parallel(source, target):
    """``target[:len(source)] = source`` over all cores: one core's memcpy does not keep up with
    the GPU's copy from page-locked memory."""
    n = len(source)
    pieces = max(1, min(n >> 16, 64))
    for piece in numba.prange(pieces):
        first, last = n * piece // pieces, n * (piece + 1) // pieces
        target[first:last] = source[first:last]


class _Staging:
    """Two sets of page-locked host buffers and device buffers for a part's columns and windows,
    and a stream each, kept for the process's life: page-locking memory costs more than a part's
    copy. ``lock`` makes one call at a time use them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.streams: list = []
        self.buffers: list[dict] = [{}, {}]

    def stream(self, which: int):
        while len(self.streams) <= which:
            self.streams.append(numba_cuda.stream())
        return self.streams[which]

    def to_device(self, which: int, slot: int, values: np.ndarray, stream):
        """``values`` (1-D) on the device: copied into set ``which``'s page-locked buffer ``slot``
        on all cores, then to the device on ``stream``. Returns the device view."""
        held = self.buffers[which].get(slot)
        if held is None or held[0].dtype != values.dtype or len(held[0]) < len(values):
            capacity = max(len(values), CUDA_PART_EVENTS)
            held = numba_cuda.pinned_array(capacity, values.dtype), numba_cuda.device_array(capacity, values.dtype)
            self.buffers[which][slot] = held
        pinned, device = held[0][: len(values)], held[1][: len(values)]
        if len(values):
            with PARALLEL_LAUNCH_LOCK:
                _copy_in_parallel(values, pinned)
            device.copy_to_device(pinned, stream=stream)
        return device


_STAGING = _Staging()


def cuda_parts(windows: np.ndarray, part_events: int) -> list[slice]:
    """Consecutive runs of windows whose events (from the first window's start to the furthest
    stop) number about ``part_events`` at most (a longer window is a part of its own), and at
    most CUDA_MAX_GRID_Y windows."""
    parts, first = [], 0
    while first < len(windows):
        lo, hi, last = windows[first, 0], windows[first, 1], first + 1
        while last < len(windows) and last - first < CUDA_MAX_GRID_Y:
            lo_next, hi_next = min(lo, windows[last, 0]), max(hi, windows[last, 1])
            if hi_next - lo_next > part_events:
                break
            lo, hi, last = lo_next, hi_next, last + 1
        parts.append(slice(first, last))
        first = last
    return parts


class StagedPart(NamedTuple):
    """One part of a call's windows on the GPU: its slice of the windows, its stream, the event
    columns over its span, its windows relative to the span's first event, and the arguments
    (per-window arrays cut to the part)."""

    windows: slice
    stream: object
    columns: list
    device_windows: object
    args: list


def staged_parts(columns: tuple, windows: np.ndarray, args: tuple = ()) -> Iterator[StagedPart]:
    """Each part of ``windows`` (``cuda_parts``) staged onto the GPU through the page-locked
    buffers of one of two sets, on that set's stream: the host stages the next part while the GPU
    works on the one before. The buffers are this generator's until it is exhausted or closed
    (close it when leaving early); exhausting it waits for everything queued on the streams."""
    with _STAGING.lock:
        for number, part in enumerate(cuda_parts(windows, CUDA_PART_EVENTS)):
            which = number % 2
            stream = _STAGING.stream(which)
            stream.synchronize()  # the part before last, which used this set's buffers, is done
            part_windows = windows[part]
            lo, hi = int(part_windows[:, 0].min()), int(part_windows[:, 1].max())
            device_columns = [_STAGING.to_device(which, slot, np.ascontiguousarray(column[lo:hi]), stream)
                              for slot, column in enumerate(columns)]
            slot = len(columns)
            flat_windows = _STAGING.to_device(which, slot, (part_windows - lo).reshape(-1), stream)
            device_args = []
            for arg in args:
                if isinstance(arg, np.ndarray):
                    slot += 1
                    arg = _STAGING.to_device(which, slot, np.ascontiguousarray(arg[part]), stream)
                device_args.append(arg)
            yield StagedPart(part, stream, device_columns, flat_windows.reshape(len(part_windows), 2), device_args)
        for stream in _STAGING.streams:
            stream.synchronize()


def run_cuda(kernel, columns: tuple, windows: np.ndarray, out, *args, grids_dtype=None, finish=None) -> None:
    """Runs ``kernel[(blocks, windows), threads](*columns, windows, *args, grids)`` for every part
    of the windows (``staged_parts``; window k of a part on grid row k, its indices relative to
    the part's first event), and delivers the result.

    Array arguments hold a value per window. The grids (``grids_dtype``, default ``out``'s) are
    zeroed on the device; ``finish(grids, result, stream)`` turns them into ``out``'s values
    there (a clip, a normalisation) when given. A host ``out`` receives each part's result with
    one copy (asynchronous when ``out`` is page-locked, as from ``host_buffer``); a device ``out``
    (see ``device_view``) is written in place, so a torch CUDA tensor receives the representation
    without leaving the GPU."""
    given = device_view(out)
    result = given if given is not None else numba_cuda.device_array(out.shape, out.dtype)
    # ``finish`` works in place when the grids have the output's dtype
    in_place = grids_dtype is None or np.dtype(grids_dtype) == result.dtype
    grids = result if in_place else numba_cuda.device_array(result.shape, grids_dtype)
    per_window = int(np.prod(result.shape[1:]))
    with closing(staged_parts(columns, windows, args)) as parts:
        for part, stream, device_columns, device_windows, device_args in parts:
            n = part.stop - part.start
            if per_window:
                _zero[(*elementwise_launch(n * per_window), stream)](grids[part].reshape(n * per_window))
            longest = int((windows[part, 1] - windows[part, 0]).max())
            blocks = max(1, min(CUDA_MAX_BLOCKS_X, -(-longest // CUDA_THREADS)))
            kernel[(blocks, n), CUDA_THREADS, stream](*device_columns, device_windows, *device_args, grids[part])
            if finish is not None:
                finish(grids[part], result[part], stream)
            if given is None:
                result[part].copy_to_host(out[part], stream=stream)


def host_buffer(shape: tuple[int, ...], dtype, device: str) -> np.ndarray:
    """An output buffer for ``device``'s kernels: page-locked for CUDA (faster copies back)."""
    return numba_cuda.pinned_array(shape, dtype) if device == "cuda" else np.empty(shape, dtype)
