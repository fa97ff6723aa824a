"""Conversions on Dask clusters: a LocalCluster of two worker processes gives caches identical to
a serial conversion, for small recordings converted whole by a worker and for ranges of larger
ones (the tests' recordings are small: ``whole_bytes=0`` makes them ranges); a worker killed
midway has its ranges or its recording rerun and the cache is still identical; for ranges the
client alone marks completion."""

import os
import signal
import threading
import time

import pytest
from conftest import assert_same_cache, write_recording

from evtools.cache import Cache
from evtools.cluster import convert_all, convert_on_cluster, local_cluster
from evtools.convert import ConvertSpec, convert
from evtools.errors import EvtoolsError
from evtools.representations import EvImage, VoxelGrid

SPEC = ConvertSpec(representations=(VoxelGrid(), EvImage()), events=True)

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(2) as local, distributed.Client(local) as client:
        yield client


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    write_recording(root / "a_data.hdf5", n_events=3000, seed=1)
    write_recording(root / "b_data.hdf5", n_events=120_000, n_frames=200, span_us=8_000_000, width=96, height=64, seed=2)
    serial = {name: Cache(convert(root / f"{name}_data.hdf5", root / f"serial_{name}", SPEC).output) for name in "ab"}
    return root, serial


def test_two_workers_give_the_serial_caches(cluster, recordings, tmp_path):
    root, serial = recordings
    seen = []
    inputs = [root / "a_data.hdf5", root / "b_data.hdf5"]
    results = convert_on_cluster(cluster, inputs, [tmp_path / "a.zarr", tmp_path / "b.zarr"], SPEC, seen.append,
                                 range_windows=32, whole_bytes=0)  # b: 7 ranges over both workers
    assert [r.windows for r in results] == [12, 200] and not any(r.up_to_date for r in results)
    for result, name in zip(results, "ab"):
        assert_same_cache(Cache(result.output), serial[name])
        assert Cache(result.output).attrs["windows_done"] == len(serial[name])
    assert {u.task for u in seen} == {0, 1} and max(u.done for u in seen if u.task == 1) == 200
    again = convert_on_cluster(cluster, inputs, [tmp_path / "a.zarr", tmp_path / "b.zarr"], SPEC)
    assert all(r.up_to_date for r in again)


def test_a_worker_killed_midway_still_gives_the_serial_cache(cluster, recordings, tmp_path):
    root, serial = recordings
    pids = list(cluster.run(os.getpid).values())
    killed = []

    def kill_one_worker(update):
        if not killed:
            os.kill(pids[0], signal.SIGKILL)  # the nanny starts a new worker; Dask reruns its tasks
            killed.append(update.done)

    [result] = convert_on_cluster(cluster, [root / "b_data.hdf5"], [tmp_path / "b.zarr"], SPEC, kill_one_worker,
                                  range_windows=16, whole_bytes=0)
    assert killed and killed[0] < 200
    assert_same_cache(Cache(result.output), serial["b"])


def _truncated(recording, folder):
    """A copy of ``recording`` cut to 4,000 bytes: an HDF5 file its library cannot open."""
    bad = folder / "bad_data.hdf5"
    bad.write_bytes(recording.read_bytes()[:4000])
    return bad


def test_one_failing_input_leaves_the_other_and_a_missing_scheduler_is_one_line(cluster, recordings, tmp_path):
    root, serial = recordings
    bad = _truncated(root / "a_data.hdf5", tmp_path)
    results = convert_on_cluster(cluster, [bad, root / "a_data.hdf5"], [tmp_path / "bad.zarr", tmp_path / "a.zarr"], SPEC,
                                 whole_bytes=0)
    assert isinstance(results[0], EvtoolsError) and "unreadable HDF5 file" in str(results[0])
    assert_same_cache(Cache(results[1].output), serial["a"])
    with pytest.raises(EvtoolsError, match="--scheduler tcp://127.0.0.1:1: no Dask scheduler answers there"):
        convert_all([root / "a_data.hdf5"], [tmp_path / "x.zarr"], SPEC, scheduler="tcp://127.0.0.1:1")


def test_recordings_open_a_few_at_a_time(cluster, recordings, tmp_path):
    # every recording used to be prepared and locked before any converted: a folder of more
    # recordings than open files allowed (1,024 by default) failed with "Too many open files"
    root, serial = recordings
    inputs = [root / "a_data.hdf5", root / "bad_data.hdf5", root / "a_data.hdf5", root / "b_data.hdf5"]
    outputs = [tmp_path / f"{k}.zarr" for k in range(4)]
    open_locks = []

    def count_locks(update):
        open_locks.append(len(list(tmp_path.glob("*.zarr.lock"))))

    results = convert_on_cluster(cluster, inputs, outputs, SPEC, count_locks, range_windows=32, open_at_once=2, whole_bytes=0)
    assert isinstance(results[1], EvtoolsError) and "no such file or directory" in str(results[1])
    for k, name in ((0, "a"), (2, "a"), (3, "b")):
        assert_same_cache(Cache(results[k].output), serial[name])
    assert open_locks and max(open_locks) <= 2 and not list(tmp_path.glob("*.zarr.lock"))


def test_stacks_on_two_workers_equal_the_serial_stacks(cluster, recordings, tmp_path):
    from evtools.windows import BeforeFrame

    root, _ = recordings
    spec = ConvertSpec(representations=(VoxelGrid(bins=2),), window=BeforeFrame(40_000, stack=4))
    serial = Cache(convert(root / "b_data.hdf5", tmp_path / "serial", spec).output)
    [result] = convert_on_cluster(cluster, [root / "b_data.hdf5"], [tmp_path / "b.zarr"], spec, range_windows=48, whole_bytes=0)
    assert Cache(result.output).array("repr/voxel").shape == (200, 4, 2, 64, 96)
    assert_same_cache(Cache(result.output), serial)


def test_small_recordings_are_converted_whole_by_the_workers(cluster, recordings, tmp_path):
    root, serial = recordings
    bad = _truncated(root / "a_data.hdf5", tmp_path)
    inputs = [root / "a_data.hdf5", bad, root / "b_data.hdf5"]
    outputs = [tmp_path / f"{k}.zarr" for k in range(3)]
    seen = []
    with distributed.get_task_stream(cluster) as tasks:
        results = convert_on_cluster(cluster, inputs, outputs, SPEC, seen.append)
    assert {distributed.utils.key_split(task["key"]) for task in tasks.data} == {"convert-whole"}  # no ranges
    assert isinstance(results[1], EvtoolsError) and "unreadable HDF5 file" in str(results[1])
    for k, name in ((0, "a"), (2, "b")):
        assert_same_cache(Cache(results[k].output), serial[name])
    assert sorted((u.task, u.done, u.total) for u in seen) == [(0, 12, 12), (2, 200, 200)]
    again = convert_on_cluster(cluster, [inputs[0]], [outputs[0]], SPEC)
    assert again[0].up_to_date
    assert not list(tmp_path.glob("*.lock")) and not list(tmp_path.glob("*.partial"))


def test_a_worker_killed_while_converting_a_whole_recording_still_gives_the_serial_cache(cluster, recordings, tmp_path):
    root, serial = recordings
    pids = cluster.run(os.getpid)
    partial = tmp_path / "b.zarr.partial"
    killed = []

    def kill_the_converting_worker():
        # once the worker has begun writing the cache (its partial is there), it is killed
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            if partial.exists():
                for address, keys in cluster.processing().items():
                    if keys and address in pids:
                        os.kill(pids[address], signal.SIGKILL)  # the nanny starts a new worker; Dask reruns the task
                        killed.append(address)
                        return
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_the_converting_worker)
    watcher.start()
    [result] = convert_on_cluster(cluster, [root / "b_data.hdf5"], [tmp_path / "b.zarr"], SPEC)
    watcher.join()
    assert killed
    assert_same_cache(Cache(result.output), serial["b"])


INTERRUPTED = ("error: interrupted (convert and pseudolabel resume where they stopped when the same command runs again, "
               "train student with --resume)\n")


@pytest.mark.parametrize("when", ["while the cluster starts", "while converting"])
def test_ctrl_c_with_jobs_is_one_line_and_the_rerun_completes(recordings, tmp_path, when):
    # Dask's workers and nannies warned of cancelled tasks and killed workers, and a cluster
    # interrupted while it started failed in Dask's exit handler with a traceback
    import subprocess
    import sys

    import psutil

    root, serial = recordings
    recording = (root / "b_data.hdf5").read_bytes()
    inputs = [tmp_path / f"r{k}_data.hdf5" for k in range(12)]
    for path in inputs:
        path.write_bytes(recording)
    args = [sys.executable, "-m", "evtools", "convert", *map(str, inputs), "--repr", "voxel", "--repr", "evimage",
            "--repr", "events", "-o", str(tmp_path / "out"), "--jobs", "2"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if when == "while the cluster starts" and psutil.Process(process.pid).children():
                break  # the workers are being spawned
            if when == "while converting" and list((tmp_path / "out").glob("*.zarr")):
                break  # a first cache is finished
            time.sleep(0.002)
        assert process.poll() is None, "the conversion ended before it could be interrupted"
        os.kill(process.pid, signal.SIGINT)
        stderr = process.communicate(timeout=60)[1]
    finally:
        if process.poll() is None:
            process.kill()
    assert (process.returncode, stderr) == (130, INTERRUPTED)
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    for path in inputs:
        assert_same_cache(Cache(tmp_path / "out" / f"{path.stem}.zarr"), serial["b"])


def test_a_local_cluster_takes_no_port_that_another_holds():
    # its scheduler's HTTP server took 8787 and warned on the terminal when another cluster (a
    # notebook's, a second conversion's) held it
    import socket
    import warnings

    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            held.bind(("0.0.0.0", 8787))
            held.listen()
        except OSError:
            pass  # something else holds it: the same situation
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with local_cluster(1) as cluster, distributed.Client(cluster) as client:
                assert client.submit(sum, [1, 2]).result() == 3


def _compressing_threads() -> int:
    from evtools.convert import _compressors

    with _compressors() as pool:
        return pool._max_workers


def test_each_worker_compresses_on_its_share_of_the_cores(cluster):
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    assert set(cluster.run(_compressing_threads).values()) == {share}
