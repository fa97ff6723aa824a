"""Readers, one module per format, and the detection that picks one from a file's content.

``open_recording(path)`` returns a :class:`Recording`; ``format=`` overrides the detection.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py

from evtools.errors import InputError, UnknownFormatError, damaged_structure
from evtools.io import aedat4, dat, ddd17, dsec, ess_ddd17, evh5, evt, mvsec, nmnist, rosbag
from evtools.io.hdf5 import entry_name, open_h5
from evtools.io.recording import ReadOptions, Recording, TimedImages

READERS: dict[str, type[Recording]] = {
    "evh5": evh5.Evh5Recording,
    "mvsec": mvsec.MvsecRecording,
    "ddd17": ddd17.Ddd17Recording,
    "ess_ddd17": ess_ddd17.EssDdd17Recording,
    "dsec": dsec.DsecRecording,
    "dat": dat.DatRecording,
    "evt2": evt.Evt2Recording,
    "evt3": evt.Evt3Recording,
    "nmnist": nmnist.NmnistRecording,
    "aedat4": aedat4.Aedat4Recording,
    "rosbag": rosbag.RosbagRecording,
}
FORMATS = tuple(READERS)
# Checked in this order: evtools' own files carry an explicit tag, so they come first.
HDF5_LAYOUTS = (("evh5", evh5.matches), ("mvsec", mvsec.matches), ("ddd17", ddd17.matches), ("dsec", dsec.matches))

__all__ = ["FORMATS", "READERS", "ReadOptions", "Recording", "TimedImages", "detect_format", "open_recording"]


def detect_format(path: str | Path) -> str:
    """The name of the format whose layout the file's (or directory's) content matches."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or directory")
    if not path.is_dir() and not path.is_file():  # reading a FIFO or a device would wait for ever
        raise InputError(path, "is neither a regular file nor a directory")
    if path.is_dir():
        if ess_ddd17.matches_dir(path):
            return "ess_ddd17"
        raise UnknownFormatError(path, "a directory of no known layout (an ess_ddd17 directory holds events.dat.t)")
    if not h5py.is_hdf5(path):
        if aedat4.matches(path):
            return "aedat4"
        if rosbag.matches(path):
            return "rosbag"
        prophesee = evt.matches(path) or ("dat" if dat.matches(path) else None)
        if prophesee:
            return prophesee
        raise UnknownFormatError(
            path, "not a recording evtools can read (not HDF5, AEDAT4, a ROS bag, Prophesee DAT or EVT2/EVT3, nor an "
            "ess_ddd17 directory; N-MNIST binaries have no header: give --format nmnist)"
        )
    with open_h5(path) as h5:
        for name, matches in HDF5_LAYOUTS:
            if matches(h5):
                return name
        top = ", ".join(sorted(entry_name(name) for name in h5.keys())) or "none"
    raise UnknownFormatError(path, f"an HDF5 file of no known layout (top-level entries: {top})")


def open_recording(path: str | Path, format: str | None = None, options: ReadOptions = ReadOptions()) -> Recording:
    """Opens a recording of any supported format, detected from its content unless ``format`` is given."""
    with damaged_structure(path):
        name = format or detect_format(path)
        if name not in READERS:
            raise InputError(path, f"unknown format '{name}' (known: {', '.join(FORMATS)})")
        if not Path(path).exists():
            raise InputError(path, "no such file or directory")
        if not Path(path).is_dir() and not Path(path).is_file():
            raise InputError(path, "is neither a regular file nor a directory")
        _require_used(path, name, options)
        recording = READERS[name](path, options)
        if options.sensor_size is not None:
            try:
                recording.use_sensor_size(options.sensor_size)
            except BaseException:
                recording.close()
                raise
        return recording


def _require_used(path: str | Path, name: str, options: ReadOptions) -> None:
    """Refuses an option set for a format whose reader does not use it (--rotate180 for an MVSEC file)."""
    for field in dataclasses.fields(ReadOptions):
        if field.name == "sensor_size" or field.name in READERS[name].read_options:
            continue
        if getattr(options, field.name) != field.default:
            *others, last = sorted(f for f, reader in READERS.items() if field.name in reader.read_options)
            users = f"{', '.join(others)} and {last}" if others else last
            raise InputError(path, f"--{field.name.replace('_', '-')} is an option of {users} recordings, "
                                   f"not of this {name} one")
