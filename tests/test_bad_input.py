"""Every bad input ends with one line naming the file and the problem, exit code 2, no traceback."""

import h5py
import numpy as np
import pytest
from cli import run_cli
from conftest import make_events
from test_io_ddd17 import header, polarity_row, write_rows

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
        run_cli("info", path), f"{path}: not a recording evtools can read (not HDF5, Prophesee DAT or EVT2/EVT3, nor an ess_ddd17 directory)"
    )


def test_hdf5_of_no_known_layout(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as h5:
        h5["weights"] = np.zeros(3)
        h5.create_group("meta")
    assert_one_line_error(run_cli("info", path), f"{path}: an HDF5 file of no known layout (top-level entries: meta, weights)")


def test_directory_of_no_known_layout(tmp_path):
    assert_one_line_error(
        run_cli("info", tmp_path),
        f"{tmp_path}: a directory of no known layout (an ess_ddd17 directory holds events.dat.t)",
    )


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
        f"{path}: unknown format 'aedat' (known: evh5, mvsec, ddd17, ess_ddd17, dsec, dat, evt2, evt3, nmnist)",
    )


def test_debug_shows_the_traceback(tmp_path):
    result = run_cli("--debug", "info", tmp_path / "none.h5")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "InputError" in result.stderr
