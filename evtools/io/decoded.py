"""Recordings decoded whole at opening: the event columns live in memory (formats whose events
cannot be addressed by index without decoding everything before them, such as EVT2 and EVT3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evtools.io.recording import Recording


class DecodedRecording(Recording):
    def __init__(self, path: str | Path, t_abs: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray,
                 width: int, height: int):
        t0 = int(t_abs[0]) if len(t_abs) else 0
        self._columns = (t_abs.astype(np.int64) - t0, x, y, p)
        super().__init__(path, width=width, height=height, n_events=len(t_abs), t0_us=t0)

    def _read_columns(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        return tuple(column[start:stop] for column in self._columns)

    def _timestamps(self, start: int, stop: int) -> np.ndarray:
        return self._columns[0][start:stop]
