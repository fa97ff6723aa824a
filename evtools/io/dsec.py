"""DSEC ``events.h5`` files (read side; the writer is io/writers/dsec.py).

``events/x``, ``events/y`` uint16, ``events/t`` uint32 microseconds after ``t_offset``,
``events/p`` uint8 0/1; ``ms_to_idx`` (uint64) holds, for each millisecond m, the index of the
first event with t >= 1000 m; ``t_offset`` (int64 scalar) is the absolute time of t = 0.
The files are zstd-compressed: reading them needs the optional hdf5plugin.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from evtools.errors import CorruptFileError
from evtools.io.hdf5 import open_h5, require, require_columns
from evtools.io.recording import ReadOptions, Recording

SENSOR_WIDTH, SENSOR_HEIGHT = 640, 480


def matches(h5: h5py.File) -> bool:
    return isinstance(h5.get("events"), h5py.Group) and "ms_to_idx" in h5


class DsecRecording(Recording):
    format_name = "dsec"
    stores_sensor_size = False  # 640x480 is assumed (DSEC's Prophesee Gen3.1), not stored

    def __init__(self, path: str | Path, options: ReadOptions = ReadOptions()):
        self._h5 = open_h5(path)
        try:
            self._x, self._y, self._t, self._p = require_columns(
                self._h5, [f"events/{name}" for name in "xytp"], self.format_name)
            table = require(self._h5, "ms_to_idx", self.format_name)
            if table.dtype.kind not in "iu":
                raise CorruptFileError(path, f"'ms_to_idx' is {table.dtype}, expected integers")
            self._ms_to_idx = table[:].astype(np.int64)
            offset = require(self._h5, "t_offset", self.format_name)
            if offset.shape not in ((), (1,)) or offset.dtype.kind not in "iu":
                raise CorruptFileError(path, f"'t_offset' is {offset.dtype} {offset.shape}, expected an integer scalar")
            t_offset = int(offset[()] if offset.shape == () else offset[0])
            n_events = len(self._t)
            self._t_first = int(self._t[0]) if n_events else 0
            self._check_ms_to_idx(path, n_events)
            super().__init__(
                path,
                width=SENSOR_WIDTH,
                height=SENSOR_HEIGHT,
                n_events=n_events,
                t0_us=t_offset + self._t_first,
            )
        except BaseException:
            self._h5.close()
            raise

    def _check_ms_to_idx(self, path, n_events: int) -> None:
        """The index table is used to cut windows, so it is checked first: non-decreasing indices
        within the events, and at 65 milliseconds spread over it, the first event at or after the
        millisecond (a point read each: cheap)."""
        table = self._ms_to_idx
        if table.ndim != 1 or (len(table) and (table.min() < 0 or table.max() > n_events or (np.diff(table) < 0).any())):
            raise CorruptFileError(path, f"'ms_to_idx' is no non-decreasing table of event indices 0..{n_events}")
        for ms in np.unique(np.linspace(0, len(table) - 1, 65).astype(np.int64)) if len(table) else ():
            index = int(table[ms])
            after = index == n_events or int(self._t[index]) >= 1000 * ms
            before = index == 0 or int(self._t[index - 1]) < 1000 * ms
            if not (after and before):
                raise CorruptFileError(path, f"'ms_to_idx' says event {index} is the first at or after {ms} ms, "
                                             "which events/t contradicts")

    def _read_columns(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        return self._timestamps(start, stop), self._x[start:stop], self._y[start:stop], self._p[start:stop]

    def _timestamps(self, start: int, stop: int) -> np.ndarray:
        return self._t[start:stop].astype(np.int64) - self._t_first

    def index_at_time(self, t_us: int) -> int:
        """Narrows the search to one millisecond with ``ms_to_idx``, then searches that slice."""
        t_file = t_us + self._t_first
        if t_file <= self._t_first:
            return 0
        ms = t_file // 1000
        if ms >= len(self._ms_to_idx):
            return self.n_events
        lo = int(self._ms_to_idx[ms])
        hi = int(self._ms_to_idx[ms + 1]) if ms + 1 < len(self._ms_to_idx) else self.n_events
        return lo + int(np.searchsorted(self._t[lo:hi], t_file, side="left"))

    def indices_at_times(self, times_us: np.ndarray, chunk_events: int = 0) -> np.ndarray:
        return np.array([self.index_at_time(int(t)) for t in np.asarray(times_us)], np.int64)

    def close(self) -> None:
        self._h5.close()
