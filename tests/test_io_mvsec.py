import h5py
import numpy as np
import pytest
from conftest import assert_same_events

from evtools.errors import CorruptFileError, InputError, MissingDatasetError
from evtools.io import ReadOptions, open_recording
from evtools.io.writers.mvsec import write_mvsec

T0_S = 1_504_645_177.41  # an MVSEC-like ROS time: float64 resolves ~0.24 us here


def write_raw(path, table, images=None, image_ts=None, camera="left"):
    """The layout written field by field, independently of evtools' writer."""
    with h5py.File(path, "w") as h5:
        h5.create_dataset(f"davis/{camera}/events", data=np.asarray(table, np.float64))
        if images is not None:
            h5.create_dataset(f"davis/{camera}/image_raw", data=images)
            h5.create_dataset(f"davis/{camera}/image_raw_ts", data=image_ts)
            h5.create_dataset(f"davis/{camera}/image_raw_event_inds", data=np.zeros(len(images), np.int64))
    return path


def test_fields_and_microsecond_rounding(tmp_path):
    offsets_us = np.array([0, 1, 2, 3, 999_999, 1_000_000, 7_654_321])
    table = np.column_stack(
        [[0, 345, 10, 11, 12, 13, 14], [0, 259, 20, 21, 22, 23, 24], T0_S + offsets_us / 1e6, [1, -1, 1, 1, -1, -1, 1]]
    )
    images = np.arange(2 * 260 * 346, dtype=np.uint64).astype(np.uint8).reshape(2, 260, 346)
    path = write_raw(tmp_path / "x_data.hdf5", table, images, T0_S + np.array([-0.02, 0.5]))
    with open_recording(path) as rec:
        assert (rec.format_name, rec.width, rec.height, rec.n_events) == ("mvsec", 346, 260, 7)
        assert rec.t0_us == round(T0_S * 1e6)
        events = rec.events()
        np.testing.assert_array_equal(events.t, offsets_us)
        np.testing.assert_array_equal(events.x, [0, 345, 10, 11, 12, 13, 14])
        np.testing.assert_array_equal(events.y, [0, 259, 20, 21, 22, 23, 24])
        np.testing.assert_array_equal(events.p, [1, -1, 1, 1, -1, -1, 1])
        np.testing.assert_array_equal(rec.frames.t_us, [-20_000, 500_000])
        np.testing.assert_array_equal(rec.frames[1], images[1])
        assert rec.index_at_time(3) == 3 and rec.index_at_time(4) == 4


def test_right_camera(tmp_path):
    path = write_raw(tmp_path / "r.hdf5", [[1, 2, T0_S, -1]], camera="right")
    with open_recording(path, options=ReadOptions(camera="right")) as rec:
        assert rec.n_events == 1 and rec.events().x[0] == 1 and rec.frames is None
    with pytest.raises(MissingDatasetError) as err:
        open_recording(path)
    assert str(err.value) == f"{path}: missing dataset 'davis/left/events' required by the mvsec format"
    with pytest.raises(InputError, match="unknown MVSEC camera 'middle'"):
        open_recording(path, options=ReadOptions(camera="middle"))


def test_writer_round_trip_is_exact_at_ros_times(tmp_path, events):
    images = np.full((3, 260, 346), 7, np.uint8)
    t0_us = round(T0_S * 1e6)
    path = write_mvsec(tmp_path / "w.hdf5", [events[:999], events[999:]], t0_us=t0_us, images=images,
                       images_t_us=np.array([0, 400_000, 800_000]))
    with open_recording(path) as rec:
        assert rec.t0_us == t0_us
        assert_same_events(rec.events(), events)
        np.testing.assert_array_equal(rec.frames.t_us, [0, 400_000, 800_000])
    with h5py.File(path) as h5:
        np.testing.assert_array_equal(
            h5["davis/left/image_raw_event_inds"][:], np.searchsorted(events.t, [0, 400_000, 800_000])
        )


def test_wrong_table_shape(tmp_path):
    path = write_raw(tmp_path / "bad.hdf5", np.zeros((3, 3)))
    with pytest.raises(CorruptFileError) as err:
        open_recording(path)
    assert str(err.value) == f"{path}: 'davis/left/events' has shape (3, 3), expected (N, 4)"


def test_fields_outside_the_description_are_refused(tmp_path):
    good = np.column_stack([[1, 2, 3], [4, 5, 6], T0_S + np.array([0.0, 0.1, 0.2]), [1, -1, 1]])
    cases = {
        "float32": (good.astype(np.float32), r"'davis/left/events' is float32, expected float64"),
        "int": (good.astype(np.int64), r"'davis/left/events' is int64, expected float64"),
        "nan polarity": (np.where(np.arange(12).reshape(3, 4) == 7, np.nan, good),
                         r"event 1 has x 2.0, y 5.0, p nan: expected whole pixel coordinates and a polarity of -1, 0 or 1"),
        "fractional x": (np.where(np.arange(12).reshape(3, 4) == 8, 3.5, good), r"event 2 has x 3.5"),
        "two unusual rows": (np.where(np.arange(12).reshape(3, 4) == 8, 3.5, np.where(np.arange(12).reshape(3, 4) == 7, 2, good)),
                             r"event 1 has x 2.0, y 5.0, p 2.0: "),
        "infinite time": (np.where(np.arange(12).reshape(3, 4) == 10, np.inf, good), r"event 2 has the time inf s"),
        "time past int64": (np.where(np.arange(12).reshape(3, 4) == 6, 1e17, good), r"event 1 has the time 1e\+17 s"),
        # a first time whose microseconds leave int64: before, an OverflowError where frame times were added to it
        "first time past int64": (np.column_stack([good[:, :2], 2e13 + np.array([0.0, 0.5, 1.0]), good[:, 3]]),
                                  r"its first time, 20000000000000000000 us, is beyond the ±2\^62 us a timestamp can be$"),
    }
    for name, (table, message) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}_data.hdf5"
        with h5py.File(path, "w") as h5:
            h5.create_dataset("davis/left/events", data=table)
        with pytest.raises(CorruptFileError, match=message), open_recording(path) as rec:
            rec.events()
    images = np.zeros((2, 260, 346), np.uint16)
    path = write_raw(tmp_path / "u16_data.hdf5", good, images, T0_S + np.array([0.0, 0.1]))
    with pytest.raises(CorruptFileError, match=r"'davis/left/image_raw' is uint16 \(2, 260, 346\), expected \(M, H, W\) uint8"):
        open_recording(path)
    path = write_raw(tmp_path / "ts_data.hdf5", good, images.astype(np.uint8), T0_S + np.array([0.0]))
    with pytest.raises(CorruptFileError, match=r"'davis/left/image_raw_ts' is float64 \(1,\), expected \(2,\) float"):
        open_recording(path)


def test_the_first_of_two_bad_rows_is_named_in_a_long_table(tmp_path):
    """The passes over a block run on all cores: the row named is still the first bad one."""
    n = 200_000
    table = np.column_stack([np.arange(n) % 346, np.arange(n) % 260, T0_S + np.arange(n) * 1e-6, np.ones(n)])
    for name, column, value, message in (("time", 2, np.nan, r"event 60001 has the time nan s"),
                                         ("polarity", 3, 0.5, r"event 60001 has x 143.0, y 201.0, p 0.5")):
        bad = table.copy()
        bad[[150_002, 60_001], column] = value
        path = write_raw(tmp_path / f"{name}_data.hdf5", bad)
        with pytest.raises(CorruptFileError, match=message), open_recording(path) as rec:
            rec.events()


def test_conversion_refuses_times_that_go_backwards(tmp_path):
    from evtools.convert import convert

    table = np.column_stack([[1, 2, 3, 4], [4, 5, 6, 7], T0_S + np.array([0.0, 0.2, 0.1, 0.3]), [1, -1, 1, 1]])
    images = np.zeros((2, 260, 346), np.uint8)
    path = write_raw(tmp_path / "back_data.hdf5", table, images, T0_S + np.array([0.15, 0.3]))
    with pytest.raises(CorruptFileError, match=r"event 2: time goes backwards \(200000 us, then 100000 us"):
        convert(path, tmp_path / "out")
    assert not list(tmp_path.glob("out*"))


def test_a_contiguous_table_is_read_from_the_file_mapping(tmp_path):
    """MVSEC's bag_to_hdf5 stores the table contiguous: its rows come straight from the file, the
    same values as h5py reads, also behind a user block; other layouts are left to h5py."""
    from evtools.io.hdf5 import mapped_rows

    table = np.column_stack([np.arange(70_000) % 346, np.arange(70_000) % 260, T0_S + np.arange(70_000) * 1e-6,
                             np.where(np.arange(70_000) % 3, 1.0, -1.0)])
    path = tmp_path / "layouts.hdf5"
    with h5py.File(path, "w", userblock_size=1024) as h5:
        h5.create_dataset("contiguous", data=table)
        h5.create_dataset("chunked", data=table, chunks=(4096, 4))
        h5.create_dataset("gzip", data=table, compression="gzip")
        h5.create_dataset("big_endian", data=table.astype(">f8"))
        h5.create_dataset("empty", data=np.zeros((0, 4)))
    with h5py.File(path) as h5:
        assert [name for name in h5 if mapped_rows(h5[name]) is not None] == ["contiguous"]
        rows = mapped_rows(h5["contiguous"])
        for start, stop in ((0, 1), (12_345, 67_890), (69_999, 70_000), (5, 5), (0, 70_000)):
            np.testing.assert_array_equal(rows[start:stop], table[start:stop])
            np.testing.assert_array_equal(rows[start:stop, 2], table[start:stop, 2])
        block = rows[:10]
        block[0, 0] = -7.0  # a private mapping: a write stays in this process
        rows.close()
        assert h5["contiguous"][0, 0] == 0.0 and mapped_rows(h5["contiguous"])[:1][0, 0] == 0.0


def test_contiguous_and_chunked_tables_give_the_same_recording(tmp_path, events):
    t0_us = round(T0_S * 1e6)
    paths = {n: write_mvsec(tmp_path / f"{n}_data.hdf5", [events[:999], events[999:]], t0_us=t0_us, n_events=n)
             for n in (None, len(events))}
    for n, path in paths.items():
        with h5py.File(path) as h5:
            assert (h5["davis/left/events"].chunks is None) == (n is not None)
        with open_recording(path) as rec:
            assert_same_events(rec.events(), events)
            assert [len(chunk) for chunk in rec.chunks(chunk_events=700)][:2] == [700, 700]
    with pytest.raises(ValueError, match=f"{len(events)} events written, {len(events) + 1} announced"):
        write_mvsec(tmp_path / "short_data.hdf5", [events], t0_us=t0_us, n_events=len(events) + 1)
    with pytest.raises(ValueError, match=f"more than the {len(events) - 1} events announced"):
        write_mvsec(tmp_path / "long_data.hdf5", [events], t0_us=t0_us, n_events=len(events) - 1)
    assert not (tmp_path / "short_data.hdf5").exists() and not (tmp_path / "long_data.hdf5").exists()


def test_a_file_cut_short_while_open_is_an_error_not_a_crash(tmp_path, events):
    """Mapped pages past a file's end would end the process with SIGBUS; the rows past the new end
    are refused in one line instead, those before it still read."""
    path = write_mvsec(tmp_path / "cut_data.hdf5", [events], t0_us=round(T0_S * 1e6), n_events=len(events))
    with open_recording(path) as rec:
        with h5py.File(path) as h5:
            table_end = h5["davis/left/events"].id.get_offset() + len(events) * 32
        with open(path, "r+b") as file:
            file.truncate(table_end - 32 * 100)
        assert len(rec.events(0, 10)) == 10
        with pytest.raises(CorruptFileError) as err:
            rec.events()
    assert str(err.value) == (f"{path}: became shorter than its events table while being read "
                              f"(rows 0 to {len(events) - 1} reach past its end)")


@pytest.mark.parametrize("indices", [[0, 1, 2, 3, 4], [2], [4, 0, 1, 1, 3], [3, 2, 1]])
def test_frames_taken_in_runs_equal_frames_read_one_by_one(tmp_path, indices):
    """A block's frames are read a run of consecutive frames at a time (one h5py call a run)."""
    from evtools.io.recording import TimedImages

    images = np.random.default_rng(0).integers(0, 256, (5, 260, 346), dtype=np.uint8)
    table = np.column_stack([[1, 2], [3, 4], T0_S + np.array([0.0, 0.1]), [1, -1]])
    path = write_raw(tmp_path / "frames_data.hdf5", table, images, T0_S + np.arange(5) / 10)
    with open_recording(path) as rec:
        np.testing.assert_array_equal(rec.frames.take(indices), images[indices])
        with pytest.raises(IndexError, match="images 0 to 5 out of range for 5 images"):
            rec.frames.take([0, 5])
    reads = []
    counted = TimedImages(5, (260, 346), lambda i: images[i], lambda: np.arange(5),
                          lambda start, stop: reads.append((start, stop)) or images[start:stop])
    np.testing.assert_array_equal(counted.take(indices), images[indices])
    runs = {(0, 1, 2, 3, 4): [(0, 5)], (2,): [(2, 3)], (4, 0, 1, 1, 3): [(4, 5), (0, 2), (1, 2), (3, 4)],
            (3, 2, 1): [(3, 4), (2, 3), (1, 2)]}
    assert reads == runs[tuple(indices)]
