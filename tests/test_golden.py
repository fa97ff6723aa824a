"""Golden samples (expelliarmus style): small cuts of real Prophesee DAT, EVT2, EVT3 and N-MNIST
recordings in tests/golden, each with the events that tests/golden/make_golden.py's plain
decoder, written from the format description, gives. Every reader must return exactly those
events, field by field, whatever the chunks it is read in."""

from pathlib import Path

import numpy as np
import pytest

from evtools.events import Events
from evtools.io import open_recording

GOLDEN = Path(__file__).parent / "golden"
SAMPLES = [("ncars.dat", None, "dat", (304, 240)), ("spinner_evt2.raw", None, "evt2", (640, 480)),
           ("street_evt3.raw", None, "evt3", (1280, 720)), ("nmnist.bin", "nmnist", "nmnist", (34, 34))]


@pytest.mark.parametrize("name, fmt, format_name, sensor", SAMPLES, ids=[s[0] for s in SAMPLES])
@pytest.mark.parametrize("chunk", [1, 7, 1000, None], ids=lambda c: f"chunks of {c or 'all'}")
def test_reader_returns_the_golden_events(name, fmt, format_name, sensor, chunk):
    expected = np.load(GOLDEN / f"{name}.npy")
    with open_recording(GOLDEN / name, fmt) as recording:
        assert recording.format_name == format_name and (recording.width, recording.height) == sensor
        assert recording.n_events == len(expected)
        step = chunk or recording.n_events
        events = Events.concatenate([recording.read(start, start + step).events
                                     for start in range(0, recording.n_events, step)])
        t0 = recording.t0_us
    np.testing.assert_array_equal(t0 + events.t, expected["t"])
    for field in ("x", "y", "p"):
        np.testing.assert_array_equal(getattr(events, field), expected[field], err_msg=field)
