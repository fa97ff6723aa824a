"""How the kernels split work: CPU work items over windows and parts of windows, CUDA grids."""

from __future__ import annotations

import numba
import numpy as np


def parts_per_window(n_windows: int) -> int:
    """Enough parts per window to give every thread work: one window is split across all threads
    into private partial grids that are summed afterwards; many windows each get one part."""
    return max(1, -(-numba.get_num_threads() // max(n_windows, 1)))


def as_windows(windows: np.ndarray, n_events: int) -> np.ndarray:
    """(K, 2) int64 [start, stop) index ranges into the event arrays, checked."""
    windows = np.ascontiguousarray(windows, dtype=np.int64).reshape(-1, 2)
    if len(windows) and (windows.min() < 0 or windows.max() > n_events or (windows[:, 1] < windows[:, 0]).any()):
        raise ValueError(f"windows must be [start, stop) ranges within 0..{n_events}")
    return windows


CUDA_THREADS = 256
CUDA_MAX_BLOCKS_X = 1024
CUDA_MAX_GRID_Y = 65535


def launch_cuda(kernel, columns: tuple[np.ndarray, ...], windows: np.ndarray, outputs: tuple[np.ndarray, ...], *args):
    """Runs ``kernel[(blocks, windows), threads](*columns, windows, *args, *outputs)``, window k on
    grid row k (in slices of at most 65535 windows), and copies the outputs back in place."""
    from numba import cuda

    device_columns = [cuda.to_device(np.ascontiguousarray(c)) for c in columns]
    longest = int((windows[:, 1] - windows[:, 0]).max()) if len(windows) else 0
    blocks = max(1, min(CUDA_MAX_BLOCKS_X, -(-longest // CUDA_THREADS)))
    for first in range(0, len(windows), CUDA_MAX_GRID_Y):
        part = slice(first, first + CUDA_MAX_GRID_Y)
        device_outputs = [cuda.to_device(out[part]) for out in outputs]
        kernel[(blocks, len(windows[part])), CUDA_THREADS](
            *device_columns, cuda.to_device(windows[part]), *args, *device_outputs
        )
        for out, device_out in zip(outputs, device_outputs):
            out[part] = device_out.copy_to_host()
