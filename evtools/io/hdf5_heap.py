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

from array import array

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
        self._index: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # chunked: built on the first check

    def check(self, rows: slice, column: int) -> None:
        """Refuses rows [rows.start, rows.stop) of ``column`` when a collection holding their data
        is damaged so that HDF5 would never finish loading it."""
        if self._file is None or rows.stop <= rows.start:
            return
        row_numbers, elements = self._stored(rows, column)
        used = elements["length"] > 0
        row_numbers, addresses = row_numbers[used], elements["address"][used].astype(np.int64)
        # each collection once, in the order of the first row that uses it
        unique, first_use = np.unique(addresses, return_index=True)
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

    def _stored(self, rows: slice, column: int) -> tuple[np.ndarray, np.ndarray]:
        """(row numbers, stored elements) of the rows' ``column`` that the file holds: gathered
        from the mapped file at once, wherever their chunks lie."""
        size, (n_rows, n_columns) = self._element.itemsize, self._dataset.shape
        row_numbers = np.arange(rows.start, min(rows.stop, n_rows), dtype=np.int64)
        if self._chunked:
            chunk_rows, chunk_columns = self._dataset.chunks
            keys, offsets, sizes = self._chunk_index()
            if not len(keys):
                row_numbers = row_numbers[:0]
            wanted = row_numbers // chunk_rows * -(-n_columns // chunk_columns) + column // chunk_columns
            at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
            # written chunks of the elements themselves (no filter changed their size)
            found = (keys[at] == wanted) & (sizes[at] == chunk_rows * chunk_columns * size)
            row_numbers, at = row_numbers[found], at[found]
            positions = offsets[at] + ((row_numbers % chunk_rows) * chunk_columns + column % chunk_columns) * size
        else:
            try:
                offset = self._dataset.id.get_offset()
            except (OSError, RuntimeError, ValueError):
                offset = None
            if offset is None:
                row_numbers = row_numbers[:0]
            positions = (offset or 0) + (row_numbers * n_columns + column) * size
        inside = positions + size <= len(self._file)  # beyond the file: HDF5 reports it
        row_numbers, positions = row_numbers[inside], positions[inside]
        raw = self._file[positions[:, None] + np.arange(size)]
        return row_numbers, raw.view(self._element).reshape(-1)

    def _chunk_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every written chunk's number (row chunk x column chunks + column chunk), byte offset and
        stored size, sorted by number: one pass over HDF5's chunk index (asking it chunk by chunk
        searched the index each time: 195 s for 100,000 chunks of one row); empty where the index
        cannot be read."""
        if self._index is None:
            chunk_rows, chunk_columns = self._dataset.chunks
            per_row = -(-self._dataset.shape[1] // chunk_columns)
            keys, offsets, sizes = array("q"), array("q"), array("q")

            def add(info) -> None:
                if info.byte_offset is not None:
                    keys.append(info.chunk_offset[0] // chunk_rows * per_row + info.chunk_offset[1] // chunk_columns)
                    offsets.append(info.byte_offset)
                    sizes.append(info.size)

            try:
                self._dataset.id.chunk_iter(add)
            except (AttributeError, OSError, RuntimeError, ValueError):  # no chunk_iter, or a damaged index
                del keys[:]
            order = np.argsort(np.asarray(keys, np.int64), kind="stable")
            self._index = tuple(np.asarray(values, np.int64)[order] for values in (keys, offsets, sizes))
        return self._index
