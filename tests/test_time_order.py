"""The pass that refuses event times going backwards: the kernel against hand-computed indices and
numpy, and a recording's check across the chunks it reads the times in."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evtools.errors import CorruptFileError
from evtools.events import Events
from evtools.io import open_recording
from evtools.io.writers.mvsec import write_mvsec
from evtools.kernels.order import first_descent


@pytest.mark.parametrize(
    ("stamps", "previous", "expected"),
    [
        ([], None, -1),
        ([], 7, -1),
        ([5], None, -1),
        ([1, 2, 2, 3], None, -1),  # equal times are in order
        ([1, 2, 1, 0], None, 2),  # the first of two descents
        ([3, 1, 2, 0], None, 1),
        ([5, 6], 5, -1),
        ([5, 6], 6, 0),  # the first time against the one before the array
        ([5, 6, 4], 6, 0),
        ([-3, -2, -9], -4, 2),
    ],
)
def test_first_descent_hand_computed(stamps, previous, expected):
    assert first_descent(np.array(stamps, np.int64), previous) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-2**62, 2**62), max_size=300), st.none() | st.integers(-2**62, 2**62))
def test_first_descent_equals_numpy(stamps, previous):
    joined = np.array(([] if previous is None else [previous]) + stamps, np.int64)
    descents = np.flatnonzero(joined[1:] < joined[:-1])
    expected = -1 if not len(descents) else int(descents[0]) + (previous is None)
    assert first_descent(np.array(stamps, np.int64), previous) == expected


def _recording(tmp_path, t_us):
    n = len(t_us)
    events = Events(np.array(t_us, np.int64), np.arange(n, dtype=np.uint16), np.zeros(n, np.uint16),
                    np.ones(n, np.int8))
    return write_mvsec(tmp_path / "rec.hdf5", [events], t0_us=1_500_000_000_000_000, n_events=n)


@pytest.mark.parametrize("chunk_events", [1, 2, 3, 4, 100])
def test_a_descent_is_found_in_any_chunk_and_across_chunks(tmp_path, chunk_events):
    """Event 4 is earlier than event 3, wherever the chunks of times split them."""
    path = _recording(tmp_path, [0, 10, 20, 30, 25, 40])
    message = r"event 4: time goes backwards \(30 us, then 25 us after the first event\)"
    with open_recording(path) as recording, pytest.raises(CorruptFileError, match=message):
        recording.check_time_order(chunk_events)
    with open_recording(path) as recording, pytest.raises(CorruptFileError, match=message):
        recording.indices_at_times(np.array([15]), chunk_events)


@pytest.mark.parametrize("chunk_events", [1, 2, 5])
def test_ordered_times_pass_in_any_chunks(tmp_path, chunk_events):
    path = _recording(tmp_path, [0, 10, 10, 30, 30, 40])
    with open_recording(path) as recording:
        recording.check_time_order(chunk_events)
        np.testing.assert_array_equal(recording.indices_at_times(np.array([10, 31, 0, 41]), chunk_events), [1, 5, 0, 6])
