"""DDD17 raw recordings (Binas et al. 2017; DAVIS346, 346 x 260), read side.

``dvs/data`` is an (R, 3) table of variable-length uint8 rows, one cAER packet per row:
[host timestamp as ASCII decimal digits, 28-byte little-endian header, body]. The header is
``int16 type, int16 source, int32 event size, int32 ts offset, int32 ts overflow,
int32 capacity, int32 number, int32 valid``; the body holds ``capacity`` slots of ``event size``
bytes, of which the first ``number`` exist and ``valid`` carry the valid bit. ``dvs/timestamp``
holds host microseconds. The recorder preallocates its tables, so trailing rows are empty.

Polarity packets (type 1): 8-byte events, uint32 data then uint32 timestamp; data bit 0 is
valid, bit 1 polarity, bits 2..16 y, bits 17..31 x. The full timestamp is
``(ts_overflow << 31) | timestamp``, so time keeps increasing past the 31-bit wrap (35.8 min).
Frame packets (type 2): each slot starts with nine 32-bit words (info, start of frame, end of
frame, start of exposure, end of exposure, size x, size y, position x, position y), then
uint16 pixels row-major; the frame's time is end of frame with the packet's overflow and the
8-bit image is the 16-bit value >> 8. Special packets (type 0) mark timestamp wraps and resets;
the overflow field already accounts for wraps, so they are skipped, as are IMU packets.

Vehicle signals, ``<name>/data`` (R, 2) [host us, value], are exposed in ``signals``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from evtools.errors import CorruptFileError, reading
from evtools.io.hdf5 import entry_name, holds_byte_rows, open_h5, require
from evtools.io.hdf5_heap import GlobalHeapCheck
from evtools.io.recording import ReadOptions, Recording, SignalsOnAccess, TimedImages

HEADER_DTYPE = np.dtype(
    [
        ("type", "<i2"),
        ("source", "<i2"),
        ("size", "<i4"),
        ("ts_offset", "<i4"),
        ("ts_overflow", "<i4"),
        ("capacity", "<i4"),
        ("number", "<i4"),
        ("valid", "<i4"),
    ]
)
SPECIAL, POLARITY, FRAME = 0, 1, 2
POLARITY_EVENT_BYTES = 8
POLARITY_TS_OFFSET = 4
FRAME_HEADER_BYTES = 36
HOST_TS, HEADER, BODY = range(3)
SENSOR_WIDTH, SENSOR_HEIGHT = 346, 260
SCAN_ROWS = 8192
OVERFLOW_SHIFT = 31


class PacketError(ValueError):
    """A packet whose header and body disagree; the reader adds the file and row."""


def matches(h5: h5py.File) -> bool:
    return isinstance(h5.get("dvs"), h5py.Group) and "data" in h5["dvs"]


def first_bad_header(headers: np.ndarray) -> tuple[int, str] | None:
    """The position of the first header that contradicts itself or its event type's layout, and why."""
    valid, number, capacity = headers["valid"], headers["number"], headers["capacity"]
    counts_bad = ~((valid >= 0) & (valid <= number) & (number <= capacity))
    polarity_bad = (headers["type"] == POLARITY) & (
        (headers["size"] != POLARITY_EVENT_BYTES) | (headers["ts_offset"] != POLARITY_TS_OFFSET)
    )
    frame_bad = (headers["type"] == FRAME) & (headers["size"] < FRAME_HEADER_BYTES)
    bad = counts_bad | polarity_bad | frame_bad
    if not bad.any():
        return None
    i = int(np.argmax(bad))
    h = headers[i]
    if counts_bad[i]:
        return i, f"header counts {h['valid']} valid of {h['number']} events in {h['capacity']} slots"
    if polarity_bad[i]:
        return i, f"polarity header gives event size {h['size']} and ts offset {h['ts_offset']}, expected 8 and 4"
    return i, f"frame header gives event size {h['size']}, below the 36-byte frame header"


def _slots(body: np.ndarray, header: np.void) -> np.ndarray:
    """The body as (number, size) bytes: the slots that exist, after checking the body's length."""
    expected = int(header["capacity"]) * int(header["size"])
    if len(body) != expected:
        raise PacketError(
            f"header gives {header['capacity']} slots of {header['size']} bytes ({expected}), body has {len(body)}"
        )
    return body.reshape(int(header["capacity"]), int(header["size"]))[: int(header["number"])]


def _full_time(overflow: int, timestamp: np.ndarray) -> np.ndarray:
    return (np.int64(overflow) << OVERFLOW_SHIFT) | timestamp.astype(np.int64)


def decode_polarity(body: np.ndarray, header: np.void) -> tuple[np.ndarray, ...]:
    """The valid events of a polarity packet: absolute t (us), x, y, polarity bit (0/1)."""
    words = np.ascontiguousarray(_slots(body, header)).view("<u4")
    data, timestamp = words[:, 0], words[:, 1]
    valid = (data & 1).astype(bool)
    n_valid = int(np.count_nonzero(valid))
    if n_valid != header["valid"]:
        raise PacketError(f"header counts {header['valid']} valid events, body has {n_valid}")
    data = data[valid]
    return _full_time(header["ts_overflow"], timestamp[valid]), data >> 17, (data >> 2) & 0x7FFF, (data >> 1) & 1


def decode_frames(body: np.ndarray, header: np.void) -> list[tuple[int, np.ndarray]]:
    """The valid frames of a frame packet as (absolute end-of-frame time in us, uint8 image)."""
    frames = []
    for slot in _slots(body, header):
        words = np.ascontiguousarray(slot[:FRAME_HEADER_BYTES]).view("<i4")
        if not words[0] & 1:
            continue
        size_x, size_y = int(words[5]), int(words[6])
        pixel_bytes = 2 * size_x * size_y
        if size_x <= 0 or size_y <= 0 or FRAME_HEADER_BYTES + pixel_bytes > len(slot):
            raise PacketError(f"frame of {size_x} x {size_y} pixels does not fit a {len(slot)}-byte slot")
        pixels = np.ascontiguousarray(slot[FRAME_HEADER_BYTES : FRAME_HEADER_BYTES + pixel_bytes]).view("<u2")
        image = (pixels >> 8).astype(np.uint8).reshape(size_y, size_x)
        frames.append((int(_full_time(header["ts_overflow"], words[2:3])[0]), image))
    if len(frames) != header["valid"]:
        raise PacketError(f"header counts {header['valid']} valid frames, body has {len(frames)}")
    return frames


def _filled_rows(h5: h5py.File, name: str | bytes) -> np.ndarray:
    """A vehicle signal's table ([us, value] rows) without its preallocated empty rows (time 0)
    at the end."""
    dataset = require(h5, name + (b"/data" if isinstance(name, bytes) else "/data"), "ddd17")
    if dataset.ndim != 2 or dataset.shape[1] < 2 or dataset.dtype.kind not in "iuf":
        raise CorruptFileError(h5.filename, f"'{entry_name(name)}/data' is {dataset.dtype} {dataset.shape}, "
                                            "expected (R, 2) rows of [us, value]")
    with reading(h5.filename):
        table = dataset[:]
    filled = np.flatnonzero(table[:, 0] != 0)
    return table[: filled[-1] + 1] if len(filled) else table[:0]


class Ddd17Recording(Recording):
    """A DDD17 recording. ``options.rotate180`` turns events and frames by 180 degrees, the
    orientation the DDD17 authors' tools produce by default; evtools keeps the sensor's own."""

    format_name = "ddd17"
    read_options = frozenset({"rotate180"})

    def __init__(self, path: str | Path, options: ReadOptions = ReadOptions()):
        self._h5 = open_h5(path)
        try:
            self._data = require(self._h5, "dvs/data", self.format_name)
            if self._data.ndim != 2 or self._data.shape[1] != 3 or self._data.dtype.kind != "O":
                raise CorruptFileError(
                    path, f"'dvs/data' is {self._data.dtype} {self._data.shape}, expected (R, 3) variable-length rows"
                )
            if not holds_byte_rows(self._data):
                raise CorruptFileError(path, "'dvs/data' is not of variable-length rows of bytes (its HDF5 datatype "
                                             "is another or damaged)")
            self._heap = GlobalHeapCheck(self._data)
            self._rotate180 = options.rotate180
            rows, headers = self._scan_headers()
            polarity = headers["type"] == POLARITY
            self._pol_rows, self._pol_headers = rows[polarity], headers[polarity]
            self._pol_offsets = np.concatenate([[0], np.cumsum(self._pol_headers["valid"], dtype=np.int64)])
            frame = (headers["type"] == FRAME) & (headers["valid"] > 0)
            self._frame_rows, self._frame_headers = rows[frame], headers[frame]
            self._frame_offsets = np.concatenate([[0], np.cumsum(self._frame_headers["valid"], dtype=np.int64)])
            n_events = int(self._pol_offsets[-1])
            self._t0_abs = 0
            if n_events:
                first = int(np.argmax(self._pol_headers["valid"] > 0))
                self._t0_abs = int(self._decode_packets(first, first + 1)[0][0])
            width, height, frames = SENSOR_WIDTH, SENSOR_HEIGHT, None
            n_frames = int(self._frame_offsets[-1])
            if n_frames:
                height, width = self._frame(0)[1].shape
                frames = TimedImages(n_frames, (height, width), lambda i: self._frame(i)[1], self._frame_times)
            groups = {  # each signal's name as text: its group's key
                entry_name(name): name
                for name, item in self._h5.items()
                if name != "dvs" and isinstance(item, h5py.Group) and isinstance(item.get("data"), h5py.Dataset)
            }
            signal_names = sorted(groups)
            super().__init__(
                path,
                width=width,
                height=height,
                n_events=n_events,
                t0_us=self._t0_abs,
                frames=frames,
                signals=SignalsOnAccess(signal_names, lambda: {name: _filled_rows(self._h5, groups[name]) for name in signal_names}),
            )
        except BaseException:
            self._h5.close()
            raise

    def _rows(self, rows: slice, column: int) -> np.ndarray:
        """One column of rows of ``dvs/data``, their global heap checked before HDF5 reads it."""
        self._heap.check(rows, column)
        return self._data[rows, column]

    def _fail(self, row: int, err: PacketError) -> CorruptFileError:
        return CorruptFileError(self._h5.filename, f"dvs/data row {row}: {err}")

    def _scan_headers(self) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers and headers of every non-empty row, read in blocks of rows."""
        rows, headers = [], []
        for begin in range(0, self._data.shape[0], SCAN_ROWS):
            block = self._rows(slice(begin, begin + SCAN_ROWS), HEADER)
            lengths = np.fromiter((len(h) for h in block), np.int64, len(block))
            filled = np.flatnonzero(lengths)
            bad = filled[lengths[filled] != HEADER_DTYPE.itemsize]
            if len(bad):
                row = begin + int(bad[0])
                raise CorruptFileError(
                    self._h5.filename, f"dvs/data row {row}: header has {lengths[bad[0]]} bytes, expected 28"
                )
            if len(filled):
                rows.append(begin + filled)
                headers.append(np.concatenate([block[i] for i in filled]).view(HEADER_DTYPE))
        rows_all = np.concatenate(rows) if rows else np.empty(0, np.int64)
        headers_all = np.concatenate(headers) if headers else np.empty(0, HEADER_DTYPE)
        bad = first_bad_header(headers_all)
        if bad is not None:
            raise CorruptFileError(self._h5.filename, f"dvs/data row {rows_all[bad[0]]}: {bad[1]}")
        return rows_all, headers_all

    def _decode_packets(self, first: int, last: int) -> tuple[np.ndarray, ...]:
        """Concatenated valid events (absolute t, x, y, polarity bit) of polarity packets [first, last)."""
        rows = self._pol_rows[first:last]
        bodies = self._rows(slice(int(rows[0]), int(rows[-1]) + 1), BODY)
        parts = []
        for row, header in zip(rows, self._pol_headers[first:last]):
            try:
                parts.append(decode_polarity(bodies[row - rows[0]], header))
            except PacketError as err:
                raise self._fail(int(row), err) from None
        return tuple(np.concatenate(column) for column in zip(*parts))

    def _read_columns(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        first = int(np.searchsorted(self._pol_offsets, start, side="right")) - 1
        last = int(np.searchsorted(self._pol_offsets, stop, side="left"))
        t, x, y, p = self._decode_packets(first, last)
        cut = slice(start - int(self._pol_offsets[first]), stop - int(self._pol_offsets[first]))
        x, y = x[cut].astype(np.int64), y[cut].astype(np.int64)
        if self._rotate180:
            x, y = self.width - 1 - x, self.height - 1 - y
        return t[cut] - self._t0_abs, x, y, p[cut]

    def _frame(self, index: int) -> tuple[int, np.ndarray]:
        """The relative time and image of frame ``index``."""
        packet = int(np.searchsorted(self._frame_offsets, index, side="right")) - 1
        row = int(self._frame_rows[packet])
        try:
            t_abs, image = decode_frames(self._rows(slice(row, row + 1), BODY)[0], self._frame_headers[packet])[
                index - int(self._frame_offsets[packet])
            ]
        except PacketError as err:
            raise self._fail(row, err) from None
        return t_abs - self._t0_abs, np.rot90(image, 2).copy() if self._rotate180 else image

    def _frame_times(self) -> np.ndarray:
        return np.array([self._frame(i)[0] for i in range(int(self._frame_offsets[-1]))], dtype=np.int64)

    def close(self) -> None:
        self._h5.close()
