"""The fast path that writes chunk files itself (cache.write_windows, cache.write_window_events)
writes the very bytes zarr's own writes of the same arrays give: for every dtype and codec a
cache uses, window chunks and event chunks alike."""

import numpy as np
import pytest
import zarr

from evtools import cache as cache_module
from evtools.cache import ArraySpec
from evtools.events import PACKED_DTYPE


def chunk_files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != "zarr.json"}


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
@pytest.mark.parametrize("dtype, shape", [(np.float32, (5, 6, 7)), (np.float16, (2, 6, 7)), (np.uint8, (6, 7)),
                                          (np.int64, ())], ids=["float32", "float16", "uint8", "int64-scalars"])
def test_window_chunks_are_zarrs_own_bytes(tmp_path, codec, dtype, shape):
    rng = np.random.default_rng(0)
    values = (rng.random((20, *shape)) * 100 * (rng.random((20, *shape)) < 0.3)).astype(dtype)
    values[9:16] = 0  # a block without events, written as cache.zero_windows
    spec = ArraySpec(values.shape, np.dtype(dtype))
    ours, theirs = (zarr.open_group(tmp_path / name, mode="w") for name in ("ours", "theirs"))
    cache_module._create_array(ours, "a", spec, codec)
    # zarr writing every chunk, all-zero ones included (as evtools does: a missing file is
    # damage), through the array as created (the setting is the array object's, not stored)
    theirs_array = cache_module._create_array(theirs, "a", spec, codec)
    # blocks as a conversion writes them: whole files (16 windows), one ended early by its
    # events (0-8, then the rest of the file, here without events), and the edge (16-19)
    for start, stop in ((0, 9), (9, 16), (16, 20)):
        block = cache_module.zero_windows(stop - start, shape, dtype) if start == 9 and shape else values[start:stop]
        cache_module.write_windows(ours, "a", start, block)
    theirs_array[:] = values
    assert chunk_files(tmp_path / "ours") == chunk_files(tmp_path / "theirs")
    np.testing.assert_array_equal(ours["a"][:], values)


def test_event_chunks_are_zarrs_own_bytes(tmp_path):
    rng = np.random.default_rng(1)
    lengths = [0, 5, 65536, 70000]  # empty, inside one chunk, exactly one, more than one
    spec = cache_module.conversion_arrays(len(lengths), 8, 6, [], with_aps=False, event_capacity=max(lengths))
    ours, theirs = (zarr.open_group(tmp_path / name, mode="w") for name in ("ours", "theirs"))
    for group in (ours, theirs):
        for name, array_spec in spec.items():
            cache_module._create_array(group, name, array_spec)
    for k, n in enumerate(lengths):
        packed = tuple(rng.integers(0, 1000, n).astype(PACKED_DTYPE) for _ in range(2))
        cache_module.write_window_events(ours, k, packed)
        for name, values in zip(cache_module.EVENT_ARRAYS, packed):
            if n:
                theirs[name][k, :n] = values
    assert chunk_files(tmp_path / "ours") == chunk_files(tmp_path / "theirs")
