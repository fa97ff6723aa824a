"""Cuts the golden samples of tests/golden from ../shared/realdata and writes, beside each, the
events a plain decoder written from the format's description gives (``NAME.npy``, a structured
array of absolute t (int64 us), x, y (uint16) and p (int8, -1/+1)). The decoders below are
deliberately separate from evtools' readers (Numba, vectorised): event by event, as the format
descriptions read, so that the golden arrays check the readers instead of repeating them.

Usage: python tests/golden/make_golden.py [REALDATA]  (run once; the outputs are committed)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
EVENT = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "i1")])


def header_end(data: bytes) -> int:
    """The offset after the '%' text lines that start Prophesee files."""
    offset = 0
    while data[offset : offset + 1] == b"%":
        offset = data.index(b"\n", offset) + 1
    return offset


def decode_dat(data: bytes) -> list[tuple]:
    """DAT v2: header, event type and size bytes, then (uint32 t, uint32 x | y << 14 | p << 28)."""
    body = data[header_end(data) + 2 :]
    events = []
    for k in range(len(body) // 8):
        t = int.from_bytes(body[8 * k : 8 * k + 4], "little")
        word = int.from_bytes(body[8 * k + 4 : 8 * k + 8], "little")
        events.append((t, word & 0x3FFF, (word >> 14) & 0x3FFF, 1 if word >> 28 else -1))
    return events


def decode_evt2(data: bytes) -> list[tuple]:
    """EVT2 32-bit words: CD_OFF 0x0 / CD_ON 0x1 (t low 6 bits at 22, x at 11, y at 0),
    TIME_HIGH 0x8 (28 bits of t above the low 6)."""
    body = data[header_end(data) :]
    events, time_high = [], 0
    for k in range(len(body) // 4):
        word = int.from_bytes(body[4 * k : 4 * k + 4], "little")
        kind = word >> 28
        if kind == 0x8:
            time_high = (word & 0x0FFFFFFF) << 6
        elif kind in (0x0, 0x1):
            events.append((time_high | ((word >> 22) & 0x3F), (word >> 11) & 0x7FF, word & 0x7FF, 1 if kind else -1))
    return events


def decode_evt3(data: bytes) -> list[tuple]:
    """EVT3 16-bit words: ADDR_Y 0x0, ADDR_X 0x2 (an event; polarity bit 11), VECT_BASE_X 0x3
    (base x, polarity), VECT_12 0x4 / VECT_8 0x5 (an event at base + i per set bit, then base +=
    12 or 8), TIME_LOW 0x6 and TIME_HIGH 0x8 (12 bits each; the 24-bit time wraps)."""
    body = data[header_end(data) :]
    events = []
    y = base_x = polarity = time_low = time_high = 0
    wraps = 0
    for k in range(len(body) // 2):
        word = int.from_bytes(body[2 * k : 2 * k + 2], "little")
        kind, value = word >> 12, word & 0xFFF
        t = (wraps << 24) | (time_high << 12) | time_low
        if kind == 0x0:
            y = value & 0x7FF
        elif kind == 0x2:
            events.append((t, value & 0x7FF, y, 1 if value >> 11 else -1))
        elif kind == 0x3:
            base_x, polarity = value & 0x7FF, 1 if value >> 11 else -1
        elif kind in (0x4, 0x5):
            bits = 12 if kind == 0x4 else 8
            for i in range(bits):
                if value >> i & 1:
                    events.append((t, base_x + i, y, polarity))
            base_x += bits
        elif kind == 0x6:
            time_low = value
        elif kind == 0x8:
            if value < time_high:
                wraps += 1
            time_high = value
    return events


def decode_nmnist(data: bytes) -> list[tuple]:
    """N-MNIST: 5 big-endian bytes an event: x, y, then polarity (1 bit) and t (23 bits)."""
    events = []
    for k in range(len(data) // 5):
        x, y, rest = data[5 * k], data[5 * k + 1], int.from_bytes(data[5 * k + 2 : 5 * k + 5], "big")
        events.append((rest & 0x7FFFFF, x, y, 1 if rest >> 23 else -1))
    return events


# name: (source file, bytes of the body kept after the header, decoder, evtools format)
SAMPLES = {
    "ncars.dat": ("atis-nmnist-ncars/ncars_sample_a.dat", 2 + 8 * 400, decode_dat),
    "spinner_evt2.raw": ("prophesee-gen3-spinner/gen3_spinner_evt2.raw", 4 * 3000, decode_evt2),
    "street_evt3.raw": ("prophesee-gen4-driving/gen41_street_evt3.raw", 2 * 8000, decode_evt3),
    "nmnist.bin": ("atis-nmnist-ncars/nmnist_sample.bin", 5 * 300, decode_nmnist),
}


def main(realdata: Path) -> None:
    for name, (source, body_bytes, decode) in SAMPLES.items():
        data = (realdata / source).read_bytes()
        sample = data[: header_end(data) + body_bytes]
        (HERE / name).write_bytes(sample)
        events = np.array(decode(sample), EVENT)
        np.save(HERE / f"{name}.npy", events)
        print(f"{name}: {len(sample)} bytes, {len(events)} events")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "realdata")
