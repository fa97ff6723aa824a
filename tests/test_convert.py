"""evtools convert: values against the kernels run by hand, crop, resume after interruption and
after kill -9, refusal of other parameters, errors, several inputs."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zarr
from cli import run_cli
from conftest import T0_US, assert_same_cache, damage_block_at, make_events, write_recording

from evtools import cache as cache_module
from evtools.cache import Cache, CacheError
from evtools.events import Events
from evtools import convert as convert_module
from evtools.convert import ConvertSpec, _blocks, convert
from evtools.errors import EvtoolsError, InputError
from evtools.io.fingerprint import fingerprint
from evtools.io.writers.evh5 import write_evh5
from evtools.representations import EvSegNet, Histogram, TimeSurface, VoxelGrid
from evtools.windows import EventsBeforeFrame, Every, Windows


class SlowEncoder:
    """A window's encoder that takes its time, as a busy core would."""

    def __init__(self, encoder):
        self.encoder = encoder

    def encode(self, values):
        time.sleep(0.005)
        return self.encoder.encode(values)

    def get_config(self):
        return self.encoder.get_config()


def slow_writes(write_file):
    def write(*args, **kwargs):
        time.sleep(0.005)
        return write_file(*args, **kwargs)

    return write


@pytest.mark.parametrize("lagging", [None, "compressors", "writer"],
                         ids=["one block", "a block a window, slow compressors", "a block a window, slow writer"])
def test_values_match_the_kernels_on_each_window(tmp_path, monkeypatch, lagging):
    if lagging:
        # twelve blocks and encodings or writes that lag behind the kernels: a buffer refilled
        # before its windows were encoded would store another window's values; blocks wait for
        # the writer encoded, not in the buffers
        monkeypatch.setattr("evtools.convert.MAX_BLOCK_EVENTS", 1000)
    if lagging == "compressors":
        encoder = cache_module._encoder
        monkeypatch.setattr("evtools.cache._encoder", lambda array: SlowEncoder(encoder(array)))
    if lagging == "writer":
        monkeypatch.setattr("evtools.cache._write_file", slow_writes(cache_module._write_file))
    events, frames_t, images = write_recording(tmp_path / "rec_data.hdf5")
    reps = (VoxelGrid(bins=3, normalize=True), Histogram(bins=2), EvSegNet(), TimeSurface(tau_us=20_000.0))
    result = convert(tmp_path / "rec_data.hdf5", tmp_path / "out", ConvertSpec(representations=reps))
    assert result.output == tmp_path / "out.zarr" and not result.up_to_date and result.windows == 12
    opened = Cache(result.output)
    attrs = opened.attrs
    assert attrs["window"] == {"mode": "window", "duration_us": 50_000}
    assert attrs["sensor"] == {"width": 64, "height": 48} and attrs["t0_us"] == T0_US and attrs["complete"]
    assert attrs["source"]["format"] == "mvsec" and attrs["source"]["size"] == (tmp_path / "rec_data.hdf5").stat().st_size
    assert attrs["source"]["fingerprint"] == fingerprint(tmp_path / "rec_data.hdf5")
    np.testing.assert_array_equal(opened.array("frame_t_us")[:], frames_t)
    np.testing.assert_array_equal(opened.array("t_end_us")[:], frames_t)
    np.testing.assert_array_equal(opened.array("t_start_us")[:], frames_t - 50_000)
    np.testing.assert_array_equal(opened.array("aps")[:], images)
    for k, f in enumerate(frames_t):
        keep = (events.t >= f - 50_000) & (events.t < f)
        assert opened.array("n_events")[k] == keep.sum()
        e = events[keep]
        for rep in reps:
            extra = {"ends_us": [f]} if rep.uses_window_end else {}
            expected = rep(e.t, e.x, e.y, e.p, 64, 48, **extra)
            # a lone window is split across threads, a block of windows is not: float sums may
            # differ in the last bit
            np.testing.assert_allclose(opened.array(f"repr/{rep.name}")[k], expected, rtol=1e-6, atol=1e-7)
    assert opened.array("repr/voxel").attrs["bins"] == 3
    assert result.events == int(opened.array("n_events")[:].sum())


def test_crop_rows_drops_and_shifts_events_and_frames(tmp_path):
    events, frames_t, images = write_recording(tmp_path / "rec_data.hdf5")
    result = convert(tmp_path / "rec_data.hdf5", tmp_path / "c.zarr",
                     ConvertSpec(representations=(Histogram(bins=1, cutoff=0),), crop_rows=(10, 30)))
    opened = Cache(result.output)
    assert opened.attrs["sensor"] == {"width": 64, "height": 20} and opened.attrs["crop"] == [10, 30]
    np.testing.assert_array_equal(opened.array("aps")[:], images[:, 10:30])
    k, f = 5, frames_t[5]
    keep = (events.t >= f - 50_000) & (events.t < f) & (events.y >= 10) & (events.y < 30)
    expected = np.zeros((2, 20, 64), np.uint8)
    np.add.at(expected, ((events.p[keep] > 0).astype(int), events.y[keep] - 10, events.x[keep]), 1)
    np.testing.assert_array_equal(opened.array("repr/histogram")[k], expected)
    assert opened.array("n_events")[k] == keep.sum()


def test_every_mode_has_no_frames_and_window_events_mode(tmp_path):
    events, _, _ = write_recording(tmp_path / "rec_data.hdf5")
    every = Cache(convert(tmp_path / "rec_data.hdf5", tmp_path / "e", ConvertSpec(window=Every(100_000))).output)
    assert len(every) == events.t[-1] // 100_000 + 1 and not every.has("aps")
    assert every.array("n_events")[:].sum() == len(events)
    counted = Cache(convert(tmp_path / "rec_data.hdf5", tmp_path / "n", ConvertSpec(window=EventsBeforeFrame(500))).output)
    assert set(counted.array("n_events")[:].tolist()) == {500}


def test_existing_cache_is_reused_only_for_the_same_key(tmp_path):
    write_recording(tmp_path / "rec_data.hdf5")
    spec = ConvertSpec(representations=(VoxelGrid(),))
    convert(tmp_path / "rec_data.hdf5", tmp_path / "o", spec)
    again = convert(tmp_path / "rec_data.hdf5", tmp_path / "o", spec)
    assert again.up_to_date
    with pytest.raises(CacheError) as err:
        convert(tmp_path / "rec_data.hdf5", tmp_path / "o", ConvertSpec(representations=(VoxelGrid(bins=7),)))
    assert str(err.value) == f"{tmp_path / 'o.zarr'}: holds a conversion with other representations; use --overwrite to replace it"
    replaced = convert(tmp_path / "rec_data.hdf5", tmp_path / "o",
                       ConvertSpec(representations=(VoxelGrid(bins=7),), overwrite=True))
    assert Cache(replaced.output).array("repr/voxel").shape == (12, 7, 48, 64)
    write_recording(tmp_path / "rec_data.hdf5", seed=1)  # same name, other content
    with pytest.raises(CacheError, match="other source, representations"):
        convert(tmp_path / "rec_data.hdf5", tmp_path / "o", spec)


class Interrupt(Exception):
    pass


def test_resume_after_an_interruption_gives_the_clean_values(tmp_path):
    write_recording(tmp_path / "rec_data.hdf5", n_frames=120, span_us=6_000_000)
    spec = ConvertSpec(representations=(VoxelGrid(), EvSegNet()))
    clean = Cache(convert(tmp_path / "rec_data.hdf5", tmp_path / "clean", spec).output)

    def stop_after_two_blocks(update):
        if update.done >= 32:
            raise Interrupt

    with pytest.raises(Interrupt):
        convert(tmp_path / "rec_data.hdf5", tmp_path / "r", spec, progress=stop_after_two_blocks)
    assert not (tmp_path / "r.zarr").exists()
    with pytest.raises(CacheError, match="incomplete cache"):
        Cache(tmp_path / "r.zarr.partial")
    # the blocks computed before the stop (up to UNSTORED_BLOCKS after the reported ones) are
    # stored and recorded too
    done = zarr.open_group(tmp_path / "r.zarr.partial").attrs["windows_done"]
    assert done in (32, 48, 64)
    resumed = convert(tmp_path / "rec_data.hdf5", tmp_path / "r", spec)
    assert resumed.resumed_from == done
    assert_same_cache(Cache(resumed.output), clean)


def test_an_interrupted_conversion_leaves_no_thread_behind(tmp_path):
    # the blocks in flight are stored before the error leaves convert (which then releases the
    # cache's lock), not later by threads that outlive it
    write_recording(tmp_path / "rec_data.hdf5", n_frames=60, span_us=3_000_000)
    before = set(threading.enumerate())

    def stop_at_once(update):
        raise Interrupt

    with pytest.raises(Interrupt) as interrupted:  # the traceback, kept, holds every frame it passed
        convert(tmp_path / "rec_data.hdf5", tmp_path / "r", ConvertSpec(), progress=stop_at_once)
    left = [thread.name for thread in set(threading.enumerate()) - before]
    assert not [name for name in left if name.startswith("ThreadPoolExecutor")], left  # zarr's own may start
    assert isinstance(interrupted.value, Interrupt)


def test_no_block_is_recorded_as_done_after_one_that_failed_to_be_stored(tmp_path, monkeypatch):
    # the disk fills while the second block is stored, slowly, with the third already computed
    # and handed to the writer: the third must not be stored and recorded as done, which would
    # record the second as done too
    write_recording(tmp_path / "rec_data.hdf5", n_frames=60, span_us=3_000_000)
    write_shards = cache_module._write_shards

    def full_disk_at_the_second_shard(array, first, encoded):
        if first == 16:
            time.sleep(0.5)
            raise OSError(28, "No space left on device")
        write_shards(array, first, encoded)

    monkeypatch.setattr("evtools.cache._write_shards", full_disk_at_the_second_shard)
    with pytest.raises(OSError, match="No space left"):
        convert(tmp_path / "rec_data.hdf5", tmp_path / "r", ConvertSpec())
    assert zarr.open_group(tmp_path / "r.zarr.partial").attrs["windows_done"] == 16
    monkeypatch.setattr("evtools.cache._write_shards", write_shards)
    resumed = convert(tmp_path / "rec_data.hdf5", tmp_path / "r", ConvertSpec())
    assert resumed.resumed_from == 16
    clean = convert(tmp_path / "rec_data.hdf5", tmp_path / "clean", ConvertSpec())
    assert_same_cache(Cache(resumed.output), Cache(clean.output))


def test_progress_is_recorded_in_order_beside_the_writer_and_up_to_the_last_block_stored(tmp_path, monkeypatch):
    # records of progress that take their time (0.5 s each) do not hold the writer: while the
    # first is made, the next blocks are stored and the next record takes the latest of them;
    # when a damaged block stops the conversion, the record of every block before it is made
    write_recording(tmp_path / "rec_data.hdf5", n_frames=120, span_us=6_000_000)
    mark_progress = cache_module.mark_progress
    recorded = []

    def slow_record(group, windows_done):
        time.sleep(0.5)
        mark_progress(group, windows_done)
        recorded.append(windows_done)

    damage_block_at(monkeypatch, 80)  # the sixth block
    monkeypatch.setattr(cache_module, "mark_progress", slow_record)
    with pytest.raises(InputError, match="damaged"):
        convert(tmp_path / "rec_data.hdf5", tmp_path / "r", ConvertSpec())
    assert recorded == sorted(recorded) and len(recorded) < 5 and recorded[-1] == 80
    assert zarr.open_group(tmp_path / "r.zarr.partial").attrs["windows_done"] == 80

    def failing_record(group, windows_done):
        raise OSError(28, "No space left on device")

    monkeypatch.undo()
    monkeypatch.setattr(cache_module, "mark_progress", failing_record)
    with pytest.raises(OSError, match="No space left"):
        convert(tmp_path / "rec_data.hdf5", tmp_path / "r", ConvertSpec())


def test_a_partial_cache_from_before_shards_resumes_in_its_own_layout(tmp_path, monkeypatch):
    # caches written before shards hold a file per window and per chunk of stored events: a
    # conversion into one that was interrupted resumes it in that layout, equal to a clean run
    write_recording(tmp_path / "rec_data.hdf5", n_frames=120, span_us=6_000_000)
    spec = ConvertSpec(representations=(VoxelGrid(), EvSegNet()), events=True)
    create_array = zarr.Group.create_array
    monkeypatch.setattr(zarr.Group, "create_array", lambda group, name, **options: create_array(
        group, name, **{**options, "shards": None}))
    updates = []

    def stop_after_two_blocks(update):
        updates.append(update)
        if len(updates) == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        convert(tmp_path / "rec_data.hdf5", tmp_path / "r", spec, progress=stop_after_two_blocks)
    monkeypatch.undo()
    resumed = convert(tmp_path / "rec_data.hdf5", tmp_path / "r", spec)
    assert 32 <= resumed.resumed_from <= 64  # the blocks computed when stopped are stored too
    cache = Cache(resumed.output)
    for name in ("repr/voxel", "repr/evsegnet", *cache_module.EVENT_ARRAYS):
        assert cache.array(name).shards is None
    assert len(list((cache.path / "repr" / "voxel").glob("c.*"))) == len(cache) == 120
    assert len(list((cache.path / "events" / "dt").glob("c.*"))) == int((cache.n_events > 0).sum())
    assert cache.verify() == []
    clean = convert(tmp_path / "rec_data.hdf5", tmp_path / "clean", spec)
    assert_same_cache(cache, Cache(clean.output))


def test_the_next_block_is_read_on_its_own_thread_while_this_one_is_computed(tmp_path, monkeypatch):
    write_recording(tmp_path / "rec_data.hdf5", n_frames=60, span_us=3_000_000)
    read_block, compute_block = convert_module._read_block, convert_module._compute_block
    reading = {}  # first window of a block -> set when its read begins
    readers = set()

    def read(recording, windows, spec, truth, block):
        readers.add(threading.current_thread())
        reading.setdefault(block.start, threading.Event()).set()
        return read_block(recording, windows, spec, truth, block)

    overlapped = []

    def compute(recording, windows, block, *args):
        if block.stop < len(windows):  # the next block's read has begun before this block is done
            overlapped.append(reading.setdefault(block.stop, threading.Event()).wait(timeout=5))
        return compute_block(recording, windows, block, *args)

    monkeypatch.setattr(convert_module, "_read_block", read)
    monkeypatch.setattr(convert_module, "_compute_block", compute)
    result = convert(tmp_path / "rec_data.hdf5", tmp_path / "r", ConvertSpec())
    assert overlapped == [True] * 3 and threading.main_thread() not in readers
    monkeypatch.undo()
    assert_same_cache(Cache(result.output), Cache(convert(tmp_path / "rec_data.hdf5", tmp_path / "clean").output))


def test_a_block_whose_read_fails_stops_the_conversion_after_the_blocks_before_it(tmp_path, monkeypatch):
    write_recording(tmp_path / "rec_data.hdf5", n_frames=60, span_us=3_000_000)
    damage_block_at(monkeypatch, 32)  # the third block
    with pytest.raises(InputError, match="damaged"):
        convert(tmp_path / "rec_data.hdf5", tmp_path / "r", ConvertSpec())
    assert zarr.open_group(tmp_path / "r.zarr.partial").attrs["windows_done"] == 32


def test_blocks_that_end_early_and_a_resume_inside_a_shard_write_the_clean_files(tmp_path, monkeypatch):
    # blocks of about 3 windows (each holds ~330 events): every 16-window shard is written in
    # pieces, each piece keeping the windows already there; interrupted inside a shard, resumed
    write_recording(tmp_path / "rec_data.hdf5", n_frames=60, span_us=3_000_000)
    spec = ConvertSpec(representations=(VoxelGrid(), EvSegNet()))
    clean = Cache(convert(tmp_path / "rec_data.hdf5", tmp_path / "clean", spec).output)
    monkeypatch.setattr("evtools.convert.MAX_BLOCK_EVENTS", 1000)

    def stop_inside_the_second_shard(update):
        if update.done >= 20:
            raise Interrupt

    with pytest.raises(Interrupt):
        convert(tmp_path / "rec_data.hdf5", tmp_path / "r", spec, progress=stop_inside_the_second_shard)
    done = zarr.open_group(tmp_path / "r.zarr.partial").attrs["windows_done"]
    assert 16 < done < 32 and done % 16
    resumed = convert(tmp_path / "rec_data.hdf5", tmp_path / "r", spec)
    assert resumed.resumed_from == done
    files = [{p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("c.*")} for root in (clean.path, resumed.output)]
    assert files[0] == files[1] and "repr/voxel/c.1.0.0.0" in files[0]  # byte for byte, shard by shard


def test_a_resume_whose_shard_was_deleted_is_one_line(tmp_path, monkeypatch):
    write_recording(tmp_path / "rec_data.hdf5", n_frames=60, span_us=3_000_000)
    monkeypatch.setattr("evtools.convert.MAX_BLOCK_EVENTS", 1000)

    def stop_inside_the_second_shard(update):
        if update.done >= 20:
            raise Interrupt

    with pytest.raises(Interrupt):
        convert(tmp_path / "rec_data.hdf5", tmp_path / "r", ConvertSpec(), progress=stop_inside_the_second_shard)
    shard = tmp_path / "r.zarr.partial" / "repr" / "voxel" / "c.1.0.0.0"
    shard.unlink()
    with pytest.raises(CacheError, match=r"c\.1\.0\.0\.0: a shard written earlier is missing"):
        convert(tmp_path / "rec_data.hdf5", tmp_path / "r", ConvertSpec())


# kill -9, and Ctrl-C: one line and exit code 130 (typer 0.2x had turned it into 130 without a word)
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT])
def test_stopped_midway_then_resume(tmp_path, stop):
    write_recording(tmp_path / "rec_data.hdf5", n_events=200_000, n_frames=200, span_us=10_000_000, width=346, height=260)
    args = ["convert", tmp_path / "rec_data.hdf5", "--repr", "voxel", "--repr", "evimage"]
    clean = run_cli(*args, "-o", tmp_path / "clean")
    assert clean.returncode == 0, clean.stderr
    partial = tmp_path / "k.zarr.partial"
    process = subprocess.Popen([sys.executable, "-m", "evtools", *map(str, args), "-o", str(tmp_path / "k")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            meta = partial / "zarr.json"
            try:
                if json.loads(meta.read_text())["attributes"].get("windows_done", 0) >= 48:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.005)
        assert process.poll() is None, "the conversion ended before it could be killed"
        os.kill(process.pid, stop)
        stderr = process.communicate(timeout=60)[1]
    finally:
        if process.poll() is None:
            process.kill()
    if stop == signal.SIGINT:
        assert (process.returncode, stderr) == (130, "error: interrupted (convert and pseudolabel resume where they "
                                                     "stopped when the same command runs again, train student with "
                                                     "--resume)\n")
    assert not (tmp_path / "k.zarr").exists()
    assert not zarr.open_group(partial, mode="r").attrs["complete"]
    resumed = run_cli(*args, "-o", tmp_path / "k")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed at" in resumed.stdout
    assert_same_cache(Cache(tmp_path / "k.zarr"), Cache(tmp_path / "clean.zarr"))


def test_errors(tmp_path):
    empty = write_evh5(tmp_path / "empty.h5", [], width=8, height=8)
    with pytest.raises(InputError) as err:
        convert(empty, tmp_path / "x")
    assert str(err.value) == f"{empty}: the recording holds no events"
    no_frames = write_evh5(tmp_path / "nf.h5", [make_events(10, 8, 8)], width=8, height=8)
    with pytest.raises(EvtoolsError) as err:
        convert(no_frames, tmp_path / "x")
    assert str(err.value) == f"{no_frames}: the recording has no APS frames; give fixed windows with --every 50ms"
    with pytest.raises(InputError) as err:
        convert(no_frames, tmp_path / "x", ConvertSpec(window=Every(1000), crop_rows=(0, 9)))
    assert str(err.value) == f"{no_frames}: crop rows 0:9 do not fit the sensor's 8 rows"
    with pytest.raises(EvtoolsError, match="give each representation once"):
        convert(no_frames, tmp_path / "x", ConvertSpec(representations=(VoxelGrid(), VoxelGrid(bins=3))))


def test_cli_convert_errors_are_one_line(tmp_path):
    write_recording(tmp_path / "rec_data.hdf5", n_events=1000)
    result = run_cli("convert", tmp_path / "rec_data.hdf5", "-o", tmp_path / "o", "--crop-rows", "5")
    assert (result.returncode, result.stderr) == (2, "error: --crop-rows: '5' is not a row range A:B with A < B, such as 0:200\n")
    result = run_cli("convert", tmp_path / "rec_data.hdf5", "-o", tmp_path / "o", "--repr", "voxels")
    assert result.stderr == "error: --repr: unknown representation 'voxels' (known: voxel, histogram, evimage, evsegnet, timesurface, events)\n"
    result = run_cli("convert", tmp_path / "missing.h5", "-o", tmp_path / "o")
    assert (result.returncode, result.stderr) == (2, f"error: {tmp_path / 'missing.h5'}: no such file or directory\n")


def test_cli_one_input_into_an_existing_folder(tmp_path):
    write_recording(tmp_path / "rec_data.hdf5", n_events=1000, n_frames=3)
    (tmp_path / "caches").mkdir()
    result = run_cli("convert", tmp_path / "rec_data.hdf5", "-o", tmp_path / "caches")
    assert result.returncode == 0, result.stderr
    assert Cache(tmp_path / "caches" / "rec_data.zarr").attrs["complete"]


def test_cuda_conversion_equals_the_cpu_one(tmp_path):
    # under NUMBA_ENABLE_CUDASIM=1 (conftest) this runs the CUDA path in Numba's simulator
    write_recording(tmp_path / "rec_data.hdf5", n_events=1500, n_frames=4)
    reps = (VoxelGrid(bins=3), TimeSurface(tau_us=20_000.0))
    on_cpu = convert(tmp_path / "rec_data.hdf5", tmp_path / "cpu", ConvertSpec(representations=reps)).output
    on_cuda = convert(tmp_path / "rec_data.hdf5", tmp_path / "cuda", ConvertSpec(representations=reps, device="cuda")).output
    for name in ("repr/voxel", "repr/timesurface"):
        np.testing.assert_allclose(zarr.open_group(on_cuda)[name][:], zarr.open_group(on_cpu)[name][:], rtol=1e-5, atol=1e-6)


def test_float16_cache_is_the_float32_cache_rounded(tmp_path):
    write_recording(tmp_path / "rec_data.hdf5")
    reps = (VoxelGrid(bins=3), Histogram(bins=3), TimeSurface(tau_us=20_000.0))  # --bins sets both
    full = Cache(convert(tmp_path / "rec_data.hdf5", tmp_path / "full", ConvertSpec(representations=reps)).output)
    result = run_cli("convert", tmp_path / "rec_data.hdf5", "-o", tmp_path / "half", "--dtype", "float16",
                     "--repr", "voxel", "--bins", "3", "--repr", "histogram", "--repr", "timesurface", "--tau", "20ms",
                     "--cutoff", "10")
    assert result.returncode == 0, result.stderr
    half = Cache(tmp_path / "half.zarr")
    assert half.attrs["float_dtype"] == "float16" and full.attrs.get("float_dtype") is None
    for name in ("voxel", "timesurface"):
        stored = half.array(f"repr/{name}")[:]
        assert stored.dtype == np.float16
        np.testing.assert_array_equal(stored, full.array(f"repr/{name}")[:].astype(np.float16))
    assert half.array("repr/histogram").dtype == np.uint8  # not a float representation: as it is
    np.testing.assert_array_equal(half.array("repr/histogram")[:], full.array("repr/histogram")[:])
    with pytest.raises(cache_module.StaleCacheError, match="other float_dtype"):
        convert(tmp_path / "rec_data.hdf5", tmp_path / "half", ConvertSpec(representations=reps))
    bad = run_cli("convert", tmp_path / "rec_data.hdf5", "-o", tmp_path / "x", "--dtype", "float64")
    assert (bad.returncode, bad.stderr) == (2, "error: --dtype: 'float64' is not float32 or float16\n")


def test_float16_refuses_values_beyond_its_range(tmp_path):
    n = 70_000  # one pixel, one window: a voxel sum beyond 65504
    events = Events(np.arange(n, dtype=np.int64) // 10, np.zeros(n, np.uint16), np.zeros(n, np.uint16), np.ones(n, np.int8))
    path = write_evh5(tmp_path / "hot.h5", [events], width=4, height=3)
    with pytest.raises(InputError, match=r"window 0: a voxel value of 70000 is beyond float16's range \(65504\)"):
        convert(path, tmp_path / "hot", ConvertSpec(window=Every(100_000), float16=True, representations=(VoxelGrid(bins=1),)))


def test_the_command_asks_for_sleeping_kernel_threads_unless_the_user_chose(monkeypatch):
    import os

    from evtools.convert import kernel_threads_sleep_between_calls

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    kernel_threads_sleep_between_calls()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    kernel_threads_sleep_between_calls()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_the_command_loads_the_kernels_without_importing_scipy_linalg_which_later_jitted_code_still_gets(tmp_path):
    pytest.importorskip("scipy.linalg")  # installed with the dev extras: without it there is nothing to check
    path = write_evh5(tmp_path / "rec.h5", [Events(np.arange(10, dtype=np.int64), np.zeros(10, np.uint16),
                                                   np.zeros(10, np.uint16), np.ones(10, np.int8))], width=4, height=3)
    script = f"""
import sys
import numba, numpy as np
from evtools.cli.app import app
try:
    app(["convert", {str(path)!r}, "-o", {str(tmp_path / "rec")!r}, "--every", "5us"])
except SystemExit as end:
    assert end.code == 0, end.code
print("scipy.linalg" in sys.modules)
dot = numba.njit(lambda a, b: np.dot(a, b))  # BLAS, compiled after: Numba imports scipy.linalg for it
print(dot(np.ones(3), np.arange(3.0)), "scipy.linalg" in sys.modules)
"""
    lines = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines[-2:] == ["False", "3.0 True"]


def test_runs_of_windows_without_events_make_long_blocks_of_whole_shards():
    # 16 windows with 10 events each, 100 without events, 20 with events again
    counts = np.array([10] * 16 + [0] * 100 + [10] * 20)
    stop = np.cumsum(counts)
    times = np.arange(len(counts), dtype=np.int64)
    windows = Windows(stop - counts, stop, times, times + 1, frame_index=None)
    spans = [(b.start, b.stop) for b in _blocks(windows, 0)]
    # the empty run 16..115 as one block of 96 windows (six shards); its last 4 windows start a usual block
    assert spans == [(0, 16), (16, 112), (112, 128), (128, 136)]
    assert [(b.start, b.stop) for b in _blocks(windows, 20, 60)] == [(20, 52), (52, 60)]  # within a cluster's range
    framed = Windows(windows.start, windows.stop, times, times + 1, frame_index=np.arange(len(counts)))
    assert [(b.start, b.stop) for b in _blocks(framed, 0)][:3] == [(0, 16), (16, 32), (32, 48)]  # frames: 16 a block
