"""Every bad input ends with one line naming the file and the problem, exit code 2, no traceback."""

import os

import h5py
import numpy as np
import pytest
from cli import run_cli
from conftest import make_events
from conftest import header, polarity_row, write_rows

from evtools.errors import InputError
from evtools.io.writers.evh5 import write_evh5


def assert_one_line_error(result, expected):
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr == f"error: {expected}\n"


def test_missing_file(tmp_path):
    path = tmp_path / "none.h5"
    assert_one_line_error(run_cli("info", path), f"{path}: no such file or directory")


def test_truncated_hdf5(tmp_path):
    path = write_evh5(tmp_path / "t.h5", [make_events(50_000)], width=346, height=260)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    result = run_cli("info", path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {path}: unreadable HDF5 file (")
    assert "truncated file" in result.stderr and result.stderr.count("\n") == 1


def test_not_a_recording(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("hello")
    assert_one_line_error(
        run_cli("info", path), f"{path}: not a recording evtools can read (not HDF5, AEDAT4, a ROS bag, Prophesee DAT or EVT2/EVT3, nor "
        "an ess_ddd17 directory; N-MNIST binaries have no header: give --format nmnist)"
    )


def test_hdf5_of_no_known_layout(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as h5:
        h5["weights"] = np.zeros(3)
        h5.create_group("meta")
    assert_one_line_error(run_cli("info", path), f"{path}: an HDF5 file of no known layout (top-level entries: meta, weights)")


def test_hdf5_whose_entry_names_are_not_utf8(tmp_path):
    """A damaged link name h5py cannot decode comes back as bytes: named with those bytes escaped
    (sorting it with text was a TypeError)."""
    path = tmp_path / "damaged.h5"
    with h5py.File(path, "w") as h5:
        h5.create_group("events")
        h5.create_group(b"ms_to_idx\xe3\xbd")
        h5.create_group("two\nlines\x18")
    assert_one_line_error(run_cli("info", path), f"{path}: an HDF5 file of no known layout (top-level entries: "
                                                 "events, ms_to_idx\\xe3\\xbd, two\\nlines\\x18)")


def test_directory_of_no_known_layout(tmp_path):
    assert_one_line_error(
        run_cli("info", tmp_path),
        f"{tmp_path}: a directory of no known layout (an ess_ddd17 directory holds events.dat.t)",
    )


def frames_file(tmp_path, damaged_frame: int | None = None):
    """An evh5 recording of 3 frames, stored gzip-compressed one a chunk; ``damaged_frame``'s
    chunk garbled on disk, so that reading it fails inside HDF5 (the file still opens)."""
    events = make_events(5_000, 346, 260, span_us=400_000, seed=3)
    path = write_evh5(tmp_path / "rec.h5", [events], width=346, height=260,
                      frames=np.full((3, 260, 346), 9, np.uint8), frames_t_us=np.array([100_000, 200_000, 300_000]))
    with h5py.File(path, "r+") as h5:
        images = h5["frames"][:]
        del h5["frames"]
        h5.create_dataset("frames", data=images, chunks=(1, 260, 346), compression="gzip")
        if damaged_frame is not None:
            chunk = h5["frames"].id.get_chunk_info(damaged_frame)
            at, size = chunk.byte_offset, chunk.size
    if damaged_frame is not None:
        data = bytearray(path.read_bytes())
        data[at : at + size] = bytes(size)
        path.write_bytes(bytes(data))
    return path


def test_a_frame_that_cannot_be_read_is_one_line_and_stops_the_conversion(tmp_path):
    path = frames_file(tmp_path, damaged_frame=1)
    result = run_cli("convert", path, "-o", tmp_path / "rec")
    assert result.returncode == 2 and result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: {path}: unreadable data (")
    # the windows before the damaged frame's block are kept to resume from, under the partial's name
    assert not (tmp_path / "rec.zarr").exists()


def test_ground_truth_masks_that_do_not_fit_the_recording_are_refused(tmp_path):
    path = frames_file(tmp_path)
    truth = tmp_path / "truth.hdf5"
    for masks, times, expected in [
        (np.zeros((3, 260, 300), np.uint8), [100_000, 200_000, 300_000], "masks of 300x260 do not fit the recording's 346x260 sensor"),
        (np.zeros((3, 261, 346), np.uint8), [100_000, 200_000, 300_000], "masks of 346x261 do not fit the recording's 346x260 sensor"),
        (np.zeros((3, 260), np.uint8), [100_000, 200_000, 300_000], "'masks' is uint8 (3, 260), expected (M, H, W) uint8"),
        (np.zeros((2, 260, 346), np.uint8), [100_000, 200_000, 300_000],
         "'frame_t_us' is int64 (3,), expected (2,) integer microseconds, one per image"),
        # another recording's: every window had been unlabelled, every score NaN, without a word
        (np.zeros((3, 260, 346), np.uint8), [100_001, 200_001, 300_001],
         f"none of its 3 masks is at a frame time of {path}: the ground truth of another recording?"),
    ]:
        with h5py.File(truth, "w") as h5:
            h5["masks"], h5["frame_t_us"] = masks, np.array(times, np.int64)
        assert_one_line_error(run_cli("convert", path, "-o", tmp_path / "rec", "--ground-truth", truth), f"{truth}: {expected}")
        assert not list(tmp_path.glob("rec.zarr*"))
    with h5py.File(truth, "w") as h5:  # fewer rows than the sensor (ESS's 200 of 260): the rows below are ignored
        h5["masks"], h5["frame_t_us"] = np.ones((3, 200, 346), np.uint8), np.array([100_000, 200_000, 300_000])
    assert run_cli("convert", path, "-o", tmp_path / "rec", "--ground-truth", truth).returncode == 0
    # and evaluated against another recording's
    from evtools.cache import Cache
    from evtools.evaluate import _truth_source

    with h5py.File(tmp_path / "other.hdf5", "w") as h5:
        h5["masks"], h5["frame_t_us"] = np.ones((3, 260, 346), np.uint8), np.array([1, 2, 3])
    with pytest.raises(InputError) as err:
        _truth_source(Cache(tmp_path / "rec.zarr"), str(tmp_path / "other.hdf5"))
    assert str(err.value) == (f"{tmp_path / 'other.hdf5'}: none of its 3 masks is at a frame time of "
                              f"{tmp_path / 'rec.zarr'}: the ground truth of another recording?")


@pytest.mark.parametrize("conditions, names, expected", [
    (np.array([0, 1, 0]), "not json", "its attribute 'conditions' is not a JSON list of condition names"),
    (np.array([0, 1, 0]), '{"a": 1}', "its attribute 'conditions' is not a JSON list of condition names"),
    (np.array([0, 1, 0]), "[1, 2]", "its attribute 'conditions' is not a JSON list of condition names"),
    (np.array([0, 1, 0]), np.array([1, 2]), "its attribute 'conditions' is not a JSON list of condition names"),
    (np.array([0, -1, 0]), '["day", "night"]', "conditions do not match frame_t_us and the condition names"),
    (np.array([0, 2, 0]), '["day", "night"]', "conditions do not match frame_t_us and the condition names"),
    (np.array([0.0, 1.0, 0.0]), '["day", "night"]', "conditions do not match frame_t_us and the condition names"),
    (np.array([[0, 1, 0]]), '["day", "night"]', "conditions do not match frame_t_us and the condition names"),
    (np.array(0), '["day", "night"]', "conditions do not match frame_t_us and the condition names"),
    (np.array([0, 1, 0]), None, "missing attribute 'conditions'"),
])
def test_ground_truth_conditions_that_are_no_list_of_names_or_indices_into_it_are_one_line(tmp_path, conditions, names, expected):
    from evtools.errors import InputError
    from evtools.io.ground_truth import load_ground_truth

    truth = tmp_path / "truth.hdf5"
    with h5py.File(truth, "w") as h5:
        h5["masks"], h5["frame_t_us"] = np.zeros((3, 4, 5), np.uint8), np.array([1, 2, 3], np.int64)
        h5["conditions"] = conditions
        if names is not None:
            h5.attrs["conditions"] = names
    with pytest.raises(InputError) as raised:
        load_ground_truth(truth, tmp_path / "rec.hdf5")
    assert str(raised.value) == f"{truth}: {expected}"


@pytest.mark.parametrize("layout, dataset", [
    ("mvsec", "davis/left/events"), ("mvsec", "davis/left/image_raw_ts"), ("evh5", "events/t"),
    ("dsec", "events/x"), ("dsec", "ms_to_idx"), ("dsec", "t_offset"),
])
def test_a_dataset_of_a_type_numpy_lacks_is_one_line(tmp_path, layout, dataset):
    # HDF5's time class, what a damaged datatype message can say: h5py raises TypeError for its
    # dtype, which was a traceback wherever a reader first looked at it
    from conftest import T0_US, as_time_class, write_recording

    from evtools.errors import CorruptFileError
    from evtools.io import open_recording
    from evtools.io.writers.dsec import write_dsec

    events = make_events(500)
    if layout == "mvsec":
        path = tmp_path / "rec_data.hdf5"
        write_recording(path)
    elif layout == "evh5":
        path = write_evh5(tmp_path / "rec.h5", [events], width=346, height=260, t0_us=T0_US)
    else:
        path = write_dsec(tmp_path / "events.h5", events)
    with h5py.File(path, "r+") as h5:
        as_time_class(h5, dataset)
    with pytest.raises(CorruptFileError) as raised:
        open_recording(path).close()
    assert str(raised.value) == (f"{path}: '{dataset}' has a datatype numpy has no equivalent for "
                                 "(No NumPy equivalent for TypeTimeID exists)")


@pytest.mark.parametrize(
    "format_name, build, missing",
    [
        ("mvsec", lambda h5: h5.create_group("davis/left"), "davis/left/events"),
        ("ddd17", lambda h5: h5.create_dataset("dvs/timestamp", data=np.zeros(2)), "dvs/data"),
        ("dsec", lambda h5: h5.create_dataset("events/x", data=np.zeros(2, np.uint16)), "events/y"),
    ],
)
def test_known_format_missing_a_dataset(tmp_path, format_name, build, missing):
    path = tmp_path / f"{format_name}.h5"
    with h5py.File(path, "w") as h5:
        build(h5)
    assert_one_line_error(
        run_cli("info", "--format", format_name, path),
        f"{path}: missing dataset '{missing}' required by the {format_name} format",
    )


def test_ddd17_header_that_does_not_fit_its_body(tmp_path):
    row = (header(1, 8, 4, 0, 3, 3, 3), bytes(16))
    path = write_rows(tmp_path / "bad.hdf5", [polarity_row(0, [(1, 1, 1, 1, 1)]), row])
    assert_one_line_error(
        run_cli("info", path), f"{path}: dvs/data row 1: header gives 3 slots of 8 bytes (24), body has 16"
    )


def test_unknown_format_name(tmp_path):
    path = write_evh5(tmp_path / "r.h5", [make_events(10)], width=346, height=260)
    assert_one_line_error(
        run_cli("info", "--format", "aedat", path),
        f"{path}: unknown format 'aedat' (known: evh5, mvsec, ddd17, ess_ddd17, dsec, dat, evt2, evt3, nmnist, aedat4, rosbag)",
    )


def test_debug_shows_the_traceback(tmp_path):
    result = run_cli("--debug", "info", tmp_path / "none.h5")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "InputError" in result.stderr


def test_option_values_out_of_range_are_one_line(tmp_path):
    recording = write_evh5(tmp_path / "r.h5", [make_events(2_000)], width=346, height=260,
                           frames=np.zeros((3, 260, 346), np.uint8), frames_t_us=np.array([100_000, 200_000, 300_000]))
    convert = ["convert", recording, "-o", tmp_path / "out"]
    cases = [
        (convert + ["--repr", "histogram", "--cutoff", "-1"],
         "--repr histogram: cutoff must be a whole number from 0 (no cutoff below 255) to 255, got -1"),
        (convert + ["--bins", "0"], "--repr voxel: bins must be a positive whole number, got 0"),
        # beyond int64 when the windows were cut: OverflowError tracebacks
        (convert + ["--window-events", "99999999999999999999"], "--window-events: give a number of events from 1 to "
                                                               "1,099,511,627,776"),
        (convert + ["--window", "99999999999999999999us"],
         "--window: '99999999999999999999us' is longer than the 2^62 us a timestamp spans"),
        (convert + ["--every", "9" * 400 + "s"], f"--every: '{'9' * 400}s' is longer than the 2^62 us a timestamp spans"),
        (convert + ["--stack", "1000000000"], "--stack: give a number of sub-windows from 1 to 1,048,576"),
        (["simulate", tmp_path / "sim", "--seconds", "0.01"],
         "seconds must be at least one frame (0.04 s at 25 frames a second), got 0.01"),
        (["simulate", tmp_path / "sim", "--seconds", "nan"], "seconds must be above 0 and at most 120.0, got nan"),
        (["simulate", tmp_path / "sim", "--seconds", "1e9"], "seconds must be above 0 and at most 120.0, got 1000000000.0"),
        (["simulate", tmp_path / "sim", "--sequences", "0"], "sequences must be from 1 to 1000, got 0"),
        (["simulate", tmp_path / "sim", "--frame-rate", "1e7"],
         "frame_rate_hz must be above 0 and at most 200.0, got 10000000.0"),
        (["simulate", tmp_path / "sim", "--seed", "-5"], "seed must be from 0 to 1000000, got -5"),
        # past it, the clocks left int64: an OverflowError traceback
        (["simulate", tmp_path / "sim", "--seed", "99999999999999999999"], "seed must be from 0 to 1000000, got 99999999999999999999"),
        # before, the preset silently ignored them
        (["simulate", tmp_path / "sim", "--preset", "demo", "--sequences", "3"],
         "--preset demo fixes the simulation: --sequences does not combine with it"),
        (["simulate", tmp_path / "sim", "--preset", "demo", "--no-preview"],
         "--preset demo fixes the simulation: --preview does not combine with it"),
        (["simulate", tmp_path / "sim", "--preset", "other", "--seed", "3"], "--preset: unknown preset 'other' (known: demo)"),
    ]
    for args, expected in cases:
        assert_one_line_error(run_cli(*args), expected)
    # block buffers beyond any machine's memory: refused before anything is read or written
    for extra, window_gb in ((["--bins", "100000"], "35.98"), (["--stack", "1000000"], "1799.20")):
        result = run_cli(*convert, *extra)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(f"error: a window of these representations takes {window_gb} GB, and the 32 "
                                        "windows a conversion holds need "), result.stderr
        assert result.stderr.endswith("GB: use fewer --bins, a smaller --stack or --crop-rows\n")
    assert not (tmp_path / "out.zarr").exists() and not (tmp_path / "sim").exists()
    cache = run_cli(*convert)
    assert cache.returncode == 0, cache.stderr
    assert_one_line_error(run_cli("render", tmp_path / "out.zarr", "-o", tmp_path / "w.xyz"),
                          "--output: '.xyz' is no picture or video type evtools writes "
                          "(known: .png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp, .mp4, .gif)")
    for fps in ("0", "1e-300", "1e9"):  # 1e-300: a GIF delay beyond any int had been a TypeError
        assert_one_line_error(run_cli("render", tmp_path / "out.zarr", "-o", tmp_path / "w.gif", "--fps", fps),
                              f"--fps: give 0.01 to 1000 frames per second, not {float(fps)}")


def test_an_output_inside_a_folder_input_is_refused(tmp_path):
    folder = tmp_path / "recording"
    folder.mkdir()
    (folder / "events.dat.t").write_bytes(b"")
    result = run_cli("convert", folder, "-o", folder / "cache")
    assert_one_line_error(result, f"{folder / 'cache.zarr'}: is inside the input folder {folder}: writing there would "
                                  "change the input's fingerprint; write the cache elsewhere")


def test_an_output_folder_where_a_file_lies_is_one_line_that_says_so(tmp_path):
    # had been the operating system's bare "notes.txt: File exists"
    write_evh5(tmp_path / "r.h5", [make_events(100, 8, 8)], width=8, height=8)
    notes = tmp_path / "notes.txt"
    notes.write_text("kept")
    for args in (["convert", tmp_path / "r.h5", "--every", "10ms", "-o", notes / "cache"],
                 ["simulate", notes, "--seconds", "0.1"]):
        assert_one_line_error(run_cli(*args), f"{notes}: is a file, where a folder is needed")
    assert notes.read_text() == "kept"


def test_a_read_only_install_without_a_home_still_runs(tmp_path):
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o500)  # no writable home; the package folder here stays writable, so pretend it is not:
    code = ("import os; real = os.access; os.access = lambda p, m: False if m == os.W_OK else real(p, m); "
            "import evtools; print(os.environ['NUMBA_CACHE_DIR'])")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"} | {"HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"evtools-numba-{os.getuid()}")


@pytest.mark.parametrize("args, expected", [
    (["convert", "x.h5", "-o", "y", "--bins", "abc"], "Invalid value for '--bins': Input should be a valid integer, "
                                                      "unable to parse string as an integer (see evtools convert --help)"),
    (["convert"], "Missing argument 'INPUTS'. (see evtools convert --help)"),
    (["frobnicate"], "No such command 'frobnicate'. (see evtools --help)"),
    (["info", "x.h5", "--nope"], "No such option: --nope (see evtools info --help)"),
])
def test_usage_errors_are_one_line(args, expected):
    assert_one_line_error(run_cli(*args), expected)


def test_a_group_without_its_command_shows_its_help():
    result = run_cli("train")
    assert result.returncode == 2 and "Usage: evtools train [OPTIONS] COMMAND" in result.stdout + result.stderr


def test_cluster_and_url_mistakes_are_one_line(tmp_path):
    recording = write_evh5(tmp_path / "r.h5", [make_events(2000)], width=346, height=260)
    assert_one_line_error(run_cli("convert", recording, "-o", tmp_path / "c", "--scheduler", "foo"),
                          "--scheduler foo: no Dask scheduler answers there (missing port number in address 'foo')")
    most = 4 * len(os.sched_getaffinity(0))
    for jobs in ("0", "99999999999"):  # so many workers would each start a process until memory ran out
        assert_one_line_error(run_cli("convert", recording, "-o", tmp_path / "c", "--jobs", jobs),
                              f"--jobs: give 1 to {most} (4 worker processes a core this process may use), got {jobs}")
    assert not (tmp_path / "c.zarr").exists()
    assert_one_line_error(run_cli("convert", recording, "-o", "nosuch://bucket/c"),
                          "nosuch://bucket/c: Unsupported filesystem: 'nosuch'")
    assert_one_line_error(run_cli("info", "memory://bucket/none.zarr"),
                          "memory://bucket/none.zarr: no evtools cache there (recordings are read from local files)")
