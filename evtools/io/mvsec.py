"""MVSEC ``*_data.hdf5`` recordings (read side; the writer is io/writers/mvsec.py).

Per camera (``left`` or ``right``) under ``davis/<camera>/``: ``events`` (N, 4) float64 with
columns x, y, t (absolute ROS time in seconds), p (-1/+1); optionally ``image_raw`` (M, 260, 346)
uint8 with ``image_raw_ts`` (M,) float64 seconds and ``image_raw_event_inds``.

Float64 seconds near 1.5e9 resolve about 0.24 us, so times are made relative in float64 first
and only then rounded to integer microseconds.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numba
import numpy as np

from evtools.errors import CorruptFileError, InputError
from evtools.events import MAX_TIMESTAMP_US
from evtools.io.hdf5 import check_stored, mapped_rows, open_h5, require, require_frames
from evtools.io.recording import ReadOptions, Recording, TimedImages
from evtools.kernels.parallel import PARALLEL_LAUNCH_LOCK
from evtools.kernels.select import is_bad_polarity

CAMERAS = ("left", "right")
SENSOR_WIDTH, SENSOR_HEIGHT = 346, 260
X, Y, T, P = range(4)


def matches(h5: h5py.File) -> bool:
    return isinstance(h5.get("davis"), h5py.Group)


class MvsecRecording(Recording):
    format_name = "mvsec"
    read_options = frozenset({"camera"})

    def __init__(self, path: str | Path, options: ReadOptions = ReadOptions()):
        camera = options.camera
        if camera not in CAMERAS:
            raise InputError(path, f"unknown MVSEC camera '{camera}' (choose left or right)")
        self._h5 = open_h5(path)
        try:
            base = f"davis/{camera}"
            self._events = require(self._h5, f"{base}/events", self.format_name)
            if self._events.ndim != 2 or self._events.shape[1] != 4:
                raise CorruptFileError(path, f"'{base}/events' has shape {self._events.shape}, expected (N, 4)")
            if self._events.dtype != np.float64:
                # float32 seconds near 1.5e9 resolve 128 s; integers hold no sub-second time
                raise CorruptFileError(path, f"'{base}/events' is {self._events.dtype}, expected float64 (x, y, t in s, p)")
            check_stored(self._events)
            n_events = self._events.shape[0]
            self._t_first_s = float(self._events[0, T]) if n_events else 0.0
            if not np.isfinite(self._t_first_s):
                raise CorruptFileError(path, f"event 0 has the time {self._t_first_s} s")
            frames = None
            width, height = SENSOR_WIDTH, SENSOR_HEIGHT
            if f"{base}/image_raw" in self._h5:
                images, stamps = require_frames(self._h5, f"{base}/image_raw", f"{base}/image_raw_ts",
                                                self.format_name, "f")
                height, width = images.shape[1:]
                frames = TimedImages.of_array(images, lambda: self._relative_us(stamps[:]))
            super().__init__(
                path,
                width=width,
                height=height,
                n_events=n_events,
                t0_us=int(np.rint(self._t_first_s * 1e6)),
                frames=frames,
            )
            # MVSEC's own files store the table contiguous: read straight from the file where so
            self._rows = mapped_rows(self._events) or self._events
        except BaseException:
            self._h5.close()
            raise

    def _relative_us(self, seconds: np.ndarray, first_index: int | None = None) -> np.ndarray:
        """Relative integer microseconds; non-finite seconds are refused, naming the first (an
        event index when ``first_index`` is given, else an image)."""
        relative = np.empty(len(seconds), np.int64)
        with PARALLEL_LAUNCH_LOCK:
            bad = _relative_microseconds(seconds, self._t_first_s, relative)
        self._refuse_time(seconds, bad, first_index)
        return relative

    def _refuse_time(self, seconds: np.ndarray, bad: int, first_index: int | None) -> None:
        if bad >= 0:
            what = f"event {first_index + bad}" if first_index is not None else f"image {bad}"
            raise CorruptFileError(self.path, f"{what} has the time {float(seconds[bad])} s")

    def _read_columns(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        block = self._rows[start:stop]
        relative = np.empty(len(block), np.int64)
        with PARALLEL_LAUNCH_LOCK:
            unusual, bad_time = _decode_rows(block, self._t_first_s, relative)
        # whole pixel coordinates (those outside the sensor are dropped and counted later) and a
        # polarity of -1/+1 (0/1 in some conversions: positive means > 0 either way)
        if unusual >= 0:
            x, y, p = (float(v) for v in block[unusual, [X, Y, P]])
            raise CorruptFileError(self.path, f"event {start + unusual} has x {x}, y {y}, p {p}: "
                                              "expected whole pixel coordinates and a polarity of -1, 0 or 1")
        self._refuse_time(block[:, T], bad_time, start)
        return relative, block[:, X], block[:, Y], block[:, P]

    def _timestamps(self, start: int, stop: int) -> np.ndarray:
        return self._relative_us(self._rows[start:stop, T], start)

    def close(self) -> None:
        if self._rows is not self._events:
            self._rows.close()
        self._h5.close()


# One pass over a block's rows (numpy took six, with their temporaries), on all cores.
@numba.njit(cache=True)
def _microseconds_after(seconds, t_first_s):
    """(rint((seconds - t_first_s) * 1e6) as an int64, whether that is finite and within the
    int64 range); 0 when it is not."""
    relative = (seconds - t_first_s) * 1e6
    valid = abs(relative) < MAX_TIMESTAMP_US  # False for NaN too
    return (np.int64(np.rint(relative)) if valid else np.int64(0)), valid


@numba.njit(parallel=True, nogil=True, cache=True)
def _relative_microseconds(seconds, t_first_s, out):
    """out = the seconds' relative microseconds; returns the index of the first time that is not
    valid (its ``out`` left 0), else -1."""
    n = len(seconds)
    bad = n
    for i in numba.prange(n):
        out[i], valid = _microseconds_after(seconds[i], t_first_s)
        bad = min(bad, n if valid else i)
    return bad if bad < n else -1


@numba.njit(cache=True)
def _is_unusual(x, y, p):
    """Whether x or y is not a whole number or p is not -1, 0 or 1 (NaN included)."""
    return not ((x == np.floor(x)) & (y == np.floor(y))) or is_bad_polarity(p)


@numba.njit(parallel=True, nogil=True, cache=True)
def _decode_rows(block, t_first_s, out):
    """out = the rows' relative microseconds, as _relative_microseconds; returns (the first row
    that ``_is_unusual``, the first whose time is not valid), -1 for none. Unusual rows are
    counted over all cores first (a search that stops at the first took four times as long on
    valid blocks, which all are in practice); the search only when the count finds one."""
    n = block.shape[0]
    unusual, bad_time = 0, n
    for i in numba.prange(n):
        out[i], valid = _microseconds_after(block[i, T], t_first_s)
        bad_time = min(bad_time, n if valid else i)
        unusual += np.int64(_is_unusual(block[i, X], block[i, Y], block[i, P]))
    first_unusual = -1
    if unusual:
        for i in range(n):
            if _is_unusual(block[i, X], block[i, Y], block[i, P]):
                first_unusual = i
                break
    return first_unusual, (bad_time if bad_time < n else -1)
