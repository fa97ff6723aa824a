"""Prophesee EVT2 and EVT3 .raw files: '%' header lines, then little-endian words, decoded whole
at opening by Numba (evt_words.py) (memory grows with the file: these formats cannot be addressed by event index
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

import numpy as np

from evtools.errors import CorruptFileError
from evtools.io.decoded import DecodedRecording
from evtools.io.prophesee_header import evt_version, geometry, read_header
from evtools.io.recording import ReadOptions


def matches(path: Path) -> str | None:
    """"evt2" or "evt3" when the file's header names that encoding."""
    version = evt_version(read_header(path)[0])
    return {"2.0": "evt2", "3.0": "evt3"}.get(version)


class _EvtRecording(DecodedRecording):
    word: str
    decoder: str  # the name of its Numba decoder in evt_words.py, imported on first use (Numba is heavy)

    def __init__(self, path: str | Path, options: ReadOptions = ReadOptions()):
        header, offset = read_header(path)
        size = geometry(header)
        self.stores_sensor_size = size is not None
        size = size or options.sensor_size
        if size is None:
            raise CorruptFileError(path, "the header gives no sensor geometry and no known plugin name; "
                                         "give it with --sensor-size WxH")
        from evtools.io import evt_words

        words = np.fromfile(path, self.word, offset=offset)
        super().__init__(path, *getattr(evt_words, self.decoder)(words), *size)


class Evt2Recording(_EvtRecording):
    format_name = "evt2"
    word = "<u4"
    decoder = "decode_evt2"


class Evt3Recording(_EvtRecording):
    format_name = "evt3"
    word = "<u2"
    decoder = "decode_evt3"
