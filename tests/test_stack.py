"""--stack S: each window a stack of S consecutive sub-windows, stored (K, S, C, H, W); every
sub-window equals the unstacked representation of exactly its events, by time and by count."""

import numpy as np
import pytest
from cli import run_cli
from conftest import write_recording

from evtools.cache import Cache
from evtools.convert import ConvertSpec, convert
from evtools.data import CacheDataset
from evtools.errors import EvtoolsError
from evtools.representations import TimeSurface, VoxelGrid
from evtools.windows import AtTimes, BeforeFrame, EventsBeforeFrame, Every

W, H = 64, 48


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("stack") / "rec_data.hdf5"
    events, frames_t, _ = write_recording(path, n_events=20_000, n_frames=6, span_us=600_000)
    return path, events, frames_t


def expected(rep, events, lo, hi, end=None):
    inside = slice(lo, hi)
    extra = {"ends_us": [end]} if rep.uses_window_end else {}
    return rep.batch(events.t[inside], events.x[inside], events.y[inside], events.p[inside], [[0, hi - lo]], W, H, **extra)[0]


@pytest.mark.parametrize("rep", [VoxelGrid(bins=3), TimeSurface(tau_us=10_000.0)], ids=lambda r: r.name)
def test_sub_windows_by_time_equal_the_unstacked_representation(tmp_path, recording, rep):
    path, events, frames_t = recording
    cache = Cache(convert(path, tmp_path / "c", ConvertSpec(representations=(rep,), window=BeforeFrame(50_000, stack=5))).output)
    grids = cache.array(f"repr/{rep.name}")
    assert grids.shape == (6, 5, *rep.shape(W, H)) and grids.chunks == (1, 5, *rep.shape(W, H))
    assert cache.attrs["window"] == {"mode": "window", "duration_us": 50_000, "stack": 5}
    for k, frame in enumerate(frames_t):
        for i in range(5):
            t_lo, t_hi = frame - 50_000 + 10_000 * i, frame - 50_000 + 10_000 * (i + 1)
            lo, hi = np.searchsorted(events.t, [t_lo, t_hi])
            np.testing.assert_array_equal(grids[k, i], expected(rep, events, lo, hi, t_hi), err_msg=f"window {k}, sub {i}")
        assert cache.n_events[k] == np.searchsorted(events.t, frame) - np.searchsorted(events.t, frame - 50_000)


def test_sub_windows_by_count_hold_n_events_each(tmp_path, recording):
    path, events, frames_t = recording
    rep = VoxelGrid(bins=2)
    cache = Cache(convert(path, tmp_path / "c", ConvertSpec(representations=(rep,), window=EventsBeforeFrame(300, stack=4))).output)
    grids = cache.array("repr/voxel")
    for k, frame in enumerate(frames_t):
        stop = int(np.searchsorted(events.t, frame))
        assert cache.n_events[k] == min(1200, stop)
        for i in range(4):
            lo, hi = max(stop - (4 - i) * 300, 0), max(stop - (3 - i) * 300, 0)
            np.testing.assert_array_equal(grids[k, i], expected(rep, events, lo, hi))


def test_every_and_given_times_stack_too_and_the_dataset_serves_stacks(tmp_path, recording):
    path, events, _ = recording
    every = Cache(convert(path, tmp_path / "e", ConvertSpec(window=Every(100_000, stack=2))).output)
    assert every.array("repr/voxel").shape[1] == 2
    lo, mid = np.searchsorted(events.t, [100_000, 150_000])
    np.testing.assert_array_equal(every.array("repr/voxel")[1, 0], expected(VoxelGrid(), events, lo, mid))
    at = Cache(convert(path, tmp_path / "a", ConvertSpec(window=AtTimes((200_000, 400_000), relative=True, duration_us=40_000, stack=4))).output)
    sample = CacheDataset([at.path], repr="voxel")[1]["events"]
    assert tuple(sample.shape) == (4, 5, H, W)
    lo, hi = np.searchsorted(events.t, [380_000, 390_000])  # the third of [360, 370, 380, 390, 400) ms
    np.testing.assert_array_equal(sample[2].numpy(), expected(VoxelGrid(), events, lo, hi))


def test_stack_mistakes_are_one_line(tmp_path, recording):
    path, _, _ = recording
    result = run_cli("convert", path, "-o", tmp_path / "x", "--stack", "0")
    assert result.returncode == 2 and result.stderr.strip() == "error: --stack: give a number of sub-windows from 1 to 1,048,576"
    result = run_cli("convert", path, "-o", tmp_path / "x", "--stack", "3", "--repr", "events")
    assert result.returncode == 2 and "--stack does not combine with --repr events" in result.stderr
    result = run_cli("convert", path, "-o", tmp_path / "x", "--stack", "2", "--window-events", "100", "--crop-rows", "0:20")
    assert result.returncode == 2 and "does not combine with --crop-rows" in result.stderr
    with pytest.raises(ValueError, match=r"^stack must be a whole number from 1 to 1048576, got 0$"):
        BeforeFrame(stack=0)
    result = run_cli("convert", path, "-o", tmp_path / "ok", "--window", "50ms", "--stack", "5")
    assert result.returncode == 0, result.stderr
    assert Cache(tmp_path / "ok.zarr").array("repr/voxel").shape == (6, 5, 5, H, W)
    with pytest.raises(EvtoolsError, match="stack"):
        convert(path, tmp_path / "y", ConvertSpec(events=True, representations=(), window=BeforeFrame(stack=2)))


def test_stacked_caches_render_their_last_sub_window_and_students_refuse_them(tmp_path, recording):
    from evtools.render import render_window
    from evtools.tensors import require_unstacked

    path, _, _ = recording
    stacked = Cache(convert(path, tmp_path / "s", ConvertSpec(window=BeforeFrame(50_000, stack=5))).output)
    last = Cache(convert(path, tmp_path / "u", ConvertSpec(window=BeforeFrame(10_000))).output)
    # the last 10 ms sub-window of a 50 ms stack is the unstacked 10 ms window
    np.testing.assert_array_equal(stacked.array("repr/voxel")[:, -1], last.array("repr/voxel")[:])
    np.testing.assert_array_equal(render_window(stacked, 2)[20:, :W], render_window(last, 2)[20:, :W])
    with pytest.raises(EvtoolsError, match=r"holds stacks of sub-windows \(5 a window, --stack\): the students take one window"):
        require_unstacked(stacked, "voxel")
