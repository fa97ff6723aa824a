"""The N-MNIST / N-Caltech101 binary format (Orchard et al. 2015): no header, 5-byte big-endian
events: x (8 bits), y (8 bits), then polarity (1 bit, 1 = ON) and a 23-bit timestamp in
microseconds. The format has no signature, so it is never detected: open it with --format nmnist.
The sensor is the ATIS crop of N-MNIST, 34 x 34 (larger N-Caltech101 coordinates are read as
they are and dropped as outside it unless the file's maximum is larger: the size then grows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evtools.errors import CorruptFileError
from evtools.io.recording import ReadOptions, Recording

RECORD_BYTES = 5
NMNIST_SIZE = 34


class NmnistRecording(Recording):
    format_name = "nmnist"
    stores_sensor_size = False  # 34x34 (or what the events reach) is assumed

    def __init__(self, path: str | Path, options: ReadOptions = ReadOptions()):
        size = Path(path).stat().st_size
        if size % RECORD_BYTES:
            raise CorruptFileError(path, f"{size} bytes is not a whole number of 5-byte N-MNIST events")
        n = size // RECORD_BYTES
        self._bytes = np.memmap(path, np.uint8, "r", shape=(n, RECORD_BYTES)) if n else np.empty((0, 5), np.uint8)
        self._t_first = int(self._timestamps_abs(0, 1)[0]) if n else 0
        width = max(NMNIST_SIZE, int(self._bytes[:, 0].max()) + 1) if n else NMNIST_SIZE
        height = max(NMNIST_SIZE, int(self._bytes[:, 1].max()) + 1) if n else NMNIST_SIZE
        super().__init__(path, width=width, height=height, n_events=n, t0_us=self._t_first)

    def _timestamps_abs(self, start: int, stop: int) -> np.ndarray:
        raw = self._bytes[start:stop].astype(np.int64)
        return ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]

    def _read_columns(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        raw = np.array(self._bytes[start:stop])
        return self._timestamps(start, stop), raw[:, 0], raw[:, 1], (raw[:, 2] >> 7) > 0

    def _timestamps(self, start: int, stop: int) -> np.ndarray:
        return self._timestamps_abs(start, stop) - self._t_first
