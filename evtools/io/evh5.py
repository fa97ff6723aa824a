"""evtools' own simple HDF5 event format (read side; the writer is io/writers/evh5.py).

Layout: ``events/t`` int64 us relative to the first event, ``events/x`` and ``events/y``
uint16, ``events/p`` int8 in {-1, +1}; optional ``frames`` (M, H, W) uint8 with ``frames_t``
(M,) int64 us on the same clock. Root attributes: ``evtools_format`` = "events",
``evtools_format_version`` = 1, ``width``, ``height``, ``t0_us`` (absolute time of the first event).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from evtools.errors import MissingDatasetError
from evtools.io.hdf5 import open_h5, require, require_columns
from evtools.io.recording import ReadOptions, Recording, TimedImages

FORMAT_TAG = "events"
FORMAT_VERSION = 1
REQUIRED_ATTRS = ("width", "height", "t0_us")


def matches(h5: h5py.File) -> bool:
    return h5.attrs.get("evtools_format") == FORMAT_TAG


class Evh5Recording(Recording):
    format_name = "evh5"

    def __init__(self, path: str | Path, options: ReadOptions = ReadOptions()):
        self._h5 = open_h5(path)
        try:
            self._columns = require_columns(self._h5, [f"events/{name}" for name in "txyp"], self.format_name)
            for attr in REQUIRED_ATTRS:
                if attr not in self._h5.attrs:
                    raise MissingDatasetError(path, f"missing attribute '{attr}' required by the evh5 format")
            frames = None
            if "frames" in self._h5:
                images = self._h5["frames"]
                times = require(self._h5, "frames_t", self.format_name)
                frames = TimedImages(len(images), images.shape[1:], lambda i: images[i], lambda: times[:])
            super().__init__(
                path,
                width=int(self._h5.attrs["width"]),
                height=int(self._h5.attrs["height"]),
                n_events=len(self._columns[0]),
                t0_us=int(self._h5.attrs["t0_us"]),
                frames=frames,
            )
        except BaseException:
            self._h5.close()
            raise

    def _read_columns(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        return tuple(column[start:stop] for column in self._columns)

    def _timestamps(self, start: int, stop: int) -> np.ndarray:
        return self._columns[0][start:stop]

    def close(self) -> None:
        self._h5.close()
