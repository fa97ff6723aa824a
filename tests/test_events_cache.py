"""Caches of windowed events (``--repr events``): the packed encoding by hand, the stored events
against the source file, every representation computed from them against the dense cache of the
same conversion, chunks along the events, damage, and CacheDataset per item and per batch."""

import shutil

import h5py
import numpy as np
import pytest
import torch
import zarr
from cli import run_cli
from conftest import assert_same_events
from conftest import T0_US, write_recording

from evtools import cache as cache_module
from evtools.cache import Cache, CacheError, StaleCacheError
from evtools.convert import ConvertSpec, convert
from evtools.data import CacheDataset, RandomHorizontalFlip
from evtools.events import Events, pack_window, unpack_window
from evtools.representations import EvImage, EvSegNet, Histogram, TimeSurface, VoxelGrid
from evtools.tensors import WindowTensors
from evtools.windows import EventsBeforeFrame

ALL = (VoxelGrid(bins=3, normalize=True), Histogram(bins=2, cutoff=3), EvImage(), EvSegNet(), TimeSurface(tau_us=20_000.0))


def hand_events():
    return Events(np.array([100, 105, 105, 200], np.int64), np.array([0, 3, 345, 1], np.uint16),
                  np.array([0, 1, 259, 2], np.uint16), np.array([1, -1, 1, -1], np.int8))


def test_packing_by_hand():
    dt, xyp = pack_window(hand_events(), 90, 346)
    assert dt.dtype == xyp.dtype == np.uint32
    assert dt.tolist() == [10, 5, 0, 95]
    # (y * 346 + x) * 2 + (p > 0)
    assert xyp.tolist() == [1, (1 * 346 + 3) * 2, (259 * 346 + 345) * 2 + 1, (2 * 346 + 1) * 2]
    assert_same_events(unpack_window(dt, xyp, 90, 346, 260), hand_events())


def test_packing_refuses_what_it_cannot_hold():
    events = hand_events()
    with pytest.raises(ValueError, match="event time goes backwards inside a window"):
        pack_window(events, 101, 346)
    far = Events(np.array([0, 2**32], np.int64), *(a[:2] for a in (events.x, events.y, events.p)))
    with pytest.raises(ValueError, match=r"jumps by more than 2\^32 us"):
        pack_window(far, 0, 346)
    dt, xyp = pack_window(events, 90, 346)
    with pytest.raises(ValueError, match="a packed event lies off the 346x259 sensor"):
        unpack_window(dt, xyp, 90, 346, 259)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("events_cache")
    path = root / "rec_data.hdf5"
    write_recording(path, n_events=40_000, n_frames=12, span_us=600_000)
    both = convert(path, root / "both", ConvertSpec(representations=ALL, events=True)).output
    only = convert(path, root / "only", ConvertSpec(representations=(), events=True)).output
    return path, Cache(both), Cache(only)


def test_stored_events_are_the_source_files_events(converted):
    path, _, only = converted
    with h5py.File(path) as h5:  # the MVSEC layout: rows of (x, y, t seconds, p)
        table = h5["davis/left/events"][:]
    t = np.round(table[:, 2] * 1e6).astype(np.int64) - T0_US
    starts, ends = only.array("t_start_us")[:], only.array("t_end_us")[:]
    for k in range(len(only)):
        keep = (t >= starts[k]) & (t < ends[k])
        expected = Events(t[keep], table[keep, 0].astype(np.uint16), table[keep, 1].astype(np.uint16),
                          np.where(table[keep, 3] > 0, 1, -1).astype(np.int8))
        assert only.n_events[k] == keep.sum() > 0
        assert_same_events(only.window_events(k), expected)
    assert only.representations == [] and only.attrs["events"] == {"encoding": "dt-xyp-uint32", "chunk_events": 65536}


@pytest.mark.parametrize("rep", ALL, ids=lambda r: f"{r.name}-{'-'.join(map(str, r.params().values()))}")
def test_every_representation_from_events_equals_the_dense_cache(converted, rep):
    _, both, only = converted
    from_events = WindowTensors(only, rep)
    assert from_events.from_events
    dense = both.array(f"repr/{rep.name}")
    assert from_events[:].dtype == dense.dtype
    np.testing.assert_allclose(from_events[:], dense[:], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(from_events[3], dense[3], rtol=1e-6, atol=1e-6)
    assert not WindowTensors(both, rep).from_events


def test_a_name_reads_the_dense_array_and_other_parameters_compute(converted):
    _, both, _ = converted
    assert not WindowTensors(both, "histogram").from_events
    assert WindowTensors(both, Histogram(bins=5)).from_events  # stored with bins=2: computed instead


def test_a_cache_without_events_or_that_representation_says_so(tmp_path):
    write_recording(tmp_path / "rec_data.hdf5")
    dense = Cache(convert(tmp_path / "rec_data.hdf5", tmp_path / "dense", ConvertSpec(representations=(EvImage(),))).output)
    with pytest.raises(CacheError, match=r"has no 'voxel' representation \(it has evimage\) and stores no events"):
        WindowTensors(dense, "voxel")
    with pytest.raises(CacheError, match="stores no events"):
        dense.window_events(0)


def test_windows_longer_than_a_chunk_span_several_and_only_those(tmp_path):
    write_recording(tmp_path / "rec_data.hdf5", n_events=200_000, n_frames=4, span_us=400_000)
    spec = ConvertSpec(representations=(), events=True, window=EventsBeforeFrame(150_000))
    cache = Cache(convert(tmp_path / "rec_data.hdf5", tmp_path / "long", spec).output)
    array = cache.array(cache_module.CacheArray.EVENTS_DT)
    chunks_per_window = -(-int(cache.n_events.max()) // 65536)
    assert chunks_per_window == 3 and array.chunks == (1, 65536) and array.shards == (16, 3 * 65536)
    # one file for these windows (a shard per 16), holding each window's chunks up to its last event
    folder = cache.path / cache_module.CacheArray.EVENTS_DT
    assert sorted(p.name for p in folder.iterdir()) == ["c.0.0", "zarr.json"]
    held = cache_module._held_chunks(folder / "c.0.0", (16, 3)).reshape(16, 3)
    for k in range(len(cache)):
        n = int(cache.n_events[k])
        assert list(np.flatnonzero(held[k])) == list(range(-(-n // 65536)))
        assert len(cache.window_events(k)) == n
    assert not held[len(cache):].any()
    assert cache.verify() == []


def test_damaged_event_chunks_are_found(tmp_path, converted):
    _, _, only = converted
    damaged = tmp_path / "damaged.zarr"
    shutil.copytree(only.path, damaged)
    shard = damaged / cache_module.CacheArray.EVENTS_XYP / "c.0.0"  # windows 0-15
    # a shard that lost window 2's chunk (zarr would read it as zeros): found by --verify
    chunks = cache_module._shard_chunks(shard, (16, 1))
    del chunks[2]
    shard.write_bytes(cache_module._shard_bytes(chunks, (16, 1)))
    assert Cache(damaged).verify() == ["'events/xyp': 1 of 12 chunks missing (the first at chunk (2, 0))"]
    # the shard's file deleted: found by reading too
    shard.unlink()
    cache = Cache(damaged)
    with pytest.raises(CacheError, match="window 2 of 'events/xyp' is missing"):
        cache.window_events(2)
    assert cache.verify() == ["'events/xyp': 12 of 12 chunks missing (the first at chunk (0, 0))"]
    # a word naming a pixel off the sensor: found by reading, never handed to a kernel
    shutil.copytree(only.path, tmp_path / "off.zarr")
    group = zarr.open_group(tmp_path / "off.zarr", mode="r+")
    row = group[cache_module.CacheArray.EVENTS_XYP][5]
    row[0] = np.uint32(64 * 48 * 2)
    group[cache_module.CacheArray.EVENTS_XYP][5] = row
    with pytest.raises(CacheError, match="window 5: a packed event lies off the 64x48 sensor"):
        Cache(tmp_path / "off.zarr").window_events(5)


@pytest.mark.parametrize("array, index, value", [(cache_module.CacheArray.EVENTS_DT, (4, 0), 2**32 - 1),
                                                 (cache_module.CacheArray.T_START, 4, 2**63 - 1)])
def test_events_past_their_windows_end_are_named_not_wrapped(tmp_path, converted, array, index, value):
    # a damaged delta, or a damaged start whose sum with the deltas would wrap around int64
    _, _, only = converted
    damaged = tmp_path / "damaged.zarr"
    shutil.copytree(only.path, damaged)
    zarr.open_array(damaged / array, mode="r+")[index] = value
    n, end = int(only.n_events[4]), int(only.values("t_end_us")[4])
    start = int(zarr.open_array(damaged / "t_start_us", mode="r")[4])
    deltas = zarr.open_array(damaged / "events" / "dt", mode="r")[4, :n].astype(np.int64)
    problem = f"window 4: its events run to {start + int(deltas.sum())} us, past its end at {end} us"
    cache = Cache(damaged)
    with pytest.raises(CacheError, match=f"^{damaged}: {problem}$"):
        cache.window_events(4)
    # a start after the end is found from the times alone
    assert cache.verify() == [problem if array == cache_module.CacheArray.EVENTS_DT
                              else f"window 4 starts at {value} us, after its end at {end} us"]


@pytest.mark.parametrize("count", [6076574518398419549, -3])
def test_a_damaged_count_is_named_not_read_up_to(tmp_path, converted, count):
    # a count chunk that still decodes, to a number no window holds (found by the fuzzer: verify and
    # the readers listed the event chunks up to it, without end)
    _, _, only = converted
    damaged = tmp_path / "damaged.zarr"
    shutil.copytree(only.path, damaged)
    capacity = only.array(cache_module.CacheArray.EVENTS_DT).shape[1]
    zarr.open_array(damaged / "n_events", mode="r+")[3] = count
    problem = f"'n_events' counts {count} events in window 3, not 0 to {capacity}, what a window of the event arrays holds"
    cache = Cache(damaged)
    with pytest.raises(CacheError, match=f"^{damaged}: {problem}$"):
        cache.window_events(0)
    assert cache.verify() == [problem]
    with pytest.raises(CacheError, match=f"^{damaged}: {problem}$"):
        CacheDataset(damaged, repr=Histogram(bins=2))[0]
    for args in (["info", damaged], ["info", damaged, "--verify"]):
        result = run_cli(*args)
        assert result.returncode == 2 and result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
        assert problem in result.stderr
    with pytest.raises(ValueError, match=f"length must be 0 to {capacity}, what a window of 'events/dt' holds, got {count}"):
        cache.window(cache_module.CacheArray.EVENTS_DT, 3, count)


def test_events_are_part_of_the_key(tmp_path):
    write_recording(tmp_path / "rec_data.hdf5")
    convert(tmp_path / "rec_data.hdf5", tmp_path / "c", ConvertSpec(representations=(EvImage(),)))
    with pytest.raises(StaleCacheError, match="holds a conversion with other events"):
        convert(tmp_path / "rec_data.hdf5", tmp_path / "c", ConvertSpec(representations=(EvImage(),), events=True))


def test_cli_converts_events_alone_and_refuses_them_twice(tmp_path):
    write_recording(tmp_path / "rec_data.hdf5")
    result = run_cli("convert", tmp_path / "rec_data.hdf5", "--repr", "events", "-o", tmp_path / "ev")
    assert result.returncode == 0, result.stderr
    assert Cache(tmp_path / "ev.zarr").has_events and Cache(tmp_path / "ev.zarr").representations == []
    twice = run_cli("convert", tmp_path / "rec_data.hdf5", "--repr", "events", "--repr", "events", "-o", tmp_path / "e2")
    assert twice.returncode == 2 and twice.stderr == "error: --repr: give each representation once (got events, events)\n"


def test_dataset_per_item_and_per_batch_agree_and_transform_after(converted):
    _, both, only = converted
    rep = VoxelGrid(bins=3, normalize=True)
    per_item = CacheDataset(only.path, repr=rep, with_aps=True)
    dense = CacheDataset(both.path, repr="voxel", with_aps=True)
    flipped = CacheDataset(only.path, repr=rep, with_aps=True, batch_device="cpu", transforms=[RandomHorizontalFlip(1.0)])
    loader = torch.utils.data.DataLoader(flipped, batch_size=5, collate_fn=flipped.collate)
    batch = next(iter(loader))
    assert batch["events"].shape == (5, 3, 48, 64) and batch["events"].dtype == torch.float32
    expected = torch.stack([per_item[k]["events"] for k in range(5)])
    torch.testing.assert_close(expected, torch.stack([dense[k]["events"] for k in range(5)]), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(batch["events"], expected.flip(-1))
    torch.testing.assert_close(batch["aps"], torch.stack([per_item[k]["aps"] for k in range(5)]).flip(-1))
    assert batch["index"].tolist() == [0, 1, 2, 3, 4]


def test_a_window_with_a_gap_beyond_32_bits_is_refused_naming_it(tmp_path):
    from evtools.errors import InputError
    from evtools.io.writers.evh5 import write_evh5
    from evtools.windows import Every

    t = np.array([0, 1, 2**32 + 5], np.int64)  # 71 minutes between two events of one window
    events = Events(t, np.zeros(3, np.uint16), np.zeros(3, np.uint16), np.ones(3, np.int8))
    path = write_evh5(tmp_path / "gap.h5", [events], width=4, height=3)
    with pytest.raises(InputError, match=r"gap.h5: window 0: event time jumps by more than 2\^32 us inside a window"):
        convert(path, tmp_path / "gap", ConvertSpec(representations=(), events=True, window=Every(2**33)))
