"""The walk over HDF5 global heap collections (evtools.io.hdf5_heap), on collections built by
hand from the HDF5 specification's layout: 16-byte collection header ("GCOL", version 1, 3
reserved bytes, size), objects of a 16-byte header (index, reference count, 4 reserved bytes,
size) and their data padded to 8 bytes, the free space (index 0) last."""

import struct

import numpy as np

from evtools.io.hdf5_heap import stalled_object

AT = 24  # the collection's address in the "file"


def collection(*objects: tuple[int, int, bytes], size: int | None = None, tail: bytes = b"") -> np.ndarray:
    """A file of AT bytes, then a collection of the objects (index, size field, data); its size
    field counts the header, the objects and ``tail``, unless given."""
    body = b"".join(struct.pack("<HHIQ", index, 1, 0, size_field) + data + bytes(-len(data) % 8)
                    for index, size_field, data in objects) + tail
    total = 16 + len(body) if size is None else size
    return np.frombuffer(bytes(AT) + b"GCOL" + bytes([1, 0, 0, 0]) + struct.pack("<Q", total) + body + bytes(64), np.uint8)


def walk(data: np.ndarray) -> int:
    return stalled_object(data, AT, 8)


def test_a_whole_collection_walks_to_its_end():
    free = struct.pack("<HHIQ", 0, 0, 0, 32) + bytes(16)  # the free space: 32 bytes, its header included
    assert walk(collection((1, 3, b"abc"), (2, 9, bytes(9)), tail=free)) == -1
    assert walk(collection((1, 0, b""))) == -1  # an empty object still steps over its header
    assert walk(collection((1, 8, bytes(8)), tail=bytes(8))) == -1  # fewer bytes left than a header: padding


def test_a_zeroed_object_header_is_where_hdf5_would_stall():
    zeroed = collection((1, 3, b"abc"), (0, 0, bytes(16)))
    assert walk(zeroed) == AT + 16 + 24  # the second object's header: index 0 with size 0 steps by 0


def test_an_object_larger_than_the_rest_of_its_collection_is_found():
    assert walk(collection((1, 3, b"abc"), (2, 1000, bytes(8)))) == AT + 16 + 24
    # a size above 2^63 (from generated damage): the compiled walk once read outside the file there
    assert walk(collection((1, 3, b"abc"), (20661, 17715503872265524466, bytes(8)))) == AT + 16 + 24
    assert walk(collection((1, 3, b"abc"), (0, 2**64 - 1, bytes(8)))) == AT + 16 + 24


def test_what_is_no_collection_is_left_to_hdf5():
    data = collection((0, 0, bytes(16))).copy()
    data[AT : AT + 4] = np.frombuffer(b"GCOX", np.uint8)
    assert walk(data) == -1  # HDF5 refuses the signature itself
    assert walk(collection((0, 0, bytes(16)), size=1 << 40)) == -1  # beyond the file's end: HDF5 refuses it
    assert stalled_object(collection(), len(collection()) - 8, 8) == -1  # a header cut by the file's end
