"""Event representations: typed parameter classes and the public functions that run their kernels.

Each representation is a frozen dataclass of its parameters, with its channel count and dtype;
calling it on one window's events returns (C, H, W), ``batch`` returns (K, C, H, W) for K
windows given as [start, stop) index ranges into the same event arrays. ``device`` is "cpu"
(Numba, parallel) or "cuda" (numba.cuda). The exact definitions are in each kernel module's
docstring and in docs/representations.md.

Inputs: t int64 microseconds sorted within each window, x and y integer pixel coordinates inside
the sensor, p as -1/+1, 0/1 or bool. Inputs are never modified.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import ClassVar, NamedTuple

import numpy as np

from evtools.devices import check_device
from evtools.errors import is_whole, require
from evtools.events import signed_polarity
from evtools.kernels import evimage as evimage_kernels
from evtools.kernels import evsegnet as evsegnet_kernels
from evtools.kernels import histogram as histogram_kernels
from evtools.kernels import timesurface as timesurface_kernels
from evtools.kernels import voxel as voxel_kernels
from evtools.kernels.launch import as_windows, device_view, first_invalid_events
from evtools.kernels.select import on_sensor

DEVICES = ("cpu", "cuda")


def _covered_columns(t, x, y, p, windows) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """The columns cut to the span the windows cover, in kernel dtypes, and the windows relative
    to that span: a block of windows over a long stream costs only its events. Times that are
    not whole numbers are refused here; order and coordinates are ``_check_events``'s."""
    if not (len(t) == len(x) == len(y) == len(p)):
        raise ValueError(f"t, x, y, p differ in length: {len(t)}, {len(x)}, {len(y)}, {len(p)}")
    windows = as_windows(windows, len(t))
    lo = int(windows[:, 0].min()) if len(windows) else 0
    hi = int(windows[:, 1].max()) if len(windows) else 0
    t = np.asarray(t)[lo:hi]
    if t.dtype.kind not in "iuf":
        raise ValueError(f"event times must be numbers, got {t.dtype}")
    if t.dtype.kind == "f" and len(t):
        if not np.isfinite(t).all():
            raise ValueError("event times hold NaN or infinite values")
        if np.abs(t).max() >= 2.0**62 or (t != np.round(t)).any():
            raise ValueError("event times must be whole microseconds within the int64 range")
    t = np.ascontiguousarray(t, dtype=np.int64)
    x, y = (np.asarray(c)[lo:hi] for c in (x, y))
    x, y = (np.ascontiguousarray(c) if c.dtype.kind in "iu" else c.astype(np.int64) for c in (x, y))
    return (t, x, y, signed_polarity(np.asarray(p)[lo:hi])), windows - lo


def _check_events(t, x, y, windows: np.ndarray, width: int, height: int) -> None:
    """Every event of a window must lie on the sensor (the kernels write only inside their output)
    and no earlier than the one before it in the window (the kernels place events by their time in
    the window); a decrease between windows, and events that no window holds, do not matter."""
    found = first_invalid_events(t, x, y, windows, width, height)
    bad = np.flatnonzero(found >= 0)
    if not len(bad):
        return
    k = int(bad[0])
    i = int(found[k])
    event = f"event {i - windows[k, 0]} of the window"
    if not on_sensor(x[i], y[i], width, height):
        raise ValueError(f"event coordinates outside the {width}x{height} sensor in window {k} ({event}: "
                         f"x {x[i]}, y {y[i]})")
    raise ValueError(f"event times go backwards inside window {k} ({event}: {t[i - 1]} then {t[i]}); "
                     "sort them, or cut windows where they jump")


def _positive_int(name: str, value) -> None:
    require(is_whole(value) and value >= 1, name, "a positive whole number", value)


class Kernels(NamedTuple):
    """A representation's kernels, one per device. Each fills a caller-given (K, C, H, W) output
    ``out`` for windows ((K, 2) int64 [start, stop) event indices) of columns t int64, x and y
    integers, p int8 -1/+1: ``kernel(t, x, y, p, windows, out, **parameters, **window_args)``.
    The CUDA kernels take checked columns (``_check_events``: times sorted within windows, events
    on the sensor); the CPU kernels check as they go, skip what fails and return True for it."""

    cpu: Callable[..., bool]
    cuda: Callable[..., None]

    @classmethod
    def of(cls, module: ModuleType) -> Kernels:
        """The ``cpu`` and ``cuda`` functions of a kernel module."""
        return cls(module.cpu, module.cuda)


@dataclass(frozen=True)
class Representation:
    """Base of the representation parameter classes. A new representation is one kernel module
    and one subclass here: its parameters (fields), ``name``, ``dtype``, ``channels``, kernels
    and ``activity`` (how it is drawn); the CLI, render and the cache find it in REPRESENTATIONS."""

    name: ClassVar[str]
    dtype: ClassVar[np.dtype]
    kernels: ClassVar[Kernels]
    uses_window_end: ClassVar[bool] = False  # takes ``ends_us``, each window's end time

    @property
    def channels(self) -> int:
        raise NotImplementedError

    def shape(self, width: int, height: int) -> tuple[int, int, int]:
        return self.channels, height, width

    def params(self) -> dict:
        """The parameters as a plain dict, for cache attributes and the kernels' arguments;
        ``from_params`` reads them back. Every parameter is a number or a bool: a shallow dict
        (``dataclasses.asdict`` deep-copies: 2.7 against 0.7 us, of a call's 16 us of Python)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def from_params(cls, params: dict) -> Representation:
        return cls(**params)

    @classmethod
    def from_options(cls, **options) -> Representation:
        """The representation from command-line options, taking those that are its parameters
        (``bins``, ``cutoff``, ``tau_us``, ...) and ignoring the others."""
        return cls(**{f.name: options[f.name] for f in dataclasses.fields(cls) if f.name in options})

    def activity(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positive and negative activity maps (H, W), >= 0, of one window's tensor, for pictures."""
        tensor = tensor.astype(np.float32)
        return tensor[0], tensor[1]  # the positive and the negative channel (evimage, timesurface)

    def batch(
        self, t, x, y, p, windows, width: int, height: int, device: str = "cpu", out: np.ndarray | None = None,
        **window_args,
    ) -> np.ndarray:
        """(K, C, H, W) for the K windows ``windows`` ((K, 2) [start, stop) event indices).

        ``out``, a C-contiguous array of that shape and dtype, is filled and returned instead of
        a new array: conversion reuses one for block after block of windows. With ``device``
        "cuda" it may also be on the GPU (a Numba device array, or a torch CUDA tensor or any
        array with ``__cuda_array_interface__``): then the result never leaves the GPU. When the
        call raises, what ``out`` holds is undefined.
        """
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
        check_device(device, kernels=True)
        columns, windows = _covered_columns(t, x, y, p, windows)
        shape = (len(windows), *self.shape(width, height))
        on_device = device_view(out) if device == "cuda" else None
        if out is None:
            out = np.empty(shape, self.dtype)
        elif on_device is not None:
            if tuple(on_device.shape) != shape or on_device.dtype != self.dtype or not on_device.is_c_contiguous():
                raise ValueError(f"out must be a C-contiguous {self.dtype} array of shape {shape}")
        elif not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {self.dtype} array of shape {shape}")
        if device == "cuda":
            _check_events(*columns[:3], windows, width, height)
            self.kernels.cuda(*columns, windows, out, **self.params(), **window_args)
        elif self.kernels.cpu(*columns, windows, out, **self.params(), **window_args):
            _check_events(*columns[:3], windows, width, height)  # raises: the kernel skipped events
            raise AssertionError("a kernel flagged events that the check accepts")
        return out

    def __call__(self, t, x, y, p, width: int, height: int, device: str = "cpu", **window_args) -> np.ndarray:
        """(C, H, W) for one window holding all the given events."""
        return self.batch(t, x, y, p, [[0, len(t)]], width, height, device, **window_args)[0]


@dataclass(frozen=True)
class VoxelGrid(Representation):
    bins: int = 5
    normalize: bool = False
    separate_polarity: bool = False
    name: ClassVar[str] = "voxel"
    dtype: ClassVar[np.dtype] = np.dtype(np.float32)
    kernels: ClassVar[Kernels] = Kernels.of(voxel_kernels)

    def __post_init__(self) -> None:
        _positive_int("bins", self.bins)

    @property
    def channels(self) -> int:
        return 2 * self.bins if self.separate_polarity else self.bins

    def activity(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tensor = tensor.astype(np.float32)
        if self.separate_polarity:
            return tensor[: self.bins].sum(0), tensor[self.bins :].sum(0)
        summed = tensor.sum(0)
        return np.maximum(summed, 0), np.maximum(-summed, 0)


@dataclass(frozen=True)
class Histogram(Representation):
    bins: int = 5
    cutoff: int = 10
    name: ClassVar[str] = "histogram"
    dtype: ClassVar[np.dtype] = np.dtype(np.uint8)
    kernels: ClassVar[Kernels] = Kernels.of(histogram_kernels)

    def __post_init__(self) -> None:
        _positive_int("bins", self.bins)
        require(is_whole(self.cutoff) and 0 <= self.cutoff <= 255, "cutoff",
                "a whole number from 0 (no cutoff below 255) to 255", self.cutoff)

    @property
    def channels(self) -> int:
        return 2 * self.bins

    def activity(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tensor = tensor.astype(np.float32)
        return tensor[self.bins :].sum(0), tensor[: self.bins].sum(0)  # RVT order: negative channels first


@dataclass(frozen=True)
class EvImage(Representation):
    name: ClassVar[str] = "evimage"
    dtype: ClassVar[np.dtype] = np.dtype(np.float32)
    kernels: ClassVar[Kernels] = Kernels.of(evimage_kernels)

    @property
    def channels(self) -> int:
        return 2


@dataclass(frozen=True)
class EvSegNet(Representation):
    name: ClassVar[str] = "evsegnet"
    dtype: ClassVar[np.dtype] = np.dtype(np.float32)
    kernels: ClassVar[Kernels] = Kernels.of(evsegnet_kernels)

    @property
    def channels(self) -> int:
        return 6

    def activity(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tensor = tensor.astype(np.float32)
        return tensor[0], tensor[3]  # the event counts


@dataclass(frozen=True)
class TimeSurface(Representation):
    """``batch`` and calls also take ``ends_us``: each window's t_end (default: its last event)."""

    tau_us: float = 50_000.0
    uses_window_end: ClassVar[bool] = True
    name: ClassVar[str] = "timesurface"
    dtype: ClassVar[np.dtype] = np.dtype(np.float32)
    kernels: ClassVar[Kernels] = Kernels.of(timesurface_kernels)

    def __post_init__(self) -> None:
        if not isinstance(self.tau_us, (int, float)) or isinstance(self.tau_us, bool) or not 0 < self.tau_us < float("inf"):
            raise ValueError(f"tau_us must be a positive number of microseconds, got {self.tau_us!r}")

    @property
    def channels(self) -> int:
        return 2


REPRESENTATIONS: dict[str, type[Representation]] = {
    cls.name: cls for cls in (VoxelGrid, Histogram, EvImage, EvSegNet, TimeSurface)
}


# One window's representation as a function, in the style of tonic.functional: the classes' calls
# with their parameters as keywords.
def voxel_grid(t, x, y, p, width, height, bins=5, normalize=False, separate_polarity=False, device="cpu"):
    return VoxelGrid(bins, normalize, separate_polarity)(t, x, y, p, width, height, device)


def histogram(t, x, y, p, width, height, bins=5, cutoff=10, device="cpu"):
    return Histogram(bins, cutoff)(t, x, y, p, width, height, device)


def evimage(t, x, y, p, width, height, device="cpu"):
    return EvImage()(t, x, y, p, width, height, device)


def evsegnet(t, x, y, p, width, height, device="cpu"):
    return EvSegNet()(t, x, y, p, width, height, device)


def timesurface(t, x, y, p, width, height, tau_us=50_000.0, t_end_us=None, device="cpu"):
    ends = None if t_end_us is None else [t_end_us]
    return TimeSurface(tau_us)(t, x, y, p, width, height, device, ends_us=ends)


def from_tonic(events: np.ndarray, sensor_size: tuple[int, ...], representation: Representation, device="cpu"):
    """Runs a representation on Tonic's structured event array (fields x, y, t, p) for a sensor
    size given Tonic's way, (width, height[, polarities]), so Tonic users can call the kernels."""
    width, height = int(sensor_size[0]), int(sensor_size[1])
    return representation(events["t"], events["x"], events["y"], events["p"], width, height, device)
