"""Writes the DDD17 raw layout (described in io/ddd17.py): cAER packets as variable-length rows.

Packets are built here field by field from the cAER description; ``write_ddd17`` stores them as
rows [host timestamp as ASCII digits, header, body] and leaves preallocated empty rows at the
end, as the DDD17 recorder does.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from evtools.events import Events
from evtools.io.ddd17 import FRAME, FRAME_HEADER_BYTES, OVERFLOW_SHIFT, POLARITY, SPECIAL
from evtools.io.writers import written_atomically

HEADER_FORMAT = "<hhiiiiii"
TIMESTAMP_MASK = (1 << OVERFLOW_SHIFT) - 1
ROWS_PER_WRITE = 1024
SOURCE_ID = 1
TIMESTAMP_WRAP, TIMESTAMP_RESET = 0, 1


@dataclass(frozen=True)
class CaerPacket:
    """One cAER event packet: its header fields and its body (capacity x size bytes)."""

    type: int
    size: int
    ts_offset: int
    ts_overflow: int
    capacity: int
    number: int
    valid: int
    body: bytes
    host_us: int = 0

    def header(self) -> bytes:
        return struct.pack(
            HEADER_FORMAT,
            self.type,
            SOURCE_ID,
            self.size,
            self.ts_offset,
            self.ts_overflow,
            self.capacity,
            self.number,
            self.valid,
        )


def _overflow_of(t_abs_us: np.ndarray) -> int:
    overflows = np.unique(np.asarray(t_abs_us, np.int64) >> OVERFLOW_SHIFT)
    if len(overflows) != 1:
        raise ValueError("a packet's timestamps must share one overflow value")
    return int(overflows[0])


def polarity_packet(
    t_abs_us: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    capacity: int | None = None,
    host_us: int = 0,
) -> CaerPacket:
    """A polarity packet; ``valid`` (default all) sets each event's valid bit, and slots beyond
    the events up to ``capacity`` are left as zero slack."""
    n = len(t_abs_us)
    valid = np.ones(n, bool) if valid is None else np.asarray(valid, bool)
    capacity = n if capacity is None else capacity
    data = (
        (np.asarray(x, np.uint32) << 17)
        | (np.asarray(y, np.uint32) << 2)
        | ((np.asarray(p) > 0).astype(np.uint32) << 1)
        | valid.astype(np.uint32)
    )
    slots = np.zeros((capacity, 2), "<u4")
    slots[:n, 0] = data
    slots[:n, 1] = np.asarray(t_abs_us, np.int64) & TIMESTAMP_MASK
    return CaerPacket(POLARITY, 8, 4, _overflow_of(t_abs_us), capacity, n, int(valid.sum()), slots.tobytes(), host_us)


def frame_packet(t_end_abs_us: int, image: np.ndarray, *, exposure_us: int = 1000, host_us: int = 0) -> CaerPacket:
    """A packet of one valid frame; the uint8 image is stored as 16-bit pixels (value << 8)."""
    height, width = image.shape
    overflow = _overflow_of(np.array([t_end_abs_us]))
    end = t_end_abs_us & TIMESTAMP_MASK
    start = max(end - exposure_us, 0)
    words = np.array([1, start, end, start, end, width, height, 0, 0], "<i4")
    pixels = (np.asarray(image, np.uint16) << 8).astype("<u2")
    body = words.tobytes() + pixels.tobytes()
    return CaerPacket(FRAME, FRAME_HEADER_BYTES + pixels.nbytes, 0, overflow, 1, 1, 1, body, host_us)


def special_packet(t_abs_us: int, kind: int = TIMESTAMP_WRAP, *, host_us: int = 0) -> CaerPacket:
    """A special packet of one event: the type in data bits 1..7, valid bit set."""
    overflow = _overflow_of(np.array([t_abs_us]))
    body = np.array([(kind << 1) | 1, t_abs_us & TIMESTAMP_MASK], "<u4").tobytes()
    return CaerPacket(SPECIAL, 8, 4, overflow, 1, 1, 1, body, host_us)


def packets_from_events(
    events: Events, *, t0_us: int, frames: Iterable[tuple[int, np.ndarray]] = (), events_per_packet: int = 512
) -> Iterator[CaerPacket]:
    """Polarity packets of at most ``events_per_packet`` events, cut at every overflow change,
    interleaved in time with one frame packet per (relative time, image) in ``frames``."""
    t_abs = t0_us + events.t
    frames = sorted(frames, key=lambda frame: frame[0])
    start, next_frame = 0, 0
    while start < len(events):
        stop = min(start + events_per_packet, len(events))
        overflow_end = ((int(t_abs[start]) >> OVERFLOW_SHIFT) + 1) << OVERFLOW_SHIFT
        stop = min(stop, start + int(np.searchsorted(t_abs[start:stop], overflow_end, side="left")))
        while next_frame < len(frames) and t0_us + frames[next_frame][0] <= t_abs[start]:
            yield frame_packet(t0_us + frames[next_frame][0], frames[next_frame][1], host_us=int(t_abs[start]))
            next_frame += 1
        part = slice(start, stop)
        yield polarity_packet(t_abs[part], events.x[part], events.y[part], events.p[part], host_us=int(t_abs[start]))
        start = stop
    for t_rel, image in frames[next_frame:]:
        yield frame_packet(t0_us + t_rel, image, host_us=t0_us + t_rel)


def write_ddd17(
    path: str | Path,
    packets: Iterable[CaerPacket],
    *,
    signals: dict[str, np.ndarray] | None = None,
    spare_rows: int = 16,
) -> Path:
    """Writes packets (streamed) as ``dvs/data`` rows, then ``spare_rows`` empty rows, and each
    vehicle signal as ``<name>/data`` (R, 2) [us, value] plus preallocated zero rows."""
    with written_atomically(path) as partial, h5py.File(partial, "w") as h5:
        data = h5.create_dataset(
            "dvs/data", (0, 3), h5py.vlen_dtype(np.uint8), maxshape=(None, 3), chunks=(ROWS_PER_WRITE, 3)
        )
        host = h5.create_dataset("dvs/timestamp", (0,), np.int64, maxshape=(None,), chunks=(ROWS_PER_WRITE,))
        n = 0
        for block in _batched(packets, ROWS_PER_WRITE):
            rows = np.empty((len(block), 3), object)
            for i, packet in enumerate(block):
                rows[i, 0] = np.frombuffer(str(packet.host_us).encode("ascii"), np.uint8)
                rows[i, 1] = np.frombuffer(packet.header(), np.uint8)
                rows[i, 2] = np.frombuffer(packet.body, np.uint8)
            data.resize((n + len(block), 3))
            host.resize((n + len(block),))
            data[n:] = rows
            host[n:] = [packet.host_us for packet in block]
            n += len(block)
        data.resize((n + spare_rows, 3))
        host.resize((n + spare_rows,))
        for name, table in (signals or {}).items():
            table = np.asarray(table, np.float64)
            padded = np.zeros((len(table) + spare_rows, 2))
            padded[: len(table)] = table
            h5.create_dataset(f"{name}/data", data=padded)
            h5.create_dataset(f"{name}/timestamp", data=padded[:, 0].astype(np.int64))
    return Path(path)


def _batched(items: Iterable[CaerPacket], size: int) -> Iterator[list[CaerPacket]]:
    block: list[CaerPacket] = []
    for item in items:
        block.append(item)
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block
