"""DAT, EVT2, EVT3 and N-MNIST decoding on files built word by word from the format descriptions."""

import struct

import numpy as np

from evtools.io import detect_format, open_recording

HEADER = b"% Date 2020-01-01 00:00:00\n% plugin_name hal_plugin_gen3_fx3\n"


def test_dat(tmp_path):
    path = tmp_path / "a.dat"
    events = [(100, 5, 7, 1), (150, 303, 239, 0), (151, 0, 0, 1)]
    body = b"".join(struct.pack("<II", t, x | (y << 14) | (p << 28)) for t, x, y, p in events)
    path.write_bytes(b"% Data file containing Event2d events.\n% Version 2\n" + bytes([0, 8]) + body)
    assert detect_format(path) == "dat"
    with open_recording(path) as rec:
        assert (rec.width, rec.height, rec.t0_us) == (304, 240, 100)
        e = rec.events()
        np.testing.assert_array_equal(e.t, [0, 50, 51])
        np.testing.assert_array_equal(e.x, [5, 303, 0])
        np.testing.assert_array_equal(e.y, [7, 239, 0])
        np.testing.assert_array_equal(e.p, [1, -1, 1])


def test_evt2(tmp_path):
    path = tmp_path / "b.raw"
    words = [
        (0x8 << 28) | 5,  # time high: t = 5 << 6 = 320
        (0x1 << 28) | (3 << 22) | (600 << 11) | 400,  # ON at t 323, x 600, y 400
        (0xA << 28) | 1,  # a trigger: skipped
        (0x0 << 28) | (63 << 22) | (1 << 11) | 2,  # OFF at t 383
        (0x8 << 28) | 6,
        (0x1 << 28) | (0 << 22) | (10 << 11) | 20,  # t 384
    ]
    path.write_bytes(HEADER + b"% evt 2.0\n" + struct.pack(f"<{len(words)}I", *words))
    assert detect_format(path) == "evt2"
    with open_recording(path) as rec:
        assert (rec.width, rec.height, rec.t0_us) == (640, 480, 323)
        e = rec.events()
        np.testing.assert_array_equal(e.t, [0, 60, 61])
        np.testing.assert_array_equal(e.x, [600, 1, 10])
        np.testing.assert_array_equal(e.y, [400, 2, 20])
        np.testing.assert_array_equal(e.p, [1, -1, 1])


def test_evt3_single_vector_and_wrapped_time(tmp_path):
    path = tmp_path / "c.raw"
    words = [
        (0x8 << 12) | 0xFFF,  # time high 0xFFF
        (0x6 << 12) | 0x010,  # time low: t = 0xFFF << 12 | 0x10
        (0x0 << 12) | 100,  # y = 100
        (0x2 << 12) | 0x800 | 7,  # ON at x 7
        (0x3 << 12) | 20,  # base x 20, OFF
        (0x4 << 12) | 0b100000000101,  # VECT_12: x 20, 22, 31
        (0x5 << 12) | 0b00000011,  # VECT_8 from base 32: x 32, 33
        (0x8 << 12) | 0x001,  # the 24-bit time wraps
        (0x6 << 12) | 0x000,
        (0x2 << 12) | 9,  # OFF at x 9, t = 2^24 + (1 << 12)
    ]
    path.write_bytes(b"% evt 3.0\n% format EVT3;height=720;width=1280\n" + struct.pack(f"<{len(words)}H", *words))
    assert detect_format(path) == "evt3"
    with open_recording(path) as rec:
        assert (rec.width, rec.height) == (1280, 720)
        t0 = (0xFFF << 12) | 0x10
        assert rec.t0_us == t0
        e = rec.events()
        np.testing.assert_array_equal(e.x, [7, 20, 22, 31, 32, 33, 9])
        np.testing.assert_array_equal(e.y, [100] * 7)
        np.testing.assert_array_equal(e.p, [1, -1, -1, -1, -1, -1, -1])
        np.testing.assert_array_equal(e.t, [0] * 6 + [(1 << 24) + (1 << 12) - t0])


def test_nmnist(tmp_path):
    path = tmp_path / "d.bin"
    records = [(3, 4, 1, 654), (33, 0, 0, (1 << 23) - 1)]
    path.write_bytes(b"".join(bytes([x, y, (p << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF]) for x, y, p, t in records))
    with open_recording(path, "nmnist") as rec:
        assert (rec.width, rec.height, rec.t0_us) == (34, 34, 654)
        e = rec.events()
        np.testing.assert_array_equal(e.t, [0, (1 << 23) - 1 - 654])
        np.testing.assert_array_equal(e.x, [3, 33])
        np.testing.assert_array_equal(e.p, [1, -1])
