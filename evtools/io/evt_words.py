"""Numba decoders of EVT2 and EVT3 words (the encodings are described in evt.py)."""

import numba
import numpy as np


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
