"""The Zarr v3 cache: its schema, creation, resumption, opening, and the refusal of stale ones.

A cache is keyed by its source's content fingerprint and by every parameter that shapes its
values (window, crop, representations, read options): opening it for other parameters is
refused, never silently reused. A conversion writes into ``NAME.zarr.partial`` and renames it
to ``NAME.zarr`` once every window is written, so no file named like a finished cache is ever
incomplete. The format is documented in docs/cache-format.md.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle

from evtools import __version__
from evtools.errors import EvtoolsError, InputError
from evtools.events import PACKED_DTYPE, Events, unpack_window

SCHEMA = 1
PARTIAL_SUFFIX = ".partial"
FINGERPRINT_SAMPLE = 1 << 20
PARAMETER_FIELDS = ("window", "crop", "representations", "read_options", "ground_truth", "events")
# windows stored as events (``--repr events``): two (K, capacity) uint32 arrays, chunked along the
# events too, so that reading a window touches only the chunks its events fill
EVENTS_GROUP = "events"
EVENTS_DT = f"{EVENTS_GROUP}/dt"
EVENTS_XYP = f"{EVENTS_GROUP}/xyp"
EVENT_CHUNK = 1 << 16
# zstd level 1 through Blosc, without shuffling, by default: windows of event tensors are mostly
# zeros, which zstd packs best as they are. Measured on 50 ms voxel grids of synthetic driving
# data (2% nonzero): 28x smaller at about 640 MB/s, against 17x with byte shuffle and 10x with
# bit-shuffle, both slower. lz4 writes about three times faster for half the ratio: the choice
# when conversion speed matters more than disk (see docs/cache-format.md).
CODECS = ("zstd", "lz4")
SHUFFLES = {BloscShuffle.noshuffle: numcodecs.Blosc.NOSHUFFLE, BloscShuffle.shuffle: numcodecs.Blosc.SHUFFLE,
            BloscShuffle.bitshuffle: numcodecs.Blosc.BITSHUFFLE}


def compressor(codec: str = "zstd", shuffle: bool = False) -> BloscCodec:
    if codec not in CODECS:
        raise EvtoolsError(f"unknown codec '{codec}' (known: {', '.join(CODECS)})")
    return BloscCodec(cname=codec, clevel=1, shuffle=BloscShuffle.shuffle if shuffle else BloscShuffle.noshuffle)


class CacheError(InputError):
    """A cache that cannot be used as asked."""


class StaleCacheError(CacheError):
    """A cache made from another source or with other parameters."""


def fingerprint(path: str | Path) -> str:
    """sha256 of a file's size and its first and last MiB, or of every file of a directory so
    (names included): a content key that survives copies and renames and costs little."""
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    digest = hashlib.sha256()
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(root) if root.is_dir() else ''}:{size}".encode())
        with open(file, "rb") as handle:
            digest.update(handle.read(FINGERPRINT_SAMPLE))
            if size > FINGERPRINT_SAMPLE:
                handle.seek(max(size - FINGERPRINT_SAMPLE, FINGERPRINT_SAMPLE))
                digest.update(handle.read())
    return digest.hexdigest()


def source_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + PARTIAL_SUFFIX)


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

    def parameters(self) -> dict:
        return {field: getattr(self, field) for field in PARAMETER_FIELDS}


def key_differences(attrs: dict, key: CacheKey) -> list[str]:
    """What differs between a cache's attributes and ``key``: "source" and parameter names."""
    source = ["source"] if attrs.get("source", {}).get("fingerprint") != key.source_fingerprint else []
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
        attrs = dict(zarr.open_group(partial, mode="r").attrs)
    except Exception:  # noqa: BLE001 - a conversion killed while creating the group: start over
        attrs = {}
    if "windows_done" not in attrs:  # its creation did not finish (the attributes come last)
        shutil.rmtree(partial)
        return None
    _refuse_other_key(partial, attrs, key)
    return int(attrs.get("windows_done", 0))


def finished_matches(path: Path, key: CacheKey) -> bool:
    """Whether a finished cache for exactly this key is already at ``path``; other keys are refused."""
    if not path.exists():
        return False
    cache = Cache(path)
    _refuse_other_key(path, cache.attrs, key)
    return True


@contextmanager
def conversion_lock(path: Path) -> Iterator[None]:
    """Held while a conversion writes the cache ``path``: an exclusive ``flock`` on
    ``NAME.zarr.lock``, which the system releases when the process ends however it ends (kill -9
    included), so a stale lock never blocks. A second conversion into the same output is refused."""
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(path, "another conversion is writing this cache now; wait for it to finish") from None
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        handle.close()


def is_evtools_cache(path: Path) -> bool:
    """Whether ``path`` is a Zarr group that evtools wrote (finished or not)."""
    try:
        metadata = json.loads((Path(path) / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(metadata, dict) and "evtools" in metadata.get("attributes", {})


def remove_cache(path: Path) -> None:
    """Deletes an evtools cache and its partial; anything else at those paths is refused."""
    for target in (path, partial_path(path)):
        if target.exists() or target.is_symlink():
            if target.is_symlink() or not target.is_dir() or not is_evtools_cache(target):
                raise InputError(target, "is not an evtools cache: --overwrite deletes only caches (move it away)")
            shutil.rmtree(target)


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


def event_arrays(n_windows: int, capacity: int) -> dict[str, ArraySpec]:
    """The two arrays of windows stored as events, for windows of at most ``capacity`` events."""
    shape = (n_windows, max(capacity, 1))
    chunks = (1, min(shape[1], EVENT_CHUNK))
    return {name: ArraySpec(shape, PACKED_DTYPE, {"encoding": encoding}, chunks, shuffle=True)
            for name, encoding in ((EVENTS_DT, "microseconds since the previous event (the first: since t_start_us)"),
                                   (EVENTS_XYP, "(y * width + x) * 2 + (polarity > 0)"))}


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
    group = zarr.open_group(partial_path(path), mode="w")
    for name, spec in arrays.items():
        shape = spec.shape
        group.create_array(
            name,
            shape=shape,
            chunks=spec.chunks or ((1, *shape[1:]) if len(shape) > 1 else (windows_per_block,)),
            dtype=spec.dtype,
            compressors=compressor(codec, spec.shuffle),
            fill_value=0,
            attributes=spec.attributes,
            # skips zarr's all-fill check of every chunk: windows are rarely all zero, and an
            # all-zero one compresses to a few bytes anyway
            config={"write_empty_chunks": True},
        )
    for name, values in (initial or {}).items():
        group[name][:] = values
    group.attrs.update(
        {
            "evtools": {"schema": SCHEMA, "version": __version__},
            "source": {**source, "fingerprint": key.source_fingerprint},
            **key.parameters(),
            **attrs,
            "complete": False,
            "windows_done": 0,
        }
    )
    return group


def write_windows(group: zarr.Group, name: str, first: int, values: np.ndarray) -> None:
    """Stores ``values`` as windows first, first + 1, ... of a window-chunked array of ``group``.

    Each window is encoded with the array's own Blosc settings and written as the chunk file the
    Zarr v3 default key encoding names (``<array>/c/<k>/0/0...``), which zarr then reads as
    usual. This skips zarr's per-chunk write machinery, which costs as much again as the
    compression itself (measured: 400 against 750 MB/s for 50 ms voxel grids with lz4).
    """
    array = group[name]
    encoder = _encoder(array)
    for offset, window in enumerate(np.ascontiguousarray(values, dtype=array.dtype.newbyteorder("<"))):
        _write_chunk(array, (first + offset, *[0] * (array.ndim - 1)), encoder, window)


def write_window_events(group: zarr.Group, k: int, packed: tuple[np.ndarray, np.ndarray]) -> None:
    """Stores one window's packed events (``pack_window``'s dt, xyp) as row ``k`` of the event
    arrays: only the chunks they fill, the last padded with zeros; the rest stay absent."""
    for name, values in zip((EVENTS_DT, EVENTS_XYP), packed):
        array = group[name]
        encoder, size = _encoder(array), array.chunks[1]
        for j, start in enumerate(range(0, len(values), size)):
            piece = np.zeros(size, array.dtype.newbyteorder("<"))
            piece[: min(size, len(values) - start)] = values[start : start + size]
            _write_chunk(array, (k, j), encoder, piece)


def _encoder(array: zarr.Array) -> numcodecs.Blosc:
    """A numcodecs Blosc with the array's own settings (the bytes zarr itself would write)."""
    bytes_codec, blosc = array.metadata.codecs
    return numcodecs.Blosc(
        cname=blosc.cname.value, clevel=blosc.clevel, shuffle=SHUFFLES[blosc.shuffle], blocksize=blosc.blocksize
    )


def _write_chunk(array: zarr.Array, index: tuple[int, ...], encoder: numcodecs.Blosc, values: np.ndarray) -> None:
    chunk = _chunk_file(array, index)
    chunk.parent.mkdir(parents=True, exist_ok=True)
    chunk.write_bytes(encoder.encode(values))


def open_partial(path: Path) -> zarr.Group:
    return zarr.open_group(partial_path(path), mode="r+")


def mark_progress(group: zarr.Group, windows_done: int) -> None:
    """Records that windows [0, windows_done) are written; called after their data is stored."""
    group.attrs["windows_done"] = windows_done


def finish(group: zarr.Group, path: Path) -> None:
    """Marks the partial cache complete and renames it into place."""
    group.attrs["complete"] = True
    if path.exists():
        shutil.rmtree(path)
    os.replace(partial_path(path), path)


def _chunk_file(array: zarr.Array, index: tuple[int, ...]) -> Path | None:
    """The file of one chunk in a local store (zarr v3's default key encoding), else None."""
    root = getattr(array.store, "root", None)
    if root is None:
        return None
    return Path(root) / array.path / "c" / "/".join(map(str, index))


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
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


class Cache:
    """A finished cache opened for reading: checks the schema and completeness."""

    def __init__(self, path: str | Path, mode: str = "r"):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(self.path, "no such cache")
        try:
            self.group = zarr.open_group(self.path, mode=mode)
        except Exception as err:  # noqa: BLE001 - zarr raises many kinds for a broken store
            raise CacheError(self.path, f"not a readable Zarr cache ({type(err).__name__}: {err})") from err
        self.attrs = dict(self.group.attrs)
        schema = self.attrs.get("evtools", {}).get("schema")
        if schema != SCHEMA:
            raise CacheError(self.path, f"cache schema {schema}, this evtools reads schema {SCHEMA}")
        if self.attrs.get("complete") is not True:
            raise CacheError(self.path, "incomplete cache (its conversion did not finish); run the conversion again")
        self._values: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self.array("n_events").shape[0])  # the shape alone: no chunk is read

    @property
    def width(self) -> int:
        return int(self.attrs["sensor"]["width"])

    @property
    def height(self) -> int:
        return int(self.attrs["sensor"]["height"])

    @property
    def representations(self) -> list[str]:
        return sorted(self.attrs["representations"])

    def array(self, name: str) -> zarr.Array:
        try:
            if name in self.group:
                return self.group[name]
        except Exception as err:  # noqa: BLE001 - a garbled zarr.json of the array
            raise CacheError(self.path, f"array '{name}' is unreadable ({type(err).__name__})") from err
        raise CacheError(self.path, f"has no array '{name}'")

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
        for index in _window_chunks(array, k, length):
            chunk = _chunk_file(array, index)
            if chunk is not None and not chunk.exists():
                raise CacheError(self.path, f"window {k} of '{name}' is missing (its chunk file was deleted); "
                                            "evtools info --verify lists every problem")
        return self._decoded(name, f"window {k}", lambda: array[k] if length is None else array[k, :length])

    def values(self, name: str) -> np.ndarray:
        """The whole of a per-window array (K,), such as ``t_end_us``, read once."""
        if name not in self._values:
            array = self.array(name)
            self._values[name] = self._decoded(name, "its values", lambda: np.asarray(array[:]))
        return self._values[name]

    def _decoded(self, name: str, what: str, read):
        try:
            return read()
        except Exception as err:  # noqa: BLE001 - a corrupt chunk: the codec's errors have many types
            raise CacheError(self.path, f"{what} of '{name}' cannot be decoded ({type(err).__name__})") from err

    @property
    def has_events(self) -> bool:
        return self.attrs.get("events") is not None

    @property
    def n_events(self) -> np.ndarray:
        """(K,) events of each window."""
        return self.values("n_events")

    def window_events(self, k: int) -> Events:
        """The events of window ``k`` of a cache that stores them (``--repr events``)."""
        if not self.has_events:
            raise CacheError(self.path, "stores no events (convert with --repr events)")
        n = int(self.n_events[k])
        dt, xyp = (self.window(name, k, n) for name in (EVENTS_DT, EVENTS_XYP))
        try:
            return unpack_window(dt, xyp, int(self.values("t_start_us")[k]), self.width, self.height)
        except ValueError as err:
            raise CacheError(self.path, f"window {k}: {err}") from None

    def verify(self) -> list[str]:
        """Every problem found by reading every chunk of every array: missing or undecodable
        chunks, and counts that disagree; an empty list for a sound cache."""
        problems = []
        k = len(self)
        if self.attrs.get("windows_done") != k:
            problems.append(f"windows_done is {self.attrs.get('windows_done')}, the arrays hold {k} windows")
        for name in _array_names(self.path):
            try:
                array = self.array(name)
            except CacheError as err:
                problems.append(err.problem)
                continue
            if array.shape[:1] != (k,):
                problems.append(f"'{name}' has {array.shape[0] if array.ndim else 0} windows, n_events {k}")
                continue
            lengths = self.n_events if name in (EVENTS_DT, EVENTS_XYP) else [None] * k
            expected = (list(np.ndindex(*array.cdata_shape)) if array.ndim == 1 else
                        [index for w in range(k) for index in _window_chunks(array, w, lengths[w])])
            missing = [index for index in expected if (chunk := _chunk_file(array, index)) is not None and not chunk.exists()]
            if missing:
                problems.append(f"'{name}': {len(missing)} of {len(expected)} chunks missing (the first at chunk {missing[0]})")
            for start in range(0, k, array.chunks[0]):
                try:
                    array[start : start + array.chunks[0]]
                except Exception as err:  # noqa: BLE001 - a corrupt chunk
                    problems.append(f"'{name}': windows from {start} cannot be decoded ({type(err).__name__})")
                    break
        if self.has_events and not problems:
            for w in range(k):
                try:
                    self.window_events(w)
                except CacheError as err:
                    problems.append(err.problem)
                    break
        return problems
