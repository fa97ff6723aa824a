"""The fast path that writes chunk files itself (cache.write_windows, cache.write_events)
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


@pytest.mark.parametrize("event_chunk", [4, 3], ids=["shard-of-16x4-chunks", "shard-of-16x3-chunks"])
def test_event_shards_are_zarrs_own_bytes(tmp_path, monkeypatch, event_chunk):
    # chunks of 4 (or 3) events, so that the longest window (13 events) needs 4 (or 5) of them:
    # a shard holds 16 windows x 4 inner chunks (grid (16, 4), whose bytes zarr lays out in Morton
    # order, not row by row), or 16 x 5 (5 not a power of two); 40 windows: 3 shards, the last at
    # the array's edge
    monkeypatch.setattr(cache_module, "EVENT_CHUNK", event_chunk)
    rng = np.random.default_rng(1)
    lengths = [0, 5, 4, 13, 1, 0, 8, 12, 3, 9, 0, 2, 11, 7, 6, 10] + [0] * 16 + [13, 0, 1, 4, 5, 0, 2, 3]
    windows = [[rng.integers(1, 1000, n).astype(PACKED_DTYPE) for _ in range(2)] for n in lengths]
    windows[3][0][4:8] = 0  # an all-zero chunk inside a window: written (only chunks beyond a window's events are absent)
    spec = cache_module.conversion_arrays(len(lengths), 8, 6, [], with_aps=False, event_capacity=max(lengths))
    ours, theirs = (zarr.open_group(tmp_path / name, mode="w") for name in ("ours", "theirs"))
    for i, name in enumerate(cache_module.EVENT_ARRAYS):
        ours_array = cache_module._create_array(ours, name, spec[name])
        # zarr writing each window's chunks, through the array as created (all-zero chunks written)
        theirs_array = cache_module._create_array(theirs, name, spec[name])
        assert ours_array.shards == (16, -(-max(lengths) // event_chunk) * event_chunk)
        # blocks as a conversion writes them: one ended early (0-5, then 6-15 rewriting the shard),
        # a shard of windows without events (16-31: no file), the edge (32-39)
        for start, stop in ((0, 6), (6, 16), (16, 32), (32, 40)):
            cache_module.write_events(ours_array, start, [window[i] for window in windows[start:stop]])
        for k, window in enumerate(windows):
            if len(window[i]):
                theirs_array[k, : len(window[i])] = window[i]
        for k, window in enumerate(windows):
            np.testing.assert_array_equal(ours[name][k, : lengths[k]], window[i])
    assert chunk_files(tmp_path / "ours") == chunk_files(tmp_path / "theirs")
    assert not (tmp_path / "ours" / "events" / "dt" / "c.1.0").exists()
