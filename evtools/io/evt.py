"""Prophesee EVT2 and EVT3 .raw files: '%' header lines, then little-endian words, decoded whole
at opening by Numba (memory grows with the file: these formats cannot be addressed by event index
without decoding everything before it).

EVT2 (32-bit words, type in bits 28-31): CD_OFF 0x0 and CD_ON 0x1 carry the 6 low time bits
(22-27), x (11-21) and y (0-10); TIME_HIGH 0x8 carries the 28 high time bits (0-27).
EVT3 (16-bit words, type in bits 12-15): ADDR_Y 0x0 sets y (0-10); ADDR_X 0x2 is one event at x
(0-10) with polarity bit 11; VECT_BASE_X 0x3 sets the base x (0-10) and polarity (11); VECT_12
0x4 and VECT_8 0x5 are events at base x + i for each set bit i, then advance the base; TIME_LOW
0x6 and TIME_HIGH 0x8 carry 12 time bits each (24 in all, unrolled past their wrap). Other word
types (triggers, continued, others) are skipped."""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np

from evtools.errors import CorruptFileError
from evtools.io.decoded import DecodedRecording
from evtools.io.prophesee_header import evt_version, geometry, read_header
from evtools.io.recording import ReadOptions


@numba.njit(cache=True)
def decode_evt2(words):
    n = 0
    for w in words:
        if (w >> 28) <= 1:
            n += 1
    t = np.empty(n, np.int64)
    x = np.empty(n, np.uint16)
    y = np.empty(n, np.uint16)
    p = np.empty(n, np.int8)
    time_high = np.int64(0)
    k = 0
    for w in words:
        kind = w >> 28
        if kind == 0x8:
            time_high = np.int64(w & 0xFFFFFFF) << 6
        elif kind <= 1:
            t[k] = time_high | ((w >> 22) & 0x3F)
            x[k] = (w >> 11) & 0x7FF
            y[k] = w & 0x7FF
            p[k] = 1 if kind == 1 else -1
            k += 1
    return t, x, y, p


@numba.njit(cache=True)
def decode_evt3(words):
    capacity = 0
    for w in words:
        kind = w >> 12
        if kind == 0x2:
            capacity += 1
        elif kind == 0x4:
            capacity += 12
        elif kind == 0x5:
            capacity += 8
    t = np.empty(capacity, np.int64)
    x = np.empty(capacity, np.uint16)
    y = np.empty(capacity, np.uint16)
    p = np.empty(capacity, np.int8)
    k = 0
    row = 0
    base_x = 0
    polarity = 1
    time_low = np.int64(0)
    time_high = np.int64(0)
    wraps = np.int64(0)
    for w in words:
        kind = w >> 12
        value = w & 0xFFF
        if kind == 0x0:
            row = value & 0x7FF
        elif kind == 0x2:
            t[k] = (wraps << 24) | (time_high << 12) | time_low
            x[k] = value & 0x7FF
            y[k] = row
            p[k] = 1 if value & 0x800 else -1
            k += 1
        elif kind == 0x3:
            base_x = value & 0x7FF
            polarity = 1 if value & 0x800 else -1
        elif kind == 0x4 or kind == 0x5:
            bits = 12 if kind == 0x4 else 8
            for i in range(bits):
                if value >> i & 1:
                    t[k] = (wraps << 24) | (time_high << 12) | time_low
                    x[k] = base_x + i
                    y[k] = row
                    p[k] = polarity
                    k += 1
            base_x += bits
        elif kind == 0x6:
            time_low = np.int64(value)
        elif kind == 0x8:
            if value < time_high and time_high - value > 0x800:  # the 24-bit time wrapped
                wraps += 1
            time_high = np.int64(value)
    return t[:k], x[:k], y[:k], p[:k]


def matches(path: Path) -> str | None:
    """"evt2" or "evt3" when the file's header names that encoding."""
    version = evt_version(read_header(path)[0])
    return {"2.0": "evt2", "3.0": "evt3"}.get(version)


class _EvtRecording(DecodedRecording):
    word: str
    decoder = None

    def __init__(self, path: str | Path, options: ReadOptions = ReadOptions()):
        header, offset = read_header(path)
        size = geometry(header)
        if size is None:
            raise CorruptFileError(path, "the header gives no sensor geometry and no known plugin name")
        words = np.fromfile(path, self.word, offset=offset)
        super().__init__(path, *type(self).decoder(words), *size)


class Evt2Recording(_EvtRecording):
    format_name = "evt2"
    word = "<u4"
    decoder = decode_evt2


class Evt3Recording(_EvtRecording):
    format_name = "evt3"
    word = "<u2"
    decoder = decode_evt3
