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
import numpy as np

from evtools.errors import CorruptFileError, InputError
from evtools.io.hdf5 import open_h5, require
from evtools.io.recording import ReadOptions, Recording, TimedImages

CAMERAS = ("left", "right")
SENSOR_WIDTH, SENSOR_HEIGHT = 346, 260
X, Y, T, P = range(4)


def matches(h5: h5py.File) -> bool:
    return isinstance(h5.get("davis"), h5py.Group)


class MvsecRecording(Recording):
    format_name = "mvsec"

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
            n_events = self._events.shape[0]
            self._t_first_s = float(self._events[0, T]) if n_events else 0.0
            frames = None
            width, height = SENSOR_WIDTH, SENSOR_HEIGHT
            if f"{base}/image_raw" in self._h5:
                images = require(self._h5, f"{base}/image_raw", self.format_name)
                stamps = require(self._h5, f"{base}/image_raw_ts", self.format_name)
                height, width = images.shape[1:]
                frames = TimedImages(
                    len(images), (height, width), lambda i: images[i], lambda: self._relative_us(stamps[:])
                )
            super().__init__(
                path,
                width=width,
                height=height,
                n_events=n_events,
                t0_us=int(np.rint(self._t_first_s * 1e6)),
                frames=frames,
            )
        except BaseException:
            self._h5.close()
            raise

    def _relative_us(self, seconds: np.ndarray) -> np.ndarray:
        return np.rint((seconds - self._t_first_s) * 1e6).astype(np.int64)

    def _read_columns(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        block = self._events[start:stop]
        # MVSEC polarity is -1/+1 (0/1 in some conversions): positive means > 0 either way
        return self._relative_us(block[:, T]), block[:, X], block[:, Y], block[:, P] > 0

    def _timestamps(self, start: int, stop: int) -> np.ndarray:
        return self._relative_us(self._events[start:stop, T])

    def close(self) -> None:
        self._h5.close()
