"""HDF5 access shared by the readers: opening and lookups that fail with one-line errors."""

from __future__ import annotations

import importlib
from pathlib import Path

import h5py

from evtools.errors import CorruptFileError, MissingDatasetError, MissingExtraError, first_line

# Event data does not compress 1000x; a column that claims more than this with a thousandth of
# it stored is a sparse or damaged dataset, whose reading would take for ever.
SPARSE_CHECK_BYTES = 1 << 30

# HDF5 filters that h5py lacks and hdf5plugin provides; DSEC compresses with zstd.
PLUGIN_FILTER_NAMES = {32001: "blosc", 32004: "lz4", 32008: "bitshuffle", 32015: "zstd", 32026: "blosc2"}


def open_h5(path: str | Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise CorruptFileError(path, f"unreadable HDF5 file ({first_line(err)})") from err


def require(h5: h5py.File, name: str, format_name: str) -> h5py.Dataset:
    """The dataset ``name``, readable with the installed filters, or a one-line error naming the file."""
    item = h5.get(name)
    if not isinstance(item, h5py.Dataset):
        raise MissingDatasetError(h5.filename, f"missing dataset '{name}' required by the {format_name} format")
    _check_filters(item)
    return item


def _check_filters(dataset: h5py.Dataset) -> None:
    plist = dataset.id.get_create_plist()
    for index in range(plist.get_nfilters()):
        filter_id = plist.get_filter(index)[0]
        if h5py.h5z.filter_avail(filter_id):
            continue
        try:
            importlib.import_module("hdf5plugin")  # registers its filters with HDF5 on import
        except ImportError:
            pass
        if not h5py.h5z.filter_avail(filter_id):
            name = PLUGIN_FILTER_NAMES.get(filter_id, f"id {filter_id}")
            raise MissingExtraError(
                f"{dataset.file.filename}: '{dataset.name}' is compressed with the HDF5 {name} filter, "
                "which needs hdf5plugin: pip install 'evtools[dsec]'"
            )


def require_columns(h5: h5py.File, names: list[str], format_name: str) -> list[h5py.Dataset]:
    """Event columns: 1-D datasets of one length, each readable with the installed filters."""
    columns = [require(h5, name, format_name) for name in names]
    shapes = {name: column.shape for name, column in zip(names, columns)}
    if any(len(shape) != 1 for shape in shapes.values()) or len(set(shapes.values())) != 1:
        described = ", ".join(f"'{name}' {shape}" for name, shape in shapes.items())
        raise CorruptFileError(h5.filename, f"event columns must be 1-D of one length, got {described}")
    for column in columns:
        check_stored(column)
    return columns


def check_stored(events: h5py.Dataset) -> None:
    """Refuses an event dataset that claims far more than it stores (reading it would take for ever)."""
    logical = events.size * events.dtype.itemsize
    if logical > SPARSE_CHECK_BYTES and events.id.get_storage_size() * 1000 < logical:
        raise CorruptFileError(events.file.filename, f"'{events.name.lstrip('/')}' claims {len(events):,} events but "
                                                     "stores almost none of them (a sparse or damaged dataset)")
