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

from evtools.errors import CorruptFileError, MissingDatasetError
from evtools.io.hdf5 import attribute, open_h5, positive_int_attribute, require_columns, require_frames
from evtools.io.recording import ReadOptions, Recording, TimedImages

FORMAT_TAG = "events"
FORMAT_VERSION = 1
REQUIRED_ATTRS = ("width", "height", "t0_us")


def matches(h5: h5py.File) -> bool:
    tag = attribute(h5, "evtools_format", None)
    if isinstance(tag, bytes):  # stored as fixed-length ASCII
        tag = tag.decode("utf-8", "replace")
    return isinstance(tag, str) and tag == FORMAT_TAG


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
                images, times = require_frames(self._h5, "frames", "frames_t", self.format_name, "iu")
                frames = TimedImages.of_array(images, lambda: times[:])
            t0 = attribute(self._h5, "t0_us")
            if np.ndim(t0) != 0 or not np.issubdtype(np.asarray(t0).dtype, np.integer):
                raise CorruptFileError(path, f"attribute 't0_us' is {t0!r}, expected whole microseconds")
            super().__init__(
                path,
                width=positive_int_attribute(self._h5, "width"),
                height=positive_int_attribute(self._h5, "height"),
                n_events=len(self._columns[0]),
                t0_us=int(t0),
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
