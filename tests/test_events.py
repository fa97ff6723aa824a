import numpy as np
import pytest

from evtools.events import Events, select_events, signed_polarity


def test_signed_polarity_accepts_bool_zero_one_and_signed():
    np.testing.assert_array_equal(signed_polarity(np.array([True, False])), [1, -1])
    np.testing.assert_array_equal(signed_polarity(np.array([0, 1, 1], np.uint8)), [-1, 1, 1])
    np.testing.assert_array_equal(signed_polarity(np.array([-1.0, 1.0])), [-1, 1])
    assert signed_polarity(np.array([0, 1])).dtype == np.int8


def test_signed_polarity_rejects_other_values():
    with pytest.raises(ValueError, match="polarity values must be 0/1, -1/\\+1 or bool"):
        signed_polarity(np.array([0, 2]))


def test_events_check_dtypes_and_lengths():
    t = np.zeros(2, np.int64)
    xy = np.zeros(2, np.uint16)
    with pytest.raises(ValueError, match="events.p must be int8, got int64"):
        Events(t, xy, xy, np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"events.x must be 1-D of length 2, got shape \(3,\)"):
        Events(t, np.zeros(3, np.uint16), xy, np.zeros(2, np.int8))


def test_within_sensor_checks_raw_values_before_the_cast():
    # -1 and 65536 + 3 would wrap onto the sensor if cast to uint16 first.
    t = np.arange(5, dtype=np.int64)
    x = np.array([0, -1, 65539, 345, 346], np.int64)
    y = np.array([0, 0, 0, 259, 0], np.int64)
    p = np.array([1, 0, 1, 0, 1])
    selection = select_events(t, x, y, p, 346, 260)
    events = selection.events
    assert selection.n_outside_sensor == 3
    np.testing.assert_array_equal(selection.keep, [True, False, False, True, False])
    np.testing.assert_array_equal(selection.kept_before(np.arange(6)), [0, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(events.t, [0, 3])
    np.testing.assert_array_equal(events.x, [0, 345])
    np.testing.assert_array_equal(events.y, [0, 259])
    np.testing.assert_array_equal(events.p, [1, -1])


def test_concatenate_and_slice(events):
    parts = [events[:10], events[10:]]
    joined = Events.concatenate(parts)
    np.testing.assert_array_equal(joined.t, events.t)
    assert len(Events.concatenate([])) == 0


def test_row_crop_shifts_rows_and_counts_only_sensor_drops():
    t = np.arange(4, dtype=np.int64)
    selection = select_events(t, np.array([0, 1, 2, 3]), np.array([0, 5, 9, 300]), np.ones(4), 346, 260, rows=(5, 10))
    assert selection.n_outside_sensor == 1  # y = 300; y = 0 is on the sensor, only cropped
    np.testing.assert_array_equal(selection.events.y, [0, 4])
    np.testing.assert_array_equal(selection.events.x, [1, 2])
    np.testing.assert_array_equal(selection.kept_before(np.array([0, 2, 4])), [0, 1, 2])


def test_nothing_dropped_keeps_no_mask():
    selection = select_events(np.arange(3), np.arange(3), np.arange(3), np.ones(3), 346, 260)
    assert selection.keep is None
    np.testing.assert_array_equal(selection.kept_before(np.array([0, 3])), [0, 3])


def test_selection_refuses_a_kept_polarity_other_than_minus_one_zero_one():
    # off the sensor, a polarity is not looked at
    selection = select_events(np.arange(2), np.array([0, 999]), np.array([0, 0]), np.array([1.0, 7.0]), 346, 260)
    np.testing.assert_array_equal(selection.events.p, [1])
    with pytest.raises(ValueError, match=r"^polarity values must be 0/1, -1/\+1 or bool \(event 1: 0.5\)$"):
        select_events(np.arange(2), np.array([0, 1]), np.array([0, 0]), np.array([1.0, 0.5]), 346, 260)


def test_selection_of_float_columns_with_nan_drops_them():
    x = np.array([1.0, np.nan, 2.0])
    selection = select_events(np.arange(3), x, np.zeros(3), np.array([True, False, True]), 346, 260)
    assert selection.n_outside_sensor == 1
    np.testing.assert_array_equal(selection.events.x, [1, 2])
    np.testing.assert_array_equal(selection.events.p, [1, 1])


def test_the_first_of_two_bad_polarities_is_named_in_a_long_block():
    n = 200_000  # the pass runs on all cores
    p = np.ones(n)
    p[[150_002, 60_001]] = 0.5
    with pytest.raises(ValueError, match=r"^polarity values must be 0/1, -1/\+1 or bool \(event 60001: 0.5\)$"):
        select_events(np.arange(n), np.arange(n) % 346, np.arange(n) % 260, p, 346, 260)
    p[[150_002, 60_001]] = 1
    selection = select_events(np.arange(n), np.arange(n) % 346, np.arange(n) % 260, p, 346, 260)
    assert selection.keep is None and selection.n_outside_sensor == 0
    np.testing.assert_array_equal(selection.events.y, np.arange(n) % 260)
