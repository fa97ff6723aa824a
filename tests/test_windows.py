"""Window modes on a hand-made stream: events every 10 us from t = 0 to 190, frames at
0, 25, 100, 105 and 300 us."""

import numpy as np
import pytest

from evtools.errors import ConfigError, EvtoolsError
from evtools.events import Events
from evtools.io import open_recording
from evtools.io.writers.evh5 import write_evh5
from evtools.windows import AtTimes, BeforeFrame, BetweenFrames, EventsBeforeFrame, Every, parse_duration

FRAMES_T = np.array([0, 25, 100, 105, 300])


@pytest.fixture
def recording(tmp_path):
    n = 20
    events = Events(np.arange(n, dtype=np.int64) * 10, np.arange(n, dtype=np.uint16), np.zeros(n, np.uint16),
                    np.ones(n, np.int8))
    path = write_evh5(tmp_path / "r.h5", [events], width=32, height=4,
                      frames=np.zeros((5, 4, 32), np.uint8), frames_t_us=FRAMES_T)
    with open_recording(path) as rec:
        yield rec


def ranges(windows):
    return [(int(a), int(b)) for a, b in zip(windows.start, windows.stop)]


def test_before_frame_keeps_empty_windows_and_excludes_the_frame_time(recording):
    windows = BeforeFrame(50).cut(recording)
    # [f - 50, f): t = 0 is not before frame 0; t = 100 belongs to frame 105, not frame 100
    assert ranges(windows) == [(0, 0), (0, 3), (5, 10), (6, 11), (20, 20)]
    np.testing.assert_array_equal(windows.t_start_us, FRAMES_T - 50)
    np.testing.assert_array_equal(windows.t_end_us, FRAMES_T)
    np.testing.assert_array_equal(windows.frame_index, np.arange(5))


def test_events_before_frame_has_fewer_events_at_the_start(recording):
    windows = EventsBeforeFrame(4).cut(recording)
    assert ranges(windows) == [(0, 0), (0, 3), (6, 10), (7, 11), (16, 20)]
    np.testing.assert_array_equal(windows.t_start_us, [0, 0, 60, 70, 160])  # an empty window starts at its frame


def test_between_frames(recording):
    windows = BetweenFrames().cut(recording)
    assert ranges(windows) == [(0, 0), (0, 3), (3, 10), (10, 11), (11, 20)]
    np.testing.assert_array_equal(windows.t_start_us, [0, 0, 25, 100, 105])


def test_every_covers_the_last_event(recording):
    windows = Every(50).cut(recording)
    assert ranges(windows) == [(0, 5), (5, 10), (10, 15), (15, 20)]
    np.testing.assert_array_equal(windows.t_start_us, [0, 50, 100, 150])
    assert windows.frame_index is None


def test_frame_modes_need_frames(tmp_path):
    path = write_evh5(tmp_path / "n.h5", [Events(np.arange(3, dtype=np.int64), np.zeros(3, np.uint16),
                                                 np.zeros(3, np.uint16), np.ones(3, np.int8))], width=4, height=4)
    with open_recording(path) as rec:
        with pytest.raises(EvtoolsError) as err:
            BetweenFrames().cut(rec)
    assert str(err.value) == (
        f"{path}: the recording has no APS frames, which --between-frames needs; use --every 50ms for fixed windows instead"
    )


def test_parse_duration():
    assert [parse_duration(s) for s in ("50ms", "1s", "250us", "1.5ms", " 2 s ")] == [50_000, 1_000_000, 250, 1500, 2_000_000]
    for bad in ("50", "ms", "-1ms", "0s", "5 min", "4611686018427387904us", "9" * 400 + "s"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert parse_duration("4611686018427387903us") == (1 << 62) - 1


@pytest.mark.parametrize("make, message", [
    (lambda: BeforeFrame(0), "duration_us must be a whole number from 1 to 4611686018427387903, got 0"),
    (lambda: BeforeFrame(1 << 62), f"duration_us must be a whole number from 1 to 4611686018427387903, got {1 << 62}"),
    (lambda: Every(2.5), "period_us must be a whole number from 1 to 4611686018427387903, got 2.5"),
    (lambda: EventsBeforeFrame((1 << 40) + 1), f"n_events must be a whole number from 1 to 1099511627776, got {(1 << 40) + 1}"),
    (lambda: EventsBeforeFrame(True), "n_events must be a whole number from 1 to 1099511627776, got True"),
    (lambda: AtTimes((5,), duration_us=-3), "duration_us must be a whole number from 1 to 4611686018427387903, got -3"),
    (lambda: BeforeFrame(stack=(1 << 20) + 1), f"stack must be a whole number from 1 to 1048576, got {(1 << 20) + 1}"),
])
def test_window_lengths_beyond_what_int64_windows_hold_are_refused(make, message):
    # a stack of such counts left int64 when the windows were cut (an OverflowError, or silently)
    with pytest.raises(ConfigError) as err:
        make()
    assert str(err.value) == message


def test_events_before_frame_counts_the_kept_rows(tmp_path):
    # events on rows 0 and 1 in turn; a crop to row 0 keeps the even-numbered ones
    n = 20
    events = Events(np.arange(n, dtype=np.int64) * 10, np.arange(n, dtype=np.uint16), (np.arange(n) % 2).astype(np.uint16),
                    np.ones(n, np.int8))
    path = write_evh5(tmp_path / "r.h5", [events], width=32, height=4, frames=np.zeros((5, 4, 32), np.uint8),
                      frames_t_us=FRAMES_T)
    with open_recording(path) as rec:
        cropped = EventsBeforeFrame(2).cut(rec, rows=(0, 1))
        assert ranges(cropped) == [(0, 0), (0, 3), (6, 10), (8, 11), (16, 20)]  # two kept events each (fewer at first)
        assert ranges(EventsBeforeFrame(2).cut(rec)) == [(0, 0), (1, 3), (8, 10), (9, 11), (18, 20)]
        assert rec.dropped_outside_sensor == 0  # looking back is not reading
