"""Golden values for every representation, hand-computed from the definitions in
docs/representations.md, on the CPU kernels and on the CUDA kernels (Numba's simulator in CI),
plus random windows against the numpy references."""

import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from conftest import make_events

from evtools import representations as R
from evtools.kernels import reference
from evtools.kernels.histogram import time_bin

W, H = 4, 3
DEVICES = ["cpu", "cuda"]


def ev(*rows):
    """Events from (t, x, y, p) rows."""
    t, x, y, p = (np.array(c) for c in zip(*rows)) if rows else ([], [], [], [])
    return np.asarray(t, np.int64), np.asarray(x, np.uint16), np.asarray(y, np.uint16), np.asarray(p, np.int8)


def grid(channels, *entries, dtype=np.float32):
    out = np.zeros((channels, H, W), dtype)
    for c, y, x, value in entries:
        out[c, y, x] = value
    return out


def check(actual, expected):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("device", DEVICES)
class TestVoxel:
    def test_single_event_goes_to_bin_zero(self, device):
        check(R.voxel_grid(*ev((100, 1, 2, 1)), W, H, device=device), grid(5, (0, 2, 1, 1.0)))
        check(R.voxel_grid(*ev((100, 1, 2, -1)), W, H, device=device), grid(5, (0, 2, 1, -1.0)))

    def test_equal_timestamps_count_as_a_span_of_one(self, device):
        got = R.voxel_grid(*ev((5, 0, 0, 1), (5, 3, 1, -1)), W, H, device=device)
        check(got, grid(5, (0, 0, 0, 1.0), (0, 1, 3, -1.0)))

    def test_last_event_lands_in_the_last_bin_and_middle_events_split(self, device):
        # t* = 4 t / 1000: t=300 -> 1.2 gives 0.8 to bin 1 and 0.2 to bin 2; t=1000 -> bin 4 whole
        got = R.voxel_grid(*ev((0, 0, 0, 1), (300, 1, 1, -1), (1000, 2, 2, 1)), W, H, device=device)
        check(got, grid(5, (0, 0, 0, 1.0), (1, 1, 1, -0.8), (2, 1, 1, -0.2), (4, 2, 2, 1.0)))

    def test_sensor_border(self, device):
        got = R.voxel_grid(*ev((0, 0, 0, 1), (10, W - 1, H - 1, 1)), W, H, bins=2, device=device)
        check(got, grid(2, (0, 0, 0, 1.0), (1, H - 1, W - 1, 1.0)))

    def test_empty_window_is_zero_without_nan(self, device):
        for normalize in (False, True):
            got = R.voxel_grid(*ev(), W, H, normalize=normalize, device=device)
            check(got, grid(5))

    def test_normalize_one_nonzero_value_only_subtracts_the_mean(self, device):
        check(R.voxel_grid(*ev((7, 1, 1, 1)), W, H, normalize=True, device=device), grid(5))

    def test_normalize_uses_nonzero_entries_only(self, device):
        # nonzero values 2 and 1: mean 1.5, population std 0.5 -> 1 and -1; zeros stay zero
        got = R.voxel_grid(*ev((0, 0, 0, 1), (0, 0, 0, 1), (0, 3, 2, 1)), W, H, normalize=True, device=device)
        check(got, grid(5, (0, 0, 0, 1.0), (0, 2, 3, -1.0)))

    def test_separate_polarity(self, device):
        got = R.voxel_grid(*ev((0, 0, 0, -1), (8, 1, 0, 1)), W, H, bins=3, separate_polarity=True, device=device)
        # the negative event weighs +1 in channel 3 (bin 0 of the negative half), the positive one bin 2
        check(got, grid(6, (3, 0, 0, 1.0), (2, 0, 1, 1.0)))


@pytest.mark.parametrize("device", DEVICES)
class TestHistogram:
    def test_bins_channels_and_last_event(self, device):
        # span 20, B=2: bin = min(floor(2 t / 20), 1) -> 0, 1, 1; negative channels first (RVT)
        got = R.histogram(*ev((0, 0, 0, -1), (10, 1, 0, 1), (20, 1, 0, 1)), W, H, bins=2, device=device)
        check(got, grid(4, (0, 0, 0, 1), (3, 0, 1, 2), dtype=np.uint8))

    def test_cutoff(self, device):
        many = ev(*[(i, 2, 1, 1) for i in range(12)])
        check(R.histogram(*many, W, H, bins=1, device=device), grid(2, (1, 1, 2, 10), dtype=np.uint8))
        check(R.histogram(*many, W, H, bins=1, cutoff=0, device=device), grid(2, (1, 1, 2, 12), dtype=np.uint8))
        lots = ev(*[(i, 0, 0, -1) for i in range(300)])
        check(R.histogram(*lots, W, H, bins=1, cutoff=0, device=device), grid(2, (0, 0, 0, 255), dtype=np.uint8))

    def test_empty(self, device):
        check(R.histogram(*ev(), W, H, device=device), grid(10, dtype=np.uint8))


@pytest.mark.parametrize("device", DEVICES)
def test_evimage(device):
    events = ev((0, 0, 0, 1), (1, 0, 0, 1), (2, 0, 0, 1), (3, 3, 2, 1))
    check(R.evimage(*events, W, H, device=device), grid(2, (0, 0, 0, 1.0), (0, 2, 3, 1 / 3)))
    check(R.evimage(*ev(), W, H, device=device), grid(2))


@pytest.mark.parametrize("device", DEVICES)
def test_evsegnet(device):
    # tn = t / 200: positive pixel (0,0) at 0 and 0.5 -> count 2, mean 0.25, std 0.25;
    # negative pixel (1,1) at 1.0 -> count 1, mean 1, std 0
    events = ev((0, 0, 0, 1), (100, 0, 0, 1), (200, 1, 1, -1))
    expected = grid(6, (0, 0, 0, 2.0), (1, 0, 0, 0.25), (2, 0, 0, 0.25), (3, 1, 1, 1.0), (4, 1, 1, 1.0))
    check(R.evsegnet(*events, W, H, device=device), expected)
    check(R.evsegnet(*ev(), W, H, device=device), grid(6))


@pytest.mark.parametrize("device", DEVICES)
def test_timesurface(device):
    events = ev((0, 0, 0, 1), (50, 0, 0, 1), (100, 1, 0, -1))
    got = R.timesurface(*events, W, H, tau_us=100.0, device=device)
    check(got, grid(2, (0, 0, 0, np.exp(-0.5)), (1, 0, 1, 1.0)))
    got = R.timesurface(*events, W, H, tau_us=100.0, t_end_us=200, device=device)
    check(got, grid(2, (0, 0, 0, np.exp(-1.5)), (1, 0, 1, np.exp(-1.0))))
    check(R.timesurface(*ev(), W, H, device=device), grid(2))


@settings(deadline=None)  # the first example compiles the kernel
@example(tau_us=50_000.0, span_us=50_000, after_last_us=0, seed=1)  # tables
@example(tau_us=1e9, span_us=2**40, after_last_us=0, seed=1)  # beyond the tables: exp per event
@example(tau_us=1.0, span_us=2**40, after_last_us=2**20, seed=1)  # nearly all 0
@given(tau_us=st.floats(0.5, 1e9), span_us=st.integers(0, 2**40), after_last_us=st.integers(0, 2**20),
       seed=st.integers(0, 2**31))
def test_timesurface_decay_equals_exp_over_any_span_and_tau(tau_us, span_us, after_last_us, seed):
    # the CPU kernel's decay comes from two tables (exp of d's low and high bits): equal to the
    # reference's exp wherever it is not 0, and 0 exactly where float32 underflows
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, span_us + 1, 300)).astype(np.int64)
    x, y = rng.integers(0, W, 300).astype(np.uint16), rng.integers(0, H, 300).astype(np.uint16)
    p = rng.choice(np.array([-1, 1], np.int8), 300)
    end = int(t[-1]) + after_last_us
    got = R.timesurface(t, x, y, p, W, H, tau_us=tau_us, t_end_us=end)
    np.testing.assert_allclose(got, reference.timesurface(t, x, y, p, W, H, tau_us=tau_us, t_end_us=end), rtol=1e-6, atol=0)


REFERENCES = [
    (R.VoxelGrid(), reference.voxel_grid, {}),
    (R.VoxelGrid(bins=3, normalize=True, separate_polarity=True), reference.voxel_grid,
     dict(bins=3, normalize=True, separate_polarity=True)),
    (R.Histogram(), reference.histogram, {}),
    (R.Histogram(bins=3, cutoff=0), reference.histogram, dict(bins=3, cutoff=0)),
    (R.EvImage(), reference.evimage, {}),
    (R.EvSegNet(), reference.evsegnet, {}),
    (R.TimeSurface(tau_us=1000.0), reference.timesurface, dict(tau_us=1000.0)),
]


@pytest.mark.parametrize("device, n_events", [("cpu", 50_000), ("cuda", 300)])
@pytest.mark.parametrize("rep, ref, params", REFERENCES, ids=lambda v: getattr(v, "name", ""))
def test_random_window_matches_the_reference(rep, ref, params, device, n_events):
    width, height = (346, 260) if device == "cpu" else (16, 12)
    e = make_events(n_events, width, height, span_us=50_000, seed=7)
    got = rep(e.t, e.x, e.y, e.p, width, height, device)
    expected = ref(e.t, e.x, e.y, e.p, width, height, **params)
    assert got.shape == rep.shape(width, height) and got.dtype == rep.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("rep", [r for r, _, _ in REFERENCES], ids=lambda r: r.name)
def test_batch_equals_windows_one_by_one(rep, device):
    e = make_events(200, 16, 12, span_us=10_000, seed=2)
    windows = np.array([[0, 200], [10, 60], [50, 50], [150, 200]])  # overlapping, empty, at the end
    got = rep.batch(e.t, e.x, e.y, e.p, windows, 16, 12, device)
    assert got.shape == (4, *rep.shape(16, 12))
    for k, (start, stop) in enumerate(windows):
        one = rep(e.t[start:stop], e.x[start:stop], e.y[start:stop], e.p[start:stop], 16, 12, "cpu")
        np.testing.assert_allclose(got[k], one, rtol=1e-5, atol=1e-6)
    assert not got[2].any()


@pytest.mark.parametrize("device, n_events", [("cpu", 5_000), ("cuda", 300)])
@pytest.mark.parametrize("rep, ref, params", REFERENCES, ids=lambda v: getattr(v, "name", ""))
def test_an_output_buffer_holding_other_values_is_overwritten_whole(rep, ref, params, device, n_events):
    # conversion reuses one buffer block after block, and the voxel kernel clears each bin only
    # when its events reach it: every value must still be rewritten (windows of several
    # 1,024-event chunks, an empty one, one event)
    e = make_events(n_events, 16, 12, span_us=10_000, seed=5)
    windows = np.array([[0, n_events], [0, 0], [n_events - 1, n_events], [n_events // 5, n_events * 7 // 10]])
    used = np.full((len(windows), *rep.shape(16, 12)), 7, rep.dtype)
    assert rep.batch(e.t, e.x, e.y, e.p, windows, 16, 12, device, out=used) is used
    for k, (start, stop) in enumerate(windows):
        expected = ref(e.t[start:stop], e.x[start:stop], e.y[start:stop], e.p[start:stop], 16, 12, **params)
        np.testing.assert_allclose(used[k], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rep", [r for r, _, _ in REFERENCES], ids=lambda r: r.name)
def test_cuda_output_left_on_the_device_equals_the_cpu(rep):
    from numba import cuda

    e = make_events(200, 16, 12, span_us=10_000, seed=3)
    windows = np.array([[0, 120], [120, 120], [100, 200]])
    on_device = cuda.device_array((3, *rep.shape(16, 12)), rep.dtype)
    assert rep.batch(e.t, e.x, e.y, e.p, windows, 16, 12, "cuda", out=on_device) is on_device
    np.testing.assert_allclose(on_device.copy_to_host(), rep.batch(e.t, e.x, e.y, e.p, windows, 16, 12, "cpu"),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"out must be a C-contiguous .* array of shape \(2, "):
        rep.batch(e.t, e.x, e.y, e.p, windows[:2], 16, 12, "cuda", out=on_device)


def test_cuda_parts_hold_windows_of_at_most_the_part_events():
    from evtools.kernels.launch import cuda_parts

    windows = np.array([[0, 40], [40, 90], [90, 100], [100, 300], [300, 300], [250, 320], [0, 10]])
    # a part ends where its span (first start to furthest stop) would pass 100 events; the
    # 200-event window is a part of its own; the last window reaches back to event 0
    assert cuda_parts(windows, 100) == [slice(0, 3), slice(3, 4), slice(4, 6), slice(6, 7)]
    assert cuda_parts(windows[:0], 100) == []


@pytest.mark.parametrize("on_device", [False, True], ids=["host-out", "device-out"])
@pytest.mark.parametrize("rep", [r for r, _, _ in REFERENCES], ids=lambda r: r.name)
def test_cuda_in_parts_equals_the_cpu(rep, on_device, monkeypatch):
    """A call's windows go to the GPU part by part through two sets of staging buffers, each part
    relative to its first event: five parts (the buffer sets reused), a window longer than a part,
    windows out of order and overlapping, an empty one."""
    from numba import cuda

    from evtools.kernels import launch

    monkeypatch.setattr(launch, "CUDA_PART_EVENTS", 60)
    e = make_events(300, 16, 12, span_us=10_000, seed=8)
    windows = np.array([[0, 50], [50, 100], [100, 230], [200, 260], [120, 120], [260, 300], [20, 70], [280, 300]])
    expected = rep.batch(e.t, e.x, e.y, e.p, windows, 16, 12, "cpu")
    if on_device:
        out = cuda.device_array(expected.shape, rep.dtype)
        rep.batch(e.t, e.x, e.y, e.p, windows, 16, 12, "cuda", out=out)
        got = out.copy_to_host()
    else:
        got = rep.batch(e.t, e.x, e.y, e.p, windows, 16, 12, "cuda")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_staged_parts_left_early_give_the_buffers_back(monkeypatch):
    """A launch that fails in the middle of a call closes the parts: the next call stages again."""
    from evtools.kernels import launch

    monkeypatch.setattr(launch, "CUDA_PART_EVENTS", 60)
    e = make_events(300, 16, 12, span_us=10_000, seed=10)
    windows = np.array([[0, 50], [50, 100], [100, 160], [160, 300]])
    with pytest.raises(RuntimeError, match="launch failed") as failed:
        launch.run_cuda(_failing_kernel, (e.t, e.x, e.y, e.p), windows, np.empty((4, 1), np.float32))
    assert failed.tb is not None  # the traceback, and with it the call's frame, still held
    assert launch._STAGING.lock.acquire(blocking=False)
    launch._STAGING.lock.release()
    parts = list(launch.staged_parts((e.t, e.x, e.y, e.p), windows))
    assert [p.windows for p in parts] == [slice(0, 1), slice(1, 2), slice(2, 3), slice(3, 4)]
    np.testing.assert_array_equal(parts[3].columns[0].copy_to_host(), e.t[160:300])
    np.testing.assert_array_equal(parts[3].device_windows.copy_to_host(), [[0, 140]])


class _FailingLaunch:
    def __getitem__(self, config):
        def launch(*args):
            raise RuntimeError("launch failed")
        return launch


_failing_kernel = _FailingLaunch()


def test_cuda_time_surface_ends_follow_their_windows_across_parts(monkeypatch):
    from evtools.kernels import launch

    monkeypatch.setattr(launch, "CUDA_PART_EVENTS", 60)
    e = make_events(300, 16, 12, span_us=10_000, seed=9)
    windows = np.array([[0, 50], [50, 100], [100, 160], [160, 300]])
    ends = e.t[windows[:, 1] - 1] + np.array([0, 500, 1_000, 2_000])
    rep = R.TimeSurface(tau_us=1000.0)
    np.testing.assert_allclose(rep.batch(e.t, e.x, e.y, e.p, windows, 16, 12, "cuda", ends_us=ends),
                               rep.batch(e.t, e.x, e.y, e.p, windows, 16, 12, "cpu", ends_us=ends), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rep", [r for r, _, _ in REFERENCES], ids=lambda r: r.name)
def test_thread_count_changes_nothing(rep):
    # a window is one thread's work, so the sums run in event order whatever the threads
    e = make_events(100_000, seed=4)
    windows = np.array([[0, 100_000], [0, 30_000], [30_000, 31_000]])
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = rep.batch(e.t, e.x, e.y, e.p, windows, 346, 260)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = rep.batch(e.t, e.x, e.y, e.p, windows, 346, 260)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)


@given(span=st.integers(1, 2**40), fraction=st.floats(0, 1), bins=st.integers(1, 64))
def test_histogram_time_bin_equals_integer_division(span, fraction, bins):
    dt = int(span * fraction)
    assert time_bin(dt, bins, span, 1.0 / span) == min(bins * dt // span, bins - 1)


def test_histogram_time_bin_at_exact_multiples():
    # bins * dt a multiple of span: the float estimate may fall just below the integer
    for span in (3, 7, 1_000_003, 49_999):
        for dt in range(0, span + 1, max(1, span // 97)):
            assert time_bin(dt, 5, span, 1.0 / span) == min(5 * dt // span, 4)


def test_inputs_are_not_modified_and_polarity_forms_agree():
    e = make_events(1000, seed=9)
    copies = [a.copy() for a in (e.t, e.x, e.y, e.p)]
    signed = R.voxel_grid(e.t, e.x, e.y, e.p, 346, 260)
    as_bool = R.voxel_grid(e.t, e.x, e.y, e.p > 0, 346, 260)
    as_01 = R.voxel_grid(e.t, e.x, e.y, (e.p > 0).astype(np.uint8), 346, 260)
    np.testing.assert_array_equal(signed, as_bool)
    np.testing.assert_array_equal(signed, as_01)
    for original, copy in zip((e.t, e.x, e.y, e.p), copies):
        np.testing.assert_array_equal(original, copy)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("rep", [r for r, _, _ in REFERENCES], ids=lambda r: r.name)
def test_events_off_the_sensor_are_refused_in_windows_only(rep, device):
    t, x, y, p = ev((0, 1, 1, 1), (1, 0, 0, 1), (2, 3, 3, -1), (3, 2, 2, 1), (4, 9, 0, 1))
    with pytest.raises(ValueError, match=r"^event coordinates outside the 4x3 sensor in window 1 "
                                         r"\(event 1 of the window: x 3, y 3\)$"):
        rep.batch(t, x, y, p, [[0, 2], [1, 4]], W, H, device)
    with pytest.raises(ValueError, match=r"in window 0 \(event 1 of the window: x 9, y 0\)$"):
        rep.batch(t, x, y, p, [[3, 5]], W, H, device)
    # events that no window holds do not matter
    got = rep.batch(t, x, y, p, [[0, 2], [3, 4]], W, H, device)
    np.testing.assert_array_equal(got, rep.batch(t[[0, 1, 3]], x[[0, 1, 3]], y[[0, 1, 3]], p[[0, 1, 3]],
                                                 [[0, 2], [2, 3]], W, H, device))


def test_bad_inputs_are_refused():
    t, x, y, p = ev((0, 4, 0, 1))
    with pytest.raises(ValueError, match="event coordinates outside the 4x3 sensor"):
        R.voxel_grid(t, x, y, p, W, H)
    with pytest.raises(ValueError, match=r"windows must be \[start, stop\) ranges within 0..1"):
        R.VoxelGrid().batch(*ev((0, 0, 0, 1)), [[0, 2]], W, H)
    with pytest.raises(ValueError, match="device must be one of"):
        R.voxel_grid(*ev((0, 0, 0, 1)), W, H, device="tpu")


def test_tonic_structured_arrays():
    dtype = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])
    events = np.array([(1, 2, 0, True), (3, 0, 1000, False)], dtype)
    got = R.from_tonic(events, (W, H, 2), R.VoxelGrid(bins=2))
    check(got, grid(2, (0, 2, 1, 1.0), (1, 0, 3, -1.0)))


def test_params_round_trip():
    rep = R.VoxelGrid(bins=7, normalize=True)
    assert rep.params() == {"bins": 7, "normalize": True, "separate_polarity": False}
    assert R.REPRESENTATIONS["voxel"].from_params(rep.params()) == rep
    assert R.Histogram().shape(346, 260) == (10, 260, 346)


def test_refusals_name_the_problem():
    t = np.array([0, 10, 5, 20], np.int64)
    x = y = np.zeros(4, np.int64)
    p = np.ones(4, np.int8)
    with pytest.raises(ValueError, match=r"event times go backwards inside window 1 \(event 2 of the window: 10 then 5\)"):
        R.VoxelGrid().batch(t, x, y, p, [[0, 2], [0, 4]], 4, 4)
    # a decrease between two windows, or where no window reaches, is no problem
    grids = R.VoxelGrid(bins=2).batch(t, x, y, p, [[0, 2], [2, 4]], 4, 4)
    np.testing.assert_array_equal(grids[:, :, 0, 0], [[1, 1], [1, 1]])
    with pytest.raises(ValueError, match="NaN or infinite"):
        R.Histogram()(np.array([0.0, np.nan]), x[:2], y[:2], p[:2], 4, 4)
    with pytest.raises(ValueError, match="whole microseconds"):
        R.Histogram()(np.array([0.0, 0.5]), x[:2], y[:2], p[:2], 4, 4)
    for make, message in ((lambda: R.VoxelGrid(bins=0), "bins must be a positive whole number, got 0"),
                          (lambda: R.Histogram(bins=-2), "bins must be a positive whole number, got -2"),
                          (lambda: R.Histogram(cutoff=300), "cutoff must be a whole number from 0"),
                          (lambda: R.TimeSurface(tau_us=-1.0), "tau_us must be a positive number"),
                          (lambda: R.TimeSurface(tau_us=float("nan")), "tau_us must be a positive number")):
        with pytest.raises(ValueError, match=message):
            make()
    with pytest.raises(ValueError, match=r"window 0 ends at 15 us, before its last event \(20 us\)"):
        R.TimeSurface().batch(np.array([0, 20]), x[:2], y[:2], p[:2], [[0, 2]], 4, 4, ends_us=[15])


CONCURRENT_CALLS = """
import threading
import numpy as np
from evtools import representations as R
rng = np.random.default_rng(0)
t = np.sort(rng.integers(0, 50_000, 40_000))
x, y = rng.integers(0, 64, 40_000), rng.integers(0, 48, 40_000)
p = rng.choice(np.array([-1, 1], np.int8), 40_000)
windows = [[0, 20_000], [20_000, 40_000]]
failures = []
def calls(rep):
    try:
        for _ in range(30):
            rep.batch(t, x, y, p, windows, 64, 48)
            try:  # the error path launches parallel code of its own
                rep.batch(t[::-1].copy(), x, y, p, windows, 64, 48)
            except ValueError:
                pass
    except Exception as err:
        failures.append(err)
def renders():  # the simulator's renderer is parallel code too
    from evtools.simulate.scene import Scene, SceneConfig
    scene = Scene.generate(SceneConfig())
    try:
        for k in range(30):
            scene.render(k * 0.01)
    except Exception as err:
        failures.append(err)
threads = [threading.Thread(target=calls, args=(rep(),)) for rep in R.REPRESENTATIONS.values()]
threads.append(threading.Thread(target=renders))
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
assert not failures, failures
"""


def test_kernels_called_from_several_threads_at_once_under_the_workqueue_layer():
    # the kernels release the GIL; Numba's workqueue threading layer (no OpenMP, no TBB) aborts
    # the process when two threads launch parallel code at once (kernels, their checks or the
    # simulator's renderer), unless evtools keeps them apart
    result = subprocess.run([sys.executable, "-c", CONCURRENT_CALLS], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NUMBA_THREADING_LAYER": "workqueue"})
    assert result.returncode == 0, result.stderr
