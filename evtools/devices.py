"""Which device a command runs on: the one place that checks it is there.

Models and tensors go through torch, the representation kernels through numba.cuda; each has its
own view of the GPU, so each is checked by its own library (under ``NUMBA_ENABLE_CUDASIM=1``
Numba's simulator counts as a GPU for the kernels). A device that is not there is a one-line
``DeviceError`` before anything is written.
"""

from __future__ import annotations

import functools
import os
import re

from evtools.errors import EvtoolsError

DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")


class DeviceError(EvtoolsError):
    """A device that is unknown or not available."""


def check_device(device: str, kernels: bool = False) -> str:
    """``device`` ("cpu", "cuda" or "cuda:N") when it can be used, for torch models or, with
    ``kernels``, for the Numba CUDA kernels; else DeviceError."""
    if not isinstance(device, str) or not DEVICE_PATTERN.fullmatch(device):
        raise DeviceError(f"--device {device}: not a device (give cpu, cuda or cuda:N)")
    if device == "cpu":
        return device
    problem = _numba_cuda_problem() if kernels else _torch_cuda_problem(device)
    if problem:
        raise DeviceError(f"--device {device}: no CUDA GPU is available ({problem})")
    return device


@functools.cache
def _numba_cuda_problem() -> str | None:
    try:
        from numba import cuda
    except ImportError as err:  # pragma: no cover - numba ships numba.cuda or numba-cuda provides it
        return f"numba.cuda cannot be imported: {err}; pip install 'evtools[cuda]'"
    try:
        if cuda.is_available():
            return None
        len(cuda.gpus)  # raises the driver's reason
    except Exception as err:  # noqa: BLE001 - the driver's errors have many types
        reason = str(err).strip().splitlines()[0].rstrip(": ") if str(err).strip() else type(err).__name__
        return f"numba.cuda: {reason}"
    return "numba.cuda finds no GPU"


def _torch_cuda_problem(device: str) -> str | None:
    import torch

    if not torch.cuda.is_available():
        built = torch.version.cuda
        return f"torch {torch.__version__} " + (f"built for CUDA {built} sees no GPU" if built else "is a CPU-only build")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        return f"torch sees {torch.cuda.device_count()} GPU(s)"
    return None


# Worker processes a core at most (--jobs, training.workers): more only compete for it, and each
# is a process of 140-250 MB once it converts or loads.
WORKERS_PER_CORE = 4


def check_processes(name: str, count: int, least: int = 1) -> None:
    """``count`` worker processes (``name``: --jobs, training.workers) from ``least`` to
    WORKERS_PER_CORE a core this process may use; 99999999999 had started process after process
    until memory ran out."""
    most = WORKERS_PER_CORE * len(os.sched_getaffinity(0))
    if not least <= count <= most:
        raise EvtoolsError(f"{name}: give {least} to {most} ({WORKERS_PER_CORE} worker processes a core this process "
                           f"may use), got {count}")
