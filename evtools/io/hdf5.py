"""HDF5 access shared by the readers: opening and lookups that fail with one-line errors."""

from __future__ import annotations

import importlib
import mmap
import os
from pathlib import Path

import h5py
import numpy as np

from evtools.errors import CorruptFileError, InputError, MissingDatasetError, MissingExtraError, first_line

# Event data does not compress 1000x; a column that claims more than this with a thousandth of
# it stored is a sparse or damaged dataset, whose reading would take for ever.
SPARSE_CHECK_BYTES = 1 << 30

# HDF5 filters that h5py lacks and hdf5plugin provides; DSEC compresses with zstd.
PLUGIN_FILTER_NAMES = {32001: "blosc", 32004: "lz4", 32008: "bitshuffle", 32015: "zstd", 32026: "blosc2"}


def open_h5(path: str | Path) -> h5py.File:
    if not os.path.exists(path):  # HDF5's own message for it is four lines of its internals
        raise InputError(path, "no such file or directory")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise CorruptFileError(path, f"unreadable HDF5 file ({first_line(err)})") from err


def entry_name(name: str | bytes) -> str:
    """A group member's name as one line of text: h5py gives a name that is not UTF-8 (a damaged
    link) as bytes; undecodable bytes and characters that do not print (a newline) are escaped."""
    text = name if isinstance(name, str) else name.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def require(h5: h5py.File, name: str, format_name: str) -> h5py.Dataset:
    """The dataset ``name``, readable with the installed filters, or a one-line error naming the file."""
    item = h5.get(name)
    if not isinstance(item, h5py.Dataset):
        raise MissingDatasetError(h5.filename, f"missing dataset '{name}' required by the {format_name} format")
    _check_datatype(item)
    _check_filters(item)
    return item


def _check_datatype(dataset: h5py.Dataset) -> None:
    """Refuses a dataset whose datatype numpy has no equivalent for (a damaged datatype message
    can make it HDF5's time class): h5py raises TypeError wherever its dtype is asked for."""
    try:
        dataset.dtype
    except TypeError as err:
        raise CorruptFileError(dataset.file.filename, f"'{dataset.name.lstrip('/')}' has a datatype numpy has no "
                                                      f"equivalent for ({first_line(err)})") from err


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
    """Event columns: 1-D integer (or boolean) datasets of one length, each readable with the
    installed filters."""
    columns = [require(h5, name, format_name) for name in names]
    shapes = {name: column.shape for name, column in zip(names, columns)}
    if any(len(shape) != 1 for shape in shapes.values()) or len(set(shapes.values())) != 1:
        described = ", ".join(f"'{name}' {shape}" for name, shape in shapes.items())
        raise CorruptFileError(h5.filename, f"event columns must be 1-D of one length, got {described}")
    for name, column in zip(names, columns):
        if column.dtype.kind not in "iub":
            raise CorruptFileError(h5.filename, f"'{name}' is {column.dtype}, expected integers")
    for column in columns:
        check_stored(column)
    return columns


def check_stored(events: h5py.Dataset) -> None:
    """Refuses an event dataset that claims far more than it stores (reading it would take for ever)."""
    logical = events.size * events.dtype.itemsize
    if logical > SPARSE_CHECK_BYTES and events.id.get_storage_size() * 1000 < logical:
        raise CorruptFileError(events.file.filename, f"'{events.name.lstrip('/')}' claims {len(events):,} events but "
                                                     "stores almost none of them (a sparse or damaged dataset)")


def require_frames(h5: h5py.File, images_name: str, times_name: str, format_name: str,
                   time_kinds: str) -> tuple[h5py.Dataset, h5py.Dataset]:
    """APS frames (M, H, W) uint8 and their M timestamps (of a dtype kind in ``time_kinds``)."""
    images, times = require(h5, images_name, format_name), require(h5, times_name, format_name)
    if images.ndim != 3 or images.dtype != np.uint8 or 0 in images.shape[1:]:
        raise CorruptFileError(h5.filename, f"'{images_name}' is {images.dtype} {images.shape}, expected (M, H, W) uint8")
    if times.shape != (len(images),) or times.dtype.kind not in time_kinds:
        expected = "integer microseconds" if time_kinds == "iu" else "float seconds"
        raise CorruptFileError(h5.filename, f"'{times_name}' is {times.dtype} {times.shape}, expected "
                                            f"({len(images)},) {expected}, one per image")
    return images, times


_ABSENT = object()


def attribute(h5: h5py.File, name: str, default=_ABSENT):
    """The root attribute ``name`` (``default`` when it is absent and one is given), or a
    one-line error naming the file: a damaged attribute can have a datatype that numpy has no
    equivalent for (h5py's TypeError, fuzz seed 2880: a time class) or an unreadable message."""
    try:
        if default is not _ABSENT and name not in h5.attrs:
            return default
        return h5.attrs[name]
    except KeyError as err:
        raise MissingDatasetError(h5.filename, f"missing attribute '{name}'") from err
    except (TypeError, ValueError, OSError) as err:
        raise CorruptFileError(h5.filename, f"attribute '{name}' cannot be read ({type(err).__name__}: "
                                            f"{first_line(err)})") from err


def positive_int_attribute(h5: h5py.File, name: str) -> int:
    """A sensor dimension stored as an attribute: a whole number above 0."""
    value = attribute(h5, name)
    if np.ndim(value) != 0 or not np.issubdtype(np.asarray(value).dtype, np.integer) or int(value) < 1:
        raise CorruptFileError(h5.filename, f"attribute '{name}' is {value!r}, expected a whole number above 0")
    return int(value)


class MappedRows:
    """Row ranges of a contiguous, unfiltered dataset (as MVSEC's bag_to_hdf5 writes its events
    table) mapped straight from the file: Numba's passes then read them on every core, where h5py
    copies them on one thread under its global lock (cutting a 20 M-event recording's windows took
    0.35 s through h5py on 16 cores, 0.08 s mapped). Each range is its own mapping, unmapped when
    its arrays are dropped, so that the pages a long recording's conversion has read do not stay
    in its resident memory. The mappings are private (copy-on-write): their arrays are writable
    like h5py's, so that Numba reuses the passes it compiled for those (read-only arrays are other
    types to it: 2.4 s more compiling), and still no write could reach the file."""

    def __init__(self, dataset: h5py.Dataset, offset: int):
        self._file = open(dataset.file.filename, "rb")
        self._offset, self.dtype, self.shape = offset, dataset.dtype, dataset.shape
        self._row_bytes = int(np.prod(dataset.shape[1:], dtype=np.int64)) * dataset.dtype.itemsize

    def __getitem__(self, key: slice | tuple) -> np.ndarray:
        """``rows[a:b]``, or ``rows[a:b, columns]`` as h5py takes it."""
        if isinstance(key, tuple):
            return self[key[0]][(slice(None), *key[1:])]
        start, stop, _ = key.indices(self.shape[0])
        if stop <= start:
            return np.empty((0, *self.shape[1:]), self.dtype)
        first = self._offset + start * self._row_bytes
        aligned = first - first % mmap.ALLOCATIONGRANULARITY
        length = first - aligned + (stop - start) * self._row_bytes
        # a page past the file's end would kill the process (SIGBUS) where h5py raises: a file cut
        # short after it was opened is refused before its block is mapped
        if os.fstat(self._file.fileno()).st_size < aligned + length:
            raise CorruptFileError(self._file.name, f"became shorter than its events table while being read "
                                                    f"(rows {start} to {stop - 1} reach past its end)")
        mapping = mmap.mmap(self._file.fileno(), length, access=mmap.ACCESS_COPY, offset=aligned)
        return np.frombuffer(mapping, self.dtype, (stop - start) * self._row_bytes // self.dtype.itemsize,
                             first - aligned).reshape(stop - start, *self.shape[1:])

    def close(self) -> None:
        self._file.close()  # the mappings stay valid without the descriptor


def mapped_rows(dataset: h5py.Dataset) -> MappedRows | None:
    """The dataset's rows straight from the file, where HDF5 stores them as one contiguous,
    unfiltered run of native-order values wholly inside the file; None otherwise (chunked,
    compressed, external or not yet allocated storage is read through h5py)."""
    plist = dataset.id.get_create_plist()
    if (plist.get_layout() != h5py.h5d.CONTIGUOUS or plist.get_external_count() or not dataset.dtype.isnative
            or dataset.dtype.hasobject or dataset.size == 0 or dataset.file.driver != "sec2"):
        return None
    offset = dataset.id.get_offset()
    size = dataset.size * dataset.dtype.itemsize
    if offset is None or offset + size > os.path.getsize(dataset.file.filename):
        return None
    # the address HDF5 gives is checked against its own reads of the first and last rows (a
    # user block or a driver that places data elsewhere would show here)
    ends = dataset[:1].tobytes() + dataset[-1:].tobytes()
    rows = MappedRows(dataset, offset)
    try:
        same = rows[:1].tobytes() + rows[-1:].tobytes() == ends
    except OSError:  # a file system that cannot map files
        same = False
    if not same:
        rows.close()
        return None
    return rows


def holds_byte_rows(dataset: h5py.Dataset) -> bool:
    """Whether the dataset's type is a variable-length sequence of 1-byte integers, as h5py's
    ``vlen_dtype(np.uint8)`` writes it. HDF5 keeps the variable-length kind (0 a sequence, 1 a
    string) in the low bits of the type message's first bit-field byte; any other value, which only
    damage gives, makes HDF5's reads of the rows crash the process (seen: a segmentation fault), and
    no HDF5 call but H5Tencode shows it."""
    datatype = dataset.id.get_type()
    if not isinstance(datatype, h5py.h5t.TypeVlenID):
        return False
    base = datatype.get_super()
    # H5Tencode: the datatype message's id and the encoding's version, then the message itself
    kind = datatype.encode()[3] & 0x0F
    return kind == 0 and base.get_class() == h5py.h5t.INTEGER and base.get_size() == 1
