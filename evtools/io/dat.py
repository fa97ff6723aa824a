"""Prophesee DAT v2 files (N-CARS and other ATIS recordings): '%' header lines, then one byte of
event type (0: CD events) and one of event size (8), then 8-byte little-endian events: uint32 t
in microseconds and uint32 packed x (bits 0-13), y (bits 14-27), polarity (bits 28-31, 0 OFF).
Events are memory-mapped and decoded by index range."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evtools.errors import CorruptFileError
from evtools.io.prophesee_header import ATIS_GEOMETRY, geometry, read_header
from evtools.io.recording import ReadOptions, Recording

RECORD = np.dtype([("t", "<u4"), ("data", "<u4")])
CD_TYPE, EVENT_SIZE = 0, 8


def matches(path: Path) -> bool:
    header, offset = read_header(path)
    if not header or "evt" in header:
        return False
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(2) == bytes([CD_TYPE, EVENT_SIZE])


class DatRecording(Recording):
    format_name = "dat"

    def __init__(self, path: str | Path, options: ReadOptions = ReadOptions()):
        header, offset = read_header(path)
        with open(path, "rb") as handle:
            handle.seek(offset)
            kind = handle.read(2)
        if kind != bytes([CD_TYPE, EVENT_SIZE]):
            raise CorruptFileError(path, f"DAT event type and size are {list(kind)}, expected [0, 8] (CD events)")
        size = Path(path).stat().st_size - offset - 2
        if size % EVENT_SIZE:
            raise CorruptFileError(path, f"{size} bytes of events is not a whole number of 8-byte events")
        n = size // EVENT_SIZE
        self._records = np.memmap(path, RECORD, "r", offset + 2, (n,)) if n else np.empty(0, RECORD)
        self._t_first = int(self._records["t"][0]) if n else 0
        stored = geometry(header)
        self.stores_sensor_size = stored is not None
        width, height = stored or ATIS_GEOMETRY
        super().__init__(path, width=width, height=height, n_events=n, t0_us=self._t_first)

    def _read_columns(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        records = np.array(self._records[start:stop])
        data = records["data"]
        return (records["t"].astype(np.int64) - self._t_first, data & 0x3FFF, (data >> 14) & 0x3FFF, (data >> 28) > 0)

    def _timestamps(self, start: int, stop: int) -> np.ndarray:
        return self._records["t"][start:stop].astype(np.int64) - self._t_first
