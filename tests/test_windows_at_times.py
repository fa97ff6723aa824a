"""--at FILE: windows ending at given times (absolute or relative), as long as --window or
--window-events says, checked against the events by hand; bad files and option mixes are one-line
errors; and the events after the last frame are counted and reported, never dropped silently."""

import numpy as np
import pytest
from cli import run_cli
from conftest import make_events, write_recording

from evtools.cache import Cache
from evtools.convert import ConvertSpec, convert
from evtools.errors import InputError
from evtools.io import open_recording
from evtools.io.writers.mvsec import write_mvsec
from evtools.representations import Histogram
from evtools.windows import AtTimes, read_times


@pytest.fixture
def recording(tmp_path):
    path = tmp_path / "rec_data.hdf5"
    events, frames_t, _ = write_recording(path, n_events=5000, n_frames=4, span_us=400_000)
    with open_recording(path) as rec:
        t0 = rec.t0_us
    return path, events, frames_t, t0


def test_windows_of_a_duration_and_of_a_count_at_absolute_and_relative_times(tmp_path, recording):
    path, events, _, t0 = recording
    ends = [300_000, 120_000, 120_001, 5]  # any order, repeated, one before most events
    (tmp_path / "times.txt").write_text("# DSEC-style timestamps\n" + "".join(f"{t0 + e}\n" for e in ends) + "\n")
    spec = ConvertSpec(representations=(Histogram(bins=1, cutoff=0),), window=AtTimes(read_times(tmp_path / "times.txt"), duration_us=50_000))
    cache = Cache(convert(path, tmp_path / "by_time", spec).output)
    t = events.t
    for k, end in enumerate(ends):
        inside = (t >= end - 50_000) & (t < end)
        assert cache.n_events[k] == inside.sum()
        assert int(cache.array("repr/histogram")[k].sum()) == min(inside.sum(), 255 * 2 * 64 * 48)
    np.testing.assert_array_equal(cache.values("t_end_us"), ends)
    assert "aps" not in cache.group  # windows at given times belong to no frame
    relative = AtTimes(tuple(ends), relative=True, n_events=100)
    cache = Cache(convert(path, tmp_path / "by_count", ConvertSpec(window=relative)).output)
    for k, end in enumerate(ends):
        assert cache.n_events[k] == min(100, int((t < end).sum()))
    assert relative.params()["times"] == 4 and len(relative.params()["times_sha256"]) == 64


def test_cli_at_and_its_mistakes(tmp_path, recording):
    path, _, _, t0 = recording
    times = tmp_path / "times.txt"
    times.write_text(f"{t0 + 200_000}\n{t0 + 250_000}\n")
    result = run_cli("convert", path, "-o", tmp_path / "c", "--at", times, "--window", "20ms")
    assert result.returncode == 0, result.stderr
    assert len(Cache(tmp_path / "c.zarr")) == 2
    result = run_cli("convert", path, "-o", tmp_path / "d", "--at", times)
    assert result.returncode == 2 and result.stderr.strip() == (
        "error: --at: give the windows' length with --window (a duration) or --window-events (a count)")
    times.write_text("1506117898.5, 1506117898.6\n")
    result = run_cli("convert", path, "-o", tmp_path / "d", "--at", times, "--window", "20ms")
    assert result.returncode == 2 and result.stderr.strip() == (
        f"error: {times}: line 1: '1506117898.5, 1506117898.6' is not one whole number of microseconds (one "
        "timestamp a line; cut other columns out first)")
    times.write_text("# nothing\n")
    with pytest.raises(InputError, match="holds no timestamps"):
        read_times(times)
    times.write_text("100\n99999999999999999999999\n")  # past int64: was an OverflowError traceback
    with pytest.raises(InputError, match=r"line 2: 99999999999999999999999 us is beyond the ±2\^62 us a timestamp can be$"):
        read_times(times)


def test_events_after_the_last_frame_are_reported(tmp_path):
    path = tmp_path / "short_data.hdf5"
    events = make_events(3000, 64, 48, 400_000, seed=3)
    frames_t = np.array([100_000, 250_000])  # the last frame comes long before the last event
    write_mvsec(path, [events], t0_us=1_504_645_177_410_000, images=np.zeros((2, 48, 64), np.uint8), images_t_us=frames_t)
    result = convert(path, tmp_path / "frames", ConvertSpec())
    after = int((events.t >= frames_t[-1]).sum())
    assert after > 0 and result.events_after_last_window == after
    cli = run_cli("convert", path, "-o", tmp_path / "again", "--window", "50ms")
    assert (f"the {after} events after the last window's end are in no window (after the last frame: use --every "
            "or --at to cover them)") in cli.stderr.replace("\n", " ")
    # with --at, the advice to use --at is no advice
    (tmp_path / "times.txt").write_text("100000\n200000\n")
    cli = run_cli("convert", path, "-o", tmp_path / "at", "--window", "50ms", "--at", tmp_path / "times.txt", "--at-relative")
    after = int((events.t >= events.t[0] + 200_000).sum())
    assert (f"the {after} events after the last window's end are in no window (after the last of the --at times)"
            in " ".join(cli.stderr.split()))
