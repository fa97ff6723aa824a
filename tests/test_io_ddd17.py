"""DDD17 raw files. The first tests build every packet byte by byte from the format's description
(struct, not evtools' writer), so that the reader is checked against the layout itself."""

import struct

import h5py
import numpy as np
import pytest
from cli import run_cli
from conftest import as_time_class, assert_same_events, frame_row, header, polarity_row, special_row, write_rows

from evtools.errors import CorruptFileError
from evtools.io import ReadOptions, open_recording
from evtools.io.writers.ddd17 import (
    TIMESTAMP_RESET,
    packets_from_events,
    polarity_packet,
    special_packet,
    write_ddd17,
)
from evtools.summary import summarize

WRAP = 1 << 31


PIXELS = np.array([[0x0000, 0x01FF, 0x8000], [0xFF00, 0xFFFF, 0x1234]], np.uint16)
FRAME16 = np.zeros((260, 346), np.uint16)
FRAME16[:2, :3] = PIXELS


@pytest.fixture
def hand_built(tmp_path):
    rows = [
        special_row(0, 5, TIMESTAMP_RESET),
        # 4 slots, 3 events, the middle one invalid, one slot of slack
        polarity_row(0, [(0, 0, 1, 1, 100), (7, 7, 1, 0, 150), (345, 259, 0, 1, 200)], capacity=4),
        frame_row(0, 250, FRAME16),
        polarity_row(0, [(1, 2, 0, 1, WRAP - 1)]),
        special_row(1, 0, 0),  # timestamp wrap marker
        # after the wrap: overflow 1, the 31-bit timestamp starts again near 0
        polarity_row(1, [(3, 4, 1, 1, 10), (5, 6, 0, 1, 20)]),
    ]
    signals = {"vehicle_speed": np.array([[1_000_000, 12.5], [1_100_000, 13.0], [0, 0], [0, 0]])}
    return write_rows(tmp_path / "rec.hdf5", rows, signals=signals)


def test_hand_built_events(hand_built):
    with open_recording(hand_built) as rec:
        assert rec.format_name == "ddd17" and rec.n_events == 5
        assert rec.t0_us == 100
        events = rec.events()
        np.testing.assert_array_equal(events.t, [0, 100, WRAP - 101, WRAP + 10 - 100, WRAP + 20 - 100])
        np.testing.assert_array_equal(events.x, [0, 345, 1, 3, 5])
        np.testing.assert_array_equal(events.y, [0, 259, 2, 4, 6])
        np.testing.assert_array_equal(events.p, [1, -1, -1, 1, -1])
        assert rec.last_t_us == WRAP + 20 - 100
        # index ranges that start and stop inside packets
        np.testing.assert_array_equal(rec.events(1, 4).x, [345, 1, 3])
        assert rec.index_at_time(WRAP - 101) == 2 and rec.index_at_time(WRAP - 100) == 3


def test_hand_built_frame_and_signals(hand_built):
    with open_recording(hand_built) as rec:
        assert (rec.width, rec.height) == (346, 260)
        assert len(rec.frames) == 1
        np.testing.assert_array_equal(rec.frames.t_us, [250 - 100])
        image = rec.frames[0]
        assert image.dtype == np.uint8 and image.shape == (260, 346)
        np.testing.assert_array_equal(image[:2, :3], [[0x00, 0x01, 0x80], [0xFF, 0xFF, 0x12]])
        assert image[2:].max() == 0 and image[:, 3:].max() == 0
        assert list(rec.signals) == ["vehicle_speed"]
        np.testing.assert_array_equal(rec.signals["vehicle_speed"], [[1_000_000, 12.5], [1_100_000, 13.0]])


@pytest.mark.parametrize("table, problem", [
    ("time class", "'vehicle_speed/data' has a datatype numpy has no equivalent for (No NumPy equivalent for TypeTimeID exists)"),
    (np.arange(5.0), "'vehicle_speed/data' is float64 (5,), expected (R, 2) rows of [us, value]"),
    (np.array([b"a", b"b"]), "'vehicle_speed/data' is |S1 (2,), expected (R, 2) rows of [us, value]"),
])
def test_a_damaged_signal_table_is_one_line_when_read_and_stops_no_conversion(hand_built, tmp_path, table, problem):
    with h5py.File(hand_built, "r+") as h5:
        if isinstance(table, str):
            as_time_class(h5, "vehicle_speed/data")
        else:
            del h5["vehicle_speed/data"]
            h5["vehicle_speed/data"] = table
    with open_recording(hand_built) as rec, pytest.raises(CorruptFileError) as raised:
        rec.signals["vehicle_speed"]
    assert str(raised.value) == f"{hand_built}: {problem}"
    assert run_cli("convert", hand_built, "-o", tmp_path / "rec").returncode == 0


def test_a_signal_whose_name_is_not_utf8_is_read_under_its_escaped_name(hand_built):
    """h5py gives a damaged link name it cannot decode as bytes (sorting it with text was a
    TypeError); the signal is named with the undecodable byte escaped."""
    with h5py.File(hand_built, "r+") as h5:
        h5[b"steering\xff/data"] = np.array([[1_050_000, -3.0]])
    with open_recording(hand_built) as rec:
        assert list(rec.signals) == ["steering\\xff", "vehicle_speed"]
        np.testing.assert_array_equal(rec.signals["steering\\xff"], [[1_050_000, -3.0]])
    result = run_cli("info", hand_built)
    assert result.returncode == 0, result.stderr
    assert "steering\\xff" in result.stdout


def test_rotate180_matches_the_ddd17_tools(hand_built):
    with open_recording(hand_built, options=ReadOptions(rotate180=True)) as rec:
        events = rec.events(0, 2)
        np.testing.assert_array_equal(events.x, [345, 0])
        np.testing.assert_array_equal(events.y, [259, 0])
        np.testing.assert_array_equal(rec.frames[0][-2:, -3:], [[0x12, 0xFF, 0xFF], [0x80, 0x01, 0x00]])


def test_summary_counts_the_hand_built_file(hand_built):
    with open_recording(hand_built) as rec:
        summary = summarize(rec, chunk_events=2)
    assert (summary.n_events, summary.n_positive, summary.n_negative) == (5, 2, 3)
    assert (summary.n_backwards, summary.n_outside_sensor, summary.n_frames) == (0, 0, 1)
    assert summary.signals == ("vehicle_speed",)


@pytest.mark.parametrize(
    "row, problem",
    [
        (
            (header(1, 8, 4, 0, 2, 2, 2), struct.pack("<II", 3, 5)),
            "header gives 2 slots of 8 bytes (16), body has 8",
        ),
        (
            (header(1, 8, 4, 0, 1, 1, 1), struct.pack("<II", 2, 5)),
            "header counts 1 valid events, body has 0",
        ),
        (
            (header(1, 8, 4, 0, 1, 2, 1), struct.pack("<II", 3, 5)),
            "header counts 1 valid of 2 events in 1 slots",
        ),
        (
            (header(1, 12, 4, 0, 1, 1, 1), bytes(12)),
            "polarity header gives event size 12 and ts offset 4, expected 8 and 4",
        ),
        (
            (header(1, 8, 4, 0, 1, 1, 1)[:20], bytes(8)),
            "header has 20 bytes, expected 28",
        ),
    ],
)
def test_header_that_does_not_fit_its_body(tmp_path, row, problem):
    path = write_rows(tmp_path / "bad.hdf5", [polarity_row(0, [(1, 1, 1, 1, 1)]), row])
    with pytest.raises(CorruptFileError) as err:
        with open_recording(path) as rec:
            rec.events()
    assert str(err.value) == f"{path}: dvs/data row 1: {problem}"


def test_frame_larger_than_its_slot(tmp_path):
    head, body = frame_row(0, 10, np.zeros((2, 2), np.uint16))
    body = body[:20] + struct.pack("<i", 50) + body[24:]  # size x 50 no longer fits
    path = write_rows(tmp_path / "bad.hdf5", [(head, body)])
    with pytest.raises(CorruptFileError) as err:
        open_recording(path)
    assert str(err.value) == f"{path}: dvs/data row 0: frame of 50 x 2 pixels does not fit a 44-byte slot"


def test_writer_round_trip_with_wrap_frames_and_specials(tmp_path, events):
    t0_us = WRAP - 400_000  # the recording crosses the 31-bit wrap after 0.4 s
    frames = [(k * 100_000, np.full((260, 346), k, np.uint8)) for k in range(1, 9)]
    packets = list(packets_from_events(events, t0_us=t0_us, frames=frames, events_per_packet=100))
    wrap_at = next(i for i, p in enumerate(packets) if p.ts_overflow == 1)
    packets.insert(wrap_at, special_packet(WRAP))
    overflows = {p.ts_overflow for p in packets if p.type == 1}
    assert overflows == {0, 1}
    path = write_ddd17(tmp_path / "w.hdf5", packets, spare_rows=50)
    with open_recording(path) as rec:
        assert rec.t0_us == t0_us
        assert_same_events(rec.events(), events)
        np.testing.assert_array_equal(rec.frames.t_us, [t for t, _ in frames])
        assert rec.frames[3][0, 0] == 4


def test_writer_invalid_events_and_slack(tmp_path):
    packet = polarity_packet(
        np.array([10, 20, 30]), np.array([1, 2, 3]), np.array([4, 5, 6]), np.array([1, -1, 1]),
        valid=np.array([True, False, True]), capacity=8,
    )
    assert (packet.capacity, packet.number, packet.valid, len(packet.body)) == (8, 3, 2, 64)
    path = write_ddd17(tmp_path / "w.hdf5", [packet])
    with open_recording(path) as rec:
        events = rec.events()
        np.testing.assert_array_equal(events.t, [0, 20])
        np.testing.assert_array_equal(events.x, [1, 3])


def one_row_chunks(source, path):
    """``source`` with ``dvs/data`` rewritten in chunks of one row."""
    with h5py.File(source) as old, h5py.File(path, "w") as new:
        old.copy("dvs/timestamp", new, name="dvs/timestamp")
        rows = new.create_dataset("dvs/data", old["dvs/data"].shape, h5py.vlen_dtype(np.uint8), chunks=(1, 3))
        rows[...] = old["dvs/data"][...]
    return path


@pytest.mark.parametrize("layout", ["contiguous", "chunked", "one-row chunks"])
def test_a_damaged_global_heap_is_one_line_not_a_hang(tmp_path, hand_built, events, layout):
    # HDF5 itself walks a collection whose object header is zeroed for ever (its size steps by 0)
    path = {"contiguous": lambda: hand_built,
            "chunked": lambda: write_ddd17(tmp_path / "w.hdf5", packets_from_events(events, t0_us=0)),
            "one-row chunks": lambda: one_row_chunks(hand_built, tmp_path / "c1.hdf5")}[layout]()
    data = bytearray(path.read_bytes())
    collection = data.find(b"GCOL")  # the first collection; its first object's header follows its 16-byte one
    data[collection + 16 : collection + 48] = bytes(32)
    path.write_bytes(data)
    done = run_cli("info", path)  # in a child process: before this check, it never returned
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: {path}: 'dvs/data' row 0: its data's HDF5 global heap at byte {collection} "
                                   f"is damaged (the object header at byte {collection + 16} gives a size that does not fit)")


def test_rows_in_one_row_chunks_read_as_the_contiguous_rows(tmp_path, hand_built):
    # the heap check finds each row's chunk in the file's chunk index (one pass over it)
    with open_recording(one_row_chunks(hand_built, tmp_path / "c1.hdf5")) as chunked, open_recording(hand_built) as plain:
        assert_same_events(chunked.events(), plain.events())
        np.testing.assert_array_equal(chunked.frames[0], plain.frames[0])


@pytest.mark.parametrize("kind", [1, 2, 15])
def test_a_damaged_variable_length_kind_is_one_line_not_a_crash(tmp_path, events, kind):
    """HDF5 keeps whether variable-length rows are a sequence (0) or a string (1) in the low bits
    of the type message's first bit-field byte; a value of 2 (one flipped bit, found by the file
    fuzzer) made HDF5's read of the rows end the process with a segmentation fault."""
    path = write_ddd17(tmp_path / "w.hdf5", packets_from_events(events, t0_us=0))
    data = bytearray(path.read_bytes())
    # dvs/data's type message: a variable-length sequence (class 9, version 1) of 16 bytes in memory,
    # its base a 1-byte unsigned integer (class 0, version 1)
    message = bytes.fromhex("19000000100000001000000001000000")
    at = data.find(message)
    assert at > 0 and data.find(message, at + 1) < 0
    data[at + 1] = kind
    path.write_bytes(data)
    done = run_cli("info", path)  # in a child process: a crash would show as a signal, not exit 2
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: {path}: 'dvs/data' is not of variable-length rows of bytes (its HDF5 "
                                   "datatype is another or damaged)")
