"""A check of the HDF5 global heap collections that variable-length rows live in, before HDF5
reads them.

HDF5 (1.14 and 2.0 alike) loads a collection by walking its objects, each header giving the
size to step over; an object header zeroed by damage gives a step of 0 and the walk never ends
(H5HG__cache_heap_deserialize), inside C code no signal interrupts. So before a block of rows is
read, the collections their descriptors point to are walked here the same way, once each, and
one where the walk would stall or step past the collection's end is refused with a one-line
error. Anything this check cannot follow (filters, a compact layout, a collection without its
signature, beyond the file's end) is left to HDF5, which reports such damage itself.

File layout (HDF5 specification, "Global Heap" and "Disk format of variable-length data"): a
stored element is a 4-byte sequence length, then the collection's address (the superblock's
size of offsets) and a 4-byte object index. A collection is "GCOL", a version byte, 3 reserved
bytes and its size in bytes (the size of lengths), padded to 8 bytes; then objects, each a
2-byte index (0: the free space that ends the collection), 2-byte reference count, 4 reserved
bytes and its size (size of lengths), padded to 8 bytes, then its data padded to 8 bytes (the
free space object's size counts its header and is not padded). Fewer bytes left than an object
header are padding.
"""

from __future__ import annotations

import h5py
import numba
import numpy as np

from evtools.errors import CorruptFileError

SIGNATURE = np.frombuffer(b"GCOL", np.uint8)


@numba.njit(cache=True)
def _little_endian(data, at, size):
    value = np.uint64(0)
    for i in range(size - 1, -1, -1):
        value = (value << np.uint64(8)) | np.uint64(data[at + i])
    return value


@numba.njit(cache=True)
def stalled_object(data, address, size_of_lengths):
    """Where HDF5's walk over the collection at ``address`` of ``data`` (the file's bytes) stalls
    or steps past the collection's end: the object's position, or -1 (also for anything that is
    not a collection wholly inside the file, which HDF5 refuses itself)."""
    # the collection's header and each object's are 8 bytes and a length, padded to 8
    header_bytes = (8 + size_of_lengths + 7) // 8 * 8
    if address < 0 or address + header_bytes > len(data):
        return -1
    for i in range(4):
        if data[address + i] != SIGNATURE[i]:
            return -1
    collection_bytes = _little_endian(data, address + 8, size_of_lengths)
    if collection_bytes > np.uint64(len(data) - address):
        return -1
    end = address + np.int64(collection_bytes)
    position = address + header_bytes
    while position < end:
        if position + header_bytes > end:
            break  # too little left for an object header: padding
        rest = end - position
        size = _little_endian(data, position + 8, size_of_lengths)
        # no object's size exceeds the rest of its collection (the free space's is the rest); this
        # also keeps the sums below in int64 (numba takes int64 with uint64 to float64)
        if size > np.uint64(rest):
            return position
        step = np.int64(size)
        if _little_endian(data, position, 2) > 0:
            step = header_bytes + (step + 7) // 8 * 8
        if step == 0 or step > rest:
            return position
        position += step
    return -1


def _mapped(path: str) -> np.ndarray | None:
    """The file's bytes, mapped; None where the file system cannot map it (the check is then off)."""
    try:
        return np.memmap(path, np.uint8, mode="r")
    except (OSError, ValueError):
        return None


class GlobalHeapCheck:
    """Checks, before they are read, the collections that rows of a variable-length dataset
    point to (``check``). Inactive where the dataset's stored elements cannot be located."""

    def __init__(self, dataset: h5py.Dataset):
        self._dataset, self._checked = dataset, set()
        size_of_offsets, self._size_of_lengths = dataset.file.id.get_create_plist().get_sizes()
        self._element = np.dtype({"names": ["length", "address"], "formats": ["<u4", f"<u{size_of_offsets}"],
                                  "offsets": [0, 4], "itemsize": 8 + size_of_offsets})
        plist = dataset.id.get_create_plist()
        layout = plist.get_layout()
        self._chunked = layout == h5py.h5d.CHUNKED
        try:
            # the stored bytes must be the elements themselves, of the size the layout above gives
            locatable = (dataset.ndim == 2 and dataset.dtype.kind == "O" and plist.get_nfilters() == 0
                         and size_of_offsets in (4, 8) and layout in (h5py.h5d.CHUNKED, h5py.h5d.CONTIGUOUS)
                         and (self._chunked or dataset.id.get_storage_size() == dataset.size * self._element.itemsize))
        except (OSError, RuntimeError, ValueError):  # a damaged layout: HDF5's own read reports it
            locatable = False
        self._file = _mapped(dataset.file.filename) if locatable else None

    def check(self, rows: slice, column: int) -> None:
        """Refuses rows [rows.start, rows.stop) of ``column`` when a collection holding their data
        is damaged so that HDF5 would never finish loading it."""
        if self._file is None or rows.stop <= rows.start:
            return
        pieces = [(first + np.flatnonzero(elements["length"]), elements["address"][elements["length"] > 0])
                  for first, elements in self._stored(rows, column)]
        if not pieces:
            return
        row_numbers, addresses = (np.concatenate(parts) for parts in zip(*pieces))
        # each collection once, in the order of the first row that uses it
        unique, first_use = np.unique(addresses.astype(np.int64), return_index=True)
        for k in np.argsort(first_use):
            address = int(unique[k])
            if address in self._checked:
                continue
            position = stalled_object(self._file, address, self._size_of_lengths)
            if position >= 0:
                raise CorruptFileError(self._dataset.file.filename,
                                       f"'{self._dataset.name.lstrip('/')}' row {row_numbers[first_use[k]]}: its data's "
                                       f"HDF5 global heap at byte {address} is damaged (the object header at byte "
                                       f"{position} gives a size that does not fit)")
            self._checked.add(address)

    def _stored(self, rows: slice, column: int):
        """(first row, stored elements) of the rows' ``column``, piece by piece (chunk by chunk)."""
        shape, size = self._dataset.shape, self._element.itemsize
        if not self._chunked:
            try:
                offset = self._dataset.id.get_offset()
            except (OSError, RuntimeError, ValueError):
                return
            if offset is None:
                return
            elements = self._view(offset, int(np.prod(shape)), shape)
            yield rows.start, elements[rows, column]
            return
        chunk_rows, chunk_columns = self._dataset.chunks
        for first in range(rows.start - rows.start % chunk_rows, rows.stop, chunk_rows):
            corner = (first, column - column % chunk_columns)
            try:
                info = self._dataset.id.get_chunk_info_by_coord(corner)
            except (OSError, RuntimeError, ValueError):  # a damaged chunk index: HDF5's own read reports it
                continue
            if info.byte_offset is None or info.size != chunk_rows * chunk_columns * size:
                continue
            elements = self._view(info.byte_offset, chunk_rows * chunk_columns, (chunk_rows, chunk_columns))
            low, high = max(first, rows.start), min(first + chunk_rows, rows.stop, shape[0])
            yield low, elements[low - first : high - first, column - corner[1]]

    def _view(self, offset: int, count: int, shape: tuple[int, ...]) -> np.ndarray:
        end = offset + count * self._element.itemsize
        if end > len(self._file):
            return np.zeros(shape, self._element)  # beyond the file: HDF5 reports it
        return self._file[offset:end].view(self._element).reshape(shape)
