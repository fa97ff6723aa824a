"""Conversion state under stress: kill -9 at random moments then a rerun equals a clean
conversion; a partial killed while being created starts over; two conversions into one output;
--overwrite deletes only caches; a cache that does not say it is complete is refused."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import zarr
from cli import run_cli
from conftest import assert_same_cache, write_recording

from evtools import cache as cache_module
from evtools.cache import Cache, CacheError
from evtools.convert import ConvertSpec, convert
from evtools.errors import InputError
from evtools.representations import EvImage, VoxelGrid

ARGS = ["--repr", "voxel", "--repr", "evimage", "--repr", "events"]
SPEC = ConvertSpec(representations=(VoxelGrid(), EvImage()), events=True)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    root = tmp_path_factory.mktemp("state")
    path = root / "rec_data.hdf5"
    write_recording(path, n_events=150_000, n_frames=120, span_us=6_000_000, width=346, height=260)
    clean = run_cli("convert", path, *ARGS, "-o", root / "clean")
    assert clean.returncode == 0, clean.stderr
    return path, Cache(root / "clean.zarr")


def kill_trials(recording, tmp_path, trials: int, seed: int) -> list[float]:
    path, clean = recording
    rng = random.Random(seed)
    delays = []
    for trial in range(trials):
        out = tmp_path / f"k{trial}"
        process = subprocess.Popen([sys.executable, "-m", "evtools", "convert", str(path), *ARGS, "-o", str(out)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delay = rng.uniform(0.0, 3.0)  # from before the imports end to after the conversion ends
        time.sleep(delay)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        delays.append(delay)
        rerun = run_cli("convert", path, *ARGS, "-o", out)
        assert rerun.returncode == 0, (trial, delay, rerun.stderr)
        assert_same_cache(Cache(out.with_suffix(".zarr")), clean)
        assert not out.with_name(out.name + ".zarr.partial").exists()
    return delays


def test_kill_9_at_random_moments_then_rerun(recording, tmp_path):
    kill_trials(recording, tmp_path, trials=3, seed=1)


@pytest.mark.slow
def test_kill_9_at_24_random_moments_then_rerun(recording, tmp_path):
    delays = kill_trials(recording, tmp_path, trials=24, seed=2)
    assert min(delays) < 1.0 < max(delays)


def test_a_partial_killed_while_being_created_starts_over(recording, tmp_path):
    path, clean = recording
    output = tmp_path / "c.zarr"
    # what a kill leaves after the arrays are made and before the attributes are written
    group = zarr.open_group(cache_module.partial_path(output), mode="w")
    group.create_array("t_start_us", shape=(120,), dtype="int64", fill_value=0)
    result = convert(path, output, SPEC)
    assert result.resumed_from == 0
    assert_same_cache(Cache(result.output), clean)


def test_a_second_conversion_into_the_same_output_is_refused(recording, tmp_path):
    path, _ = recording
    output = tmp_path / "busy.zarr"
    with cache_module.cache_lock(output):
        # twice: a refused conversion once removed the holder's lock file, and the next one then
        # locked a new file of the same name and ran beside the holder
        for _ in range(2):
            with pytest.raises(InputError, match="another evtools command is writing this cache now"):
                convert(path, output, SPEC)
        assert (tmp_path / "busy.zarr.lock").exists()
    assert not output.exists() and not (tmp_path / "busy.zarr.lock").exists()
    assert convert(path, output, SPEC).windows == 120  # free again


def test_overwrite_deletes_only_caches(recording, tmp_path):
    path, _ = recording
    folder = tmp_path / "mine.zarr"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="is not an evtools cache: --overwrite deletes only caches"):
        convert(path, folder, ConvertSpec(representations=SPEC.representations, overwrite=True))
    assert (folder / "notes.txt").read_text() == "mine"


def test_only_a_cache_marked_complete_is_read(recording, tmp_path):
    path, _ = recording
    output = convert(path, tmp_path / "done.zarr", SPEC).output
    zarr.open_group(output, mode="r+").attrs["complete"] = "no"
    with pytest.raises(CacheError, match="incomplete cache"):
        Cache(output)


def test_messages_keep_their_brackets(tmp_path):
    bad = tmp_path / "[odd] name.h5"
    bad.write_bytes(b"not a recording")
    result = run_cli("info", bad)
    assert result.returncode == 2
    assert "[odd] name.h5" in result.stderr


def test_a_conversion_that_cannot_fit_is_refused_before_writing(recording, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    path, _ = recording
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(10**9, 10**9 - 100_000, 100_000))
    # 120 windows x 2 representations: at least a byte per event and channel (or 32 bytes a
    # window) and a 4 KiB file block per shard of 16 windows, far beyond 100,000 bytes
    with pytest.raises(InputError, match=r"120 windows need at least 0.0 GB, and 0.0 GB are free there"):
        convert(path, tmp_path / "full.zarr", SPEC)
    assert list(tmp_path.iterdir()) == []


def test_every_refuses_an_absurd_number_of_windows(recording, tmp_path, monkeypatch):
    from evtools import windows
    from evtools.windows import Every, WindowError

    path, _ = recording
    monkeypatch.setattr(windows, "MAX_WINDOWS", 1_000_000)  # a corrupt last time cuts billions; 6 s at 1 us, 6 million
    with pytest.raises(WindowError, match=r"--every 1us over 6 s would cut 5,99\d,\d\d\d windows \(more than 1,000,000\)"):
        convert(path, tmp_path / "many.zarr", ConvertSpec(representations=SPEC.representations, window=Every(1)))
    assert list(tmp_path.iterdir()) == []


def test_one_bad_input_among_several_leaves_the_others_converted(recording, tmp_path):
    import pickle

    from evtools.errors import CorruptFileError

    path, clean = recording
    bad = tmp_path / "bad_data.hdf5"
    bad.write_bytes(path.read_bytes()[:5000])  # a truncated HDF5 file
    result = run_cli("convert", path, bad, *ARGS, "-o", tmp_path / "out", "--jobs", "2")
    assert result.returncode == 2
    # one line: the worker that found the damage logs no traceback of its own
    assert result.stderr.startswith(f"error: {bad}: unreadable HDF5 file (") and len(result.stderr.splitlines()) == 1
    assert_same_cache(Cache(tmp_path / "out" / "rec_data.zarr"), clean)
    # errors come back from worker processes whole
    error = pickle.loads(pickle.dumps(CorruptFileError(bad, "damaged")))
    assert type(error) is CorruptFileError and (error.path, error.problem, str(error)) == (bad, "damaged", f"{bad}: damaged")
