import h5py
import numpy as np
import pytest
from conftest import assert_same_events, make_events

from evtools.errors import CorruptFileError, MissingDatasetError
from evtools.io import open_recording
from evtools.io.writers.evh5 import write_evh5


def test_round_trip_with_frames_streamed_in_chunks(tmp_path, events):
    frames = np.arange(2 * 4 * 5, dtype=np.uint8).reshape(2, 4, 5)
    path = write_evh5(
        tmp_path / "r.h5", [events[:700], events[700:]], width=346, height=260, t0_us=42,
        frames=frames, frames_t_us=np.array([-5, 900_000]),
    )
    with open_recording(path) as rec:
        assert (rec.format_name, rec.width, rec.height, rec.n_events, rec.t0_us) == ("evh5", 346, 260, 2000, 42)
        assert_same_events(rec.events(), events)
        np.testing.assert_array_equal(rec.frames.t_us, [-5, 900_000])
        np.testing.assert_array_equal(rec.frames[1], frames[1])
        np.testing.assert_array_equal(rec.frames[-1], frames[1])
        with pytest.raises(IndexError):
            rec.frames[2]


def test_chunks_time_seeks_and_slices_agree(tmp_path, events):
    path = write_evh5(tmp_path / "r.h5", [events], width=346, height=260)
    with open_recording(path) as rec:
        assert_same_events(type(events).concatenate(list(rec.chunks(333))), events)
        assert [len(c) for c in rec.chunks(900, start=100, stop=2000)] == [900, 900, 100]
        for t in (0, 1, 123_456, int(events.t[-1]), int(events.t[-1]) + 1):
            assert rec.index_at_time(t) == np.searchsorted(events.t, t, side="left")
        window = rec.events_between(100_000, 200_000)
        expected = events[(events.t >= 100_000) & (events.t < 200_000)]
        assert_same_events(window, expected)
        assert rec.last_t_us == events.t[-1]


def test_events_outside_sensor_are_dropped_and_counted(tmp_path):
    events = make_events(100, width=400, height=300, seed=3)
    outside = int(np.count_nonzero((events.x >= 346) | (events.y >= 260)))
    path = write_evh5(tmp_path / "r.h5", [events], width=346, height=260)
    with open_recording(path) as rec:
        kept = rec.events()
        assert len(kept) == 100 - outside and outside > 0
        assert rec.dropped_outside_sensor == outside
        assert kept.x.max() < 346 and kept.y.max() < 260


def test_missing_attribute_is_named(tmp_path, events):
    path = write_evh5(tmp_path / "r.h5", [events], width=346, height=260)
    with h5py.File(path, "a") as h5:
        del h5.attrs["t0_us"]
    with pytest.raises(MissingDatasetError) as err:
        open_recording(path)
    assert str(err.value) == f"{path}: missing attribute 't0_us' required by the evh5 format"


@pytest.mark.parametrize("name", ["width", "t0_us", "evtools_format"])
def test_an_attribute_of_a_type_numpy_lacks_is_one_line(tmp_path, events, name):
    # a flipped byte made an attribute's datatype HDF5's time class, for which h5py has no numpy
    # dtype: reading it was a TypeError traceback (fuzz seed 2880)
    path = write_evh5(tmp_path / "r.h5", [events], width=346, height=260)
    with h5py.File(path, "r+") as h5:
        del h5.attrs[name]
        h5py.h5a.create(h5.id, name.encode(), h5py.h5t.UNIX_D32LE, h5py.h5s.create(h5py.h5s.SCALAR))
    with pytest.raises(CorruptFileError) as raised:
        open_recording(path)
    assert str(raised.value) == f"{path}: attribute '{name}' cannot be read (TypeError: No NumPy equivalent for TypeTimeID exists)"


def test_indices_at_times_in_one_pass_match_single_lookups(tmp_path, events):
    path = write_evh5(tmp_path / "r.h5", [events], width=346, height=260)
    times = np.array([500_000, -3, 0, int(events.t[-1]) + 5, 123_456, 500_000, int(events.t[-1])])
    with open_recording(path) as rec:
        np.testing.assert_array_equal(rec.indices_at_times(times, chunk_events=97), np.searchsorted(events.t, times))
        assert [rec.index_at_time(int(t)) for t in times] == list(np.searchsorted(events.t, times))


@pytest.mark.parametrize("bad_time", [np.iinfo(np.int64).min, 2**62, -(2**62)])
def test_a_frame_time_beyond_the_timestamp_range_is_refused(tmp_path, events, bad_time):
    """A damaged frame time (seen: int64's minimum) made a window start leave int64: windows ran
    past the events and the kernels failed with a traceback."""
    from evtools.convert import convert
    from evtools.errors import CorruptFileError

    frames_t = np.array([100_000, bad_time, 300_000], np.int64)
    path = write_evh5(tmp_path / "rec.h5", [events], width=346, height=260,
                      frames=np.zeros((3, 260, 346), np.uint8), frames_t_us=frames_t)
    message = f"image 1 has the time {bad_time} us, beyond the ±2\\^62 us a timestamp can be"
    with open_recording(path) as recording, pytest.raises(CorruptFileError, match=message):
        recording.frames.t_us
    with pytest.raises(CorruptFileError, match=message):
        convert(path, tmp_path / "out.zarr")
    assert not list(tmp_path.glob("out.zarr*"))
