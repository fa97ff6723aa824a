"""Reader options (--camera, --rotate180) are refused, not dropped, for a format that has no use
for them: a rotation asked of an MVSEC file used to convert it unrotated without a word."""

import numpy as np
import pytest
from cli import run_cli

from evtools.errors import InputError
from evtools.events import Events
from evtools.io import READERS, ReadOptions, open_recording
from evtools.io.writers.ddd17 import packets_from_events, write_ddd17
from evtools.io.writers.evh5 import write_evh5
from evtools.io.writers.mvsec import write_mvsec

EVENTS = Events(np.arange(0, 100_000, 1000, dtype=np.int64), np.arange(100, dtype=np.uint16) % 64,
                np.arange(100, dtype=np.uint16) % 48, np.ones(100, np.int8))


def recordings(folder):
    return {
        "mvsec": write_mvsec(folder / "m.hdf5", [EVENTS], t0_us=1_500_000_000_000_000),
        "ddd17": write_ddd17(folder / "d.hdf5", packets_from_events(EVENTS, t0_us=1_500_000_000_000_000)),
        "evh5": write_evh5(folder / "e.h5", [EVENTS], width=64, height=48),
    }


def test_the_readers_that_use_an_option_are_named():
    assert {name for name, reader in READERS.items() if reader.read_options} == {"mvsec", "rosbag", "ddd17", "aedat4"}
    assert READERS["ddd17"].read_options == {"rotate180"}
    assert READERS["mvsec"].read_options == READERS["rosbag"].read_options == READERS["aedat4"].read_options == {"camera"}


@pytest.mark.parametrize("fmt, options, problem", [
    ("mvsec", ReadOptions(rotate180=True), "--rotate180 is an option of ddd17 recordings, not of this mvsec one"),
    ("evh5", ReadOptions(rotate180=True), "--rotate180 is an option of ddd17 recordings, not of this evh5 one"),
    ("ddd17", ReadOptions(camera="right"), "--camera is an option of aedat4, mvsec and rosbag recordings, not of this ddd17 one"),
    ("evh5", ReadOptions(camera="/dvs"), "--camera is an option of aedat4, mvsec and rosbag recordings, not of this evh5 one"),
])
def test_an_option_the_format_has_no_use_for_is_refused(tmp_path, fmt, options, problem):
    path = recordings(tmp_path)[fmt]
    with pytest.raises(InputError) as err:
        open_recording(path, options=options)
    assert str(err.value) == f"{path}: {problem}"


def test_the_commands_refuse_it_in_one_line_and_write_nothing(tmp_path):
    paths = recordings(tmp_path)
    for args, path, problem in [
        (["convert", paths["mvsec"], "--rotate180", "-o", tmp_path / "m.zarr"], paths["mvsec"],
         "--rotate180 is an option of ddd17 recordings, not of this mvsec one"),
        (["info", paths["ddd17"], "--camera", "right"], paths["ddd17"],
         "--camera is an option of aedat4, mvsec and rosbag recordings, not of this ddd17 one"),
    ]:
        result = run_cli(*args)
        assert (result.returncode, result.stderr) == (2, f"error: {path}: {problem}\n")
    assert not list(tmp_path.glob("m.zarr*"))
    # the options each format uses still work
    with open_recording(paths["ddd17"], options=ReadOptions(rotate180=True)) as rec:
        assert rec.n_events == 100
    assert run_cli("info", paths["mvsec"], "--camera", "left").returncode == 0
