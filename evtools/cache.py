"""The Zarr v3 cache: its schema, creation, resumption, opening, and the refusal of stale ones.

Every array and attribute name of a cache is defined here (``CacheArray``, ``CacheAttr``,
``repr_array``) and the arrays of a conversion are laid out by ``conversion_arrays``; the format
is documented in docs/cache-format.md, which a test checks against these names. On disk:

    NAME.zarr/                      zarr.json: the attributes (CacheAttr), "complete" last
      t_start_us  t_end_us  n_events  frame_t_us         (K,)          per window
      aps  gt_labels                                     (K, H, W)     uint8, a chunk a window,
                                                                       a file (shard) per 16
      gt_condition                                       (K,)          uint8
      repr/<name>                                        (K, C, H, W)  the same
      events/dt  events/xyp                              (K, N)        uint32, chunks (1, 65536),
                                                                       a shard per 16 windows
      labels  labels_confidence                          (K, H, W)     added by evtools pseudolabel
    NAME.zarr.partial/              the same while a conversion writes it
    NAME.zarr.lock                  held (flock) by the command writing it

A cache is keyed by its source's content fingerprint and by every parameter that shapes its
values (window, crop, representations, stored events, read options, ground truth): opening it for
other parameters is refused, never silently reused. A conversion writes into
``NAME.zarr.partial`` and renames it to ``NAME.zarr`` once every window is written, so no file
named like a finished cache is ever incomplete.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import google_crc32c
import numcodecs
import numpy as np
import zarr
import zarr.core.sync
from zarr.codecs import BloscCodec, BloscShuffle

from evtools import __version__
from evtools.errors import EvtoolsError, InputError, first_line
from evtools.events import PACKED_DTYPE, Events, unpack_window
from evtools.labels import IGNORE
from evtools.locks import exclusive

if TYPE_CHECKING:
    from evtools.representations import Representation

SCHEMA = 1
PARTIAL_SUFFIX = ".partial"


class CacheArray(StrEnum):
    """The name of every array a cache may hold (the representations: ``repr_array``)."""

    T_START = "t_start_us"  # (K,) int64 window start, microseconds after the first event
    T_END = "t_end_us"  # (K,) int64 window end
    N_EVENTS = "n_events"  # (K,) int64 events in the window (on the sensor, inside the crop)
    FRAME_T = "frame_t_us"  # (K,) int64 the window's APS frame time (frame-aligned modes)
    APS = "aps"  # (K, H, W) uint8 that frame
    GT_LABELS = "gt_labels"  # (K, H, W) uint8 ground-truth masks, IGNORE where none
    GT_CONDITION = "gt_condition"  # (K,) uint8 the frame's simulated condition, 255 unknown
    EVENTS_DT = "events/dt"  # (K, N) uint32 stored events: time since the previous event
    EVENTS_XYP = "events/xyp"  # (K, N) uint32 stored events: (y * width + x) * 2 + (p > 0)
    LABELS = "labels"  # (K, H, W) uint8 pseudo-labels
    LABELS_CONFIDENCE = "labels_confidence"  # (K, H, W) float16 the teacher's probability of each


class CacheAttr(StrEnum):
    """The name of every attribute of a cache's group."""

    EVTOOLS = "evtools"  # {"schema", "version"}
    SOURCE = "source"  # {"path", "format", "size", "fingerprint"}
    SENSOR = "sensor"  # {"width", "height"} after the crop
    CROP = "crop"
    WINDOW = "window"
    REPRESENTATIONS = "representations"  # {name: parameters}
    EVENTS = "events"  # how events are stored, or None
    READ_OPTIONS = "read_options"
    GROUND_TRUTH = "ground_truth"  # fingerprint of the ground truth, "recording", or None
    FLOAT_DTYPE = "float_dtype"  # "float16" when float representations are stored in half precision, else None
    T0 = "t0_us"  # absolute time of the recording's first event
    COMPLETE = "complete"
    WINDOWS_DONE = "windows_done"


REPR_GROUP = "repr"
EVENTS_GROUP = "events"
EVENT_ARRAYS = (CacheArray.EVENTS_DT, CacheArray.EVENTS_XYP)  # in pack_window's order
EVENT_CHUNK = 1 << 16
# arrays that a later stage adds to a finished cache, and the array whose attributes hold that
# stage's progress (AddedArrays)
ADDED_PROGRESS = {CacheArray.LABELS: CacheArray.LABELS, CacheArray.LABELS_CONFIDENCE: CacheArray.LABELS}
# the attributes that key a cache: the parameters that shape its values
PARAMETER_FIELDS = (CacheAttr.WINDOW, CacheAttr.CROP, CacheAttr.REPRESENTATIONS, CacheAttr.READ_OPTIONS,
                    CacheAttr.GROUND_TRUTH, CacheAttr.EVENTS, CacheAttr.FLOAT_DTYPE)


def repr_array(name: str) -> str:
    """The array of representation ``name``."""
    return f"{REPR_GROUP}/{name}"


# zstd level 1 through Blosc, without shuffling, by default: windows of event tensors are mostly
# zeros, which zstd packs best as they are. Measured on 50 ms voxel grids of synthetic driving
# data (2% nonzero): 28x smaller at about 640 MB/s, against 17x with byte shuffle and 10x with
# bit-shuffle, both slower; on the conversion benchmark's denser grids (18% nonzero) 4.6x at 480
# MB/s a thread, against 3.4x at 300 MB/s with byte shuffle and 2.4x at 290 with bit-shuffle.
# lz4 writes three times as fast for half the ratio on the sparse grids (3.0x at 950 MB/s on the
# denser ones): the choice when conversion speed matters more than disk (docs/cache-format.md).
# zstd's negative levels (zarr's own zstd codec) lie between the two on the denser grids (level
# -1 4.4x at 550 MB/s, -3 3.6x at 730) and are not offered.
CODECS = ("zstd", "lz4")
SHUFFLES = {BloscShuffle.noshuffle: numcodecs.Blosc.NOSHUFFLE, BloscShuffle.shuffle: numcodecs.Blosc.SHUFFLE,
            BloscShuffle.bitshuffle: numcodecs.Blosc.BITSHUFFLE}


# Blosc splits a chunk into blocks compressed one by one; its default for zstd level 1 (32 KiB
# here) restarts zstd every few kilobytes. 1 MiB zstd blocks (a 50 ms 5-bin voxel window is
# 1.8 MB) compress and decode about 35% faster for the same ratio (measured on voxel grids and
# histograms of the conversion benchmark's data, one thread: 450 -> 610 MB/s and 720 -> 1000
# MB/s); lz4 is fastest with Blosc's own choice (0: 1260 against 1030 MB/s with 1 MiB).
BLOSC_BLOCK_BYTES = {"zstd": 1 << 20, "lz4": 0}


def compressor(codec: str = "zstd", shuffle: bool = False) -> BloscCodec:
    if codec not in CODECS:
        raise EvtoolsError(f"unknown codec '{codec}' (known: {', '.join(CODECS)})")
    return BloscCodec(cname=codec, clevel=1, shuffle=BloscShuffle.shuffle if shuffle else BloscShuffle.noshuffle,
                      blocksize=BLOSC_BLOCK_BYTES[codec])


class CacheError(InputError):
    """A cache that cannot be used as asked."""


class StaleCacheError(CacheError):
    """A cache made from another source or with other parameters."""


# The URLs of the stores this process has opened caches in: an error that a store's driver raises
# (no credentials, a refused connection) names none, and the command line names these instead.
_REMOTE_LOCATIONS: list[str] = []


def location(path: str | Path) -> Path:
    """A cache's location: a local Path (a ``file://`` URL's too, keeping a local cache's atomic
    rename), or for another URL (``s3://bucket/rec.zarr``, ``gs://...``, ``memory://...``) a
    universal_pathlib UPath over fsspec, with the same methods."""
    if isinstance(path, Path) or "://" not in str(path):
        return Path(path)
    url = urlsplit(str(path))
    if url.scheme == "file":
        return Path(unquote(url.path))
    if not any(str(path).startswith(known.rstrip("/") + "/") or str(path) == known for known in _REMOTE_LOCATIONS):
        _REMOTE_LOCATIONS.append(str(path))  # not a place inside one named before: a cache in an output folder
    try:
        from upath import UPath

        located = UPath(str(path))
        located.fs  # the store's fsspec driver, imported now: a missing one is said here
    except ImportError as err:
        raise InputError(str(path), f"caches at URLs need universal_pathlib and the store's fsspec driver "
                                    f"({err}); pip install 'evtools[remote]'") from None
    except ValueError as err:  # an unknown protocol
        raise InputError(str(path), str(err)) from None
    return located


def remote_locations() -> tuple[str, ...]:
    """The URLs this process has opened caches at (``location``), first first."""
    return tuple(_REMOTE_LOCATIONS)


def is_remote(path) -> bool:
    """Whether ``path`` is in an fsspec store (a URL), where renaming is no atomic operation."""
    return not isinstance(path, Path)


def partial_path(path: Path) -> Path:
    """Where a conversion writes: ``NAME.zarr.partial``, renamed when complete. In a remote store
    (no atomic rename) the cache itself, whose ``complete`` attribute, written last, marks it whole."""
    return path if is_remote(path) else path.with_name(path.name + PARTIAL_SUFFIX)


def open_group(path: Path, mode: str = "r") -> zarr.Group:
    """A cache's group as evtools opens it: from each node's own metadata, never the consolidated
    copy, which may be stale while a stage writes (see ``consolidate``)."""
    return zarr.open_group(str(path), mode=mode, use_consolidated=False)


def settle_zarr_io(timeout_s: float = 30.0) -> None:
    """Waits, up to ``timeout_s``, for the reads and writes still running in zarr's event loop.
    A read whose chunk cannot be decoded raises at once while the reads of its other chunks go
    on; a process that exits then has zarr stop its loop with them unfinished, and each prints a
    traceback ("Event loop is closed") as it is destroyed: `evtools score` on a cache with one
    corrupt shard did in 5 of 30 runs. The command line calls this before it exits on an error."""

    async def the_others_done() -> None:
        others = asyncio.all_tasks() - {asyncio.current_task()}
        if others:
            await asyncio.wait(others, timeout=timeout_s)

    try:
        zarr.core.sync.sync(the_others_done(), timeout=timeout_s)
    except TimeoutError:  # the loop itself is stuck: nothing to wait for
        pass


def _remove_tree(path: Path) -> None:
    if is_remote(path):
        path.fs.rm(path.path, recursive=True)
    else:
        shutil.rmtree(path)


@dataclass(frozen=True)
class CacheKey:
    """What a cache's values depend on: the source's content and the parameters, as plain
    JSON-able values stored in the cache's attributes."""

    source_fingerprint: str
    window: dict
    crop: list | None
    representations: dict
    read_options: dict
    ground_truth: str | None = None  # fingerprint of a ground-truth file, "recording" for the source's own masks
    events: dict | None = None  # how windows of events are stored, None when they are not
    float_dtype: str | None = None  # "float16": float representations stored in half precision

    def parameters(self) -> dict:
        return {field: getattr(self, field) for field in PARAMETER_FIELDS}


def key_differences(attrs: dict, key: CacheKey) -> list[str]:
    """What differs between a cache's attributes and ``key``: "source" and parameter names."""
    source = [CacheAttr.SOURCE] if attrs.get(CacheAttr.SOURCE, {}).get("fingerprint") != key.source_fingerprint else []
    return source + [field for field in PARAMETER_FIELDS if attrs.get(field) != getattr(key, field)]


def _refuse_other_key(path: Path, attrs: dict, key: CacheKey) -> None:
    differing = key_differences(attrs, key)
    if differing:
        raise StaleCacheError(
            path, f"holds a conversion with other {', '.join(differing)}; use --overwrite to replace it"
        )


def resume_point(path: Path, key: CacheKey) -> int | None:
    """How many windows an unfinished conversion under ``path`` already wrote for this key;
    None when there is none. Other parameters are refused; an unreadable remnant starts over."""
    partial = partial_path(path)
    if not partial.exists():
        return None
    try:
        attrs = dict(open_group(partial).attrs)
    except Exception:  # noqa: BLE001 - a conversion killed while creating the group: start over
        attrs = {}
    if CacheAttr.WINDOWS_DONE not in attrs:  # its creation did not finish (the attributes come last)
        _remove_tree(partial)
        return None
    _refuse_other_key(partial, attrs, key)
    return int(attrs.get(CacheAttr.WINDOWS_DONE, 0))


def finished_matches(path: Path, key: CacheKey) -> bool:
    """Whether a finished cache for exactly this key is already at ``path``; other keys are refused."""
    if not path.exists():
        return False
    if is_remote(path) and not _is_complete(path):
        return False  # in a remote store an unfinished cache lies where the finished one will: resume it
    cache = Cache(path)
    _refuse_other_key(path, cache.attrs, key)
    return True


@contextmanager
def cache_lock(path: Path) -> Iterator[None]:
    """Held while a command writes the cache ``path`` (a conversion, pseudo-labelling): a second
    writer is refused (``locks.exclusive``). Remote stores have no such lock: one writer per
    cache there is the user's to ensure."""
    if is_remote(path):
        yield
        return
    with exclusive(path, "another evtools command is writing this cache now (convert or pseudolabel); "
                         "wait for it to finish"):
        yield


def _is_complete(path: Path) -> bool:
    try:
        return open_group(path).attrs.get(CacheAttr.COMPLETE) is True
    except Exception:  # noqa: BLE001 - unreadable: not complete
        return False


def is_evtools_cache(path: Path) -> bool:
    """Whether ``path`` is a Zarr group that evtools wrote (finished or not)."""
    try:
        metadata = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(metadata, dict) and CacheAttr.EVTOOLS in metadata.get("attributes", {})


def remove_cache(path: Path) -> None:
    """Deletes an evtools cache and its partial; anything else at those paths is refused."""
    for target in (path, partial_path(path)):
        if target.exists() or target.is_symlink():
            if target.is_symlink() or not target.is_dir() or not is_evtools_cache(target):
                raise InputError(target, "is not an evtools cache: --overwrite deletes only caches (move it away)")
            _remove_tree(target)


@dataclass(frozen=True)
class ArraySpec:
    """One array of a cache: its shape (K windows first), dtype and attributes. Tensors are
    chunked one window per chunk along K, unless ``chunks`` says otherwise; ``shuffle`` turns on
    Blosc's byte shuffle (for integers that vary in their low bytes only)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    attributes: dict = field(default_factory=dict)
    chunks: tuple[int, ...] | None = None
    shuffle: bool = False
    dims: tuple[str, ...] | None = None  # the axes' names, when not the default for the rank

    @property
    def dimension_names(self) -> tuple[str, ...]:
        """What xarray calls the axes: window first, then event, or (channel,) y, x."""
        return self.dims or DIMENSION_NAMES[len(self.shape)]


DIMENSION_NAMES = {1: ("window",), 2: ("window", "event"), 3: ("window", "y", "x"), 4: ("window", "channel", "y", "x")}
# the per-window times, which xarray shows as coordinates of every other array of the group
WINDOW_COORDINATES = (CacheArray.T_START, CacheArray.T_END)
TIMES_CHUNK = 1 << 16


def conversion_arrays(n_windows: int, width: int, height: int, representations: Sequence[Representation],
                      with_aps: bool, with_ground_truth: bool = False, condition_names: list[str] | None = None,
                      event_capacity: int | None = None, float16: bool = False, stack: int = 1) -> dict[str, ArraySpec]:
    """The arrays a conversion creates: per-window times and counts, the frames and their
    ground truth when asked, each representation (its float ones in float16 when ``float16``;
    (K, S, C, H, W) for a stack of S sub-windows, one window a chunk), and the stored events for
    windows of at most ``event_capacity`` events when that is given."""
    k = n_windows
    int64, uint8 = np.dtype(np.int64), np.dtype(np.uint8)
    # the window times are written once, with the partial cache: in chunks of up to TIMES_CHUNK
    # windows (a file per 16 windows made 54,000 files an array for a 12-hour DDD17 recording)
    times = ArraySpec((k,), int64, chunks=(max(1, min(k, TIMES_CHUNK)),))
    arrays = {CacheArray.T_START: times, CacheArray.T_END: times, CacheArray.N_EVENTS: ArraySpec((k,), int64)}
    if with_aps:
        arrays[CacheArray.FRAME_T] = times
        arrays[CacheArray.APS] = ArraySpec((k, height, width), uint8)
    if with_ground_truth:
        arrays[CacheArray.GT_LABELS] = ArraySpec((k, height, width), uint8, {"ignore": IGNORE})
        if condition_names is not None:
            arrays[CacheArray.GT_CONDITION] = ArraySpec((k,), uint8, {"names": condition_names, "unknown": 255})
    for rep in representations:
        dtype = np.dtype(np.float16) if float16 and rep.dtype.kind == "f" else rep.dtype
        # each representation's own channel axis: their channel counts differ
        stacked = (stack,) if stack > 1 else ()
        arrays[repr_array(rep.name)] = ArraySpec((k, *stacked, *rep.shape(width, height)), dtype,
                                                 {"name": rep.name, **rep.params()},
                                                 dims=("window", *(("stack",) if stacked else ()), f"{rep.name}_channel", "y", "x"))
    if event_capacity is not None:
        shape = (k, max(event_capacity, 1))
        chunks = (1, min(shape[1], EVENT_CHUNK))
        arrays[CacheArray.EVENTS_DT] = ArraySpec(shape, PACKED_DTYPE, {"encoding": "microseconds since the previous event "
                                                                       "(the first: since t_start_us)"}, chunks, shuffle=True)
        arrays[CacheArray.EVENTS_XYP] = ArraySpec(shape, PACKED_DTYPE, {"encoding": "(y * width + x) * 2 + (polarity > 0)"},
                                       chunks, shuffle=True)
    return arrays


def create_partial(
    path: Path,
    key: CacheKey,
    source: dict,
    attrs: dict,
    arrays: dict[str, ArraySpec],
    windows_per_block: int,
    codec: str = "zstd",
    initial: dict[str, np.ndarray] | None = None,
) -> zarr.Group:
    """A new ``NAME.zarr.partial`` group with the key, ``source`` (path, format, size; the
    fingerprint is added), other attributes and empty arrays: tensors chunked one window per
    chunk along K, per-window scalars in chunks of ``windows_per_block``, so that a block's write
    replaces whole chunks; Blosc ``codec`` compression. The codec is no part of the key: it
    changes the bytes on disk, not the values.

    ``initial`` values ({name: array}) are stored before the attributes, which come last: a
    partial whose attributes are there is whole, and one killed before is started over."""
    group = zarr.open_group(str(partial_path(path)), mode="w")
    for name, spec in arrays.items():
        _create_array(group, name, spec, codec, windows_per_block)
    for name, values in (initial or {}).items():
        write_windows(group, name, 0, values)
    group.update_attributes(  # one write of zarr.json: attrs.update writes it once per key
        {
            CacheAttr.EVTOOLS: {"schema": SCHEMA, "version": __version__},
            CacheAttr.SOURCE: {**source, "fingerprint": key.source_fingerprint},
            **key.parameters(),
            **attrs,
            CacheAttr.COMPLETE: False,
            CacheAttr.WINDOWS_DONE: 0,
        }
    )
    return group


def _create_array(group: zarr.Group, name: str, spec: ArraySpec, codec: str = "zstd", windows_per_block: int = 16,
                  overwrite: bool = False) -> zarr.Array:
    shape = spec.shape
    chunks = spec.chunks or ((1, *shape[1:]) if len(shape) > 1 else (windows_per_block,))
    return group.create_array(
        name,
        shape=shape,
        chunks=chunks,
        # a file (a zarr shard) per block of windows, each window still a chunk (or, for the
        # stored events, chunks) of its own inside it: one file per window made creating inodes a
        # fifth of a conversion's CPU time, and a DDD17 recording would leave millions of files
        shards=(windows_per_block, *(-(-n // c) * c for n, c in zip(shape[1:], chunks[1:]))) if len(shape) > 1 else None,
        dtype=spec.dtype,
        compressors=compressor(codec, spec.shuffle),
        fill_value=0,
        attributes=_with_coordinates(name, spec.attributes),
        dimension_names=spec.dimension_names,
        # chunk files side by side in the array's folder ("c.12.0.0.0"), not one nested folder
        # per chunk: a folder costs an inode
        chunk_key_encoding={"name": "default", "separator": "."},
        overwrite=overwrite,
        # skips zarr's all-fill check of every chunk: windows are rarely all zero, and an
        # all-zero one compresses to a few bytes anyway
        config={"write_empty_chunks": True},
    )


def _with_coordinates(name: str, attributes: dict) -> dict:
    """An array's attributes, with CF's ``coordinates`` naming the window times for the arrays
    beside them in the group's root (xarray reads it: window times as coordinates)."""
    if "/" in name or name in WINDOW_COORDINATES:
        return attributes
    return {**attributes, "coordinates": " ".join(WINDOW_COORDINATES)}


def consolidate(path: Path) -> None:
    """Writes the group's consolidated metadata (every array's metadata in the root zarr.json), the
    form xarray and remote readers open in one read. Called when a cache is finished and again
    when a stage adds arrays; evtools itself reads the arrays' own metadata."""
    with warnings.catch_warnings():  # zarr says that v3's specification does not define it yet: known
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        try:
            zarr.consolidate_metadata(str(path))
        except Exception as err:  # noqa: BLE001 - another array's metadata damaged: zarr raises what parsing it raises
            raise CacheError(path, f"its arrays' metadata cannot be gathered ({type(err).__name__}: {first_line(err)}); "
                                   "evtools info --verify lists every problem") from err


def write_windows(group: zarr.Group, name: str, first: int, values: np.ndarray, pool: Executor | None = None) -> None:
    """Stores ``values`` as windows first, first + 1, ... of an array of ``group`` (window first),
    the windows compressed in parallel on ``pool``'s threads when one is given."""
    start_write(group[name], first, values, pool)()


def start_write(array: zarr.Array, first: int, values: np.ndarray, pool: Executor | None = None
                ) -> Callable[[], None]:
    """Starts storing ``values`` as windows first, first + 1, ... of ``array`` and returns the call
    that finishes it: with a ``pool``, their encodings are queued on its threads at once, so that a
    caller can compute the next windows meanwhile. ``values`` must stay unchanged until the tasks
    queued on ``pool`` have finished, not longer: what the returned call writes is encoded or
    copied by then (per-window scalars, and everything a remote store's zarr writes, are copied
    here; calls to one array must finish in order, as a chunk of scalars holds several blocks).

    In a local store the files are written as zarr would write them, each window encoded
    with the array's own Blosc settings: a shard of ``shards[0]`` windows
    (``<array>/c.<shard>.0.0...``; in caches from before shards, a file a window), or a chunk of
    per-window scalars. This skips zarr's per-chunk write machinery, which costs as much again as
    the compression itself (measured: 400 against 750 MB/s for 50 ms voxel grids with lz4; 10 ms
    a block for a chunk of scalars). Blosc releases the GIL, so threads compress on every core;
    off the main thread numcodecs runs Blosc single-threaded, which is why one writer thread
    alone used one core. In a remote store zarr writes the windows.

    ``values`` may be one zero broadcast to every window (``zero_windows``: a block without
    events); their encoding is then made once for all, not once a window.
    """
    if not _is_local(array):
        held = values if _is_one_value(values) else np.array(values)
        return partial(array.__setitem__, slice(first, first + len(values)), held)
    encoder = _encoder(array)
    if array.ndim == 1:
        return partial(_write_scalars, array, first, np.array(values, dtype=array.dtype.newbyteorder("<")), encoder)
    if _is_one_value(values) and not values.flat[0]:  # one zero for every window
        encodings = [_encoded_zeros(encoder, array.chunks[1:], array.dtype.newbyteorder("<").str)] * len(values)
    else:
        windows = np.ascontiguousarray(values, dtype=array.dtype.newbyteorder("<"))
        encodings = [pool.submit(encoder.encode, window) for window in windows] if pool is not None else \
            [encoder.encode(window) for window in windows]
    return partial(_write_encoded, array, first, encodings)


def _write_encoded(array: zarr.Array, first: int, encodings: list) -> None:
    """Windows first, first + 1, ... of a tensor array from their encodings (bytes, or futures of
    them): a file a shard, or a file a window in caches from before shards."""
    encoded = [item.result() if isinstance(item, Future) else item for item in encodings]
    if array.shards is None:
        for offset, chunk in enumerate(encoded):
            _write_file(_chunk_file(array, (first + offset, *(0,) * (array.ndim - 1))), chunk)
    else:
        _write_shards(array, first, [{0: chunk} for chunk in encoded])


def _is_local(array: zarr.Array) -> bool:
    return getattr(array.store, "root", None) is not None


def _is_one_value(values: np.ndarray) -> bool:
    """Whether ``values`` is one value broadcast (``zero_windows``), held without its bytes."""
    return bool(values.size) and not any(values.strides)


def zero_windows(count: int, shape: tuple[int, ...], dtype) -> np.ndarray:
    """``count`` windows of zeros without their bytes: one zero, broadcast (read-only)."""
    return np.broadcast_to(np.zeros((), dtype), (count, *shape))


def _encoded_zeros(encoder: numcodecs.Blosc, shape: tuple[int, ...], dtype: str) -> bytes:
    """The encoding of a window of zeros, made once per setting."""
    return _zeros_encoding(tuple(sorted(encoder.get_config().items())), shape, dtype)


@lru_cache(maxsize=32)
def _zeros_encoding(encoder_config: tuple, shape: tuple[int, ...], dtype: str) -> bytes:
    return numcodecs.get_codec(dict(encoder_config)).encode(np.zeros(shape, dtype))


def _file_spans(first: int, stop: int, per_file: int) -> Iterator[tuple[int, int, int]]:
    """(file's first window, first and stop of windows [first, stop) in it) for each file of
    ``per_file`` windows that the range touches."""
    for start in range(first - first % per_file, stop, per_file):
        yield start, max(start, first), min(start + per_file, stop)


def _write_shards(array: zarr.Array, first: int, encoded: list[dict[int, bytes]], absent_is_empty: bool = False
                  ) -> None:
    """Encoded windows of a sharded array, each window's inner chunks by their index along the
    axes after the first ({0: bytes} for a window that is one chunk). A shard's file is replaced
    whole, never rewritten in place: the windows already in it (an earlier block's, recorded as
    done, when a block ended early) are kept and survive a kill midway. A shard left without any
    chunk is no file, as zarr leaves it; ``absent_is_empty``: such a shard may hold earlier
    windows (the stored events of windows without events), so its absence is no damage."""
    grid = _shard_grid(array)
    per_shard, per_window, zeros = grid[0], int(np.prod(grid[1:])), (0,) * (array.ndim - 1)
    for start, low, high in _file_spans(first, first + len(encoded), per_shard):
        path = _chunk_file(array, (start, *zeros))
        kept = (low - start) * per_window
        earlier = _shard_chunks(path, grid, absent_is_empty) if low > start else {}
        chunks = {i: chunk for i, chunk in earlier.items() if i < kept}
        for k in range(low, high):
            chunks.update({(k - start) * per_window + j: chunk for j, chunk in encoded[k - first].items()})
        if chunks:
            _write_file(path, _shard_bytes(chunks, grid), replace=low > start)


def _shard_grid(array: zarr.Array) -> tuple[int, ...]:
    """The inner chunks of a shard along each axis."""
    return tuple(s // c for s, c in zip(array.shards, array.chunks))


def _write_scalars(array: zarr.Array, first: int, values: np.ndarray, encoder: numcodecs.Blosc) -> None:
    """Windows of a (K,) array chunked by several windows: the chunks they fill whole as files,
    an edge chunk padded with the fill value as zarr stores it; a chunk filled in part through
    zarr, which keeps the values already there."""
    per_chunk = array.chunks[0]
    for start, low, high in _file_spans(first, first + len(values), per_chunk):
        if low == start and high == min(start + per_chunk, array.shape[0]):
            whole = np.zeros(per_chunk, values.dtype)
            whole[: high - low] = values[low - first : high - first]
            _write_file(_chunk_file(array, (start // per_chunk,)), encoder.encode(whole))
        else:
            array[low:high] = values[low - first : high - first]


def write_events(array: zarr.Array, first: int, windows: list[np.ndarray]) -> None:
    """Stores windows first, first + 1, ... of one of the event arrays, each a 1-D array of its
    packed events (``pack_window``'s dt or xyp): the chunks they fill, the last padded with zeros,
    all-zero ones included (a missing chunk inside a window is damage), none beyond (they read as
    0). In a local store as zarr would write them, in a shard per 16 windows (or a file a chunk,
    in caches from before shards); a shard of windows without events is no file. In a remote
    store zarr writes the block's rows up to its longest window."""
    size, dtype = array.chunks[1], array.dtype.newbyteorder("<")
    if not _is_local(array):
        columns = min(-(-max(map(len, windows), default=0) // size) * size, array.shape[1])
        block = np.zeros((len(windows), columns), dtype)
        for row, values in zip(block, windows):
            row[: len(values)] = values
        if columns:
            array[first : first + len(windows), :columns] = block
        return
    encoder = _encoder(array)
    encoded = [{j: encoder.encode(piece) for j, piece in enumerate(_padded_pieces(values, size, dtype))}
               for values in windows]
    if array.shards is not None:
        _write_shards(array, first, encoded, absent_is_empty=True)
        return
    for offset, chunks in enumerate(encoded):
        for j, chunk in chunks.items():
            _write_file(_chunk_file(array, (first + offset, j)), chunk)


def _padded_pieces(values: np.ndarray, size: int, dtype: np.dtype) -> Iterator[np.ndarray]:
    """``values`` in pieces of ``size``, the last padded with zeros."""
    for start in range(0, len(values), size):
        piece = np.zeros(size, dtype)
        piece[: min(size, len(values) - start)] = values[start : start + size]
        yield piece


def _encoder(array: zarr.Array) -> numcodecs.Blosc:
    """A numcodecs Blosc with the array's own settings (the bytes zarr itself would write)."""
    codecs = array.metadata.codecs
    bytes_codec, blosc = codecs[0].codecs if array.shards is not None else codecs
    return numcodecs.Blosc(
        cname=blosc.cname.value, clevel=blosc.clevel, shuffle=SHUFFLES[blosc.shuffle], blocksize=blosc.blocksize
    )


# zarr's sharding format: the inner chunks' bytes one after the other, then the index, (offset,
# length) as little-endian uint64 per inner chunk (2^64 - 1 twice for an absent one) followed by
# its CRC-32C; the index at the end, as zarr writes it by default
ABSENT_CHUNK = np.iinfo(np.uint64).max


def _shard_bytes(chunks: dict[int, bytes], grid: tuple[int, ...]) -> bytes:
    """The bytes of a shard of ``grid`` inner chunks holding ``chunks`` ({flat index: encoded}),
    the chunks in the order zarr writes them."""
    index = np.full((int(np.prod(grid)), 2), ABSENT_CHUNK, np.dtype("<u8"))
    order, offset = [i for i in _morton_order(grid) if i in chunks], 0
    for i in order:
        index[i] = offset, len(chunks[i])
        offset += len(chunks[i])
    index_bytes = index.tobytes()
    return b"".join([*(chunks[i] for i in order), index_bytes, _crc32c(index_bytes)])


@lru_cache(maxsize=32)
def _morton_order(grid: tuple[int, ...]) -> tuple[int, ...]:
    """The flat (C-order) indices of a shard's inner chunks in Morton (Z) order, as zarr lays out
    their bytes: the coordinates' bits interleaved, the first axis's lowest, an axis dropping
    out once its bits are used (for a window a chunk, the windows in order)."""
    bits = [(n - 1).bit_length() for n in grid]

    def code(coordinates: tuple[int, ...]) -> int:
        z, shift = 0, 0
        for bit in range(max(bits, default=0)):
            for axis, width in enumerate(bits):
                if bit < width:
                    z |= ((coordinates[axis] >> bit) & 1) << shift
                    shift += 1
        return z

    codes = [code(c) for c in np.ndindex(*grid)]
    return tuple(sorted(range(len(codes)), key=codes.__getitem__))


def _crc32c(data: bytes) -> bytes:
    """The CRC-32C of ``data`` as zarr stores it: 4 bytes, little-endian."""
    return np.uint32(google_crc32c.value(data)).astype("<u4").tobytes()


def _shard_chunks(path: Path, grid: tuple[int, ...], absent_is_empty: bool = False) -> dict[int, bytes]:
    """The encoded inner chunks that a shard file holds ({flat index: bytes}), checked against
    its index's CRC-32C; ``absent_is_empty``: a missing file holds none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if absent_is_empty:
            return {}
        raise CacheError(path, "a shard written earlier is missing") from None
    index = _shard_index(path, data[-_index_bytes(grid) :], grid)
    return {i: data[int(offset) : int(offset + length)] for i, (offset, length) in enumerate(index) if offset != ABSENT_CHUNK}


def _index_bytes(grid: tuple[int, ...]) -> int:
    """The size of a shard's index: (offset, length) per inner chunk, then its CRC-32C."""
    return int(np.prod(grid)) * 16 + 4


def _shard_index(path: Path, tail: bytes, grid: tuple[int, ...]) -> np.ndarray:
    """A shard's index, (offset, length) per inner chunk, from the file's last bytes."""
    if len(tail) < _index_bytes(grid) or _crc32c(tail[:-4]) != tail[-4:]:
        raise CacheError(path, "a shard written earlier is damaged (its index does not match its checksum)")
    return np.frombuffer(tail[:-4], np.dtype("<u8")).reshape(-1, 2)


def _missing_chunks(array: zarr.Array, expected: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """Of the chunks ``expected`` of an array in a local store, those whose file is absent or
    whose shard's index has no entry for them (a shard whose index is damaged counts as holding
    them: reading it reports the damage); none in a remote store."""
    missing, held = [], {}
    grid = _shard_grid(array) if array.shards is not None else None
    for index in expected:
        path = _chunk_file(array, index)
        if path is None:
            return []
        if not path.exists():
            missing.append(index)
        elif grid is not None:
            if path not in held:
                held[path] = _held_chunks(path, grid)
            if held[path] is not None and not held[path][np.ravel_multi_index([i % g for i, g in zip(index, grid)], grid)]:
                missing.append(index)
    return missing


def _held_chunks(path: Path, grid: tuple[int, ...]) -> np.ndarray | None:
    """Which inner chunks a shard file holds (flat, C order), from its index alone; None when
    the index is damaged or unreadable."""
    try:
        with path.open("rb") as file:
            file.seek(max(path.stat().st_size - _index_bytes(grid), 0))
            return _shard_index(path, file.read(), grid)[:, 0] != ABSENT_CHUNK
    except (OSError, CacheError):
        return None


def _write_file(path: Path, data: bytes, replace: bool = False) -> None:
    """Writes a chunk or shard file; ``replace``: under a temporary name, then renamed over the
    old one, so that a kill midway leaves the old file whole."""
    if not path.parent.is_dir():  # a nested key ("c/12/0/0/0", caches before the flat keys)
        path.parent.mkdir(parents=True, exist_ok=True)
    if not replace:
        path.write_bytes(data)
        return
    temporary = path.with_name(path.name + PARTIAL_SUFFIX)
    temporary.write_bytes(data)
    os.replace(temporary, path)


class AddedArrays:
    """Arrays that a later stage adds to a finished cache (the pseudo-labels), one chunk a
    window, written block after block and resumable. The first array's attributes hold the
    stage's ``options``, then ``windows_done`` (raised after each block's data is stored) and
    ``complete``: a run with the same options resumes where the last one stopped, a finished one
    is left as it is, and other options are refused unless ``overwrite``."""

    def __init__(self, cache: Cache, arrays: dict[str, ArraySpec], options: dict, overwrite: bool = False,
                 what: str = "them"):
        self.path = cache.path
        self.group = open_group(cache.path, mode="r+")
        self.first = next(iter(arrays))
        self.windows, self.done, self.complete = len(cache), 0, False
        if self.first in self.group:
            previous = dict(self.group[self.first].attrs)
            if previous.get("options") != options:
                if not overwrite:
                    raise CacheError(cache.path, f"already holds {what} options; use --overwrite to replace them")
            elif previous.get(CacheAttr.COMPLETE):
                self.done, self.complete = self.windows, True
            else:
                self.done = int(previous.get(CacheAttr.WINDOWS_DONE, 0))
        if self.done == 0:
            for name, spec in arrays.items():
                _create_array(self.group, name, spec, overwrite=True)
            self.group[self.first].update_attributes({"options": options, CacheAttr.COMPLETE: False, CacheAttr.WINDOWS_DONE: 0})
            consolidate(self.path)  # the new arrays are seen at once; their progress when finished

    def write(self, start: int, values: dict[str, np.ndarray]) -> None:
        """Stores windows start, start + 1, ... of each array, then records them as done."""
        for name, window_values in values.items():
            write_windows(self.group, name, start, window_values)
        self.done = start + len(next(iter(values.values())))
        self.group[self.first].attrs[CacheAttr.WINDOWS_DONE] = self.done

    def finish(self) -> None:
        self.group[self.first].attrs[CacheAttr.COMPLETE] = True
        self.complete = True
        consolidate(self.path)


def open_partial(path: Path) -> zarr.Group:
    return open_group(partial_path(path), mode="r+")


def mark_progress(group: zarr.Group, windows_done: int) -> None:
    """Records that windows [0, windows_done) are written; called after their data is stored."""
    group.attrs[CacheAttr.WINDOWS_DONE] = windows_done


def finish(group: zarr.Group, path: Path) -> None:
    """Marks the partial cache complete and renames it into place (in a remote store it is in
    place already: ``complete``, written last, is the mark)."""
    group.attrs[CacheAttr.COMPLETE] = True
    consolidate(partial_path(path))
    if is_remote(path):
        return
    if path.exists():
        shutil.rmtree(path)
    os.replace(partial_path(path), path)


def _chunk_file(array: zarr.Array, index: tuple[int, ...]) -> Path | None:
    """The file that holds chunk ``index`` in a local store (the chunk's own file, or its shard's;
    its key in the array's own encoding), else None."""
    root = getattr(array.store, "root", None)
    if root is None:
        return None
    if array.shards is not None:
        index = tuple(i * c // s for i, c, s in zip(index, array.chunks, array.shards))
    return Path(root) / array.path / array.metadata.chunk_key_encoding.encode_chunk_key(index)


def _window_chunks(array: zarr.Array, k: int, length: int | None) -> list[tuple[int, ...]]:
    """The chunks that hold window ``k``: the whole row, or the first ``length`` values of it."""
    if array.ndim == 1:
        return [(k // array.chunks[0],)]
    if length is None:
        return [(k, *index) for index in np.ndindex(*array.cdata_shape[1:])]
    return [(k, j) for j in range(-(-length // array.chunks[1]))]


def _array_names(root: Path) -> list[str]:
    """Every array of a cache folder, from the files (zarr's own listing stops at a garbled node)."""
    names = []
    for metadata in sorted(root.rglob("zarr.json")):
        node = metadata.parent.relative_to(root).as_posix()
        try:
            is_array = json.loads(metadata.read_text()).get("node_type") == "array"
        except (OSError, ValueError, AttributeError):
            is_array = node != "." and "c" not in metadata.parent.relative_to(root).parts  # unreadable: say so later
        if is_array and node != ".":
            names.append(node)
    return names


def uncompressed_size(cache: Cache) -> int:
    """Bytes of every array of a cache as plain numpy arrays (of the event arrays, the events
    they hold, not their padding)."""
    def walk(group: zarr.Group) -> int:
        return sum(int(np.prod(a.shape)) * a.dtype.itemsize for _, a in group.arrays()) + sum(
            walk(g) for name, g in group.groups() if not (group is cache.group and name == EVENTS_GROUP)
        )

    stored_events = 2 * PACKED_DTYPE.itemsize * int(cache.n_events.sum()) if cache.has_events else 0
    return walk(cache.group) + stored_events


def disk_size(path: Path) -> int:
    if is_remote(path):
        return int(path.fs.du(path.path))
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


class Cache:
    """A finished cache opened for reading: checks the schema and completeness."""

    def __init__(self, path: str | Path, mode: str = "r"):
        self.path = location(path)
        if not self.path.exists():
            raise InputError(self.path, "no such cache")
        try:
            self.group = open_group(self.path, mode)
        except Exception as err:  # noqa: BLE001 - zarr raises many kinds for a broken store
            raise CacheError(self.path, f"not a readable Zarr cache ({type(err).__name__}: {err})") from err
        self.attrs = dict(self.group.attrs)
        schema = self.attrs.get(CacheAttr.EVTOOLS, {}).get("schema")
        if schema != SCHEMA:
            raise CacheError(self.path, f"cache schema {schema}, this evtools reads schema {SCHEMA}")
        if self.attrs.get(CacheAttr.COMPLETE) is not True:
            raise CacheError(self.path, "incomplete cache (its conversion did not finish); run the conversion again")
        windows = self.attrs.get(CacheAttr.WINDOWS_DONE)
        if type(windows) is not int or windows < 0:
            raise CacheError(self.path, f"its attribute windows_done is {windows!r}, not a number of windows (damaged)")
        self._values: dict[str, np.ndarray] = {}
        self._arrays: dict[str, zarr.Array] = {}
        self._counts_checked = False

    def __len__(self) -> int:
        return int(self.array(CacheArray.N_EVENTS).shape[0])  # the shape alone: no chunk is read

    @property
    def width(self) -> int:
        return int(self.attrs[CacheAttr.SENSOR]["width"])

    @property
    def height(self) -> int:
        return int(self.attrs[CacheAttr.SENSOR]["height"])

    @property
    def representations(self) -> list[str]:
        return sorted(self.attrs[CacheAttr.REPRESENTATIONS])

    def array(self, name: str) -> zarr.Array:
        """An array of the cache, looked up once (a lookup reads its metadata: about a third of a
        stored window's read of its events)."""
        if name in self._arrays:
            return self._arrays[name]
        try:
            array = self.group[name] if name in self.group else None
        except Exception as err:  # noqa: BLE001 - a garbled zarr.json of the array
            raise CacheError(self.path, f"array '{name}' is unreadable ({type(err).__name__})") from err
        if array is None:
            raise CacheError(self.path, f"has no array '{name}'")
        self._check_shape(name, array)
        self._arrays[name] = array
        return array

    def _check_shape(self, name: str, array: zarr.Array) -> None:
        """Refuses an array whose shape a damaged zarr.json changed: every array holds a row a
        window, as many as the windows done, and a window's tensor is one chunk, whole (an absurd
        shape would have the readers list chunks or allocate without end)."""
        windows = self.attrs[CacheAttr.WINDOWS_DONE]
        if not array.ndim or array.shape[0] != windows:
            raise CacheError(self.path, f"array '{name}' holds {array.shape[0] if array.ndim else 0} windows, the "
                                        f"cache {windows} (its metadata is damaged)")
        if array.ndim > 2 and tuple(array.chunks) != (1, *array.shape[1:]):
            raise CacheError(self.path, f"array '{name}' has windows of shape {array.shape[1:]} in chunks of "
                                        f"{array.chunks}, not one whole window a chunk (its metadata is damaged, or "
                                        "evtools did not write it)")

    def has(self, name: str) -> bool:
        try:
            return name in self.group
        except Exception:  # noqa: BLE001 - unreadable metadata: absent for this purpose
            return False

    def window(self, name: str, k: int, length: int | None = None) -> np.ndarray:
        """Window ``k`` of a window-chunked array (K, ...), read from its own chunks, which must be
        there: zarr would read a deleted chunk as zeros. ``length`` reads only the first values of
        a (K, capacity) array chunked along both axes (the event arrays)."""
        array = self.array(name)
        self._require_finished(name)  # the windows it did not reach have no files: say why
        if length is not None and not 0 <= length <= array.shape[-1]:
            raise ValueError(f"length must be 0 to {array.shape[-1]}, what a window of '{name}' holds, got {length}")
        for index in _window_chunks(array, k, length):
            chunk = _chunk_file(array, index)
            if chunk is not None and not chunk.exists():
                raise CacheError(self.path, f"window {k} of '{name}' is missing (the file that holds it was deleted); "
                                            "evtools info --verify lists every problem")
        return self._decoded(name, f"window {k}", lambda: array[k] if length is None else array[k, :length])

    def windows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Windows [start, stop) of an array (K, ...), read together; a chunk that cannot be
        decoded is a CacheError naming the array and the windows."""
        array = self.array(name)
        return self._decoded(name, f"windows {start}-{stop - 1}", lambda: np.asarray(array[start:stop]))

    def values(self, name: str) -> np.ndarray:
        """The whole of a per-window array (K,), such as ``t_end_us``, read once."""
        if name not in self._values:
            array = self.array(name)
            self._values[name] = self._decoded(name, "its values", lambda: np.asarray(array[:]))
        return self._values[name]

    def _decoded(self, name: str, what: str, read):
        self._require_finished(name)
        try:
            return read()
        except Exception as err:  # noqa: BLE001 - a corrupt chunk: the codec's errors have many types
            raise CacheError(self.path, f"{what} of '{name}' cannot be decoded ({type(err).__name__})") from err

    def windows_done(self, name: str) -> int | None:
        """For an array that a later stage added and has not finished, the windows it holds;
        None for any other array."""
        holder = ADDED_PROGRESS.get(name)
        if holder is None:
            return None
        attrs = self.array(holder).attrs  # the array is looked up once: its attributes are in memory
        return int(attrs.get(CacheAttr.WINDOWS_DONE, 0)) if attrs.get(CacheAttr.COMPLETE) is False else None

    def _require_finished(self, name: str) -> None:
        """Refuses to read arrays that a later stage added and has not finished (the windows it
        did not reach would read as zeros: pseudo-labels of class 0)."""
        done = self.windows_done(name)
        if done is not None:
            raise CacheError(self.path, f"its '{name}' are unfinished ({done} of {len(self)} windows: the run writing "
                                        "them stopped); run it again to finish them")

    @property
    def has_events(self) -> bool:
        return self.attrs.get(CacheAttr.EVENTS) is not None

    @property
    def n_events(self) -> np.ndarray:
        """(K,) events of each window, checked when first read: none negative and, where the cache
        stores the events, none beyond what a window of its event arrays holds (a damaged chunk
        can decode to any number, and the events are read up to a window's count)."""
        counts = self.values(CacheArray.N_EVENTS)
        if not self._counts_checked:
            if problem := self._count_problem(counts):
                raise CacheError(self.path, problem)
            self._counts_checked = True
        return counts

    def _count_problem(self, counts: np.ndarray) -> str | None:
        """What is wrong with the windows' event counts, if anything: a count below 0, or, where
        the cache stores events, beyond what a window of the event arrays holds."""
        capacity = min(self.array(name).shape[-1] for name in EVENT_ARRAYS) if self.has_events else None
        outside = np.flatnonzero((counts < 0) | (counts > (np.inf if capacity is None else capacity)))
        if not len(outside):
            return None
        k = int(outside[0])
        limit = "at least 0" if capacity is None else f"0 to {capacity}, what a window of the event arrays holds"
        return f"'{CacheArray.N_EVENTS}' counts {counts[k]} events in window {k}, not {limit}"

    def window_events(self, k: int) -> Events:
        """The events of window ``k`` of a cache that stores them (``--repr events``)."""
        if not self.has_events:
            raise CacheError(self.path, "stores no events (convert with --repr events)")
        n = int(self.n_events[k])
        dt, xyp = (self.window(name, k, n) for name in EVENT_ARRAYS)
        t_start, t_end = int(self.values(CacheArray.T_START)[k]), int(self.values(CacheArray.T_END)[k])
        last = t_start + int(dt.sum(dtype=np.uint64))  # a Python int: a damaged time cannot wrap around
        if last > t_end:  # every window mode keeps its events before its end
            raise CacheError(self.path, f"window {k}: its events run to {last} us, past its end at {t_end} us")
        try:
            return unpack_window(dt, xyp, t_start, self.width, self.height)
        except ValueError as err:
            raise CacheError(self.path, f"window {k}: {err}") from None

    def verify(self) -> list[str]:
        """Every problem found by reading every chunk of every array: missing or undecodable
        chunks, and counts and times that disagree; an empty list for a sound cache."""
        problems = []
        k = self.attrs[CacheAttr.WINDOWS_DONE]  # what every array holds (array checks it)
        counts = None  # each window's events, where they are sound: how far its event arrays are read
        try:
            values = self.values(CacheArray.N_EVENTS)
            problem = self._count_problem(values)
        except CacheError:
            pass  # an undecodable count or unreadable event arrays, reported below with every array
        else:
            problems += [problem] if problem else []
            counts = None if problem else values
        for name in _array_names(self.path):
            try:
                array = self.array(name)
            except CacheError as err:
                problems.append(err.problem)
                continue
            if name in EVENT_ARRAYS:
                expected = [] if counts is None else [index for w in range(k) for index in _window_chunks(array, w, counts[w])]
            else:
                expected = (list(np.ndindex(*array.cdata_shape)) if array.ndim == 1 else
                            [index for w in range(k) for index in _window_chunks(array, w, None)])
            missing = _missing_chunks(array, expected)
            if missing:
                problems.append(f"'{name}': {len(missing)} of {len(expected)} chunks missing (the first at chunk {missing[0]})")
            for start in range(0, k, array.chunks[0]):
                try:
                    array[start : start + array.chunks[0]]
                except Exception as err:  # noqa: BLE001 - a corrupt chunk
                    problems.append(f"'{name}': windows from {start} cannot be decoded ({type(err).__name__})")
                    break
        try:
            starts, ends = self.values(CacheArray.T_START), self.values(CacheArray.T_END)
        except CacheError:
            pass  # reported with every array
        else:
            if len(after := np.flatnonzero(starts > ends)):
                w = int(after[0])
                problems.append(f"window {w} starts at {starts[w]} us, after its end at {ends[w]} us")
        if self.has_events and not problems:
            for w in range(k):
                try:
                    self.window_events(w)
                except CacheError as err:
                    problems.append(err.problem)
                    break
        return problems
