"""Caches are not trusted on reading: a deleted or corrupt chunk, a garbled array, found and named
(never read as zeros), by the dataset, render and evtools info --verify."""

import json
import re
import shutil

import pytest
import numpy as np
import zarr
from cli import run_cli
from conftest import T0_US, make_events, write_recording

from evtools.cache import Cache, CacheError
from evtools.convert import ConvertSpec, convert
from evtools.data import CacheDataset
from evtools.events import Events
from evtools.io.writers.mvsec import write_mvsec
from evtools.windows import Every


@pytest.fixture(scope="module")
def sound(tmp_path_factory):
    root = tmp_path_factory.mktemp("caches")
    write_recording(root / "rec_data.hdf5", n_events=3000, n_frames=20)  # two shards: windows 0-15, 16-19
    return convert(root / "rec_data.hdf5", root / "sound", ConvertSpec()).output


@pytest.fixture
def damaged(sound, tmp_path):
    copy = tmp_path / "damaged.zarr"
    shutil.copytree(sound, copy)
    return copy


def test_a_sound_cache_verifies(sound):
    assert Cache(sound).verify() == []
    result = run_cli("info", sound, "--verify")
    assert result.returncode == 0 and "every chunk of every array is present and decodes" in result.stdout


def test_a_deleted_chunk_is_named_not_read_as_zeros(damaged):
    (damaged / "repr" / "voxel" / "c.1.0.0.0").unlink()  # the shard of windows 16-19
    with pytest.raises(CacheError, match=r"window 17 of 'repr/voxel' is missing \(the file that holds it was deleted\)"):
        CacheDataset(damaged)[17]
    assert CacheDataset(damaged)[15]["events"].shape == (5, 48, 64)  # the other shard still reads
    assert Cache(damaged).verify() == ["'repr/voxel': 4 of 20 chunks missing (the first at chunk (16, 0, 0, 0))"]
    result = run_cli("info", damaged, "--verify")
    assert result.returncode == 2
    assert result.stderr == (f"error: {damaged}: 1 problem(s): 'repr/voxel': 4 of 20 chunks missing "
                             "(the first at chunk (16, 0, 0, 0))\n")
    result = run_cli("render", damaged, "--index", "17", "-o", damaged.parent / "w.png")
    assert result.returncode == 2 and "window 17 of 'repr/voxel' is missing" in result.stderr


def test_a_corrupt_chunk_and_a_garbled_array_are_named(damaged):
    (damaged / "aps" / "c.1.0.0").write_bytes(b"garbage")  # the shard of windows 16-19
    with pytest.raises(CacheError, match=r"window 17 of 'aps' cannot be decoded"):
        CacheDataset(damaged, with_aps=True)[17]
    assert Cache(damaged).verify() == ["'aps': windows from 16 cannot be decoded (ValueError)"]
    (damaged / "repr" / "voxel" / "zarr.json").write_text("{not json")
    with pytest.raises(CacheError, match=r"array 'repr/voxel' is unreadable"):
        Cache(damaged).array("repr/voxel")


def test_info_on_a_damaged_cache_is_one_line(damaged):
    # an array's metadata that is not even UTF-8 (found by the fuzzer: zarr's listing of the
    # group's arrays raised UnicodeDecodeError)
    (damaged / "t_end_us" / "zarr.json").write_bytes(b'{"zarr_format": 3, \xf0\x28}')
    result = run_cli("info", damaged)
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert result.stderr == (f"error: {damaged}: damaged (UnicodeDecodeError: 'utf-8' codec can't decode byte 0xf0 in "
                             "position 19: invalid continuation byte); evtools info --verify lists every problem\n")
    result = run_cli("info", damaged, "--verify")
    assert result.stderr == f"error: {damaged}: 1 problem(s): array 't_end_us' is unreadable (UnicodeDecodeError)\n"


def test_a_negative_count_is_named(damaged):
    zarr.open_array(damaged / "n_events", mode="r+")[2] = -1
    problem = "'n_events' counts -1 events in window 2, not at least 0"
    assert Cache(damaged).verify() == [problem]
    result = run_cli("info", damaged)
    assert result.returncode == 2 and result.stderr == f"error: {damaged}: {problem}\n"


def test_a_window_that_starts_after_its_end_is_named(damaged):
    zarr.open_array(damaged / "t_end_us", mode="r+")[5] = -7
    start = int(zarr.open_array(damaged / "t_start_us", mode="r")[5])
    assert Cache(damaged).verify() == [f"window 5 starts at {start} us, after its end at -7 us"]


def edit_json(path, edit):
    metadata = json.loads(path.read_text())
    edit(metadata)
    path.write_text(json.dumps(metadata))


def test_a_shape_that_damaged_metadata_changed_is_named(damaged):
    # a zarr.json that still parses, with a digit of a shape changed: read as it says, the readers
    # listed a million chunks a window (verify) or took the window for deleted
    edit_json(damaged / "repr" / "voxel" / "zarr.json", lambda metadata: metadata["shape"].__setitem__(2, 48_000_000))
    problem = ("array 'repr/voxel' has windows of shape (5, 48000000, 64) in chunks of (1, 5, 48, 64), not one whole "
               "window a chunk (its metadata is damaged, or evtools did not write it)")
    assert Cache(damaged).verify() == [problem]
    with pytest.raises(CacheError, match=re.escape(problem)):
        CacheDataset(damaged)[0]
    result = run_cli("info", damaged)
    assert result.returncode == 2 and result.stderr == f"error: {damaged}: {problem}\n"
    # the windows of each array against the windows done, and those a number
    edit_json(damaged / "t_end_us" / "zarr.json", lambda metadata: metadata["shape"].__setitem__(0, 2_000_000_000))
    assert Cache(damaged).verify() == [
        problem, "array 't_end_us' holds 2000000000 windows, the cache 20 (its metadata is damaged)"]
    edit_json(damaged / "zarr.json", lambda metadata: metadata["attributes"].__setitem__("windows_done", "20"))
    result = run_cli("info", damaged)
    assert result.returncode == 2
    assert result.stderr == f"error: {damaged}: its attribute windows_done is '20', not a number of windows (damaged)\n"


def test_what_zarr_still_reads_after_an_error_finishes_before_the_command_exits():
    # a read whose chunk fails raises while its other chunks' reads go on in zarr's event loop;
    # unfinished at exit, each printed a traceback after the one line (`score` on a corrupt shard)
    import asyncio

    import zarr.core.sync

    from evtools.cache import settle_zarr_io

    still_reading = asyncio.run_coroutine_threadsafe(asyncio.sleep(0.5, "read"), zarr.core.sync._get_loop())
    settle_zarr_io()
    assert still_reading.done() and still_reading.result() == "read"
    # a loop stuck in a call that does not yield is not waited for beyond the limit
    import time

    zarr.core.sync._get_loop().call_soon_threadsafe(time.sleep, 1.5)
    started = time.perf_counter()
    settle_zarr_io(timeout_s=0.2)
    assert time.perf_counter() - started < 1.2
    settle_zarr_io()  # the loop free again for the tests after this one
    assert time.perf_counter() - started >= 1.5


def test_every_command_that_reads_windows_names_a_corrupt_chunk(damaged, tmp_path):
    from evtools.models.checkpoint import save_checkpoint
    from evtools.models.deeplab import DeepLabConfig, DeepLabV3Plus

    small = DeepLabConfig(depth=18, width=0.25, num_classes=6, aspp_channels=8, decoder_channels=8)
    teacher = save_checkpoint(tmp_path / "teacher.pt", DeepLabV3Plus(DeepLabConfig(**{**small.__dict__, "in_channels": 1})).eval())
    student = save_checkpoint(tmp_path / "student.pt", DeepLabV3Plus(DeepLabConfig(**{**small.__dict__, "in_channels": 5})).eval(),
                              {"repr": "voxel"})
    assert run_cli("pseudolabel", damaged, "--teacher", teacher, "--scales", "1.0", "--no-flip").returncode == 0
    (damaged / "repr" / "voxel" / "c.1.0.0.0").write_bytes(b"garbage")  # windows 16-19
    (damaged / "labels" / "c.1.0.0").write_bytes(b"garbage")
    (damaged / "aps" / "c.1.0.0").write_bytes(b"garbage")
    cache = Cache(damaged)
    with pytest.raises(CacheError, match=r"windows 8-19 of 'labels' cannot be decoded \(ValueError\)$"):
        cache.windows("labels", 8, 20)
    assert cache.windows("labels", 0, 16).shape == (16, 48, 64)  # the other shard reads
    for args, problem in [(["eval", student, "--events", damaged, "--truth", "labels"], "windows 16-19 of 'repr/voxel'"),
                          (["score", damaged, "--truth", "labels"], "windows 0-19 of 'labels'"),
                          (["pseudolabel", damaged, "--teacher", teacher, "--overwrite", "--no-flip", "--batch-size", "16"],
                           "windows 16-19 of 'aps'"),
                          # that run stopped after 16 windows: the pseudo-labels it left are not read as finished
                          (["score", damaged, "--truth", "labels"], "its 'labels' are unfinished (16 of 20 windows: "
                                                                     "the run writing them stopped); run it again"),
                          (["render", damaged, "--index", "3", "-o", tmp_path / "w3.png"],
                           "its 'labels' are unfinished (16 of 20 windows: the run writing them stopped)")]:
        result = run_cli(*args)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, (args, result.stderr)
        assert result.stderr.startswith(f"error: {damaged}: {problem}"), (args, result.stderr)
    # a window that run did not reach has no file: had said "window 17 of 'labels' is missing (the
    # file that holds it was deleted)"
    with pytest.raises(CacheError, match=r"its 'labels' are unfinished \(16 of 20 windows: the run writing them stopped\)"):
        Cache(damaged).window("labels", 17)
    result = run_cli("info", damaged)
    assert result.returncode == 0 and "unfinished: 16 of 20 windows (run evtools pseudolabel again)" in result.stdout


def test_windows_without_events_are_stored_not_missing(tmp_path):
    # a 4 s pause in the recording: 80 empty 50 ms windows, whole 16-window chunks of zero counts
    # and all-zero voxel grids among them, every one stored (zarr alone leaves all-zero chunks out,
    # which would read as damage)
    first, second = make_events(500, 64, 48, 200_000, seed=1), make_events(500, 64, 48, 200_000, seed=2)
    events = Events(*(np.concatenate([getattr(first, c), getattr(second, c)]) for c in "txyp"))
    events.t[500:] += 4_200_000
    write_mvsec(tmp_path / "gap_data.hdf5", [events], t0_us=T0_US)
    cache = Cache(convert(tmp_path / "gap_data.hdf5", tmp_path / "gap", ConvertSpec(window=Every(50_000))).output)
    assert (cache.n_events[4:84] == 0).all() and cache.verify() == []
    assert not CacheDataset(cache.path)[20]["events"].any()
    # windows 16-79 are one block (four shards) without events: stored without being computed
    grids = zarr.open_array(cache.path / "repr" / "voxel", mode="r")[:]
    assert not grids[4:84].any() and grids[:4].any() and grids[84:].any()
    assert all((cache.path / "repr" / "voxel" / f"c.{shard}.0.0.0").is_file() for shard in range(6))
    # the window times are one chunk here (written once), the counts one a block of 16 windows
    times, counts = (zarr.open_array(cache.path / name, mode="r") for name in ("t_start_us", "n_events"))
    assert times.chunks == (len(cache),) and counts.chunks == (16,)
